/*
 * engine_udp.c: UDP sessions.
 *
 * A session is keyed by the client's source address and port (with a SOCKS5 proxy) and is
 * endpoint-independent (full cone): one UDP ASSOCIATE per client socket, the destination is
 * chosen per datagram (in the SOCKS5 UDP header), and a reply from any remote goes back to the
 * client with that remote as its source. The association's control connection lives as long as
 * the session; its close ends the session. Without a proxy (T2S_PROXY_NONE: simulator, tests)
 * a session is one client socket to one destination, through a datagram socket connected to it.
 *
 * Datagrams that arrive while the association is set up wait in a bounded per-session queue.
 * Sessions end after an idle timeout (cfg.udp_timeout; cfg.dns_timeout for DNS sessions, whose
 * datagrams all went to port 53); at max_udp_sessions the least recently used is evicted,
 * DNS sessions first (two LRU lists, which are also the timeout order: the expiry is O(1)).
 *
 * A proxy without UDP (REP 7, or a close instead of the reply as microsocks and ssh -D do) is
 * remembered for NO_UDP_RETRY: meanwhile DNS queries to port 53 are carried as DNS over TCP
 * (RFC 7766 2-byte length framing) through a CONNECT to the same resolver, one stream per
 * client socket and resolver, the answers returned as UDP; other UDP gets ICMP port
 * unreachable so that applications fail fast.
 *
 * This file: UDP input from clients, the three flow kinds of a session and their ops (the
 * datagram socket; the SOCKS5 UDP ASSOCIATE control stream; the DNS-over-TCP stream), their
 * SOCKS5 handshakes and the fallback. The session store below it is engine_udp_sess.c.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine_udp.h"

static const t2s_flow_ops udp_dgram_ops, assoc_ctl_ops, dns_tcp_ops;

/* The session whose datagram socket (control stream) flow f is. */
static usess *sess_of_dg(t2s_flow *f) {
  T2S_ASSERT(f->ops == &udp_dgram_ops);
  return (usess *)((char *)f - offsetof(usess, dg));
}
static usess *sess_of_ctl(t2s_flow *f) {
  T2S_ASSERT(f->ops == &assoc_ctl_ops || f->ops == &dns_tcp_ops);
  return (usess *)((char *)f - offsetof(usess, ctl));
}
static usess *sess_of_any(t2s_flow *f) {
  return f->ops == &udp_dgram_ops ? sess_of_dg(f) : sess_of_ctl(f);
}

/* The no-UDP fallback for one datagram: DNS over TCP for port 53, else ICMP unreachable. asked:
 * where the client sent it (dst, or the address a hijacked query went to). */
static void fallback_send(t2s_engine *e, const t2s_addr *client, const t2s_addr *dst,
                          const t2s_addr *asked, const uint8_t *data, size_t len,
                          const t2s_pkt *orig, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  if (dst->port != DNS_PORT) {
    t2s_engine_drop(e, T2S_DROP_UDP_NO_UDP, now, orig);
    t2s_udp_port_unreach(e, client, dst, orig);
    return;
  }
  usess *s = t2s_udp_lookup(u, client, dst);
  if (s == NULL) {
    s = t2s_udp_sess_open(e, MODE_DNS_TCP, &dns_tcp_ops, client, dst, now);
    if (s == NULL) {
      t2s_udp_servfail(e, client, asked, data, len, T2S_DNS_SERVFAIL_SETUP_FAILED);
      return;
    }
  }
  t2s_udp_touch(u, s, now);
  t2s_udp_sess_send(e, s, dst, data, len, now);
}

/* ---------------- input ---------------- */

static bool no_udp_now(t2s_engine *e, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  if (u->no_udp && now >= u->no_udp_until) {
    u->no_udp = false; /* try UDP ASSOCIATE again */
    e->stats.udp_proxy_no_udp = 0;
  }
  return u->no_udp;
}

