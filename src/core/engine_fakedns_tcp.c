/*
 * engine_fakedns_tcp.c: --fake-dns's DNS over TCP (RFC 7766), the flow kind T2S_FLOW_DNS_LOCAL.
 *
 * With --fake-dns a TCP connection to port 53 of any address is terminated here: accepted at
 * once, with no upstream. Each query of its two-byte length framing (several per connection,
 * split across segments or several in one, pipelined) goes to the responder (fakedns.h) as a
 * UDP query does: A, AAAA, HTTPS, SVCB and the PTR of a pool address are answered at once. A
 * query the responder forwards (MX, TXT, excluded names, ...) is written, framed as it came,
 * into one upstream stream per connection, opened at the first such query: through the proxy
 * (SOCKS5 CONNECT) to the resolver the UDP path would use (--dns-hijack's, else the address the
 * client asked). Its framed answers are relayed to the client whole, between the local answers
 * (RFC 7766 6.2.1.1: answers may come in any order; clients match them by ID). When that
 * upstream fails, each forwarded query not answered yet gets SERVFAIL over the connection, which
 * goes on (a copy of each is kept until its answer ends, at most FWDQ_MAX; docs/fake-dns.md).
 *
 * Bounds: a frame longer than T2S_FAKEDNS_TCP_QUERY_MAX or shorter than a DNS header, or a
 * query cut by the client's FIN, resets the connection (counted: T2S_DROP_DNS_TCP_BAD). Queries
 * wait in the TCP receive buffer (only the one being handled is copied, when it wraps); an
 * answer is written only when the send buffer has room for it whole, and the upstream is
 * paused while the send buffer is full. A connection idle for cfg.dns_timeout is closed (FIN),
 * or reset when a forwarded query is still unanswered. The client's FIN is answered with ours
 * once every query is answered. After our FIN the client has cfg.dns_timeout to close its side,
 * else the connection is reset (the TCP stack has no FIN-WAIT-2 timeout).
 *
 * The connection's flow is in the table from its SYN (its id becomes the upstream stream's id;
 * a second upstream after the first ended gets a new id). A network change leaves a connection
 * without upstream alone (its answers do not depend on the network) and resets one with an
 * upstream, like every flow carried through the old path.
 */
#include <stddef.h>
#include <string.h>

#include "dns.h"
#include "engine_fakedns.h"
#include "engine_internal.h"
#include "fakedns.h"
#include "socks5.h"

typedef enum up_state {
  UP_NONE = 0,   /* no upstream stream (none yet, or it ended) */
  UP_CONNECTING, /* stream_open called */
  UP_HANDSHAKE,  /* SOCKS5 CONNECT to the resolver under way */
  UP_READY,      /* framed queries and answers flow */
} up_state;

/* A forwarded query not answered yet, kept to answer it SERVFAIL if the upstream fails. */
typedef struct fwdq {
  struct fwdq *next;
  uint16_t id;
  size_t len;
  uint8_t msg[]; /* the query, without its length */
} fwdq;

#define FWDQ_MAX 64 /* forwarded queries kept per connection (beyond: a failure resets it) */
#define DNS_TCP_ANSWER_MAX 65535 /* an answer over TCP is bounded by its length field only */

typedef struct t2s_dnsl {
  t2s_flow flow; /* first: the hub reads a connection's user as its flow; kind DNS_LOCAL */
  t2s_engine *engine;
  t2s_tcp_conn *conn; /* NULL once the TCP side is closed */
  t2s_addr client;
  t2s_addr dst;   /* the address the client asked (port 53) */
  t2s_addr updst; /* the resolver for forwarded queries: --dns-hijack's, or dst */
  t2s_egress egress;
  up_state up;
  bool id_used;             /* flow.id has named an upstream stream: the next one needs a new id */
  bool up_blocked;          /* a short write: waiting for stream_writable */
  bool up_paused;           /* upstream reads paused (the client's send buffer is full) */
  bool proxy_told;          /* the handshake's outcome went to the proxy's health */
  t2s_socks5_client *socks; /* during UP_HANDSHAKE only */
  bool head_fwd;            /* the first query in the receive buffer is to be forwarded */
  size_t head_written;      /* bytes of it (length included) written upstream */
  uint32_t pending;         /* forwarded queries not answered yet */
  fwdq *fq_head, *fq_tail;  /* the pending ones kept, oldest first (at most FWDQ_MAX) */
  uint32_t fq_count;
  uint8_t uphdr[2]; /* the upstream's current frame: its length bytes seen */
  uint8_t uphdr_len;
  uint8_t upid[2]; /* ... and its message's ID bytes seen */
  uint8_t upid_len;
  size_t up_left; /* bytes of its message still to relay */
  bool client_fin;
  bool closing; /* our FIN is sent */
  bool dead;
  bool idle_linked; /* in the engine's idle list */
  t2s_tstamp active_at;
  struct t2s_dnsl *prev, *next; /* the engine's idle list, least recently active first */
  struct t2s_dnsl *next_dead;
} t2s_dnsl;

