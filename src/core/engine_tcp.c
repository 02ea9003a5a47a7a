/*
 * engine_tcp.c: TCP sessions. A SYN from a client becomes a held connection; the engine opens
 * an upstream stream (to the proxy, then SOCKS5 CONNECT to the original destination, or to the
 * destination itself when no proxy is configured) and only then completes the handshake, or
 * refuses it with a RST. Then bytes are spliced both ways with backpressure and half-close.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine_fakedns.h"
#include "engine_internal.h"
#include "socks5.h"

typedef enum session_phase {
  PHASE_CONNECTING = 0, /* upstream connect in progress, SYN held */
  PHASE_HANDSHAKE,      /* SOCKS5 negotiation in progress, SYN held */
  PHASE_SPLICE,         /* bytes flow both ways */
  PHASE_DONE,           /* TCP side finished; waiting to be freed */
} session_phase;

typedef struct t2s_session {
  t2s_flow flow; /* kind T2S_FLOW_TCP; flow.id is the upstream stream's id */
  t2s_engine *engine;
  t2s_tcp_conn *conn; /* NULL once the TCP side is closed */
  session_phase phase;
  t2s_addr client;          /* the client's address (remote of the TCP connection) */
  t2s_addr dst;             /* the original destination (local of the TCP connection) */
  t2s_addr updst;           /* where the upstream goes: dst, or the DNS hijack resolver */
  bool up_open;             /* the upstream stream exists (must be closed) */
  bool up_paused;           /* we asked the connector to pause reading */
  bool up_blocked;          /* a short write: waiting for stream_writable */
  bool up_shut;             /* we half-closed the upstream */
  bool up_eof;              /* the upstream sent EOF */
  bool client_fin;          /* the client's FIN arrived */
  int fail_err;             /* why the upstream failed before the handshake completed */
  bool netreset;            /* reset by the network-change policy */
  t2s_egress egress;        /* where its upstream left from */
  t2s_socks5_client *socks; /* the SOCKS5 handshake: allocated for PHASE_HANDSHAKE only */
  int proxy;                /* index of its proxy (engine_proxy.c); -1: cfg.proxy alone */
  bool proxy_told;          /* its handshake's outcome was reported to the proxy's health */
  uint64_t bytes_up, bytes_down;
  const char *fake_name; /* --fake-dns: the name dst stands for (pinned until reaped) */
  struct t2s_session *next_dead;
  struct t2s_session *next_pump; /* in e->pumpq */
  bool pump_queued;
} t2s_session;

static const t2s_flow_ops tcp_flow_ops;
/* The TCP connection's user is the session, read by the hub as its flow (engine.c). */
_Static_assert(offsetof(t2s_session, flow) == 0, "a connection's user is its flow");

/* The session a flow of kind T2S_FLOW_TCP is the header of. */
static t2s_session *session_of(t2s_flow *f) {
  T2S_ASSERT(f->ops == &tcp_flow_ops);
  return (t2s_session *)((char *)f - offsetof(t2s_session, flow));
}

/* Ends the upstream side of a session (once). */
static void session_close_upstream(t2s_session *s, bool abort) {
  if (!s->up_open) {
    return;
  }
  s->up_open = false;
  s->engine->up.ops->stream_close(s->engine->up.self, s->flow.id, abort);
}

/* Takes s out of the burst's write queue (a short list: sessions that got data this burst). */
static void pumpq_remove(t2s_session *s) {
  if (!s->pump_queued) {
    return;
  }
  for (t2s_session **pp = &s->engine->pumpq; *pp; pp = &(*pp)->next_pump) {
    if (*pp == s) {
      *pp = s->next_pump;
      break;
    }
  }
  s->next_pump = NULL;
  s->pump_queued = false;
}

/* Schedules a session to be freed at the next safe point. */
static void session_kill(t2s_session *s) {
  if (s->phase == PHASE_DONE) {
    return;
  }
  s->phase = PHASE_DONE;
  pumpq_remove(s);
  t2s_flow_table_remove(&s->engine->flows, &s->flow);
  s->next_dead = s->engine->tcp_dead;
  s->engine->tcp_dead = s;
  s->engine->reap_due = true;
}

void t2s_engine_tcp_reap(t2s_engine *e) {
  while (e->tcp_dead) {
    t2s_session *s = e->tcp_dead;
    e->tcp_dead = s->next_dead;
    if (s->fake_name) {
      t2s_engine_fakedns_flow_end(e, &s->dst);
    }
    t2s_free(e->mem, s->socks);
    t2s_free(e->mem, s);
  }
}