void t2s_engine_udp_input(t2s_engine *e, const t2s_pkt *pkt, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  e->now = now;
  bool socks = e->cfg.proxy_kind == T2S_PROXY_SOCKS5;
  if (socks && t2s_addr_eq(&pkt->dst, &e->cfg.proxy)) {
    t2s_engine_drop(e, T2S_DROP_LOOP_GUARD, now, pkt); /* our own traffic came back */
    return;
  }
  if (t2s_engine_offline(e)) {
    /* No route to the proxy (or asleep): the application fails fast instead of waiting. A DNS
     * query with every proxy down gets SERVFAIL (docs/proxies.md). */
    if (!(t2s_engine_proxies_all_down(e) &&
          t2s_udp_servfail(e, &pkt->src, &pkt->dst, pkt->payload, pkt->payload_len,
                           T2S_DNS_SERVFAIL_PROXY_DOWN))) {
      t2s_udp_port_unreach(e, &pkt->src, &pkt->dst, pkt);
    }
    t2s_engine_drop(e, T2S_DROP_OFFLINE, now, pkt);
    return;
  }
  /* --fake-dns: a query answered from the table never leaves; a datagram to a pool address
   * goes through its own association to the name. */
  if (pkt->dst.port == DNS_PORT && t2s_engine_fakedns_on(e) &&
      t2s_engine_fakedns_udp_query(e, pkt, now)) {
    return;
  }
  /* DNS hijack: the datagram goes to the resolver; t2s_udp_deliver() maps the answers back. */
  bool hijack = e->cfg.dns_hijack.family != 0 && pkt->dst.port == DNS_PORT;
  const t2s_addr *dst = hijack ? &e->cfg.dns_hijack : &pkt->dst;
  if (socks && no_udp_now(e, now)) {
    fallback_send(e, &pkt->src, dst, &pkt->dst, pkt->payload, pkt->payload_len, pkt, now);
    usess *fs = hijack ? t2s_udp_lookup(u, &pkt->src, dst) : NULL;
    if (fs != NULL) {
      fs->hijacked = pkt->dst;
    }
    return;
  }
  t2s_addr none;
  memset(&none, 0, sizeof(none));
  const t2s_addr *key = socks ? &none : dst;
  usess *s = NULL;
  if (t2s_engine_fakedns_on(e) && (s = t2s_udp_lookup(u, &pkt->src, dst)) == NULL) {
    const char *fake_name = NULL;
    int fk = t2s_engine_fakedns_flow_start(e, dst, &fake_name, now);
    if (fk < 0 || (fk > 0 && !socks)) {
      if (fk > 0) {
        t2s_engine_fakedns_flow_end(e, dst); /* a name needs the proxy */
      }
      t2s_udp_port_unreach(e, &pkt->src, &pkt->dst, pkt);
      return;
    }
    if (fk > 0) {
      s = t2s_udp_sess_open(e, MODE_ASSOC, &assoc_ctl_ops, &pkt->src, dst, now);
      if (s == NULL) {
        t2s_engine_fakedns_flow_end(e, dst);
        t2s_udp_servfail(e, &pkt->src, &pkt->dst, pkt->payload, pkt->payload_len,
                         T2S_DNS_SERVFAIL_SETUP_FAILED);
        return;
      }
      /* keyed by its pool address, not as the client's shared association */
      t2s_udp_rekey(u, s, dst);
      s->fake_name = fake_name;
    }
  }
  if (s == NULL) {
    s = t2s_udp_lookup(u, &pkt->src, key);
  }
  if (s == NULL) {
    s = socks ? t2s_udp_sess_open(e, MODE_ASSOC, &assoc_ctl_ops, &pkt->src, dst, now)
              : t2s_udp_sess_open(e, MODE_DIRECT, &udp_dgram_ops, &pkt->src, dst, now);
    if (s == NULL) {
      t2s_udp_servfail(e, &pkt->src, &pkt->dst, pkt->payload, pkt->payload_len,
                       T2S_DNS_SERVFAIL_SETUP_FAILED);
      return;
    }
  }
  if (hijack) {
    s->hijacked = pkt->dst;
  }
  if (s->dns && dst->port != DNS_PORT) {
    s->dns = false; /* moves to the other list in t2s_udp_touch() */
  }
  t2s_udp_touch(u, s, now);
  t2s_udp_sess_send(e, s, dst, pkt->payload, pkt->payload_len, now);
}

