/*
 * engine_udp_sess.c: the UDP session store (engine_udp.h): the sessions' hash table and LRU
 * lists (also the timeout order), opening and closing sessions with their ids in the flow
 * table, the datapath of a ready session toward the upstream (raw, SOCKS5-encapsulated or
 * DNS-over-TCP framed) and toward the clients, the setup queue, idle timers and eviction.
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "engine_udp.h"

/* Takes the session's ids out of the flow table (the connector forgets them as we close). */
static void forget_ids(t2s_engine *e, usess *s) {
  if (s->ctl.id) {
    t2s_flow_table_remove(&e->flows, &s->ctl);
  }
  if (s->dg.id) {
    t2s_flow_table_remove(&e->flows, &s->dg);
  }
}

/* ---------------- table ---------------- */

static uint64_t key_hash(const struct t2s_udp *u, const t2s_addr *client, const t2s_addr *dst) {
  return t2s_addr_hash(client, u->hseed) ^ (t2s_addr_hash(dst, u->hseed + 1) * 31);
}

static bool addr_same(const t2s_addr *a, const t2s_addr *b) {
  if (a->family == 0 || b->family == 0) {
    return a->family == b->family;
  }
  return t2s_addr_eq(a, b);
}

usess *t2s_udp_lookup(const struct t2s_udp *u, const t2s_addr *client, const t2s_addr *dst) {
  size_t b = (size_t)key_hash(u, client, dst) & (u->nbuckets - 1);
  for (usess *s = u->buckets[b]; s; s = s->hnext) {
    if (t2s_addr_eq(&s->client, client) && addr_same(&s->dst_key, dst)) {
      return s;
    }
  }
  return NULL;
}

static void hash_insert(struct t2s_udp *u, usess *s) {
  size_t b = (size_t)key_hash(u, &s->client, &s->dst_key) & (u->nbuckets - 1);
  s->hnext = u->buckets[b];
  u->buckets[b] = s;
}

static void hash_remove(struct t2s_udp *u, usess *s) {
  size_t b = (size_t)key_hash(u, &s->client, &s->dst_key) & (u->nbuckets - 1);
  for (usess **pp = &u->buckets[b]; *pp; pp = &(*pp)->hnext) {
    if (*pp == s) {
      *pp = s->hnext;
      return;
    }
  }
}

void t2s_udp_rekey(struct t2s_udp *u, usess *s, const t2s_addr *dst) {
  hash_remove(u, s);
  s->dst_key = *dst;
  hash_insert(u, s);
}

static void lru_unlink(struct t2s_udp *u, usess *s) {
  T2S_ASSERT(s->lru_prev != NULL || u->lru[s->lru].head == s);
  T2S_ASSERT(s->lru_next != NULL || u->lru[s->lru].tail == s);
  if (s->lru_prev) {
    s->lru_prev->lru_next = s->lru_next;
  } else {
    u->lru[s->lru].head = s->lru_next;
  }
  if (s->lru_next) {
    s->lru_next->lru_prev = s->lru_prev;
  } else {
    u->lru[s->lru].tail = s->lru_prev;
  }
  s->lru_prev = s->lru_next = NULL;
}

static void lru_append(struct t2s_udp *u, usess *s) {
  s->lru = s->dns ? LRU_DNS : LRU_OTHER;
  s->lru_prev = u->lru[s->lru].tail;
  s->lru_next = NULL;
  if (u->lru[s->lru].tail) {
    u->lru[s->lru].tail->lru_next = s;
  } else {
    u->lru[s->lru].head = s;
  }
  u->lru[s->lru].tail = s;
}

/* Marks activity: the session becomes the most recently used of its list. */
void t2s_udp_touch(struct t2s_udp *u, usess *s, t2s_tstamp now) {
  s->last = now;
  lru_unlink(u, s);
  lru_append(u, s);
}

static t2s_tstamp sess_timeout(const t2s_engine *e, const usess *s) {
  return s->dns ? e->cfg.dns_timeout : e->cfg.udp_timeout;
}

/* ---------------- packets toward clients ---------------- */