static const t2s_flow_ops dnsl_ops;
static void serve(t2s_dnsl *d, t2s_tstamp now);
static void ring_copy(uint8_t *dst, size_t n, const uint8_t *p1, size_t l1, const uint8_t *p2);

static t2s_dnsl *dnsl_of(t2s_flow *f) {
  T2S_ASSERT(f->ops == &dnsl_ops);
  return (t2s_dnsl *)((char *)f - offsetof(t2s_dnsl, flow));
}

bool t2s_engine_fakedns_tcp_wants(const t2s_engine *e, const t2s_addr *local) {
  return t2s_engine_fakedns_on(e) && local->port == 53;
}

/* ---- the idle list ---- */

static void idle_unlink(t2s_dnsl *d) {
  t2s_engine *e = d->engine;
  if (!d->idle_linked) {
    return;
  }
  if (d->prev) {
    d->prev->next = d->next;
  } else {
    e->dnsl_head = d->next;
  }
  if (d->next) {
    d->next->prev = d->prev;
  } else {
    e->dnsl_tail = d->prev;
  }
  d->prev = d->next = NULL;
  d->idle_linked = false;
}

/* d's deadline starts now: it goes to the end of the idle list. */
static void idle_link(t2s_dnsl *d, t2s_tstamp now) {
  t2s_engine *e = d->engine;
  idle_unlink(d);
  d->active_at = now;
  d->prev = e->dnsl_tail;
  if (e->dnsl_tail) {
    e->dnsl_tail->next = d;
  } else {
    e->dnsl_head = d;
  }
  e->dnsl_tail = d;
  d->idle_linked = true;
}

/* d is active now (once closing, its deadline is the one of the close: no longer moved). */
static void idle_touch(t2s_dnsl *d, t2s_tstamp now) {
  if (!d->dead && !d->closing) {
    idle_link(d, now);
  }
}

/* ---- ending ---- */

/* Schedules d to be freed at the next safe point (once). */
static void dnsl_kill(t2s_dnsl *d) {
  t2s_engine *e = d->engine;
  if (d->dead) {
    return;
  }
  d->dead = true;
  idle_unlink(d);
  t2s_flow_table_remove(&e->flows, &d->flow);
  d->next_dead = e->dnsl_dead;
  e->dnsl_dead = d;
  e->reap_due = true;
}

void t2s_engine_fakedns_tcp_reap(t2s_engine *e) {
  while (e->dnsl_dead) {
    t2s_dnsl *d = e->dnsl_dead;
    e->dnsl_dead = d->next_dead;
    while (d->fq_head != NULL) { /* bounded by FWDQ_MAX */
      fwdq *q = d->fq_head;
      d->fq_head = q->next;
      t2s_free(e->mem, q);
    }
    t2s_free(e->mem, d->socks);
    t2s_free(e->mem, d);
  }
}

static void up_close(t2s_dnsl *d, bool abort) {
  t2s_engine *e = d->engine;
  if (d->up != UP_NONE) {
    e->up.ops->stream_close(e->up.self, d->flow.id, abort);
    d->up = UP_NONE;
  }
  t2s_free(e->mem, d->socks);
  d->socks = NULL;
  d->up_blocked = false;
  d->up_paused = false;
  d->uphdr_len = 0;
  d->upid_len = 0;
  d->up_left = 0;
}

/* Ends d with a RST to the client (on_closed then kills it). */
static void dnsl_abort(t2s_dnsl *d, t2s_tstamp now) {
  up_close(d, true);
  if (d->conn != NULL) {
    t2s_tcp_abort(d->conn, now);
  } else {
    dnsl_kill(d);
  }
}