/* ---------------- datagrams from the upstream ---------------- */

static void udp_dgram_recv(t2s_engine *e, t2s_flow *f, const uint8_t *data, size_t len,
                           t2s_tstamp now) {
  usess *s = sess_of_dg(f);
  t2s_addr src;
  const uint8_t *payload = data;
  size_t plen = len;
  if (s->mode == MODE_ASSOC && s->fake_name) {
    /* --fake-dns: the relay may name the source as it likes; deliver() answers from the pool
     * address. */
    t2s_socks5_host h;
    t2s_socks5_error_reason why = T2S_SOCKS5_REASON_NONE;
    if (t2s_socks5_udp_decode_host(data, len, &h, &payload, &plen, &why) != 0) {
      t2s_engine_drop(
          e, why == T2S_SOCKS5_REASON_FRAG ? T2S_DROP_SOCKS5_UDP_FRAG : T2S_DROP_SOCKS5_UDP_BAD,
          now, NULL);
      return;
    }
    src = s->dst_key;
  } else if (s->mode == MODE_ASSOC) {
    t2s_socks5_error_reason why = T2S_SOCKS5_REASON_NONE;
    int rv = t2s_socks5_udp_decode(data, len, &src, &payload, &plen, &why);
    if (rv != 0 || !t2s_addr_is_valid_src(&src)) { /* the reply's source goes into a packet */
      t2s_engine_drop(
          e, why == T2S_SOCKS5_REASON_FRAG ? T2S_DROP_SOCKS5_UDP_FRAG : T2S_DROP_SOCKS5_UDP_BAD,
          now, NULL);
      return;
    }
  } else {
    src = s->dst_key;
  }
  t2s_udp_touch(e->udp, s, now);
  t2s_udp_deliver(e, s, &src, payload, plen, now);
}

static void udp_dgram_error(t2s_engine *e, t2s_flow *f, int err, t2s_tstamp now) {
  usess *s = sess_of_dg(f);
  s->dgram_open = false; /* the connector forgot it */
  if (s->mode == MODE_DIRECT && (err == T2S_ERR_REFUSED || err == T2S_ERR_UNREACHABLE)) {
    t2s_udp_port_unreach(e, &s->client, &s->dst_key, NULL);
  }
  e->stats.upstream_errors++;
  t2s_udp_sess_close(e, s, err, now);
}

/* ---------------- control streams ---------------- */

/* Writes pending SOCKS5 output. Returns 0 or an error. */
static int ctl_flush(t2s_engine *e, usess *s) {
  const uint8_t *p;
  size_t len;
  for (int i = 0; i < 8 && !s->ctl_blocked; i++) { /* a handshake has at most 3 messages */
    t2s_socks5_client_pending_output(&s->socks, &p, &len);
    if (len == 0) {
      break;
    }
    t2s_ssize n = e->up.ops->stream_write(e->up.self, s->ctl.id, p, len);
    if (n < 0) {
      return (int)n;
    }
    t2s_socks5_client_output_consumed(&s->socks, (size_t)n);
    if ((size_t)n < len) {
      s->ctl_blocked = true;
    }
  }
  return 0;
}

