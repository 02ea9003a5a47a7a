/*
 * tcp.c: the TCP stack's table of connections, its public API and demultiplexing.
 * Input processing is in tcp_in.c, output in tcp_out.c, deadlines in tcp_timer.c.
 */
#include <stdlib.h>
#include <string.h>

#include "tcp_internal.h"

static const char *const state_names[] = {
    "CLOSED",     "LISTEN",     "SYN-PENDING", "SYN-SENT", "SYN-RECEIVED", "ESTABLISHED",
    "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT",  "CLOSING",  "LAST-ACK",     "TIME-WAIT",
};

const char *t2s_tcp_state_name(t2s_tcp_state s) {
  if ((size_t)s >= T2S_ARRAY_LEN(state_names)) {
    return "?";
  }
  return state_names[s];
}

void t2s_tcp_config_default(t2s_tcp_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->mtu = 1500;
  cfg->sndbuf = 256 * 1024;
  cfg->rcvbuf = 256 * 1024;
  cfg->max_conns = 16384;
  cfg->max_pending = 1024;
  cfg->pending_timeout = 10 * T2S_SECONDS;
  cfg->time_wait = 2 * T2S_SECONDS;
  cfg->max_retries = 12;
  cfg->keepalive_idle = 0;
  cfg->wscale = true;
  cfg->timestamps = true;
  cfg->sack = true;
}

int t2s_tcp_stack_new(t2s_tcp_stack **pstack, const t2s_tcp_config *cfg,
                      const t2s_tcp_callbacks *cbs, void *arg, t2s_rand *rand) {
  if (pstack == NULL || cfg == NULL || cbs == NULL || cbs->output == NULL || rand == NULL) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  t2s_tcp_stack *st = t2s_calloc(cfg->mem, 1, sizeof(*st));
  if (st == NULL) {
    return T2S_ERR_NOMEM;
  }
  st->cfg = *cfg;
  st->mem = cfg->mem ? cfg->mem : &st->own_mem;
  if (st->cfg.mtu < 576) {
    st->cfg.mtu = 576;
  }
  if (st->cfg.mtu > 65535) {
    st->cfg.mtu = 65535;
  }
  if (st->cfg.sndbuf < 4096) {
    st->cfg.sndbuf = 4096;
  }
  if (st->cfg.rcvbuf < 4096) {
    st->cfg.rcvbuf = 4096;
  }
  if (st->cfg.rcvbuf > (1u << 30)) {
    st->cfg.rcvbuf = 1u << 30;
  }
  st->cbs = *cbs;
  st->arg = arg;
  st->rand = rand;
  st->hash_seed = t2s_rand_u64(rand);
  st->isn_key[0] = t2s_rand_u64(rand);
  st->isn_key[1] = t2s_rand_u64(rand);
  st->table_size = TCP_HASH_MIN;
  while (st->table_size < st->cfg.max_conns && st->table_size < (1u << 20)) {
    st->table_size <<= 1;
  }
  st->table = t2s_calloc(st->mem, st->table_size, sizeof(*st->table));
  /* The timer heap is allocated now so that the block count stays flat as connections come
   * and go (it only grows, by realloc). */
  st->heap_cap = 64;
  st->heap = t2s_calloc(st->mem, st->heap_cap, sizeof(*st->heap));
  if (st->table == NULL || st->heap == NULL) {
    t2s_free(st->mem, st->table);
    t2s_free(st->mem, st->heap);
    t2s_free(cfg->mem, st);
    return T2S_ERR_NOMEM;
  }
  *pstack = st;
  return 0;
}

static void ackq_remove(t2s_tcp_conn *c) {
  if (!c->ack_queued) {
    return;
  }
  if (c->aqprev) {
    c->aqprev->aqnext = c->aqnext;
  } else {
    c->stack->ackq = c->aqnext;
  }
  if (c->aqnext) {
    c->aqnext->aqprev = c->aqprev;
  }
  c->aqnext = c->aqprev = NULL;
  c->ack_queued = false;
}