const t2s_addr *t2s_udp_reply_src(const t2s_engine *e, const usess *s, const t2s_addr *dst) {
  if (s->fake_name) {
    return &s->dst_key; /* --fake-dns: answers come from the pool address the client used */
  }
  if (s->hijacked.family != 0 && t2s_addr_eq(dst, &e->cfg.dns_hijack)) {
    return &s->hijacked; /* a hijacked query's answer comes from where the client sent it */
  }
  return dst;
}

bool t2s_udp_servfail(t2s_engine *e, const t2s_addr *client, const t2s_addr *asked,
                      const uint8_t *data, size_t len, t2s_dns_servfail_cause cause) {
  if (asked->port != DNS_PORT || asked->family != client->family) {
    return false;
  }
  /* t2s_engine_dns_servfail() reads only these fields: it parses the query, answers from dst
   * to src. */
  t2s_pkt pkt;
  memset(&pkt, 0, sizeof(pkt));
  pkt.proto = T2S_IPPROTO_UDP;
  pkt.src = *client;
  pkt.dst = *asked;
  pkt.payload = data;
  pkt.payload_len = len;
  if (!t2s_engine_dns_servfail(e, &pkt)) {
    return false;
  }
  e->stats.dns_servfail[cause]++;
  return true;
}

/* Sends a datagram from src to the client. */
void t2s_udp_deliver(t2s_engine *e, usess *s, const t2s_addr *src, const uint8_t *data, size_t len,
                     t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  src = t2s_udp_reply_src(e, s, src);
  if (src->family != s->client.family) {
    t2s_engine_drop(e, T2S_DROP_UDP_REPLY_FAMILY, now, NULL);
    return;
  }
  t2s_ssize n = t2s_build_udp(u->pkt, sizeof(u->pkt), src, &s->client, data, len);
  if (n < 0) {
    t2s_engine_drop(e, T2S_DROP_NO_BUFFER, now, NULL);
    return;
  }
  if (t2s_engine_send_frag(e, u->pkt, (size_t)n) == 0) {
    s->dgrams_down++;
    s->bytes_down += len;
    e->stats.udp_datagrams_down++;
    e->stats.bytes_down += len;
    t2s_engine_proxy_count_bytes(e, s->proxy, 0, len); /* docs/proxies.md: per proxy */
  }
}

/* ICMP port unreachable to client from dst, quoting orig (or a header-only datagram from
 * client to dst when orig is NULL). */
void t2s_udp_port_unreach(t2s_engine *e, const t2s_addr *client, const t2s_addr *dst,
                          const t2s_pkt *orig) {
  uint8_t code = client->family == T2S_AF_INET ? 3 : 4;
  bool sent;
  if (orig == NULL) {
    uint8_t tmp[128];
    t2s_ssize n = t2s_build_udp(tmp, sizeof(tmp), client, dst, NULL, 0);
    sent = t2s_engine_send_unreach_rebuilt(e, dst, tmp, n, code);
  } else {
    sent = t2s_engine_send_unreach(e, dst, orig, code);
  }
  if (sent) {
    e->stats.udp_port_unreach_sent++;
  }
}

/* ---------------- session life ---------------- */

static void emit_closed(t2s_engine *e, const usess *s, int reason, t2s_tstamp now) {
  if (e->hooks.on_event == NULL) {
    return;
  }
  t2s_engine_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = T2S_EV_UDP_CLOSED;
  ev.now = now;
  ev.flow_id = s->ctl.id ? s->ctl.id : s->dg.id;
  ev.src = s->client;
  ev.dst = s->first_dst;
  ev.reason = reason;
  ev.bytes_up = s->bytes_up;
  ev.bytes_down = s->bytes_down;
  e->hooks.on_event(e->hooks.arg, &ev);
}

static void queue_free(t2s_mem *mem, usess *s) {
  while (s->qhead) {
    qitem *q = s->qhead;
    s->qhead = q->next;
    t2s_free(mem, q);
  }
  s->qtail = NULL;
  s->qcount = 0;
  s->qbytes = 0;
  while (s->kept_head) { /* bounded by DNS_KEPT_MAX */
    qitem *q = s->kept_head;
    s->kept_head = q->next;
    t2s_free(mem, q);
  }
  s->kept_tail = NULL;
  s->kept_count = 0;
}

