/*
 * engine.c: the hub of the engine. Every public entry point of engine.h enters here: packets
 * from the device are parsed (fragments reassembled first, engine_frag.c) and handed to the
 * TCP stack (whose callbacks are the TCP session kind, engine_tcp.c), the UDP kinds
 * (engine_udp.c) or answered here (ICMP echo); completions from the upstream connector are
 * looked up in the flow table (flow.h) and dispatched through the flow's ops, whatever its
 * kind; timers and network events go to their owners. After each entry point the hub reaps
 * (the safe point where ended flows are freed).
 */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

#include "engine_fakedns.h"
#include "engine_internal.h"

void t2s_engine_config_default(t2s_engine_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->seed = 1;
  cfg->mtu = 0;
  cfg->proxy_kind = T2S_PROXY_NONE;
  cfg->tcp_connect_timeout = 10 * T2S_SECONDS;
  cfg->tcp_sndbuf = 256 * 1024;
  cfg->tcp_rcvbuf = 256 * 1024;
  cfg->max_tcp_flows = 16384;
  cfg->max_pending_syn = 1024;
  cfg->tcp_time_wait = 2 * T2S_SECONDS;
  cfg->tcp_max_retries = 12;
  cfg->tcp_keepalive_idle = 0;
  cfg->udp_timeout = 60 * T2S_SECONDS;
  cfg->dns_timeout = 10 * T2S_SECONDS;
  cfg->max_udp_sessions = 4096;
  cfg->icmp_echo_reply = true;
  cfg->icmp_unreach_on_refuse = false;
  cfg->on_network_change = T2S_NETCHANGE_RESET_AFFECTED;
  cfg->network_debounce = 500 * T2S_MILLISECONDS;
  cfg->memory_budget = 512ULL * 1024 * 1024;
}

const char *t2s_engine_event_name(t2s_engine_event_type type) {
  switch (type) {
  case T2S_EV_DROP:
    return "drop";
  case T2S_EV_ICMP_ECHO:
    return "icmp_echo";
  case T2S_EV_TCP_SYN:
    return "tcp_syn";
  case T2S_EV_TCP_ESTABLISHED:
    return "tcp_established";
  case T2S_EV_TCP_REFUSED:
    return "tcp_refused";
  case T2S_EV_TCP_CLOSED:
    return "tcp_closed";
  case T2S_EV_TCP_RESET:
    return "tcp_reset";
  case T2S_EV_UDP_OPEN:
    return "udp_open";
  case T2S_EV_UDP_CLOSED:
    return "udp_closed";
  case T2S_EV_NET_EVENT:
    return "net_event";
  case T2S_EV_NET_STATE:
    return "net_state";
  case T2S_EV_NET_DECISION:
    return "net_decision";
  case T2S_EV_EGRESS:
    return "egress";
  case T2S_EV_ROUTE_UPDATE:
    return "route_update";
  case T2S_EV_PROXY_PROBE:
    return "proxy_probe";
  case T2S_EV_PROXY_DOWN:
    return "proxy_down";
  case T2S_EV_PROXY_UP:
    return "proxy_up";
  case T2S_EV_PROXY_FAILURES:
    return "proxy_failures";
  case T2S_EV_TCP_RETRY:
    return "tcp_retry";
  }
  return "engine_event";
}

static void copy_str(char *dst, size_t dstlen, const char *src) {
  size_t n = strlen(src);
  if (n >= dstlen) {
    n = dstlen - 1;
  }
  memcpy(dst, src, n);
  dst[n] = 0;
}

static int tcp_output_cb(void *arg, const uint8_t *pkt, size_t len) {
  return t2s_engine_send(arg, pkt, len);
}

static int tcp_output_v_cb(void *arg, const uint8_t *hdr, size_t hdrlen, const uint8_t *p1,
                           size_t l1, const uint8_t *p2, size_t l2) {
  t2s_iovec iov[3] = {{hdr, hdrlen}, {p1, l1}, {p2, l2}};
  return t2s_engine_sendv(arg, iov, l2 > 0 ? 3 : 2);
}

/* ---- the TCP stack's callbacks, dispatched by kind ----
 * A SYN goes to the kind that terminates such connections (with --fake-dns, port 53 is the
 * DNS responder's; everything else a TCP session's). Its on_syn makes the connection's user its
 * t2s_flow (or refuses it); every later callback goes to that flow's kind. */