/* The association (or the DNS stream) could not be set up. */
static void setup_failed(t2s_engine *e, usess *s, int err, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  t2s_socks5_error_reason why = t2s_socks5_client_reason(&s->socks);
  bool no_udp = s->mode == MODE_ASSOC && err == T2S_ERR_UNSUPPORTED &&
                (why == T2S_SOCKS5_REASON_REP_CMD_UNSUPPORTED ||
                 why == T2S_SOCKS5_REASON_CLOSED_AFTER_REQUEST);
  e->stats.upstream_errors++;
  if (!no_udp) {
    /* The queued queries will not be carried: SERVFAIL at once (docs/udp.md), from where each
     * went (before the close: it forgets a --fake-dns name). */
    for (qitem *q = s->qhead; q; q = q->next) { /* bounded by QUEUE_MAX_PKTS */
      t2s_udp_servfail(e, &s->client, t2s_udp_reply_src(e, s, &q->dst), q->data, q->len,
                       T2S_DNS_SERVFAIL_SETUP_FAILED);
    }
  }
  /* Detach the queue first: the fallback may open sessions, and s must be gone by then. */
  qitem *q = s->qhead;
  s->qhead = s->qtail = NULL;
  s->qcount = 0;
  s->qbytes = 0;
  t2s_addr client = s->client;
  t2s_addr hijacked = s->hijacked; /* DNS hijack: the fallback answers from it too */
  t2s_udp_sess_close(e, s, err, now);
  if (no_udp) {
    if (!u->no_udp) {
      e->stats.udp_no_udp_verdicts++;
    }
    u->no_udp = true;
    u->no_udp_until = now + NO_UDP_RETRY;
    e->stats.udp_proxy_no_udp = 1;
  }
  while (q) { /* bounded by QUEUE_MAX_PKTS */
    qitem *next = q->next;
    if (no_udp) {
      bool hij = hijacked.family != 0 && t2s_addr_eq(&q->dst, &e->cfg.dns_hijack);
      fallback_send(e, &client, &q->dst, hij ? &hijacked : &q->dst, q->data, q->len, NULL, now);
      usess *fs = hijacked.family != 0 && t2s_addr_eq(&q->dst, &e->cfg.dns_hijack)
                      ? t2s_udp_lookup(u, &client, &q->dst)
                      : NULL;
      if (fs != NULL) {
        fs->hijacked = hijacked;
      }
    } else {
      t2s_engine_drop(e, T2S_DROP_UDP_SETUP_FAILED, now, NULL);
    }
    t2s_free(e->mem, q);
    q = next;
  }
}

/* The SOCKS5 reply arrived: ASSOC opens the datagram socket toward the relay. */
static void sess_ready(t2s_engine *e, usess *s, t2s_tstamp now) {
  if (s->mode == MODE_ASSOC) {
    t2s_addr bnd;
    const t2s_socks5_host *h = t2s_socks5_client_bnd(&s->socks);
    t2s_addr relay;
    int rv = h ? 0 : T2S_ERR_PROTO;
    if (rv == 0) {
      bnd = h->addr;
      rv = t2s_socks5_udp_relay(&bnd, t2s_engine_proxy_addr(e, s->proxy), &relay);
    }
    if (rv == 0) {
      s->dg.ops = &udp_dgram_ops;
      s->dg.id = t2s_flow_table_new_id(&e->flows);
      rv = t2s_flow_table_add(&e->flows, &s->dg);
      if (rv != 0) {
        s->dg.id = 0;
      }
    }
    if (rv == 0) {
      rv = e->up.ops->dgram_open(e->up.self, s->dg.id, &relay, &s->egress);
    }
    if (rv != 0) {
      setup_failed(e, s, rv, now);
      return;
    }
    s->dgram_open = true;
  }
  s->state = ST_READY;
  t2s_udp_queue_flush(e, s, now);
}