/* Appends a copy of data[0..len) for dst to the list head..tail (the setup queue or the kept
 * DNS queries). Returns false when there is no memory (nothing appended). */
static bool qitem_push(t2s_engine *e, qitem **head, qitem **tail, const t2s_addr *dst,
                       const uint8_t *data, size_t len) {
  qitem *q = t2s_malloc(e->mem, sizeof(*q) + len);
  if (q == NULL) {
    return false;
  }
  q->next = NULL;
  q->dst = *dst;
  q->len = len;
  memcpy(q->data, data, len);
  if (*tail) {
    (*tail)->next = q;
  } else {
    *head = q;
  }
  *tail = q;
  return true;
}

/* DNS_TCP: keeps a copy of a query written to the stream (not at DNS_KEPT_MAX or without
 * memory: that one is then lost in silence if the stream fails). */
static void kept_add(t2s_engine *e, usess *s, const t2s_addr *dst, const uint8_t *data,
                     size_t len) {
  if (s->kept_count >= DNS_KEPT_MAX || len < 2) {
    return;
  }
  if (qitem_push(e, &s->kept_head, &s->kept_tail, dst, data, len)) {
    s->kept_count++;
  }
}

void t2s_udp_kept_answered(t2s_engine *e, usess *s, bool have_id, uint16_t id) {
  qitem **pp = &s->kept_head, *prev = NULL;
  if (have_id) {
    for (; *pp && t2s_get16((*pp)->data) != id; prev = *pp, pp = &(*pp)->next) { /* <= 64 */
    }
  }
  if (*pp == NULL) {
    if (s->kept_count < s->dns_pending) {
      return; /* one of the queries not kept */
    }
    pp = &s->kept_head; /* a resolver that changed the ID: the count stays right */
    prev = NULL;
  }
  qitem *q = *pp;
  if (q == NULL) {
    return;
  }
  *pp = q->next;
  if (s->kept_tail == q) {
    s->kept_tail = prev;
  }
  s->kept_count--;
  t2s_free(e->mem, q);
}

/* Closes the upstreams of s and forgets it; freed at the next reap. reason goes to the event
 * (T2S_ERR_TIMEOUT idle, T2S_ERR_LIMIT evicted, an error, or 0). */
void t2s_udp_sess_close(t2s_engine *e, usess *s, int reason, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  if (s->state == ST_DEAD) {
    return;
  }
  s->state = ST_DEAD;
  hash_remove(u, s);
  lru_unlink(u, s);
  forget_ids(e, s);
  if (s->ctl_open) {
    s->ctl_open = false;
    e->up.ops->stream_close(e->up.self, s->ctl.id, false);
  }
  if (s->dgram_open) {
    s->dgram_open = false;
    e->up.ops->dgram_close(e->up.self, s->dg.id);
  }
  /* Queries still waiting for the setup (a network change, a proxy going DOWN, an eviction)
   * are answered SERVFAIL rather than left to the client's timeout. */
  for (qitem *q = s->qhead; q; q = q->next) { /* bounded by QUEUE_MAX_PKTS */
    t2s_udp_servfail(e, &s->client, t2s_udp_reply_src(e, s, &q->dst), q->data, q->len,
                     T2S_DNS_SERVFAIL_FLUSHED);
  }
  /* DNS over TCP: the queries written to the stream and not answered (it failed, ended, timed
   * out or was flushed) too. */
  for (qitem *q = s->kept_head; q; q = q->next) { /* bounded by DNS_KEPT_MAX */
    t2s_udp_servfail(e, &s->client, t2s_udp_reply_src(e, s, &q->dst), q->data, q->len,
                     T2S_DNS_SERVFAIL_FLUSHED);
  }
  queue_free(u->mem, s);
  if (s->fake_name) {
    s->fake_name = NULL;
    t2s_engine_fakedns_flow_end(e, &s->dst_key);
  }
  T2S_ASSERT(u->count > 0);
  u->count--;
  e->stats.udp_sessions_active = u->count;
  emit_closed(e, s, reason, now);
  s->next_dead = u->dead;
  u->dead = s;
  e->reap_due = true;
}