static const t2s_tcp_callbacks *conn_kind(const t2s_engine *e, const t2s_tcp_conn *c) {
  const t2s_flow *f = t2s_tcp_conn_get_user(c);
  return f != NULL ? &e->conn_cbs[f->ops->kind] : NULL;
}

static int conn_syn(void *arg, t2s_tcp_conn *c) {
  t2s_engine *e = arg;
  t2s_flow_kind k =
      t2s_engine_fakedns_tcp_wants(e, t2s_tcp_conn_local(c)) ? T2S_FLOW_DNS_LOCAL : T2S_FLOW_TCP;
  return e->conn_cbs[k].on_syn(arg, c);
}

static void conn_established(void *arg, t2s_tcp_conn *c) {
  const t2s_tcp_callbacks *k = conn_kind(arg, c);
  if (k != NULL && k->on_established != NULL) {
    k->on_established(arg, c);
  }
}

static void conn_recv(void *arg, t2s_tcp_conn *c) {
  const t2s_tcp_callbacks *k = conn_kind(arg, c);
  if (k != NULL && k->on_recv != NULL) {
    k->on_recv(arg, c);
  }
}

static void conn_sendable(void *arg, t2s_tcp_conn *c) {
  const t2s_tcp_callbacks *k = conn_kind(arg, c);
  if (k != NULL && k->on_sendable != NULL) {
    k->on_sendable(arg, c);
  }
}

static void conn_fin(void *arg, t2s_tcp_conn *c) {
  const t2s_tcp_callbacks *k = conn_kind(arg, c);
  if (k != NULL && k->on_fin != NULL) {
    k->on_fin(arg, c);
  }
}

static void conn_closed(void *arg, t2s_tcp_conn *c, int err) {
  const t2s_tcp_callbacks *k = conn_kind(arg, c);
  if (k != NULL && k->on_closed != NULL) {
    k->on_closed(arg, c, err);
  }
}