/* The client's framing is broken (a length out of bounds, a query cut by its FIN). */
static void framing_error(t2s_dnsl *d, t2s_tstamp now) {
  t2s_engine_drop(d->engine, T2S_DROP_DNS_TCP_BAD, now, NULL);
  dnsl_abort(d, now);
}

/* True while a forwarded answer is half relayed: local answers wait for its end. */
static bool up_mid_frame(const t2s_dnsl *d) {
  return d->uphdr_len > 0;
}

/* Nothing left to do: every query read and answered, no answer half relayed. */
static bool all_answered(const t2s_dnsl *d) {
  const uint8_t *p1, *p2;
  size_t l1, l2;
  return d->conn != NULL && !d->head_fwd && d->pending == 0 && !up_mid_frame(d) &&
         t2s_tcp_recv_peek(d->conn, &p1, &l1, &p2, &l2) == 0;
}

/* Our FIN goes out: the client has cfg.dns_timeout to close too, else it is reset. */
static void dnsl_close(t2s_dnsl *d, t2s_tstamp now) {
  d->closing = true;
  idle_link(d, now);
  up_close(d, false);
  t2s_tcp_shutdown(d->conn, now);
}

/* After the client's FIN, ours once every query is answered. */
static void maybe_finish(t2s_dnsl *d, t2s_tstamp now) {
  if (d->client_fin && !d->closing && all_answered(d)) {
    dnsl_close(d, now);
  }
}

/* ---- the forwarded queries kept ---- */

/* Keeps a copy of the forwarded query msg[0..len) (not kept at FWDQ_MAX or without memory: a
 * failure then resets the connection). */
static void fwdq_add(t2s_dnsl *d, const uint8_t *msg, size_t len) {
  t2s_engine *e = d->engine;
  if (d->fq_count >= FWDQ_MAX) {
    return;
  }
  fwdq *q = t2s_malloc(e->mem, sizeof(*q) + len);
  if (q == NULL) {
    return;
  }
  q->next = NULL;
  q->id = t2s_get16(msg);
  q->len = len;
  memcpy(q->msg, msg, len);
  if (d->fq_tail != NULL) {
    d->fq_tail->next = q;
  } else {
    d->fq_head = q;
  }
  d->fq_tail = q;
  d->fq_count++;
}

/* A forwarded answer ended (before d->pending counts it): forgets its query, the one of its ID;
 * without one kept, nothing when some pending queries were not kept (it was one of them), else
 * the oldest (a resolver that changed the ID: the count stays right). */
static void fwdq_answered(t2s_dnsl *d, bool have_id, uint16_t id) {
  fwdq **pp = &d->fq_head, *prev = NULL;
  if (have_id) {
    for (; *pp != NULL && (*pp)->id != id; prev = *pp, pp = &(*pp)->next) { /* <= FWDQ_MAX */
    }
  }
  if (*pp == NULL) {
    if (d->fq_count < d->pending) {
      return;
    }
    pp = &d->fq_head;
    prev = NULL;
  }
  fwdq *q = *pp;
  if (q == NULL) {
    return;
  }
  *pp = q->next;
  if (d->fq_tail == q) {
    d->fq_tail = prev;
  }
  d->fq_count--;
  t2s_free(d->engine->mem, q);
}

/* Writes a SERVFAIL answer to the query msg[0..len), framed. Returns false when the send
 * buffer has no room for it whole (or msg is not a query: not forwarded, cannot happen). */
static bool send_servfail(t2s_dnsl *d, const uint8_t *msg, size_t len, t2s_tstamp now) {
  t2s_engine *e = d->engine;
  t2s_dns_query q;
  if (t2s_dns_parse_query(msg, len, &q) != 0) {
    return false;
  }
  uint8_t answer[2 + T2S_FAKEDNS_ANSWER_MAX];
  t2s_ssize n = t2s_dns_build_answer(answer + 2, sizeof(answer) - 2, DNS_TCP_ANSWER_MAX, &q,
                                     T2S_DNS_RCODE_SERVFAIL, NULL, 0, 0);
  if (n < 0 || d->conn == NULL || t2s_tcp_send_space(d->conn) < 2 + (size_t)n) {
    return false;
  }
  t2s_put16(answer, (uint16_t)n);
  t2s_ssize m = t2s_tcp_send(d->conn, answer, 2 + (size_t)n, now);
  if (m != 2 + n) {
    return false;
  }
  e->stats.bytes_down += (uint64_t)m;
  e->stats.dns_servfail[T2S_DNS_SERVFAIL_TCP_UPSTREAM]++;
  return true;
}