/* Writes what the client sent to the upstream, as far as the upstream takes it, and passes a
 * client FIN on once every byte is out. */
static void pump_up(t2s_session *s, t2s_tstamp now) {
  t2s_engine *e = s->engine;
  if (s->conn == NULL || s->phase != PHASE_SPLICE || !s->up_open) {
    return;
  }
  while (!s->up_blocked) {
    const uint8_t *p1, *p2;
    size_t l1, l2;
    size_t total = t2s_tcp_recv_peek(s->conn, &p1, &l1, &p2, &l2);
    if (total == 0) {
      break;
    }
    t2s_ssize n = e->up.ops->stream_write(e->up.self, s->flow.id, p1, l1);
    if (n < 0) {
      e->stats.upstream_errors++;
      t2s_tcp_abort(s->conn, now);
      return;
    }
    if ((size_t)n > 0) {
      s->bytes_up += (uint64_t)n;
      e->stats.bytes_up += (uint64_t)n;
      t2s_engine_proxy_count_bytes(e, s->proxy, (uint64_t)n, 0);
      t2s_tcp_consume(s->conn, (size_t)n, now);
      if (s->conn == NULL) {
        return;
      }
    }
    if ((size_t)n < l1) {
      s->up_blocked = true;
    }
  }
  if (s->client_fin && !s->up_shut && !s->up_blocked) {
    const uint8_t *p1, *p2;
    size_t l1, l2;
    if (t2s_tcp_recv_peek(s->conn, &p1, &l1, &p2, &l2) == 0) {
      s->up_shut = true;
      e->up.ops->stream_shutdown_write(e->up.self, s->flow.id);
    }
  }
}

/* Resumes upstream reads when the client side has room again. */
static void maybe_resume_down(t2s_session *s) {
  if (s->up_paused && s->up_open && s->conn && t2s_tcp_send_space(s->conn) > 0) {
    s->up_paused = false;
    s->engine->up.ops->stream_pause_read(s->engine->up.self, s->flow.id, false);
  }
}

/* Tells the proxy's health how this flow's handshake ended (once): err 0, or a failure the
 * proxy answered (a SOCKS5 REP about the destination), is the proxy working. */
static void report_proxy(t2s_session *s, int err, t2s_tstamp now) {
  if (s->proxy_told || s->netreset) {
    return;
  }
  s->proxy_told = true;
  bool answered = s->socks != NULL && s->socks->have_rep;
  t2s_engine_proxy_outcome(s->engine, s->proxy, answered ? 0 : err, now);
}

/* The upstream is ready for data: complete the client's handshake. */
static void session_go_splice(t2s_session *s, t2s_tstamp now) {
  report_proxy(s, 0, now);
  s->phase = PHASE_SPLICE;
  /* The handshake state (1.4 KB) is not kept for the life of the flow: 1,000 idle flows
   * would hold 1.4 MB of it. */
  t2s_free(s->engine->mem, s->socks);
  s->socks = NULL;
  if (t2s_tcp_accept(s->conn, now) != 0) {
    t2s_tcp_abort(s->conn, now);
  }
}

/* ---- TCP stack callbacks ---- */