int t2s_engine_new(t2s_engine **pengine, const t2s_engine_config *cfg, const t2s_device *dev,
                   const t2s_upstream *up, const t2s_engine_hooks *hooks) {
  if (pengine == NULL || cfg == NULL || dev == NULL || dev->ops == NULL || up == NULL ||
      up->ops == NULL) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (cfg->proxy_kind == T2S_PROXY_SOCKS5 && cfg->proxy.family == 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  t2s_engine *e = t2s_calloc(cfg->mem, 1, sizeof(*e));
  if (e == NULL) {
    return T2S_ERR_NOMEM;
  }
  e->cfg = *cfg;
  e->mem = cfg->mem ? cfg->mem : &e->own_mem;
  e->mem->limit = cfg->memory_budget;
  if (cfg->username) {
    copy_str(e->username, sizeof(e->username), cfg->username);
    e->cfg.username = e->username;
  }
  if (cfg->password) {
    copy_str(e->password, sizeof(e->password), cfg->password);
    e->cfg.password = e->password;
  }
  e->dev = *dev;
  e->up = *up;
  if (hooks) {
    e->hooks = *hooks;
  }
  t2s_device_caps caps = {0};
  if (dev->ops->get_caps) {
    dev->ops->get_caps(dev->self, &caps);
  }
  if (e->cfg.mtu == 0) {
    e->cfg.mtu = caps.mtu ? caps.mtu : 1500;
  }
  if (e->cfg.mtu < 576) {
    e->cfg.mtu = 576;
  }
  t2s_rand_init(&e->rand, cfg->seed);
  e->net.debounce_at = T2S_TSTAMP_MAX;
  int rv = t2s_flow_table_init(&e->flows, e->mem);
  if (rv != 0) {
    goto fail_flows;
  }

  t2s_tcp_config tcfg;
  t2s_tcp_config_default(&tcfg);
  tcfg.mtu = e->cfg.mtu;
  tcfg.sndbuf = e->cfg.tcp_sndbuf;
  tcfg.rcvbuf = e->cfg.tcp_rcvbuf;
  tcfg.tso = (caps.offloads & T2S_DEVICE_OFFLOAD_TSO) != 0;
  /* The device's own MTU: what it compares a packet with to split it (and checksum it). */
  tcfg.partial_csum_over = tcfg.tso && caps.mtu != 0 ? caps.mtu : 0;
  tcfg.max_conns = e->cfg.max_tcp_flows;
  tcfg.max_pending = e->cfg.max_pending_syn;
  tcfg.pending_timeout = e->cfg.tcp_connect_timeout;
  tcfg.time_wait = e->cfg.tcp_time_wait;
  tcfg.max_retries = e->cfg.tcp_max_retries;
  tcfg.keepalive_idle = e->cfg.tcp_keepalive_idle;
  tcfg.mem = e->mem;
  t2s_engine_tcp_callbacks(&e->conn_cbs[T2S_FLOW_TCP]);
  t2s_engine_fakedns_tcp_callbacks(&e->conn_cbs[T2S_FLOW_DNS_LOCAL]);
  t2s_tcp_callbacks cbs = {
      .output = tcp_output_cb,
      /* A device that writes a packet gathered takes a segment's payload from the ring. */
      .output_v = e->dev.ops->sendv != NULL ? tcp_output_v_cb : NULL,
      .on_syn = conn_syn,
      .on_established = conn_established,
      .on_recv = conn_recv,
      .on_sendable = conn_sendable,
      .on_fin = conn_fin,
      .on_closed = conn_closed,
  };
  rv = t2s_tcp_stack_new(&e->tcp, &tcfg, &cbs, e, &e->rand);
  if (rv != 0) {
    goto fail_sessions;
  }
  rv = t2s_engine_udp_init(e);
  if (rv != 0) {
    goto fail_tcp;
  }
  rv = t2s_engine_frag_init(e);
  if (rv != 0) {
    goto fail_udp;
  }
  *pengine = e;
  return 0;

fail_udp:
  t2s_engine_udp_free(e);
fail_tcp:
  t2s_tcp_stack_del(e->tcp);
fail_sessions:
  t2s_flow_table_free(&e->flows);
fail_flows:
  t2s_free(cfg->mem, e);
  return rv;
}

/* The safe point: frees what the kinds ended during the call. */
static void reap(t2s_engine *e) {
  if (e->reap_due) {
    e->reap_due = false;
    t2s_engine_tcp_reap(e);
    t2s_engine_udp_reap(e);
    t2s_engine_fakedns_tcp_reap(e);
  }
}

void t2s_engine_del(t2s_engine *e) {
  if (e == NULL) {
    return;
  }
  /* In the reverse order of creation: the UDP module closes its sessions (least recently used
   * first), then every flow left (TCP) is destroyed through its ops. */
  t2s_engine_udp_close_all(e);
  t2s_flow_iter it = T2S_FLOW_ITER_INIT;
  /* Each destroy removes its flow's ids: bounded by the number of flows. */
  for (t2s_flow *f; (f = t2s_flow_iter_next(&e->flows, &it)) != NULL;) {
    f->ops->destroy(e, f);
  }
  T2S_ASSERT(t2s_flow_table_len(&e->flows) == 0);
  reap(e);
  t2s_engine_frag_free(e);
  t2s_engine_udp_free(e);
  t2s_tcp_stack_del(e->tcp);
  t2s_flow_table_free(&e->flows);
  t2s_engine_proxy_free(e);
  t2s_free(e->cfg.mem, e);
}

static void handle_icmp(t2s_engine *e, const t2s_pkt *pkt, t2s_tstamp now) {
  bool is_echo =
      (pkt->proto == T2S_IPPROTO_ICMP && pkt->l4.icmp.type == 8 && pkt->l4.icmp.code == 0) ||
      (pkt->proto == T2S_IPPROTO_ICMPV6 && pkt->l4.icmp.type == 128 && pkt->l4.icmp.code == 0);
  if (!is_echo || !e->cfg.icmp_echo_reply) {
    t2s_engine_drop(e, T2S_DROP_ICMP_UNSUPPORTED_TYPE, now, pkt);
    return;
  }
  t2s_ssize n = t2s_build_icmp_echo_reply(e->outbuf, sizeof(e->outbuf), pkt);
  if (n < 0) {
    t2s_engine_drop(e, T2S_DROP_NO_BUFFER, now, pkt);
    return;
  }
  if (t2s_engine_send_frag(e, e->outbuf, (size_t)n) == 0) {
    e->stats.icmp_echo_replies++;
    t2s_engine_emit(e, T2S_EV_ICMP_ECHO, now, 0, &pkt->src, &pkt->dst, 0);
  }
}

static int input_one(t2s_engine *e, const uint8_t *buf, size_t len, unsigned flags, t2s_tstamp now);

int t2s_engine_input(t2s_engine *e, const uint8_t *buf, size_t len, t2s_tstamp now) {
  return t2s_engine_input_ex(e, buf, len, 0, now);
}

int t2s_engine_input_ex(t2s_engine *e, const uint8_t *buf, size_t len, unsigned flags,
                        t2s_tstamp now) {
  e->now = now;
  e->stats.packets_in++;
  bool more = (flags & T2S_INPUT_MORE) != 0;
  flags &= ~T2S_INPUT_MORE;
  if (more && !e->in_burst) {
    e->in_burst = true;
    t2s_tcp_batch_begin(e->tcp);
  }
  int rv = input_one(e, buf, len, flags, now);
  if (!more) {
    t2s_engine_flush(e, now);
  }
  return rv;
}

void t2s_engine_flush(t2s_engine *e, t2s_tstamp now) {
  if (!e->in_burst) {
    return;
  }
  e->now = now;
  e->in_burst = false;
  /* The writes first: the window each consume opens rides on the one ACK flushed after. */
  t2s_engine_tcp_flush(e, now);
  t2s_tcp_flush(e->tcp, now);
  reap(e);
}

static int input_one(t2s_engine *e, const uint8_t *buf, size_t len, unsigned flags,
                     t2s_tstamp now) {
  t2s_pkt pkt;
  t2s_drop_reason r = t2s_pkt_parse_ex(buf, len, flags, &pkt);
  if (r == T2S_DROP_FRAGMENT) {
    /* Reassembled in engine_frag.c; the whole packet is parsed again. */
    const uint8_t *whole;
    size_t wholelen;
    r = t2s_engine_frag_input(e, &pkt, now, &whole, &wholelen);
    if (r == T2S_DROP_NONE && whole == NULL) {
      return 0; /* held until the datagram is complete */
    }
    if (r == T2S_DROP_NONE) {
      r = t2s_pkt_parse(whole, wholelen, &pkt);
    }
  }
  if (r != T2S_DROP_NONE) {
    t2s_engine_drop(e, r, now, NULL);
    return 0;
  }
  switch (pkt.proto) {
  case T2S_IPPROTO_TCP:
    r = t2s_tcp_input(e->tcp, &pkt, now);
    if (r != T2S_DROP_NONE) {
      t2s_engine_drop(e, r, now, &pkt);
    }
    break;
  case T2S_IPPROTO_UDP:
    t2s_engine_udp_input(e, &pkt, now);
    break;
  case T2S_IPPROTO_ICMP:
  case T2S_IPPROTO_ICMPV6:
    handle_icmp(e, &pkt, now);
    break;
  default:
    t2s_engine_drop(e, T2S_DROP_UNSUPPORTED_PROTO, now, &pkt);
    break;
  }
  reap(e);
  return 0;
}

t2s_tstamp t2s_engine_get_expiry(const t2s_engine *e) {
  t2s_tstamp t = t2s_tcp_get_expiry(e->tcp);
  t = T2S_MIN(t, t2s_engine_net_expiry(e));
  t = T2S_MIN(t, t2s_engine_frag_get_expiry(e));
  t = T2S_MIN(t, t2s_engine_udp_get_expiry(e));
  t = T2S_MIN(t, t2s_engine_proxy_expiry(e));
  t = T2S_MIN(t, t2s_engine_fakedns_tcp_get_expiry(e));
  return t;
}

int t2s_engine_handle_expiry(t2s_engine *e, t2s_tstamp now) {
  e->now = now;
  t2s_engine_net_handle_expiry(e, now);
  t2s_tcp_handle_expiry(e->tcp, now);
  t2s_engine_frag_handle_expiry(e, now);
  t2s_engine_udp_handle_expiry(e, now);
  t2s_engine_proxy_handle_expiry(e, now);
  t2s_engine_fakedns_tcp_handle_expiry(e, now);
  reap(e);
  return 0;
}

/* ---- completions from the upstream connector: look the id up, dispatch by kind ---- */

static t2s_flow *flow_of(const t2s_engine *e, uint64_t id) {
  return t2s_flow_table_get(&e->flows, id);
}

void t2s_engine_stream_opened(t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  e->now = now;
  t2s_flow *f = flow_of(e, id);
  if (f != NULL && f->ops->stream_opened != NULL) {
    f->ops->stream_opened(e, f, err, now);
  }
  reap(e);
}

size_t t2s_engine_stream_recv_space(const t2s_engine *e, uint64_t id) {
  const t2s_flow *f = flow_of(e, id);
  return f != NULL && f->ops->stream_recv_space != NULL ? f->ops->stream_recv_space(e, f) : 0;
}

size_t t2s_engine_stream_recv_buf(t2s_engine *e, uint64_t id, size_t len, uint8_t **pbuf) {
  t2s_flow *f = flow_of(e, id);
  *pbuf = NULL;
  return f != NULL && f->ops->stream_recv_buf != NULL ? f->ops->stream_recv_buf(e, f, len, pbuf)
                                                      : 0;
}

size_t t2s_engine_stream_recv(t2s_engine *e, uint64_t id, const uint8_t *data, size_t len,
                              t2s_tstamp now) {
  e->now = now;
  t2s_flow *f = flow_of(e, id);
  size_t taken = 0;
  if (f != NULL && f->mp == T2S_STREAM_MULTIPATH && len > 0) {
    t2s_engine_net_flow_rx(e, f, now); /* the stall of a flow that survived a change */
  }
  if (f != NULL && f->ops->stream_recv != NULL) {
    taken = f->ops->stream_recv(e, f, data, len, now);
  }
  reap(e);
  return taken;
}

void t2s_engine_stream_multipath(t2s_engine *e, uint64_t id, t2s_stream_mp mp, uint32_t subflows,
                                 t2s_tstamp now) {
  e->now = now;
  t2s_flow *f = flow_of(e, id);
  if (f != NULL) {
    t2s_engine_net_stream_multipath(e, f, mp, subflows, now);
  }
}

void t2s_engine_stream_eof(t2s_engine *e, uint64_t id, t2s_tstamp now) {
  e->now = now;
  t2s_flow *f = flow_of(e, id);
  if (f != NULL && f->ops->stream_eof != NULL) {
    f->ops->stream_eof(e, f, now);
  }
  reap(e);
}

void t2s_engine_stream_writable(t2s_engine *e, uint64_t id, t2s_tstamp now) {
  e->now = now;
  t2s_flow *f = flow_of(e, id);
  if (f != NULL && f->ops->stream_writable != NULL) {
    f->ops->stream_writable(e, f, now);
  }
  reap(e);
}

void t2s_engine_stream_error(t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  e->now = now;
  t2s_flow *f = flow_of(e, id);
  if (f != NULL && f->ops->stream_error != NULL) {
    f->ops->stream_error(e, f, err, now);
  }
  reap(e);
}

void t2s_engine_dgram_recv(t2s_engine *e, uint64_t id, const uint8_t *data, size_t len,
                           t2s_tstamp now) {
  e->now = now;
  t2s_flow *f = flow_of(e, id);
  if (f != NULL && f->ops->dgram_recv != NULL) {
    f->ops->dgram_recv(e, f, data, len, now);
  }
  reap(e);
}

void t2s_engine_dgram_error(t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  e->now = now;
  t2s_flow *f = flow_of(e, id);
  if (f != NULL && f->ops->dgram_error != NULL) {
    f->ops->dgram_error(e, f, err, now);
  }
  reap(e);
}

/* ---- network changes (the policy is engine_net.c) ---- */

void t2s_engine_network_event(t2s_engine *e, const t2s_net_event *ev, t2s_tstamp now) {
  e->now = now;
  t2s_engine_net_event(e, ev, now);
  reap(e);
}

size_t t2s_engine_reset_all(t2s_engine *e, t2s_tstamp now) {
  e->now = now;
  size_t n = t2s_engine_reset_flows(e, NULL, now);
  reap(e);
  return n;
}

void t2s_engine_get_stats(const t2s_engine *e, t2s_engine_stats *st) {
  *st = e->stats;
  t2s_tcp_stats ts;
  t2s_tcp_get_stats(e->tcp, &ts);
  st->tcp_flows_active = ts.conns_active;
  st->tcp_pending_syn = ts.conns_pending;
  st->tcp_retransmits = ts.retransmits;
  st->tcp_resets_sent = ts.rsts_sent;
  st->tcp_challenge_acks = ts.challenge_acks;
  st->mem_blocks = e->mem->live;
  st->mem_bytes = e->mem->bytes;
  st->mem_peak_bytes = e->mem->peak_bytes;
  st->mem_refused = e->mem->failed;
}

int t2s_engine_proxy_set_addr(t2s_engine *e, size_t i, const t2s_addr *addr, t2s_tstamp now) {
  int rv = t2s_engine_proxy_readdress(e, i, addr, now);
  if (rv == 1) {
    t2s_engine_net_retarget(e, now); /* proxy 0: the route the network machine follows */
    return 0;
  }
  return rv;
}