void t2s_engine_udp_reap(t2s_engine *e) {
  struct t2s_udp *u = e->udp;
  while (u->dead) {
    usess *s = u->dead;
    u->dead = s->next_dead;
    t2s_free(u->mem, s->tx);
    t2s_free(u->mem, s->rx);
    t2s_free(u->mem, s);
  }
}

/* Evicts one session to make room: the least recently used DNS session, else the least
 * recently used of the others. */
static bool evict_one(t2s_engine *e, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  usess *victim = u->lru[LRU_DNS].head ? u->lru[LRU_DNS].head : u->lru[LRU_OTHER].head;
  if (victim == NULL) {
    return false;
  }
  e->stats.udp_evictions++;
  t2s_udp_sess_close(e, victim, T2S_ERR_LIMIT, now);
  return true;
}

/* Creates a session and starts its upstream. Returns it (the caller sends or queues), or NULL
 * (counted). */
usess *t2s_udp_sess_open(t2s_engine *e, umode mode, const t2s_flow_ops *ops, const t2s_addr *client,
                         const t2s_addr *dst, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  uint32_t cap = e->cfg.max_udp_sessions ? e->cfg.max_udp_sessions : 1;
  while (u->count >= cap && evict_one(e, now)) { /* bounded by count */
  }
  usess *s = t2s_calloc(e->mem, 1, sizeof(*s));
  if (s == NULL) {
    t2s_engine_drop(e, T2S_DROP_NO_BUFFER, now, NULL);
    return NULL;
  }
  s->mode = mode;
  s->client = *client;
  s->first_dst = *dst;
  if (mode != MODE_ASSOC) {
    s->dst_key = *dst;
  }
  s->egress = e->cfg.egress;
  s->proxy = mode == MODE_DIRECT ? -1 : t2s_engine_proxy_pick(e);
  s->ctl.proxy = s->proxy;
  s->dg.proxy = s->proxy;
  s->dns = dst->port == DNS_PORT;
  s->last = now;
  s->ctl.egress = &s->egress;
  s->dg.egress = &s->egress;
  t2s_flow *f = mode == MODE_DIRECT ? &s->dg : &s->ctl;
  f->ops = ops;
  f->id = t2s_flow_table_new_id(&e->flows);
  uint64_t id = f->id;
  if (t2s_flow_table_add(&e->flows, f) != 0) {
    t2s_free(e->mem, s);
    t2s_engine_drop(e, T2S_DROP_NO_BUFFER, now, NULL);
    return NULL;
  }
  hash_insert(u, s);
  lru_append(u, s);
  u->count++;
  e->stats.udp_sessions_active = u->count;
  e->stats.udp_sessions_total++;
  t2s_engine_emit(e, T2S_EV_UDP_OPEN, now, id, client, dst, 0);
  int rv;
  if (mode == MODE_DIRECT) {
    rv = e->up.ops->dgram_open(e->up.self, s->dg.id, dst, &s->egress);
    if (rv == 0) {
      s->dgram_open = true;
      s->state = ST_READY;
    }
  } else {
    const t2s_addr *target =
        e->cfg.proxy_kind == T2S_PROXY_SOCKS5 ? t2s_engine_proxy_addr(e, s->proxy) : dst;
    rv = e->up.ops->stream_open(e->up.self, s->ctl.id, target, &s->egress);
    if (rv == 0) {
      s->ctl_open = true;
      s->state = ST_CONNECTING;
    }
  }
  if (rv != 0) {
    e->stats.upstream_errors++;
    t2s_engine_drop(e, T2S_DROP_UDP_SETUP_FAILED, now, NULL);
    t2s_udp_sess_close(e, s, rv, now);
    return NULL;
  }
  return s;
}

/* ---------------- sending ---------------- */