static int on_syn(void *arg, t2s_tcp_conn *c) {
  t2s_engine *e = arg;
  if (t2s_engine_offline(e)) {
    /* No route to the proxy (or asleep): fail fast instead of hanging the client. */
    e->stats.syn_refused_offline++;
    return T2S_ERR_UNREACHABLE;
  }
  if (e->cfg.proxy_kind == T2S_PROXY_SOCKS5 && t2s_addr_eq(t2s_tcp_conn_local(c), &e->cfg.proxy)) {
    /* Loop guard: our own upstream came back through the TUN (a route sends the proxy's
     * address here). Refusing it ends the loop; the counter says it happened. */
    t2s_engine_drop(e, T2S_DROP_LOOP_GUARD, e->now, NULL);
    return T2S_ERR_REFUSED;
  }
  const char *fake_name = NULL;
  if (t2s_engine_fakedns_flow_start(e, t2s_tcp_conn_local(c), &fake_name, e->now) < 0) {
    return T2S_ERR_REFUSED; /* a pool address no name holds: RST at once */
  }
  t2s_session *s = t2s_calloc(e->mem, 1, sizeof(*s));
  if (s == NULL) {
    if (fake_name) {
      t2s_engine_fakedns_flow_end(e, t2s_tcp_conn_local(c));
    }
    return T2S_ERR_NOMEM;
  }
  s->fake_name = fake_name;
  s->flow.ops = &tcp_flow_ops;
  s->flow.id = t2s_flow_table_new_id(&e->flows);
  s->flow.egress = &s->egress;
  s->engine = e;
  s->conn = c;
  s->client = *t2s_tcp_conn_remote(c);
  s->dst = *t2s_tcp_conn_local(c);
  s->updst = s->dst;
  if (e->cfg.dns_hijack.family != 0 && s->dst.port == 53) {
    s->updst = e->cfg.dns_hijack;
  }
  s->egress = e->cfg.egress;
  s->proxy = t2s_engine_proxy_pick(e);
  s->flow.proxy = s->proxy;
  if (t2s_flow_table_add(&e->flows, &s->flow) != 0) {
    if (fake_name) {
      t2s_engine_fakedns_flow_end(e, &s->dst);
    }
    t2s_free(e->mem, s);
    return T2S_ERR_NOMEM;
  }
  t2s_tcp_conn_set_user(c, s);
  e->stats.tcp_flows_total++;
  t2s_engine_emit(e, T2S_EV_TCP_SYN, e->now, s->flow.id, &s->client, &s->dst, 0);
  const t2s_addr *target =
      e->cfg.proxy_kind == T2S_PROXY_SOCKS5 ? t2s_engine_proxy_addr(e, s->proxy) : &s->updst;
  int rv = e->up.ops->stream_open(e->up.self, s->flow.id, target, &e->cfg.egress);
  if (rv != 0) {
    e->stats.upstream_errors++;
    t2s_flow_table_remove(&e->flows, &s->flow);
    t2s_tcp_conn_set_user(c, NULL);
    if (fake_name) {
      t2s_engine_fakedns_flow_end(e, &s->dst);
    }
    t2s_free(e->mem, s);
    return rv;
  }
  s->up_open = true;
  return 0;
}

static void on_established(void *arg, t2s_tcp_conn *c) {
  t2s_engine *e = arg;
  t2s_session *s = t2s_tcp_conn_get_user(c);
  if (s) {
    t2s_engine_emit(e, T2S_EV_TCP_ESTABLISHED, e->now, s->flow.id, &s->client, &s->dst, 0);
    t2s_engine_net_flow_established(e, e->now);
  }
}

/* Inside a burst the client's data is written upstream once, at its end (one write per flow
 * per burst instead of one per segment); otherwise at once. */
static void pump_or_queue(t2s_session *s) {
  t2s_engine *e = s->engine;
  if (!e->in_burst) {
    pump_up(s, e->now);
    return;
  }
  if (!s->pump_queued) {
    s->pump_queued = true;
    s->next_pump = e->pumpq;
    e->pumpq = s;
  }
}

void t2s_engine_tcp_flush(t2s_engine *e, t2s_tstamp now) {
  /* Bounded: each session is queued once per burst and leaves the queue here. */
  while (e->pumpq) {
    t2s_session *s = e->pumpq;
    e->pumpq = s->next_pump;
    s->next_pump = NULL;
    s->pump_queued = false;
    pump_up(s, now);
  }
}

static void on_recv(void *arg, t2s_tcp_conn *c) {
  (void)arg;
  t2s_session *s = t2s_tcp_conn_get_user(c);
  if (s) {
    pump_or_queue(s);
  }
}

static void on_sendable(void *arg, t2s_tcp_conn *c) {
  (void)arg;
  t2s_session *s = t2s_tcp_conn_get_user(c);
  if (s) {
    maybe_resume_down(s);
  }
}

static void on_fin(void *arg, t2s_tcp_conn *c) {
  (void)arg;
  t2s_session *s = t2s_tcp_conn_get_user(c);
  if (s) {
    s->client_fin = true;
    /* Not held for the burst's end: the FIN may close the connection within the burst (our FIN
     * was acknowledged: TIME-WAIT), and every byte before it must be upstream by then. */
    pumpq_remove(s);
    pump_up(s, s->engine->now);
  }
}