static void dns_rx(t2s_engine *e, usess *s, const uint8_t *data, size_t len, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  if (len == 0) {
    return;
  }
  if (s->rxcap < s->rxlen + len) {
    size_t cap = T2S_MAX(s->rxcap * 2, s->rxlen + len);
    cap = T2S_MAX(cap, (size_t)4096);
    cap = T2S_MIN(cap, (size_t)DNS_MSG_MAX + 2);
    if (cap < s->rxlen + len) {
      t2s_udp_sess_close(e, s, T2S_ERR_PROTO, now); /* recv_space makes this unreachable */
      return;
    }
    uint8_t *p = t2s_realloc(e->mem, s->rx, cap);
    if (p == NULL) {
      t2s_udp_sess_close(e, s, T2S_ERR_NOMEM, now);
      return;
    }
    s->rx = p;
    s->rxcap = cap;
  }
  memcpy(s->rx + s->rxlen, data, len);
  s->rxlen += len;
  size_t off = 0;
  /* Each iteration consumes one whole message: bounded by the bytes held. */
  while (s->rxlen - off >= 2) {
    size_t mlen = t2s_get16(s->rx + off);
    if (s->rxlen - off < 2 + mlen) {
      break;
    }
    t2s_udp_touch(u, s, now);
    e->stats.udp_dns_tcp_answers++;
    t2s_udp_deliver(e, s, &s->dst_key, s->rx + off + 2, mlen, now);
    if (s->dns_pending > 0) {
      t2s_udp_kept_answered(e, s, mlen >= 2, mlen >= 2 ? t2s_get16(s->rx + off + 2) : 0);
      s->dns_pending--;
    }
    off += 2 + mlen;
  }
  if (off > 0) {
    memmove(s->rx, s->rx + off, s->rxlen - off);
    s->rxlen -= off;
  }
  /* Every query answered: the stream is closed at once rather than held for the idle
   * timeout (resolvers serve few TCP connections; a later query opens a new one). */
  if (off > 0 && s->dns_pending == 0 && s->txlen == 0 && s->rxlen == 0) {
    t2s_udp_sess_close(e, s, 0, now);
  }
}

static void ctl_stream_opened(t2s_engine *e, t2s_flow *f, int err, t2s_tstamp now) {
  usess *s = sess_of_ctl(f);
  if (s->state != ST_CONNECTING) {
    return;
  }
  if (err != 0) {
    s->ctl_open = false; /* the connector forgot it */
    setup_failed(e, s, err, now);
    return;
  }
  if (e->cfg.proxy_kind != T2S_PROXY_SOCKS5) {
    s->state = ST_READY; /* DNS over TCP straight to the resolver */
    t2s_udp_queue_flush(e, s, now);
    return;
  }
  s->state = ST_HANDSHAKE;
  const char *user = t2s_engine_proxy_username(e, s->proxy);
  const char *pass = t2s_engine_proxy_password(e, s->proxy);
  int rv = s->mode == MODE_ASSOC
               ? t2s_socks5_client_init_addr(&s->socks, T2S_SOCKS5_CMD_UDP_ASSOCIATE, NULL, user,
                                             pass, e->cfg.socks5_pipelined)
               : t2s_socks5_client_init_addr(&s->socks, T2S_SOCKS5_CMD_CONNECT, &s->dst_key, user,
                                             pass, e->cfg.socks5_pipelined);
  if (rv == 0) {
    rv = ctl_flush(e, s);
  }
  if (rv != 0) {
    setup_failed(e, s, rv, now);
  }
}

static size_t ctl_stream_recv_space(const t2s_engine *e, const t2s_flow *f) {
  (void)e;
  const usess *s = sess_of_ctl((t2s_flow *)f);
  if (s->mode == MODE_DNS_TCP && s->state == ST_READY) {
    return (size_t)DNS_MSG_MAX + 2 - s->rxlen;
  }
  return CTL_RECV_SPACE;
}

static size_t ctl_stream_recv(t2s_engine *e, t2s_flow *f, const uint8_t *data, size_t len,
                              t2s_tstamp now) {
  usess *s = sess_of_ctl(f);
  if (s->state == ST_HANDSHAKE) {
    size_t used = 0;
    int rv = t2s_socks5_client_feed(&s->socks, data, len, &used);
    if (rv < 0) {
      setup_failed(e, s, rv, now);
    } else if (rv == T2S_SOCKS5_NEED_MORE) {
      rv = ctl_flush(e, s);
      if (rv != 0) {
        setup_failed(e, s, rv, now);
      }
    } else {
      sess_ready(e, s, now);
      if (s->state == ST_READY && s->mode == MODE_DNS_TCP) {
        dns_rx(e, s, data + used, len - used, now);
      }
    }
  } else if (s->state == ST_READY && s->mode == MODE_DNS_TCP) {
    size_t room = (size_t)DNS_MSG_MAX + 2 - s->rxlen;
    len = T2S_MIN(len, room);
    dns_rx(e, s, data, len, now);
  }
  /* ASSOC after the reply: the control connection should stay silent; bytes are ignored. */
  return len;
}