/* The upstream failed (before or after its handshake): each forwarded query not answered yet
 * gets SERVFAIL over the connection, which stays open for the next queries (a later forwarded
 * one opens a new upstream). Returns false when that could not be done and the client got a
 * RST instead (an answer half relayed, queries not kept, no room in the send buffer). */
static bool up_fail(t2s_dnsl *d, int err, t2s_tstamp now) {
  t2s_engine *e = d->engine;
  if (!d->proxy_told) {
    d->proxy_told = true;
    bool answered = d->socks != NULL && d->socks->have_rep;
    t2s_engine_proxy_outcome(e, d->flow.proxy, answered ? 0 : err, now);
  }
  e->stats.upstream_errors++;
  if (d->conn == NULL || d->closing || up_mid_frame(d) || d->fq_count != d->pending) {
    dnsl_abort(d, now);
    return false;
  }
  up_close(d, true);
  /* Each iteration frees one kept query: bounded by FWDQ_MAX. */
  while (d->fq_head != NULL) {
    fwdq *q = d->fq_head;
    if (!send_servfail(d, q->msg, q->len, now)) {
      dnsl_abort(d, now);
      return false;
    }
    fwdq_answered(d, false, 0);
    d->pending--;
  }
  if (d->head_fwd) { /* the query being written (or waiting for the upstream) */
    const uint8_t *p1, *p2;
    size_t l1, l2;
    size_t avail = t2s_tcp_recv_peek(d->conn, &p1, &l1, &p2, &l2);
    uint8_t copy[2 + T2S_FAKEDNS_TCP_QUERY_MAX];
    size_t qlen = 0;
    if (avail >= 2) {
      ring_copy(copy, 2, p1, l1, p2);
      qlen = t2s_get16(copy);
    }
    if (avail < 2 || qlen > T2S_FAKEDNS_TCP_QUERY_MAX || avail < 2 + qlen) {
      dnsl_abort(d, now); /* serve() saw it whole: cannot happen */
      return false;
    }
    ring_copy(copy, 2 + qlen, p1, l1, p2);
    if (!send_servfail(d, copy + 2, qlen, now)) {
      dnsl_abort(d, now);
      return false;
    }
    d->head_fwd = false;
    t2s_tcp_consume(d->conn, 2 + qlen, now);
  }
  idle_touch(d, now);
  return d->conn != NULL && !d->dead;
}

/* up_fail() from an upstream completion: the queries that waited behind are served next. */
static void up_failed(t2s_dnsl *d, int err, t2s_tstamp now) {
  if (up_fail(d, err, now)) {
    serve(d, now);
  }
}

/* ---- the upstream for forwarded queries ---- */

static int up_flush_socks(t2s_dnsl *d) {
  t2s_engine *e = d->engine;
  const uint8_t *p;
  size_t len;
  for (int i = 0; i < 8 && !d->up_blocked; i++) { /* a handshake has at most 3 messages */
    t2s_socks5_client_pending_output(d->socks, &p, &len);
    if (len == 0) {
      break;
    }
    t2s_ssize n = e->up.ops->stream_write(e->up.self, d->flow.id, p, len);
    if (n < 0) {
      return (int)n;
    }
    t2s_socks5_client_output_consumed(d->socks, (size_t)n);
    if ((size_t)n < len) {
      d->up_blocked = true;
    }
  }
  return 0;
}

/* Opens the upstream (the first forwarded query, or the first after the last one ended). */
static int up_open(t2s_dnsl *d) {
  t2s_engine *e = d->engine;
  if (d->id_used) { /* the connector may still know the old id: never reuse it */
    int rv = t2s_flow_table_rekey(&e->flows, &d->flow, t2s_flow_table_new_id(&e->flows));
    if (rv != 0) {
      return rv;
    }
  }
  d->id_used = true;
  d->flow.proxy = t2s_engine_proxy_pick(e);
  d->proxy_told = false;
  d->egress = e->cfg.egress;
  const t2s_addr *target =
      e->cfg.proxy_kind == T2S_PROXY_SOCKS5 ? t2s_engine_proxy_addr(e, d->flow.proxy) : &d->updst;
  int rv = e->up.ops->stream_open(e->up.self, d->flow.id, target, &e->cfg.egress);
  if (rv != 0) {
    return rv;
  }
  d->up = UP_CONNECTING;
  return 0;
}