static void on_closed(void *arg, t2s_tcp_conn *c, int err) {
  t2s_engine *e = arg;
  t2s_session *s = t2s_tcp_conn_get_user(c);
  if (s == NULL) {
    return;
  }
  t2s_tcp_conn_set_user(c, NULL);
  s->conn = NULL;
  bool clean = err == 0;
  t2s_engine_event_type type = clean ? T2S_EV_TCP_CLOSED : T2S_EV_TCP_RESET;
  if (s->phase == PHASE_CONNECTING || s->phase == PHASE_HANDSHAKE) {
    type = T2S_EV_TCP_REFUSED;
    if (err == T2S_ERR_TIMEOUT && !s->proxy_told && !s->netreset) {
      e->stats.upstream_errors++; /* the SYN was held for the connect timeout */
      report_proxy(s, err, e->now);
    }
  }
  if (s->netreset) {
    type = T2S_EV_TCP_RESET;
    err = T2S_ERR_NETWORK_CHANGED;
  } else if (type == T2S_EV_TCP_REFUSED && s->fail_err != 0) {
    err = s->fail_err; /* the upstream's reason (auth, unreachable, ...) rather than ours */
  }
  t2s_engine_emit(e, type, e->now, s->flow.id, &s->client, &s->dst, err);
  /* A clean close means both FINs were exchanged: the upstream got its shutdown and gave EOF;
   * anything else resets the upstream too. */
  session_close_upstream(s, !(clean && s->up_eof && s->up_shut));
  session_kill(s);
}

void t2s_engine_tcp_callbacks(t2s_tcp_callbacks *cbs) {
  memset(cbs, 0, sizeof(*cbs));
  cbs->on_syn = on_syn;
  cbs->on_established = on_established;
  cbs->on_recv = on_recv;
  cbs->on_sendable = on_sendable;
  cbs->on_fin = on_fin;
  cbs->on_closed = on_closed;
}

/* ---- the flow ops: network reset and teardown ---- */

static size_t tcp_reset(t2s_engine *e, t2s_flow *f, t2s_tstamp now) {
  (void)e;
  t2s_session *s = session_of(f);
  if (s->phase == PHASE_DONE) {
    return 0;
  }
  s->netreset = true;
  if (s->conn) {
    t2s_tcp_abort(s->conn, now); /* RST to the client; on_closed closes the upstream */
  } else {
    session_close_upstream(s, true);
    session_kill(s);
  }
  return 1;
}

static void tcp_destroy(t2s_engine *e, t2s_flow *f) {
  (void)e;
  t2s_session *s = session_of(f);
  session_close_upstream(s, true);
  if (s->conn) {
    t2s_tcp_conn_set_user(s->conn, NULL);
    s->conn = NULL;
  }
  session_kill(s);
}

/* ---- completions from the upstream connector ---- */

/* Answers a held SYN with an ICMP destination unreachable quoting it (instead of a RST), the
 * way a router would for REP 3/4. Returns true when sent. */
static bool send_icmp_unreach(t2s_session *s) {
  t2s_engine *e = s->engine;
  uint8_t syn[64];
  t2s_ssize n = t2s_build_tcp(syn, sizeof(syn), &s->client, &s->dst, t2s_tcp_conn_irs(s->conn), 0,
                              T2S_TCP_SYN, 65535, NULL, NULL, 0, NULL, 0);
  uint8_t code = s->dst.family == T2S_AF_INET ? 1 /* host unreachable */ : 3 /* address */;
  return t2s_engine_send_unreach_rebuilt(e, &s->dst, syn, n, code);
}

/* A held SYN whose proxy failed (not one that answered about the destination) is tried on the
 * next healthy proxy in order of preference, under a new stream id (docs/proxies.md). Returns
 * true when the new connect is under way. */
static bool try_next_proxy(t2s_session *s, int err) {
  t2s_engine *e = s->engine;
  if (s->proxy < 0 || s->netreset || s->conn == NULL ||
      t2s_tcp_conn_state(s->conn) != T2S_TCP_SYN_PENDING ||
      (s->phase != PHASE_CONNECTING && s->phase != PHASE_HANDSHAKE) ||
      (s->socks != NULL && s->socks->have_rep) || t2s_proxy_cause_from_err(err) < 0) {
    return false;
  }
  int next = t2s_engine_proxy_next(e, s->proxy);
  if (next < 0) {
    return false;
  }
  uint64_t oid = s->flow.id;
  if (t2s_flow_table_rekey(&e->flows, &s->flow, t2s_flow_table_new_id(&e->flows)) != 0) {
    return false;
  }
  if (s->up_open) { /* the old stream, under its old id */
    s->up_open = false;
    e->up.ops->stream_close(e->up.self, oid, true);
  }
  t2s_free(e->mem, s->socks);
  s->socks = NULL;
  s->proxy = next;
  s->flow.proxy = next;
  s->proxy_told = false;
  s->phase = PHASE_CONNECTING;
  s->up_blocked = false;
  s->up_eof = false;
  if (e->up.ops->stream_open(e->up.self, s->flow.id, t2s_engine_proxy_addr(e, next),
                             &e->cfg.egress) != 0) {
    return false;
  }
  s->up_open = true;
  if (e->hooks.on_event != NULL) { /* observers follow the flow to its new id */
    t2s_engine_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = T2S_EV_TCP_RETRY;
    ev.now = e->now;
    ev.flow_id = s->flow.id;
    ev.src = s->client;
    ev.dst = s->dst;
    ev.reason = next;
    ev.bytes_up = oid;
    e->hooks.on_event(e->hooks.arg, &ev);
  }
  return true;
}