void t2s_tcp_ackq_add(t2s_tcp_conn *c) {
  if (c->ack_queued) {
    return;
  }
  t2s_tcp_stack *st = c->stack;
  c->ack_queued = true;
  c->aqprev = NULL;
  c->aqnext = st->ackq;
  if (st->ackq) {
    st->ackq->aqprev = c;
  }
  st->ackq = c;
}

void t2s_tcp_batch_begin(t2s_tcp_stack *st) {
  st->batch = true;
}

void t2s_tcp_flush(t2s_tcp_stack *st, t2s_tstamp now) {
  st->batch = false;
  if (st->ackq == NULL) {
    return;
  }
  st->now = now;
  t2s_tcp_enter(st);
  /* Bounded: each connection is in the list once and leaves it here. */
  while (st->ackq) {
    t2s_tcp_conn *c = st->ackq;
    ackq_remove(c);
    if (!c->dead && c->need_ack) {
      t2s_tcp_output(c, now);
    }
  }
  t2s_tcp_leave(st);
}

static void conn_free(t2s_tcp_conn *c) {
  t2s_mem *mem = c->stack->mem;
  ackq_remove(c);
  t2s_free(mem, c->sbuf.buf);
  t2s_free(mem, c->rbuf.buf);
  t2s_free(mem, c);
}

void t2s_tcp_stack_set_pending_timeout(t2s_tcp_stack *st, t2s_tstamp timeout) {
  st->cfg.pending_timeout = timeout;
}

void t2s_tcp_stack_del(t2s_tcp_stack *st) {
  if (st == NULL) {
    return;
  }
  for (size_t i = 0; i < st->table_size; i++) {
    t2s_tcp_conn *c = st->table[i];
    while (c) {
      t2s_tcp_conn *n = c->hnext;
      conn_free(c);
      c = n;
    }
  }
  while (st->reap) {
    t2s_tcp_conn *c = st->reap;
    st->reap = c->rnext;
    conn_free(c);
  }
  t2s_tcp_tw_free_all(st);
  t2s_free(st->mem, st->table);
  t2s_free(st->mem, st->heap);
  t2s_free(st->cfg.mem, st);
}

size_t t2s_tcp_bucket(const t2s_tcp_stack *st, const t2s_addr *local, const t2s_addr *remote) {
  uint64_t h = t2s_addr_hash(local, st->hash_seed) ^ (t2s_addr_hash(remote, ~st->hash_seed) * 3);
  return (size_t)(h & (st->table_size - 1));
}

static t2s_tcp_conn *conn_lookup(t2s_tcp_stack *st, const t2s_addr *local, const t2s_addr *remote) {
  for (t2s_tcp_conn *c = st->table[t2s_tcp_bucket(st, local, remote)]; c; c = c->hnext) {
    if (t2s_addr_eq(&c->local, local) && t2s_addr_eq(&c->remote, remote)) {
      return c;
    }
  }
  return NULL;
}

static uint8_t wscale_for(uint32_t buf) {
  uint8_t s = 0;
  while (s < 14 && (buf >> s) > 65535) {
    s++;
  }
  return s;
}