/* ---- the queries ---- */

/* Copies n bytes from the front of the two pieces of a ring. */
static void ring_copy(uint8_t *dst, size_t n, const uint8_t *p1, size_t l1, const uint8_t *p2) {
  size_t a = T2S_MIN(n, l1);
  memcpy(dst, p1, a);
  if (n > a) {
    memcpy(dst + a, p2, n - a);
  }
}

/* Handles the queries waiting in the receive buffer, in order, as far as the send buffer and
 * the upstream allow. */
static void serve(t2s_dnsl *d, t2s_tstamp now) {
  t2s_engine *e = d->engine;
  /* Each iteration consumes one query or stops: bounded by the bytes received. */
  while (d->conn != NULL && !d->closing && !up_mid_frame(d)) {
    const uint8_t *p1, *p2;
    size_t l1, l2;
    size_t avail = t2s_tcp_recv_peek(d->conn, &p1, &l1, &p2, &l2);
    if (avail < 2) {
      if (avail > 0 && d->client_fin) {
        framing_error(d, now);
      }
      break;
    }
    uint8_t lenb[2];
    ring_copy(lenb, 2, p1, l1, p2);
    size_t qlen = t2s_get16(lenb);
    if (qlen < T2S_DNS_HEADER_LEN || qlen > T2S_FAKEDNS_TCP_QUERY_MAX ||
        2 + qlen > e->cfg.tcp_rcvbuf) { /* (a receive buffer that could never hold it) */
      framing_error(d, now);
      return;
    }
    if (avail < 2 + qlen) {
      if (d->client_fin) {
        framing_error(d, now);
      }
      break;
    }
    uint8_t copy[2 + T2S_FAKEDNS_TCP_QUERY_MAX];
    const uint8_t *frame = p1;
    if (l1 < 2 + qlen) {
      ring_copy(copy, 2 + qlen, p1, l1, p2);
      frame = copy;
    }
    if (!d->head_fwd) {
      uint8_t answer[2 + T2S_FAKEDNS_ANSWER_MAX];
      size_t space = t2s_tcp_send_space(d->conn);
      if (space < T2S_MIN(sizeof(answer), (size_t)e->cfg.tcp_sndbuf)) {
        break; /* on_sendable resumes */
      }
      size_t alen = 0;
      t2s_fakedns_verdict v = t2s_fakedns_respond(e->cfg.fake_dns, frame + 2, qlen, true,
                                                  answer + 2, sizeof(answer) - 2, &alen);
      if (v == T2S_FAKEDNS_FORWARD) {
        d->head_fwd = true;
        d->head_written = 0;
      } else {
        if (v == T2S_FAKEDNS_ANSWER && 2 + alen > space) {
          t2s_engine_drop(e, T2S_DROP_NO_BUFFER, now, NULL); /* a send buffer under 602 bytes */
          dnsl_abort(d, now);
          return;
        }
        if (v == T2S_FAKEDNS_ANSWER) {
          t2s_put16(answer, (uint16_t)alen);
          t2s_ssize n = t2s_tcp_send(d->conn, answer, 2 + alen, now);
          if (n > 0) {
            e->stats.bytes_down += (uint64_t)n;
          }
        } else {
          t2s_engine_drop(e, T2S_DROP_DNS_NOT_QUERY, now, NULL);
        }
        if (d->conn != NULL) {
          t2s_tcp_consume(d->conn, 2 + qlen, now);
        }
        idle_touch(d, now);
        continue;
      }
    }
    /* The head query goes upstream, framed as it came. */
    if (d->up == UP_NONE) {
      int rv = up_open(d);
      if (rv != 0) {
        if (!up_fail(d, rv, now)) {
          return;
        }
        continue; /* this query answered SERVFAIL: the next one */
      }
    }
    if (d->up != UP_READY || d->up_blocked) {
      break; /* the handshake's end or stream_writable resumes */
    }
    t2s_ssize n = e->up.ops->stream_write(e->up.self, d->flow.id, frame + d->head_written,
                                          2 + qlen - d->head_written);
    if (n < 0) {
      d->up = UP_NONE; /* the connector forgot it */
      if (!up_fail(d, (int)n, now)) {
        return;
      }
      continue;
    }
    d->head_written += (size_t)n;
    e->stats.bytes_up += (uint64_t)n;
    if (d->head_written < 2 + qlen) {
      d->up_blocked = true;
      break;
    }
    d->head_fwd = false;
    d->pending++;
    fwdq_add(d, frame + 2, qlen);
    t2s_tcp_consume(d->conn, 2 + qlen, now);
    idle_touch(d, now);
  }
  if (d->conn != NULL && !d->dead) {
    maybe_finish(d, now);
  }
}