/* Sends one datagram of a ready session upstream. */
static void transmit(t2s_engine *e, usess *s, const t2s_addr *dst, const uint8_t *data, size_t len,
                     t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  int rv = 0;
  switch (s->mode) {
  case MODE_DIRECT:
    rv = e->up.ops->dgram_send(e->up.self, s->dg.id, data, len);
    break;
  case MODE_ASSOC: {
    t2s_socks5_host host; /* --fake-dns: to the name (ATYP 3), else to the address */
    t2s_ssize n = s->fake_name ? t2s_socks5_host_from_domain(&host, s->fake_name, dst->port)
                               : t2s_socks5_host_from_addr(&host, dst);
    if (n == 0) {
      n = t2s_socks5_udp_encode_host(u->enc, sizeof(u->enc), &host, data, len);
    }
    rv = n < 0 ? (int)n : e->up.ops->dgram_send(e->up.self, s->dg.id, u->enc, (size_t)n);
    break;
  }
  case MODE_DNS_TCP:
    if (len > DNS_MSG_MAX || s->txlen + 2 + len > DNS_TX_MAX) {
      t2s_engine_drop(e, T2S_DROP_DNS_TCP_BAD, now, NULL);
      return;
    }
    if (s->txcap < s->txlen + 2 + len) {
      size_t cap = T2S_MAX(s->txcap * 2, s->txlen + 2 + len);
      cap = T2S_MIN(cap, (size_t)DNS_TX_MAX);
      uint8_t *p = t2s_realloc(e->mem, s->tx, cap);
      if (p == NULL) {
        t2s_engine_drop(e, T2S_DROP_NO_BUFFER, now, NULL);
        return;
      }
      s->tx = p;
      s->txcap = cap;
    }
    t2s_put16(s->tx + s->txlen, (uint16_t)len);
    memcpy(s->tx + s->txlen + 2, data, len);
    s->txlen += 2 + len;
    s->dns_pending++;
    kept_add(e, s, dst, data, len);
    e->stats.udp_dns_tcp_queries++;
    t2s_udp_dns_tx_flush(e, s, now);
    break;
  }
  if (rv != 0) {
    t2s_engine_drop(e, T2S_DROP_UDP_SEND_FAILED, now, NULL);
    return;
  }
  s->dgrams_up++;
  s->bytes_up += len;
  e->stats.udp_datagrams_up++;
  e->stats.bytes_up += len;
  t2s_engine_proxy_count_bytes(e, s->proxy, len, 0);
}

/* Sends now when ready, else queues (bounded). */
void t2s_udp_sess_send(t2s_engine *e, usess *s, const t2s_addr *dst, const uint8_t *data,
                       size_t len, t2s_tstamp now) {
  if (s->state == ST_READY) {
    transmit(e, s, dst, data, len, now);
    return;
  }
  if (s->qcount >= QUEUE_MAX_PKTS || s->qbytes + len > QUEUE_MAX_BYTES) {
    t2s_engine_drop(e, T2S_DROP_UDP_QUEUE_FULL, now, NULL);
    t2s_udp_servfail(e, &s->client, t2s_udp_reply_src(e, s, dst), data, len,
                     T2S_DNS_SERVFAIL_QUEUE_FULL);
    return;
  }
  if (!qitem_push(e, &s->qhead, &s->qtail, dst, data, len)) {
    t2s_engine_drop(e, T2S_DROP_NO_BUFFER, now, NULL);
    t2s_udp_servfail(e, &s->client, t2s_udp_reply_src(e, s, dst), data, len,
                     T2S_DNS_SERVFAIL_QUEUE_FULL);
    return;
  }
  s->qcount++;
  s->qbytes += len;
}

/* The session became ready: sends what was queued. */
void t2s_udp_queue_flush(t2s_engine *e, usess *s, t2s_tstamp now) {
  qitem *q = s->qhead;
  s->qhead = s->qtail = NULL;
  s->qcount = 0;
  s->qbytes = 0;
  while (q) { /* bounded by QUEUE_MAX_PKTS */
    qitem *next = q->next;
    if (s->state == ST_READY) {
      transmit(e, s, &q->dst, q->data, q->len, now);
    }
    t2s_free(e->mem, q);
    q = next;
  }
}