/* Fails a session whose SYN is still held: RST (or ICMP) to the client. */
static void session_refuse(t2s_session *s, int err, t2s_tstamp now) {
  t2s_engine *e = s->engine;
  report_proxy(s, err, now);
  e->stats.upstream_errors++;
  if (try_next_proxy(s, err)) {
    return;
  }
  if (s->fail_err == 0) {
    s->fail_err = err;
  }
  session_close_upstream(s, true);
  if (s->conn == NULL) {
    session_kill(s);
  } else if (e->cfg.icmp_unreach_on_refuse && err == T2S_ERR_UNREACHABLE &&
             t2s_tcp_conn_state(s->conn) == T2S_TCP_SYN_PENDING && send_icmp_unreach(s)) {
    t2s_tcp_refuse_silently(s->conn, now);
  } else {
    t2s_tcp_refuse(s->conn, now);
  }
}

/* Writes pending SOCKS5 output to the upstream. Returns 0 or an error. */
static int socks_flush(t2s_session *s) {
  t2s_engine *e = s->engine;
  const uint8_t *p;
  size_t len;
  for (;;) {
    t2s_socks5_client_pending_output(s->socks, &p, &len);
    if (len == 0) {
      break;
    }
    t2s_ssize n = e->up.ops->stream_write(e->up.self, s->flow.id, p, len);
    if (n < 0) {
      return (int)n;
    }
    t2s_socks5_client_output_consumed(s->socks, (size_t)n);
    if ((size_t)n < len) {
      s->up_blocked = true;
      break;
    }
  }
  return 0;
}

static void tcp_stream_opened(t2s_engine *e, t2s_flow *f, int err, t2s_tstamp now) {
  t2s_session *s = session_of(f);
  if (s->phase != PHASE_CONNECTING) {
    return;
  }
  if (err != 0) {
    s->up_open = false; /* the connector forgot it */
    session_refuse(s, err, now);
    return;
  }
  if (e->cfg.proxy_kind == T2S_PROXY_SOCKS5) {
    s->socks = t2s_malloc(e->mem, sizeof(*s->socks));
    if (s->socks == NULL) {
      session_refuse(s, T2S_ERR_NOMEM, now);
      return;
    }
    s->phase = PHASE_HANDSHAKE;
    t2s_socks5_host host; /* --fake-dns: CONNECT to the name (ATYP 3) */
    int rv = s->fake_name ? t2s_socks5_host_from_domain(&host, s->fake_name, s->dst.port)
                          : t2s_socks5_host_from_addr(&host, &s->updst);
    if (rv == 0) {
      rv = t2s_socks5_client_init(s->socks, T2S_SOCKS5_CMD_CONNECT, &host,
                                  t2s_engine_proxy_username(e, s->proxy),
                                  t2s_engine_proxy_password(e, s->proxy), e->cfg.socks5_pipelined);
    }
    if (rv == 0) {
      rv = socks_flush(s);
    }
    if (rv != 0) {
      session_refuse(s, rv, now);
    }
  } else {
    session_go_splice(s, now);
  }
}

static size_t tcp_stream_recv_space(const t2s_engine *e, const t2s_flow *f) {
  (void)e;
  const t2s_session *s = session_of((t2s_flow *)f);
  if (s->conn == NULL) {
    return 0;
  }
  if (s->phase == PHASE_HANDSHAKE) {
    return 512; /* a SOCKS5 reply is at most 262 bytes */
  }
  if (s->phase != PHASE_SPLICE) {
    return 0;
  }
  return t2s_tcp_send_space(s->conn);
}