/* ---- the TCP stack's callbacks (through the hub) ---- */

static int on_syn(void *arg, t2s_tcp_conn *c) {
  t2s_engine *e = arg;
  if (t2s_engine_offline(e)) {
    /* As a UDP query: refused at once while there is no route to the proxy (or asleep). */
    e->stats.syn_refused_offline++;
    return T2S_ERR_UNREACHABLE;
  }
  t2s_dnsl *d = t2s_calloc(e->mem, 1, sizeof(*d));
  if (d == NULL) {
    return T2S_ERR_NOMEM;
  }
  d->flow.ops = &dnsl_ops;
  d->flow.id = t2s_flow_table_new_id(&e->flows);
  d->flow.egress = &d->egress;
  d->flow.proxy = -1;
  d->engine = e;
  d->conn = c;
  d->client = *t2s_tcp_conn_remote(c);
  d->dst = *t2s_tcp_conn_local(c);
  d->updst = e->cfg.dns_hijack.family != 0 ? e->cfg.dns_hijack : d->dst;
  d->egress = e->cfg.egress;
  if (t2s_flow_table_add(&e->flows, &d->flow) != 0) {
    t2s_free(e->mem, d);
    return T2S_ERR_NOMEM;
  }
  t2s_tcp_conn_set_user(c, d);
  idle_touch(d, e->now);
  if (t2s_tcp_accept(c, e->now) != 0) {
    t2s_tcp_conn_set_user(c, NULL);
    d->conn = NULL;
    dnsl_kill(d);
    return T2S_ERR_INVALID_ARGUMENT;
  }
  return 0;
}

static void on_recv(void *arg, t2s_tcp_conn *c) {
  t2s_engine *e = arg;
  t2s_dnsl *d = t2s_tcp_conn_get_user(c);
  serve(d, e->now);
}

static void on_sendable(void *arg, t2s_tcp_conn *c) {
  t2s_engine *e = arg;
  t2s_dnsl *d = t2s_tcp_conn_get_user(c);
  if (d->up_paused && d->up != UP_NONE) {
    d->up_paused = false;
    e->up.ops->stream_pause_read(e->up.self, d->flow.id, false);
  }
  serve(d, e->now);
}

static void on_fin(void *arg, t2s_tcp_conn *c) {
  t2s_engine *e = arg;
  t2s_dnsl *d = t2s_tcp_conn_get_user(c);
  d->client_fin = true;
  serve(d, e->now); /* a query cut by the FIN is a framing error; else FIN once answered */
}

static void on_closed(void *arg, t2s_tcp_conn *c, int err) {
  t2s_dnsl *d = t2s_tcp_conn_get_user(c);
  (void)arg;
  t2s_tcp_conn_set_user(c, NULL);
  d->conn = NULL;
  up_close(d, err != 0 || d->pending > 0 || d->head_fwd);
  dnsl_kill(d);
}

void t2s_engine_fakedns_tcp_callbacks(t2s_tcp_callbacks *cbs) {
  memset(cbs, 0, sizeof(*cbs));
  cbs->on_syn = on_syn;
  cbs->on_recv = on_recv;
  cbs->on_sendable = on_sendable;
  cbs->on_fin = on_fin;
  cbs->on_closed = on_closed;
}

/* ---- the idle timeout ---- */

t2s_tstamp t2s_engine_fakedns_tcp_get_expiry(const t2s_engine *e) {
  if (e->dnsl_head == NULL || e->cfg.dns_timeout == 0) {
    return T2S_TSTAMP_MAX;
  }
  return e->dnsl_head->active_at + e->cfg.dns_timeout;
}