void t2s_udp_dns_tx_flush(t2s_engine *e, usess *s, t2s_tstamp now) {
  if (s->state != ST_READY || s->ctl_blocked || s->txlen == 0 || !s->ctl_open) {
    return;
  }
  t2s_ssize n = e->up.ops->stream_write(e->up.self, s->ctl.id, s->tx, s->txlen);
  if (n < 0) {
    e->stats.upstream_errors++;
    t2s_udp_sess_close(e, s, (int)n, now);
    return;
  }
  if ((size_t)n < s->txlen) {
    s->ctl_blocked = true;
  }
  memmove(s->tx, s->tx + n, s->txlen - (size_t)n);
  s->txlen -= (size_t)n;
}

/* Engine teardown of one session: upstreams closed, ids forgotten, no event; freed at the
 * reap. */
void t2s_udp_sess_destroy(t2s_engine *e, usess *s) {
  struct t2s_udp *u = e->udp;
  if (s->state == ST_DEAD) {
    return;
  }
  hash_remove(u, s);
  lru_unlink(u, s);
  forget_ids(e, s);
  if (s->ctl_open) {
    s->ctl_open = false;
    e->up.ops->stream_close(e->up.self, s->ctl.id, false);
  }
  if (s->dgram_open) {
    s->dgram_open = false;
    e->up.ops->dgram_close(e->up.self, s->dg.id);
  }
  queue_free(u->mem, s);
  if (s->fake_name) {
    s->fake_name = NULL;
    t2s_engine_fakedns_flow_end(e, &s->dst_key);
  }
  u->count--;
  e->stats.udp_sessions_active = u->count;
  s->state = ST_DEAD;
  s->next_dead = u->dead;
  u->dead = s;
  e->reap_due = true;
}

/* ---------------- timers, flush, life ---------------- */

t2s_tstamp t2s_engine_udp_get_expiry(const t2s_engine *e) {
  const struct t2s_udp *u = e->udp;
  t2s_tstamp t = T2S_TSTAMP_MAX;
  for (int l = 0; l < 2; l++) {
    const usess *s = u->lru[l].head;
    if (s) {
      t2s_tstamp d = s->last + sess_timeout(e, s);
      t = T2S_MIN(t, d);
    }
  }
  return t;
}

void t2s_engine_udp_handle_expiry(t2s_engine *e, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  for (int l = 0; l < 2; l++) {
    /* Each iteration closes the head: bounded by the number of sessions. */
    while (u->lru[l].head && u->lru[l].head->last + sess_timeout(e, u->lru[l].head) <= now) {
      e->stats.udp_timeouts++;
      t2s_udp_sess_close(e, u->lru[l].head, T2S_ERR_TIMEOUT, now);
    }
  }
}

int t2s_engine_udp_init(t2s_engine *e) {
  struct t2s_udp *u = t2s_calloc(e->mem, 1, sizeof(*u));
  if (u == NULL) {
    return T2S_ERR_NOMEM;
  }
  u->mem = e->mem;
  size_t want = e->cfg.max_udp_sessions ? e->cfg.max_udp_sessions : 1;
  want = T2S_MIN(want, (size_t)65536);
  u->nbuckets = 16;
  while (u->nbuckets < want) {
    u->nbuckets *= 2;
  }
  u->buckets = t2s_calloc(e->mem, u->nbuckets, sizeof(*u->buckets));
  if (u->buckets == NULL) {
    t2s_free(e->mem, u);
    return T2S_ERR_NOMEM;
  }
  u->hseed = t2s_rand_u64(&e->rand);
  e->udp = u;
  return 0;
}

void t2s_engine_udp_close_all(t2s_engine *e) {
  struct t2s_udp *u = e->udp;
  for (int l = 0; l < 2; l++) {
    while (u->lru[l].head) { /* each destroy unlinks the head: bounded by the sessions */
      t2s_udp_sess_destroy(e, u->lru[l].head);
    }
  }
}

void t2s_engine_udp_free(t2s_engine *e) {
  struct t2s_udp *u = e->udp;
  if (u == NULL) {
    return;
  }
  T2S_ASSERT(u->count == 0 && u->lru[LRU_DNS].head == NULL && u->lru[LRU_OTHER].head == NULL);
  t2s_engine_udp_reap(e);
  t2s_free(e->mem, u->buckets);
  t2s_free(e->mem, u);
  e->udp = NULL;
  e->stats.udp_sessions_active = 0;
}