static void ctl_stream_eof(t2s_engine *e, t2s_flow *f, t2s_tstamp now) {
  usess *s = sess_of_ctl(f);
  if (s->state == ST_HANDSHAKE || s->state == ST_CONNECTING) {
    int rv = s->state == ST_HANDSHAKE ? t2s_socks5_client_eof(&s->socks) : T2S_ERR_CLOSED;
    setup_failed(e, s, rv ? rv : T2S_ERR_CLOSED, now);
  } else {
    /* The association (or the DNS stream) is over: so is the session. */
    t2s_udp_sess_close(e, s, T2S_ERR_CLOSED, now);
  }
}

static void ctl_stream_writable(t2s_engine *e, t2s_flow *f, t2s_tstamp now) {
  usess *s = sess_of_ctl(f);
  s->ctl_blocked = false;
  if (s->state == ST_HANDSHAKE) {
    int rv = ctl_flush(e, s);
    if (rv != 0) {
      setup_failed(e, s, rv, now);
    }
  } else if (s->mode == MODE_DNS_TCP) {
    t2s_udp_dns_tx_flush(e, s, now);
  }
}

static void ctl_stream_error(t2s_engine *e, t2s_flow *f, int err, t2s_tstamp now) {
  usess *s = sess_of_ctl(f);
  s->ctl_open = false; /* the connector forgot it */
  if (s->state == ST_READY) {
    e->stats.upstream_errors++;
    t2s_udp_sess_close(e, s, err, now);
  } else {
    setup_failed(e, s, err, now);
  }
}

/* ---------------- the flow ops: reset, teardown, the kinds ---------------- */

/* A network change ends the session (whichever of its flows the iterator met first; the
 * other's id leaves the table with it). */
static size_t udp_reset(t2s_engine *e, t2s_flow *f, t2s_tstamp now) {
  usess *s = sess_of_any(f);
  if (s->state == ST_DEAD) {
    return 0;
  }
  t2s_udp_sess_close(e, s, T2S_ERR_NETWORK_CHANGED, now);
  return 1;
}

/* Engine teardown: upstreams closed, no event, freed at the reap. */
static void udp_destroy(t2s_engine *e, t2s_flow *f) {
  t2s_udp_sess_destroy(e, sess_of_any(f));
}

/* The datagram socket of a DIRECT or ASSOC session. */
static const t2s_flow_ops udp_dgram_ops = {
    .kind = T2S_FLOW_UDP,
    .group = T2S_FLOW_GROUP_UDP,
    .name = "udp",
    .dgram_recv = udp_dgram_recv,
    .dgram_error = udp_dgram_error,
    .reset = udp_reset,
    .destroy = udp_destroy,
};

/* The SOCKS5 UDP ASSOCIATE control stream: its close ends the session. */
static const t2s_flow_ops assoc_ctl_ops = {
    .kind = T2S_FLOW_UDP_ASSOC,
    .group = T2S_FLOW_GROUP_UDP,
    .name = "udp_assoc",
    .stream_opened = ctl_stream_opened,
    .stream_recv_space = ctl_stream_recv_space,
    .stream_recv = ctl_stream_recv,
    .stream_eof = ctl_stream_eof,
    .stream_writable = ctl_stream_writable,
    .stream_error = ctl_stream_error,
    .reset = udp_reset,
    .destroy = udp_destroy,
};

/* The no-UDP fallback: DNS over TCP (CONNECT to the resolver when there is a proxy). */
static const t2s_flow_ops dns_tcp_ops = {
    .kind = T2S_FLOW_DNS_TCP,
    .group = T2S_FLOW_GROUP_UDP,
    .name = "dns_tcp",
    .stream_opened = ctl_stream_opened,
    .stream_recv_space = ctl_stream_recv_space,
    .stream_recv = ctl_stream_recv,
    .stream_eof = ctl_stream_eof,
    .stream_writable = ctl_stream_writable,
    .stream_error = ctl_stream_error,
    .reset = udp_reset,
    .destroy = udp_destroy,
};