void t2s_engine_fakedns_tcp_handle_expiry(t2s_engine *e, t2s_tstamp now) {
  /* Each iteration takes the head out of the list: bounded by its length. */
  while (e->dnsl_head != NULL && e->cfg.dns_timeout != 0 &&
         e->dnsl_head->active_at + e->cfg.dns_timeout <= now) {
    t2s_dnsl *d = e->dnsl_head;
    idle_unlink(d);
    if (d->closing || d->head_fwd || d->pending > 0 || up_mid_frame(d) || d->conn == NULL) {
      dnsl_abort(d, now); /* the resolver did not answer in time, or the client not close */
    } else {
      dnsl_close(d, now); /* moved to the end of the list: visited once in this loop */
    }
  }
}

/* ---- completions of the upstream ---- */

static void dnsl_stream_opened(t2s_engine *e, t2s_flow *f, int err, t2s_tstamp now) {
  t2s_dnsl *d = dnsl_of(f);
  if (d->up != UP_CONNECTING) {
    return;
  }
  if (err != 0) {
    d->up = UP_NONE; /* the connector forgot it */
    up_failed(d, err, now);
    return;
  }
  if (e->cfg.proxy_kind != T2S_PROXY_SOCKS5) {
    d->up = UP_READY; /* straight to the resolver */
    serve(d, now);
    return;
  }
  d->socks = t2s_malloc(e->mem, sizeof(*d->socks));
  if (d->socks == NULL) {
    up_failed(d, T2S_ERR_NOMEM, now);
    return;
  }
  d->up = UP_HANDSHAKE;
  int rv = t2s_socks5_client_init_addr(
      d->socks, T2S_SOCKS5_CMD_CONNECT, &d->updst, t2s_engine_proxy_username(e, d->flow.proxy),
      t2s_engine_proxy_password(e, d->flow.proxy), e->cfg.socks5_pipelined);
  if (rv == 0) {
    rv = up_flush_socks(d);
  }
  if (rv != 0) {
    up_failed(d, rv, now);
  }
}

static size_t dnsl_stream_recv_space(const t2s_engine *e, const t2s_flow *f) {
  (void)e;
  const t2s_dnsl *d = dnsl_of((t2s_flow *)f);
  if (d->up == UP_HANDSHAKE) {
    return 512; /* a SOCKS5 reply is at most 262 bytes */
  }
  return d->up == UP_READY && d->conn != NULL ? t2s_tcp_send_space(d->conn) : 0;
}

/* Relays the resolver's framed answers to the client as far as its send buffer takes them,
 * following the framing so that local answers go only between whole messages. Returns the
 * bytes taken. */
static size_t relay_down(t2s_dnsl *d, const uint8_t *data, size_t len, t2s_tstamp now) {
  t2s_engine *e = d->engine;
  if (d->conn == NULL || d->closing) {
    return len; /* nobody to answer: discarded */
  }
  size_t room = T2S_MIN(len, t2s_tcp_send_space(d->conn));
  t2s_ssize m = room > 0 ? t2s_tcp_send(d->conn, data, room, now) : 0;
  if (m < 0) {
    return len;
  }
  e->stats.bytes_down += (uint64_t)m;
  bool ended = false;
  /* Each iteration takes at least one byte: bounded by m. */
  for (size_t i = 0; i < (size_t)m;) {
    if (d->uphdr_len < 2) {
      d->uphdr[d->uphdr_len++] = data[i++];
      if (d->uphdr_len == 2) {
        d->up_left = t2s_get16(d->uphdr);
        d->upid_len = 0;
      }
    } else if (d->upid_len < 2) { /* up_left > 0 here: a whole message resets uphdr_len */
      d->upid[d->upid_len++] = data[i++];
      d->up_left--;
    } else {
      size_t k = T2S_MIN(d->up_left, (size_t)m - i);
      i += k;
      d->up_left -= k;
    }
    if (d->uphdr_len == 2 && d->up_left == 0) {
      d->uphdr_len = 0; /* a whole answer is out */
      if (d->pending > 0) {
        fwdq_answered(d, d->upid_len == 2, t2s_get16(d->upid));
        d->pending--;
      }
      ended = true;
    }
  }
  if (d->conn != NULL && t2s_tcp_send_space(d->conn) == 0 && !d->up_paused) {
    d->up_paused = true;
    e->up.ops->stream_pause_read(e->up.self, d->flow.id, true);
  }
  idle_touch(d, now);
  if (ended) {
    serve(d, now); /* local answers waited for the end of the message */
  }
  return (size_t)m;
}

