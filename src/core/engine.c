/*
 * engine.c: the engine. Parses what the device delivers, answers ICMP echo, terminates TCP in
 * the userspace stack and splices every connection to an upstream stream (through the SOCKS5
 * client when a proxy is configured), with backpressure and half-close both ways.
 */
#include "engine.h"

#include <stdlib.h>
#include <string.h>

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
  }
  return "engine_event";
}

void t2s_engine_emit(t2s_engine *e, t2s_engine_event_type type, t2s_tstamp now, uint64_t id,
                     const t2s_addr *src, const t2s_addr *dst, int reason) {
  if (e->hooks.on_event == NULL) {
    return;
  }
  t2s_engine_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = type;
  ev.now = now;
  ev.flow_id = id;
  if (src) {
    ev.src = *src;
  }
  if (dst) {
    ev.dst = *dst;
  }
  ev.reason = reason;
  e->hooks.on_event(e->hooks.arg, &ev);
}

void t2s_engine_drop(t2s_engine *e, t2s_drop_reason reason, t2s_tstamp now, const t2s_pkt *pkt) {
  if (reason <= T2S_DROP_NONE || reason >= T2S_DROP_MAX) {
    return;
  }
  e->stats.drops[reason]++;
  t2s_engine_emit(e, T2S_EV_DROP, now, 0, pkt ? &pkt->src : NULL, pkt ? &pkt->dst : NULL,
                  (int)reason);
}

int t2s_engine_send(t2s_engine *e, const uint8_t *pkt, size_t len) {
  int rv = e->dev.ops->send(e->dev.self, pkt, len);
  if (rv != 0) {
    e->stats.drops[T2S_DROP_DEVICE_ERROR]++;
    return rv;
  }
  e->stats.packets_out++;
  return 0;
}

bool t2s_engine_send_unreach(t2s_engine *e, const t2s_addr *from, const t2s_pkt *orig,
                             uint8_t code) {
  t2s_ssize n = t2s_build_icmp_unreach(e->outbuf, sizeof(e->outbuf), from, orig, code);
  return n > 0 && t2s_engine_send(e, e->outbuf, (size_t)n) == 0;
}

bool t2s_engine_send_unreach_rebuilt(t2s_engine *e, const t2s_addr *from, const uint8_t *pkt,
                                     t2s_ssize len, uint8_t code) {
  t2s_pkt quoted;
  if (len < 0 || t2s_pkt_parse(pkt, (size_t)len, &quoted) != T2S_DROP_NONE) {
    return false;
  }
  return t2s_engine_send_unreach(e, from, &quoted, code);
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
  e->next_id = 1;
  e->net.debounce_at = T2S_TSTAMP_MAX;
  t2s_idmap_init(&e->sessions);
  e->sessions.mem = e->mem;
  int rv = T2S_ERR_NOMEM;
  if (t2s_idmap_reserve(&e->sessions, 16) != 0) {
    goto fail_engine;
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
  t2s_tcp_callbacks cbs;
  t2s_engine_tcp_callbacks(&cbs);
  cbs.output = tcp_output_cb;
  rv = t2s_tcp_stack_new(&e->tcp, &tcfg, &cbs, e, &e->rand);
  if (rv != 0) {
    goto fail_sessions;
  }
  rv = t2s_engine_udp_init(e);
  if (rv != 0) {
    goto fail_tcp;
  }
  *pengine = e;
  return 0;

fail_tcp:
  t2s_tcp_stack_del(e->tcp);
fail_sessions:
  t2s_idmap_free(&e->sessions);
fail_engine:
  t2s_free(cfg->mem, e);
  return rv;
}

void t2s_engine_del(t2s_engine *e) {
  if (e == NULL) {
    return;
  }
  t2s_engine_udp_free(e);
  t2s_engine_sessions_close_all(e);
  t2s_tcp_stack_del(e->tcp);
  t2s_idmap_free(&e->sessions);
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
  t2s_engine_reap(e);
}

static int input_one(t2s_engine *e, const uint8_t *buf, size_t len, unsigned flags,
                     t2s_tstamp now) {
  t2s_pkt pkt;
  t2s_drop_reason r = t2s_pkt_parse_ex(buf, len, flags, &pkt);
  if (r == T2S_DROP_FRAGMENT) {
    /* Reassembled in engine_udp.c; the whole packet is parsed again. */
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
  t2s_engine_reap(e);
  return 0;
}

t2s_tstamp t2s_engine_get_expiry(const t2s_engine *e) {
  t2s_tstamp t = t2s_tcp_get_expiry(e->tcp);
  t = T2S_MIN(t, t2s_engine_net_expiry(e));
  t = T2S_MIN(t, t2s_engine_udp_get_expiry(e));
  t = T2S_MIN(t, t2s_engine_proxy_expiry(e));
  return t;
}

int t2s_engine_handle_expiry(t2s_engine *e, t2s_tstamp now) {
  e->now = now;
  t2s_engine_net_handle_expiry(e, now);
  t2s_tcp_handle_expiry(e->tcp, now);
  t2s_engine_udp_handle_expiry(e, now);
  t2s_engine_proxy_handle_expiry(e, now);
  t2s_engine_reap(e);
  return 0;
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