static t2s_tcp_conn *conn_new(t2s_tcp_stack *st, const t2s_addr *local, const t2s_addr *remote) {
  if (st->nconns >= st->cfg.max_conns) {
    return NULL;
  }
  t2s_tcp_conn *c = t2s_calloc(st->mem, 1, sizeof(*c));
  if (c == NULL) {
    return NULL;
  }
  c->stack = st;
  /* The receive ring has a little slack: a window rounded up by scaling may exceed the free
   * space by less than 1 << wscale bytes. */
  c->rcv.wscale = wscale_for(st->cfg.rcvbuf);
  /* Both rings are allocated by the first byte they hold and grow on demand up to their
   * configured size (t2s_tcp_ring_reserve), so a connection that never carries data (held SYNs,
   * idle flows) costs no ring at all (1,000 idle flows held ~9 MB resident of 8 KiB rings). */
  c->sbuf.cap = 0;
  c->rbuf.cap = 0;
  c->sbuf.buf = NULL;
  c->rbuf.buf = NULL;
  c->stack = st;
  c->local = *local;
  c->remote = *remote;
  c->heap_idx = SIZE_MAX;
  c->deadline = T2S_TSTAMP_MAX;
  c->rto_at = c->persist_at = c->pending_at = c->timewait_at = c->keepalive_at = T2S_TSTAMP_MAX;
  c->delack_at = T2S_TSTAMP_MAX;
  c->tlp_at = c->reo_at = T2S_TSTAMP_MAX;
  c->rto = TCP_RTO_INITIAL;
  c->ts_offset = t2s_rand_u32(st->rand);
  size_t b = t2s_tcp_bucket(st, local, remote);
  c->hnext = st->table[b];
  st->table[b] = c;
  st->nconns++;
  return c;
}