static size_t dnsl_stream_recv(t2s_engine *e, t2s_flow *f, const uint8_t *data, size_t len,
                               t2s_tstamp now) {
  (void)e;
  t2s_dnsl *d = dnsl_of(f);
  if (d->up == UP_HANDSHAKE) {
    size_t used = 0;
    int rv = t2s_socks5_client_feed(d->socks, data, len, &used);
    if (rv < 0) {
      up_failed(d, rv, now);
      return len;
    }
    if (rv == T2S_SOCKS5_NEED_MORE) {
      rv = up_flush_socks(d);
      if (rv != 0) {
        up_failed(d, rv, now);
      }
      return len;
    }
    d->proxy_told = true;
    t2s_engine_proxy_outcome(e, d->flow.proxy, 0, now);
    t2s_free(e->mem, d->socks);
    d->socks = NULL;
    d->up = UP_READY;
    serve(d, now); /* the queries that waited for it */
    if (d->up != UP_READY) {
      return len;
    }
    return used + relay_down(d, data + used, len - used, now);
  }
  if (d->up != UP_READY) {
    return len;
  }
  return relay_down(d, data, len, now);
}

static void dnsl_stream_eof(t2s_engine *e, t2s_flow *f, t2s_tstamp now) {
  (void)e;
  t2s_dnsl *d = dnsl_of(f);
  if (d->up == UP_CONNECTING || d->up == UP_HANDSHAKE) {
    int err = d->socks != NULL ? t2s_socks5_client_eof(d->socks) : 0;
    up_failed(d, err != 0 ? err : T2S_ERR_CLOSED, now);
    return;
  }
  if (d->head_fwd || d->pending > 0 || up_mid_frame(d)) {
    up_failed(d, T2S_ERR_CLOSED, now); /* the resolver hung up on a query */
    return;
  }
  /* The resolver closed an idle stream: the next forwarded query opens another. */
  up_close(d, false);
  if (d->conn != NULL) {
    maybe_finish(d, now);
  }
}

static void dnsl_stream_writable(t2s_engine *e, t2s_flow *f, t2s_tstamp now) {
  (void)e;
  t2s_dnsl *d = dnsl_of(f);
  d->up_blocked = false;
  if (d->up == UP_HANDSHAKE) {
    if (up_flush_socks(d) != 0) {
      up_failed(d, T2S_ERR_CLOSED, now);
    }
  } else if (d->up == UP_READY) {
    serve(d, now);
  }
}

static void dnsl_stream_error(t2s_engine *e, t2s_flow *f, int err, t2s_tstamp now) {
  (void)e;
  t2s_dnsl *d = dnsl_of(f);
  d->up = UP_NONE; /* the connector forgot it */
  up_failed(d, err, now);
}

/* ---- the flow ops: network reset and teardown ---- */

/* A connection with an upstream is reset (RST) like every flow through the old path; one
 * answered only here keeps going (0: not counted). */
static size_t dnsl_reset(t2s_engine *e, t2s_flow *f, t2s_tstamp now) {
  (void)e;
  t2s_dnsl *d = dnsl_of(f);
  if (d->dead || (d->up == UP_NONE && !d->head_fwd && d->pending == 0)) {
    return 0;
  }
  dnsl_abort(d, now);
  return 1;
}

static void dnsl_destroy(t2s_engine *e, t2s_flow *f) {
  (void)e;
  t2s_dnsl *d = dnsl_of(f);
  up_close(d, true);
  if (d->conn != NULL) {
    t2s_tcp_conn_set_user(d->conn, NULL);
    d->conn = NULL;
  }
  dnsl_kill(d);
}

static const t2s_flow_ops dnsl_ops = {
    .kind = T2S_FLOW_DNS_LOCAL,
    .group = T2S_FLOW_GROUP_TCP,
    .name = "dns_local",
    .stream_opened = dnsl_stream_opened,
    .stream_recv_space = dnsl_stream_recv_space,
    .stream_recv = dnsl_stream_recv,
    .stream_eof = dnsl_stream_eof,
    .stream_writable = dnsl_stream_writable,
    .stream_error = dnsl_stream_error,
    .reset = dnsl_reset,
    .destroy = dnsl_destroy,
};