static size_t tcp_stream_recv_buf(t2s_engine *e, t2s_flow *f, size_t len, uint8_t **pbuf) {
  (void)e;
  t2s_session *s = session_of(f);
  if (s->conn == NULL || s->phase != PHASE_SPLICE) {
    return 0;
  }
  return t2s_tcp_send_buf(s->conn, len, pbuf);
}

static size_t splice_down(t2s_session *s, const uint8_t *data, size_t len, t2s_tstamp now) {
  t2s_engine *e = s->engine;
  t2s_ssize n = t2s_tcp_send(s->conn, data, len, now);
  if (n < 0) {
    return 0;
  }
  s->bytes_down += (uint64_t)n;
  e->stats.bytes_down += (uint64_t)n;
  t2s_engine_proxy_count_bytes(e, s->proxy, 0, (uint64_t)n);
  if (s->conn && t2s_tcp_send_space(s->conn) == 0 && !s->up_paused && s->up_open) {
    s->up_paused = true;
    e->up.ops->stream_pause_read(e->up.self, s->flow.id, true);
  }
  return (size_t)n;
}

static size_t tcp_stream_recv(t2s_engine *e, t2s_flow *f, const uint8_t *data, size_t len,
                              t2s_tstamp now) {
  (void)e;
  t2s_session *s = session_of(f);
  if (s->conn == NULL) {
    return 0;
  }
  size_t taken = 0;
  if (s->phase == PHASE_HANDSHAKE) {
    size_t used = 0;
    int rv = t2s_socks5_client_feed(s->socks, data, len, &used);
    taken = used;
    if (rv < 0) {
      session_refuse(s, rv, now);
      return len;
    }
    if (rv == T2S_SOCKS5_NEED_MORE) {
      rv = socks_flush(s);
      if (rv != 0) {
        session_refuse(s, rv, now);
      }
      return len;
    }
    /* DONE: the rest (if any) is data from the destination. */
    session_go_splice(s, now);
  }
  if (s->phase == PHASE_SPLICE && s->conn && taken < len) {
    taken += splice_down(s, data + taken, len - taken, now);
  }
  return taken;
}

static void tcp_stream_eof(t2s_engine *e, t2s_flow *f, t2s_tstamp now) {
  (void)e;
  t2s_session *s = session_of(f);
  s->up_eof = true;
  if (s->phase == PHASE_HANDSHAKE) {
    /* The proxy hung up mid-handshake: the SOCKS5 client names why (auth, truncated...). */
    int err = t2s_socks5_client_eof(s->socks);
    session_refuse(s, err != 0 ? err : T2S_ERR_CLOSED, now);
  } else if (s->phase != PHASE_SPLICE) {
    session_refuse(s, T2S_ERR_CLOSED, now);
  } else if (s->conn) {
    t2s_tcp_shutdown(s->conn, now);
  }
}

static void tcp_stream_writable(t2s_engine *e, t2s_flow *f, t2s_tstamp now) {
  (void)e;
  t2s_session *s = session_of(f);
  s->up_blocked = false;
  if (s->phase == PHASE_HANDSHAKE) {
    if (socks_flush(s) != 0) {
      session_refuse(s, T2S_ERR_CLOSED, now);
    }
  } else {
    pump_up(s, now);
  }
}

static void tcp_stream_error(t2s_engine *e, t2s_flow *f, int err, t2s_tstamp now) {
  t2s_session *s = session_of(f);
  s->up_open = false; /* the connector forgot it */
  e->stats.upstream_errors++;
  if (s->phase == PHASE_CONNECTING || s->phase == PHASE_HANDSHAKE) {
    session_refuse(s, err, now);
  } else if (s->conn) {
    t2s_tcp_abort(s->conn, now);
  } else {
    session_kill(s);
  }
}

static const t2s_flow_ops tcp_flow_ops = {
    .kind = T2S_FLOW_TCP,
    .group = T2S_FLOW_GROUP_TCP,
    .name = "tcp",
    .stream_opened = tcp_stream_opened,
    .stream_recv_space = tcp_stream_recv_space,
    .stream_recv_buf = tcp_stream_recv_buf,
    .stream_recv = tcp_stream_recv,
    .stream_eof = tcp_stream_eof,
    .stream_writable = tcp_stream_writable,
    .stream_error = tcp_stream_error,
    .reset = tcp_reset,
    .destroy = tcp_destroy,
};