static uint64_t rotl64(uint64_t x, int b) {
  return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                                   \
  do {                                                                                             \
    v0 += v1;                                                                                      \
    v1 = rotl64(v1, 13);                                                                           \
    v1 ^= v0;                                                                                      \
    v0 = rotl64(v0, 32);                                                                           \
    v2 += v3;                                                                                      \
    v3 = rotl64(v3, 16);                                                                           \
    v3 ^= v2;                                                                                      \
    v0 += v3;                                                                                      \
    v3 = rotl64(v3, 21);                                                                           \
    v3 ^= v0;                                                                                      \
    v2 += v1;                                                                                      \
    v1 = rotl64(v1, 17);                                                                           \
    v1 ^= v2;                                                                                      \
    v2 = rotl64(v2, 32);                                                                           \
  } while (0)

/* SipHash-2-4 (Aumasson and Bernstein) of m[0..len) under the 128-bit key k. */
static uint64_t siphash24(const uint64_t k[2], const uint8_t *m, size_t len) {
  uint64_t v0 = 0x736f6d6570736575ULL ^ k[0], v1 = 0x646f72616e646f6dULL ^ k[1];
  uint64_t v2 = 0x6c7967656e657261ULL ^ k[0], v3 = 0x7465646279746573ULL ^ k[1];
  size_t whole = len & ~(size_t)7;
  for (size_t i = 0; i < whole; i += 8) {
    uint64_t w = 0;
    for (int j = 7; j >= 0; j--) {
      w = (w << 8) | m[i + (size_t)j]; /* little-endian word */
    }
    v3 ^= w;
    SIPROUND;
    SIPROUND;
    v0 ^= w;
  }
  uint64_t b = (uint64_t)len << 56;
  for (size_t j = 0; j < (len & 7); j++) {
    b |= (uint64_t)m[whole + j] << (8 * j);
  }
  v3 ^= b;
  SIPROUND;
  SIPROUND;
  v0 ^= b;
  v2 ^= 0xff;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  SIPROUND;
  return v0 ^ v1 ^ v2 ^ v3;
}

uint32_t t2s_tcp_isn(const t2s_tcp_stack *st, const t2s_addr *local, const t2s_addr *remote,
                     t2s_tstamp now) {
  uint8_t m[37] = {0};
  size_t iplen = local->family == T2S_AF_INET ? 4 : 16; /* bytes past an IPv4 address vary */
  m[0] = local->family;
  memcpy(m + 1, local->ip, iplen);
  memcpy(m + 17, remote->ip, iplen);
  m[33] = (uint8_t)(local->port >> 8);
  m[34] = (uint8_t)local->port;
  m[35] = (uint8_t)(remote->port >> 8);
  m[36] = (uint8_t)remote->port;
  /* ISN = M + F(localip, localport, remoteip, remoteport, secretkey), M a 4 us timer. */
  return (uint32_t)(now / (4 * T2S_MICROSECONDS)) + (uint32_t)siphash24(st->isn_key, m, sizeof(m));
}

static void table_remove(t2s_tcp_stack *st, t2s_tcp_conn *c) {
  t2s_tcp_conn **pp = &st->table[t2s_tcp_bucket(st, &c->local, &c->remote)];
  while (*pp) {
    if (*pp == c) {
      *pp = c->hnext;
      st->nconns--;
      return;
    }
    pp = &(*pp)->hnext;
  }
}

void t2s_tcp_conn_finish(t2s_tcp_conn *c, int err, bool send_rst) {
  t2s_tcp_stack *st = c->stack;
  if (c->dead) {
    return;
  }
  if (send_rst && c->state != T2S_TCP_SYN_PENDING && c->state != T2S_TCP_CLOSED) {
    /* An RFC 5961 peer accepts a RST only at its rcv.nxt, which lies somewhere between our
     * snd.una and snd.max: at snd.max when it received everything (a retransmission timeout
     * rewinds snd.nxt, so not there); at snd.una when what we sent past its window was dropped
     * (a slow reader with a full buffer answers nothing else, not even a challenge ACK). Send
     * both; the one that misses is ignored. */
    t2s_tcp_send_ctl(c, c->snd.max, T2S_TCP_RST | T2S_TCP_ACK, st->now);
    if (c->snd.una != c->snd.max && c->state != T2S_TCP_SYN_SENT &&
        c->state != T2S_TCP_SYN_RECEIVED) {
      t2s_tcp_send_ctl(c, c->snd.una, T2S_TCP_RST | T2S_TCP_ACK, st->now);
    }
  }
  if (c->state == T2S_TCP_SYN_PENDING) {
    st->npending--;
    if (send_rst) {
      /* RST for a SYN we never answered: ack the SYN. */
      t2s_tcp_send_ctl(c, 0, T2S_TCP_RST | T2S_TCP_ACK, st->now);
    }
  }
  c->state = T2S_TCP_CLOSED;
  c->dead = true;
  table_remove(st, c);
  t2s_tcp_heap_remove(st, c);
  c->rnext = st->reap;
  st->reap = c;
  if (!c->closed_notified) {
    c->closed_notified = true;
    if (st->cbs.on_closed) {
      st->cbs.on_closed(st->arg, c, err);
    }
  }
}

void t2s_tcp_enter(t2s_tcp_stack *st) {
  st->depth++;
}

void t2s_tcp_leave(t2s_tcp_stack *st) {
  if (--st->depth > 0) {
    return;
  }
  while (st->reap) {
    t2s_tcp_conn *c = st->reap;
    st->reap = c->rnext;
    conn_free(c);
  }
}

int t2s_tcp_ring_reserve(t2s_tcp_stack *st, tcp_ring *r, uint32_t need, uint32_t max) {
  if (need <= r->cap) {
    return 0;
  }
  uint64_t ncap = r->cap ? r->cap : TCP_RING_INITIAL;
  while (ncap < need) {
    ncap *= 2;
  }
  if (ncap > max) {
    ncap = max;
  }
  if (ncap <= r->cap) {
    return T2S_ERR_NOBUF;
  }
  uint8_t *nb = t2s_malloc(st->mem, (size_t)ncap);
  if (nb == NULL) {
    return T2S_ERR_NOMEM;
  }
  /* Linearise: the byte at head moves to 0, so every offset from head stays valid. */
  if (r->cap > 0) {
    uint32_t first = r->cap - r->head;
    memcpy(nb, r->buf + r->head, first);
    memcpy(nb + first, r->buf, r->head);
  }
  t2s_free(st->mem, r->buf);
  r->buf = nb;
  r->cap = (uint32_t)ncap;
  r->head = 0;
  return 0;
}

size_t t2s_tcp_ring_write(tcp_ring *r, uint32_t off, const uint8_t *data, size_t len) {
  if (len == 0 || r->cap == 0) {
    return 0; /* an unallocated ring holds nothing (callers reserve first) */
  }
  T2S_ASSERT((uint64_t)off + len <= r->cap && r->head < r->cap);
  uint32_t pos = (uint32_t)(((uint64_t)r->head + off) % r->cap);
  size_t first = T2S_MIN(len, (size_t)(r->cap - pos));
  memcpy(r->buf + pos, data, first);
  if (len > first) {
    memcpy(r->buf, data + first, len - first);
  }
  return len;
}

void t2s_tcp_ring_read(const tcp_ring *r, uint32_t off, size_t len, const uint8_t **p1, size_t *l1,
                       const uint8_t **p2, size_t *l2) {
  if (r->cap == 0) {
    *p1 = *p2 = r->buf;
    *l1 = *l2 = 0;
    return;
  }
  T2S_ASSERT((uint64_t)off + len <= r->cap && r->head < r->cap);
  uint32_t pos = (uint32_t)(((uint64_t)r->head + off) % r->cap);
  size_t first = T2S_MIN(len, (size_t)(r->cap - pos));
  *p1 = r->buf + pos;
  *l1 = first;
  *p2 = r->buf;
  *l2 = len - first;
}

/* Frees a ring the connection will not use again: the receive ring once the peer's FIN is in
 * and every byte before it consumed, the send ring once our FIN is acknowledged. A half-closed
 * flow (CLOSE-WAIT while the upstream still sends, FIN-WAIT-2) then holds one ring. */
static void rings_trim(t2s_tcp_conn *c) {
  t2s_mem *mem = c->stack->mem;
  if (c->rbuf.buf != NULL && c->fin_rcvd && c->rbuf_ready == 0) {
    t2s_free(mem, c->rbuf.buf);
    c->rbuf.buf = NULL;
    c->rbuf.cap = c->rbuf.head = 0;
    c->nooo = 0; /* nothing can sit beyond the FIN */
  }
  if (c->sbuf.buf != NULL && c->fin_sent && c->snd.una == c->snd.max) {
    T2S_ASSERT(c->sbuf_len == 0);
    t2s_free(mem, c->sbuf.buf);
    c->sbuf.buf = NULL;
    c->sbuf.cap = c->sbuf.head = 0;
  }
}

t2s_drop_reason t2s_tcp_input(t2s_tcp_stack *st, const t2s_pkt *pkt, t2s_tstamp now) {
  st->now = now;
  st->stats.segs_in++;
  /* Our local endpoint is the packet's destination. */
  t2s_tcp_conn *c = conn_lookup(st, &pkt->dst, &pkt->src);
  const t2s_tcp_hdr *th = &pkt->l4.tcp;
  t2s_drop_reason r = T2S_DROP_NONE;
  t2s_tcp_enter(st);
  tcp_tw *tw = NULL;
  if (c != NULL) {
    r = t2s_tcp_input_conn(c, pkt, now);
    if (!c->dead) {
      rings_trim(c);
      tcp_check(c);
      if (c->state == T2S_TCP_TIME_WAIT) {
        t2s_tcp_tw_enter(c, now); /* a safe point: input_conn is done with c */
      }
    }
  } else if ((tw = t2s_tcp_tw_lookup(st, &pkt->dst, &pkt->src)) != NULL) {
    r = t2s_tcp_tw_input(st, tw, pkt, now);
  } else if ((th->flags & (T2S_TCP_SYN | T2S_TCP_ACK | T2S_TCP_RST)) == T2S_TCP_SYN) {
    if (st->npending >= st->cfg.max_pending) {
      t2s_tcp_send_reset_for(st, pkt);
      r = T2S_DROP_TCP_SYN_LIMIT;
    } else if ((c = conn_new(st, &pkt->dst, &pkt->src)) == NULL) {
      t2s_tcp_send_reset_for(st, pkt);
      r = T2S_DROP_TCP_FLOW_LIMIT;
    } else {
      c->state = T2S_TCP_SYN_PENDING;
      st->npending++;
      r = t2s_tcp_input_conn(c, pkt, now);
      if (!c->dead) {
        c->pending_at = now + st->cfg.pending_timeout;
        t2s_tcp_timer_update(c);
        int rv = st->cbs.on_syn ? st->cbs.on_syn(st->arg, c) : 0;
        if (rv != 0) {
          if (!c->dead) {
            t2s_tcp_conn_finish(c, T2S_ERR_REFUSED, true);
          }
        } else if (st->cbs.on_syn == NULL && !c->dead) {
          t2s_tcp_accept(c, now);
        }
      }
    }
  } else {
    if (!(th->flags & T2S_TCP_RST)) {
      t2s_tcp_send_reset_for(st, pkt);
    }
    r = T2S_DROP_TCP_NO_CONNECTION;
  }
  t2s_tcp_leave(st);
  return r;
}

t2s_tstamp t2s_tcp_get_expiry(const t2s_tcp_stack *st) {
  t2s_tstamp e = st->heap_len ? st->heap[0]->deadline : T2S_TSTAMP_MAX;
  return T2S_MIN(e, t2s_tcp_tw_expiry(st));
}

int t2s_tcp_accept(t2s_tcp_conn *c, t2s_tstamp now) {
  t2s_tcp_stack *st = c->stack;
  if (c->state != T2S_TCP_SYN_PENDING || c->dead) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  st->now = now;
  t2s_tcp_enter(st);
  st->npending--;
  c->pending_at = T2S_TSTAMP_MAX;
  c->state = T2S_TCP_SYN_RECEIVED;
  c->snd.iss = t2s_tcp_isn(st, &c->local, &c->remote, now);
  c->snd.una = c->snd.iss;
  c->snd.nxt = c->snd.iss + 1;
  c->snd.max = c->snd.nxt;
  t2s_tcp_send_ctl(c, c->snd.iss, T2S_TCP_SYN | T2S_TCP_ACK, now);
  c->retries = 0;
  t2s_tcp_rto_arm(c, now);
  t2s_tcp_leave(st);
  return 0;
}

int t2s_tcp_refuse(t2s_tcp_conn *c, t2s_tstamp now) {
  t2s_tcp_stack *st = c->stack;
  if (c->dead) {
    return T2S_ERR_CLOSED;
  }
  st->now = now;
  t2s_tcp_enter(st);
  t2s_tcp_conn_finish(c, T2S_ERR_REFUSED, true);
  t2s_tcp_leave(st);
  return 0;
}

int t2s_tcp_refuse_silently(t2s_tcp_conn *c, t2s_tstamp now) {
  t2s_tcp_stack *st = c->stack;
  if (c->dead) {
    return T2S_ERR_CLOSED;
  }
  if (c->state != T2S_TCP_SYN_PENDING) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  st->now = now;
  t2s_tcp_enter(st);
  t2s_tcp_conn_finish(c, T2S_ERR_REFUSED, false);
  t2s_tcp_leave(st);
  return 0;
}

uint32_t t2s_tcp_conn_irs(const t2s_tcp_conn *c) {
  return c->rcv.irs;
}

int t2s_tcp_connect(t2s_tcp_stack *st, const t2s_addr *local, const t2s_addr *remote,
                    t2s_tstamp now, t2s_tcp_conn **pconn) {
  if (local->family != remote->family || local->family == 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (conn_lookup(st, local, remote) || t2s_tcp_tw_lookup(st, local, remote)) {
    return T2S_ERR_EXISTS;
  }
  st->now = now;
  t2s_tcp_conn *c = conn_new(st, local, remote);
  if (c == NULL) {
    return T2S_ERR_LIMIT;
  }
  t2s_tcp_enter(st);
  c->state = T2S_TCP_SYN_SENT;
  c->snd.iss = t2s_tcp_isn(st, local, remote, now);
  c->snd.una = c->snd.iss;
  c->snd.nxt = c->snd.iss + 1;
  c->snd.max = c->snd.nxt;
  c->last_activity = now;
  t2s_tcp_send_ctl(c, c->snd.iss, T2S_TCP_SYN, now);
  t2s_tcp_rto_arm(c, now);
  *pconn = c;
  t2s_tcp_leave(st);
  return 0;
}

t2s_ssize t2s_tcp_send(t2s_tcp_conn *c, const uint8_t *data, size_t len, t2s_tstamp now) {
  if (c->dead || c->fin_queued) {
    return T2S_ERR_CLOSED;
  }
  t2s_tcp_stack *st = c->stack;
  uint32_t space = t2s_tcp_sbuf_space(c);
  size_t n = T2S_MIN(len, (size_t)space);
  if (n < len) {
    c->sbuf_was_full = true;
  }
  if (n == 0) {
    return 0;
  }
  if (t2s_tcp_ring_reserve(st, &c->sbuf, c->sbuf_len + (uint32_t)n, st->cfg.sndbuf) != 0) {
    n = c->sbuf.cap - c->sbuf_len; /* out of memory: take what fits now */
    c->sbuf_was_full = true;
    if (n == 0) {
      return 0;
    }
  }
  if ((uintptr_t)data - (uintptr_t)c->sbuf.buf >= c->sbuf.cap) {
    t2s_tcp_ring_write(&c->sbuf, c->sbuf_len, data, n);
  } /* else read into the ring in place (t2s_tcp_send_buf): already where it belongs */
  c->sbuf_len += (uint32_t)n;
  if (t2s_tcp_sbuf_space(c) == 0) {
    c->sbuf_was_full = true; /* on_sendable follows when space opens */
  }
  st->now = now;
  if (c->state == T2S_TCP_ESTABLISHED || c->state == T2S_TCP_CLOSE_WAIT) {
    t2s_tcp_enter(st);
    t2s_tcp_output(c, now);
    t2s_tcp_leave(st);
  }
  return (t2s_ssize)n;
}

size_t t2s_tcp_send_space(const t2s_tcp_conn *c) {
  if (c->dead || c->fin_queued) {
    return 0;
  }
  return t2s_tcp_sbuf_space(c);
}

size_t t2s_tcp_send_buf(t2s_tcp_conn *c, size_t len, uint8_t **pbuf) {
  *pbuf = NULL;
  tcp_ring *r = &c->sbuf;
  size_t n = T2S_MIN(len, t2s_tcp_send_space(c));
  if (r->cap == 0 || n == 0 || c->sbuf_len >= r->cap) {
    return 0;
  }
  uint32_t pos = (uint32_t)(((uint64_t)r->head + c->sbuf_len) % r->cap);
  n = T2S_MIN(n, (size_t)(r->cap - c->sbuf_len));
  *pbuf = r->buf + pos;
  return t2s_tcp_send_round(c, T2S_MIN(n, (size_t)(r->cap - pos)));
}

size_t t2s_tcp_send_queued(const t2s_tcp_conn *c) {
  return c->sbuf_len;
}

size_t t2s_tcp_recv_peek(const t2s_tcp_conn *c, const uint8_t **p1, size_t *len1,
                         const uint8_t **p2, size_t *len2) {
  t2s_tcp_ring_read(&c->rbuf, 0, c->rbuf_ready, p1, len1, p2, len2);
  return c->rbuf_ready;
}

void t2s_tcp_consume(t2s_tcp_conn *c, size_t n, t2s_tstamp now) {
  if (n > c->rbuf_ready) {
    n = c->rbuf_ready;
  }
  if (n == 0 || c->dead) {
    return;
  }
  t2s_tcp_stack *st = c->stack;
  c->rbuf.head = (uint32_t)(((uint64_t)c->rbuf.head + n) % c->rbuf.cap);
  c->rbuf_ready -= (uint32_t)n;
  rings_trim(c);
  /* Send a window update when the window grew enough to matter (receiver SWS avoidance,
   * RFC 9293 3.8.6.2.2): by a full segment or a quarter of the buffer since the last one. */
  uint32_t wnd = t2s_tcp_rcv_window(c);
  /* Compare what can be advertised: without window scaling the field caps it at 65535, and a
   * window that grew beyond that would send the same ACK on every consume. */
  uint32_t maxwnd = c->ws_ok ? 65535u << c->rcv.wscale : 65535u;
  wnd = T2S_MIN(wnd, maxwnd);
  uint32_t old = c->rcv.adv - c->rcv.nxt;
  uint32_t thresh = T2S_MIN((uint32_t)c->mss, st->cfg.rcvbuf / 4);
  /* Only while the peer sees less than half the window open (as Linux's tcp_cleanup_rbuf):
   * an owner that consumes each segment as it arrives would otherwise answer every one with
   * a window update, and the ACK policy (every second segment, delayed ACK) would be moot.
   * The grown window rides on the next ACK. */
  if (c->state >= T2S_TCP_ESTABLISHED && !c->fin_rcvd &&
      old < T2S_MIN(maxwnd, st->cfg.rcvbuf) / 2 &&
      (wnd >= old + thresh || (old < c->mss && wnd >= c->mss))) {
    c->need_ack = true;
    st->now = now;
    t2s_tcp_enter(st);
    t2s_tcp_output(c, now);
    t2s_tcp_leave(st);
  }
}

int t2s_tcp_shutdown(t2s_tcp_conn *c, t2s_tstamp now) {
  if (c->dead) {
    return T2S_ERR_CLOSED;
  }
  if (c->fin_queued) {
    return 0;
  }
  t2s_tcp_stack *st = c->stack;
  st->now = now;
  c->fin_queued = true;
  t2s_tcp_enter(st);
  if (c->state == T2S_TCP_SYN_PENDING || c->state == T2S_TCP_SYN_SENT) {
    t2s_tcp_conn_finish(c, T2S_ERR_CLOSED, true);
  } else if (c->state == T2S_TCP_ESTABLISHED || c->state == T2S_TCP_CLOSE_WAIT) {
    t2s_tcp_output(c, now);
  }
  t2s_tcp_leave(st);
  return 0;
}

void t2s_tcp_abort(t2s_tcp_conn *c, t2s_tstamp now) {
  if (c->dead) {
    return;
  }
  t2s_tcp_stack *st = c->stack;
  st->now = now;
  t2s_tcp_enter(st);
  t2s_tcp_conn_finish(c, T2S_ERR_CLOSED, true);
  t2s_tcp_leave(st);
}

t2s_tcp_state t2s_tcp_conn_state(const t2s_tcp_conn *c) {
  return c->state;
}

const t2s_addr *t2s_tcp_conn_local(const t2s_tcp_conn *c) {
  return &c->local;
}

const t2s_addr *t2s_tcp_conn_remote(const t2s_tcp_conn *c) {
  return &c->remote;
}

void t2s_tcp_conn_set_user(t2s_tcp_conn *c, void *user) {
  c->user = user;
}

void *t2s_tcp_conn_get_user(const t2s_tcp_conn *c) {
  return c->user;
}

void t2s_tcp_get_stats(const t2s_tcp_stack *st, t2s_tcp_stats *out) {
  *out = st->stats;
  out->conns_active = st->nconns - st->npending;
  out->conns_pending = st->npending;
}
