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
 * Fragments from clients are reassembled here (frag.c), and packets toward clients larger than
 * the MTU are fragmented (t2s_engine_send_frag, also used for ICMP echo replies).
 */
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "engine_fakedns.h"
#include "engine_internal.h"
#include "frag.h"
#include "socks5.h"

#define NO_UDP_RETRY (5 * 60 * T2S_SECONDS) /* a no-UDP verdict is re-tried after this */
#define QUEUE_MAX_PKTS 32                   /* datagrams queued per session during setup */
#define QUEUE_MAX_BYTES (64 * 1024)
#define CTL_RECV_SPACE 512 /* a SOCKS5 reply is at most 262 bytes */
#define DNS_PORT 53
#define DNS_MSG_MAX 65535            /* RFC 7766: 2-byte length */
#define DNS_TX_MAX (64 * 1024 + 256) /* framed queries waiting for the stream */
#define PKTBUF_LEN (65536 + 64)

typedef enum umode {
  MODE_DIRECT = 0, /* no proxy: a datagram socket connected to the destination */
  MODE_ASSOC,      /* SOCKS5 UDP ASSOCIATE */
  MODE_DNS_TCP,    /* no-UDP fallback: DNS over TCP through CONNECT */
} umode;

typedef enum ustate {
  ST_CONNECTING = 0, /* the control stream is connecting */
  ST_HANDSHAKE,      /* SOCKS5 negotiation */
  ST_READY,          /* datagrams flow */
  ST_DEAD,           /* closed; freed at the next reap */
} ustate;

enum { LRU_OTHER = 0, LRU_DNS = 1 };

typedef struct qitem {
  struct qitem *next;
  t2s_addr dst;
  size_t len;
  uint8_t data[];
} qitem;

typedef struct usess {
  umode mode;
  ustate state;
  uint64_t ctl_id;   /* control / DNS stream (0: none) */
  uint64_t dgram_id; /* datagram socket (0: none) */
  bool ctl_open, dgram_open;
  t2s_addr client;    /* the client socket */
  t2s_addr dst_key;   /* DIRECT and DNS_TCP: the destination; ASSOC: unset */
  t2s_addr first_dst; /* the first datagram's destination (events) */
  t2s_addr hijacked;  /* DNS hijack: the address the client asked (answers come from it) */
  t2s_egress egress;  /* the egress at open */
  int proxy;          /* its proxy's index (engine_proxy.c); -1: cfg.proxy alone */
  bool dns;           /* every datagram went to port 53 */
  int lru;            /* LRU_OTHER or LRU_DNS */
  t2s_tstamp last;    /* last datagram either way */
  struct usess *lru_prev, *lru_next;
  struct usess *hnext; /* hash chain */
  qitem *qhead, *qtail;
  size_t qcount, qbytes;
  t2s_socks5_client socks;
  bool ctl_blocked; /* a short write: waiting for stream_writable */
  uint8_t *tx;      /* DNS_TCP: framed queries not yet written */
  size_t txlen, txcap;
  uint8_t *rx; /* DNS_TCP: bytes of answers being framed */
  size_t rxlen, rxcap;
  uint32_t dns_pending;  /* DNS_TCP: queries not answered yet */
  const char *fake_name; /* --fake-dns: ASSOC to the name dst_key (a pool address) stands for */
  uint64_t dgrams_up, dgrams_down, bytes_up, bytes_down;
  struct usess *next_dead;
} usess;

struct t2s_udp {
  t2s_mem *mem; /* the engine's allocation counter */
  usess **buckets;
  size_t nbuckets; /* power of two */
  uint64_t hseed;
  t2s_idmap ids; /* ctl_id and dgram_id -> session */
  struct {
    usess *head, *tail; /* head: least recently used */
  } lru[2];
  size_t count;
  usess *dead;
  bool no_udp; /* the proxy is believed to have no UDP */
  t2s_tstamp no_udp_until;
  t2s_reasm *reasm;
  uint32_t frag_ident;
  uint8_t whole[T2S_REASM_MAX_PKT];
  uint8_t pkt[PKTBUF_LEN];     /* packets built toward clients */
  uint8_t enc[PKTBUF_LEN];     /* SOCKS5-encapsulated datagrams */
  uint8_t scratch[PKTBUF_LEN]; /* one fragment at a time */
};

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

static usess *lookup(const struct t2s_udp *u, const t2s_addr *client, const t2s_addr *dst) {
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

static void lru_unlink(struct t2s_udp *u, usess *s) {
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
static void touch(struct t2s_udp *u, usess *s, t2s_tstamp now) {
  s->last = now;
  lru_unlink(u, s);
  lru_append(u, s);
}

static t2s_tstamp sess_timeout(const t2s_engine *e, const usess *s) {
  return s->dns ? e->cfg.dns_timeout : e->cfg.udp_timeout;
}

/* ---------------- packets toward clients ---------------- */

static int frag_out(void *arg, const uint8_t *pkt, size_t len) {
  return t2s_engine_send(arg, pkt, len);
}

int t2s_engine_send_frag(t2s_engine *e, const uint8_t *pkt, size_t len) {
  if (len <= e->cfg.mtu) {
    return t2s_engine_send(e, pkt, len);
  }
  struct t2s_udp *u = e->udp;
  uint32_t mtu = e->cfg.mtu;
  if ((pkt[0] >> 4) == 6 && mtu < 1280) {
    mtu = 1280;
  }
  u->frag_ident++;
  if ((pkt[0] >> 4) == 4 && (u->frag_ident & 0xffff) == 0) {
    u->frag_ident++;
  }
  t2s_ssize n =
      t2s_frag_split(pkt, len, mtu, u->frag_ident, u->scratch, sizeof(u->scratch), frag_out, e);
  if (n < 0) {
    return (int)n;
  }
  e->stats.frag_sent += (uint64_t)n;
  return 0;
}

/* Sends a datagram from src to the client. */
static void deliver(t2s_engine *e, usess *s, const t2s_addr *src, const uint8_t *data, size_t len,
                    t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  if (s->fake_name) {
    src = &s->dst_key; /* --fake-dns: answers come from the pool address the client used */
  }
  if (s->hijacked.family != 0 && t2s_addr_eq(src, &e->cfg.dns_hijack)) {
    src = &s->hijacked; /* a hijacked query's answer comes from where the client sent it */
  }
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
  }
}

/* ICMP port unreachable to client from dst, quoting orig (or a header-only datagram from
 * client to dst when orig is NULL). */
static void send_port_unreach(t2s_engine *e, const t2s_addr *client, const t2s_addr *dst,
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
  ev.flow_id = s->ctl_id ? s->ctl_id : s->dgram_id;
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
}

/* Closes the upstreams of s and forgets it; freed at the next reap. reason goes to the event
 * (T2S_ERR_TIMEOUT idle, T2S_ERR_LIMIT evicted, an error, or 0). */
static void sess_close(t2s_engine *e, usess *s, int reason, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  if (s->state == ST_DEAD) {
    return;
  }
  s->state = ST_DEAD;
  hash_remove(u, s);
  lru_unlink(u, s);
  if (s->ctl_id) {
    t2s_idmap_del(&u->ids, s->ctl_id);
  }
  if (s->dgram_id) {
    t2s_idmap_del(&u->ids, s->dgram_id);
  }
  if (u->ids.len == 0) {
    t2s_idmap_free(&u->ids); /* no session left: back to the engine's initial footprint */
  }
  if (s->ctl_open) {
    s->ctl_open = false;
    e->up.ops->stream_close(e->up.self, s->ctl_id, false);
  }
  if (s->dgram_open) {
    s->dgram_open = false;
    e->up.ops->dgram_close(e->up.self, s->dgram_id);
  }
  queue_free(u->mem, s);
  if (s->fake_name) {
    s->fake_name = NULL;
    t2s_engine_fakedns_flow_end(e, &s->dst_key);
  }
  u->count--;
  e->stats.udp_sessions_active = u->count;
  emit_closed(e, s, reason, now);
  s->next_dead = u->dead;
  u->dead = s;
}

static void reap(struct t2s_udp *u) {
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
  sess_close(e, victim, T2S_ERR_LIMIT, now);
  return true;
}

static uint64_t new_id(t2s_engine *e) {
  return e->next_id++;
}

/* Creates a session and starts its upstream. Returns it (the caller sends or queues), or NULL
 * (counted). */
static usess *sess_open(t2s_engine *e, umode mode, const t2s_addr *client, const t2s_addr *dst,
                        t2s_tstamp now) {
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
  s->dns = dst->port == DNS_PORT;
  s->last = now;
  if (mode == MODE_DIRECT) {
    s->dgram_id = new_id(e);
  } else {
    s->ctl_id = new_id(e);
  }
  uint64_t id = s->ctl_id ? s->ctl_id : s->dgram_id;
  if (t2s_idmap_put(&u->ids, id, s) != 0) {
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
    rv = e->up.ops->dgram_open(e->up.self, s->dgram_id, dst, &s->egress);
    if (rv == 0) {
      s->dgram_open = true;
      s->state = ST_READY;
    }
  } else {
    const t2s_addr *target =
        e->cfg.proxy_kind == T2S_PROXY_SOCKS5 ? t2s_engine_proxy_addr(e, s->proxy) : dst;
    rv = e->up.ops->stream_open(e->up.self, s->ctl_id, target, &s->egress);
    if (rv == 0) {
      s->ctl_open = true;
      s->state = ST_CONNECTING;
    }
  }
  if (rv != 0) {
    e->stats.upstream_errors++;
    t2s_engine_drop(e, T2S_DROP_UDP_SETUP_FAILED, now, NULL);
    sess_close(e, s, rv, now);
    return NULL;
  }
  return s;
}

/* ---------------- sending ---------------- */

static void dns_tx_flush(t2s_engine *e, usess *s, t2s_tstamp now);

/* Sends one datagram of a ready session upstream. */
static void transmit(t2s_engine *e, usess *s, const t2s_addr *dst, const uint8_t *data, size_t len,
                     t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  int rv = 0;
  switch (s->mode) {
  case MODE_DIRECT:
    rv = e->up.ops->dgram_send(e->up.self, s->dgram_id, data, len);
    break;
  case MODE_ASSOC: {
    t2s_socks5_host host; /* --fake-dns: to the name (ATYP 3), else to the address */
    t2s_ssize n = s->fake_name ? t2s_socks5_host_from_domain(&host, s->fake_name, dst->port)
                               : t2s_socks5_host_from_addr(&host, dst);
    if (n == 0) {
      n = t2s_socks5_udp_encode_host(u->enc, sizeof(u->enc), &host, data, len);
    }
    rv = n < 0 ? (int)n : e->up.ops->dgram_send(e->up.self, s->dgram_id, u->enc, (size_t)n);
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
    e->stats.udp_dns_tcp_queries++;
    dns_tx_flush(e, s, now);
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
}

/* Sends now when ready, else queues (bounded). */
static void sess_send(t2s_engine *e, usess *s, const t2s_addr *dst, const uint8_t *data, size_t len,
                      t2s_tstamp now) {
  if (s->state == ST_READY) {
    transmit(e, s, dst, data, len, now);
    return;
  }
  if (s->qcount >= QUEUE_MAX_PKTS || s->qbytes + len > QUEUE_MAX_BYTES) {
    t2s_engine_drop(e, T2S_DROP_UDP_QUEUE_FULL, now, NULL);
    return;
  }
  qitem *q = t2s_malloc(e->mem, sizeof(*q) + len);
  if (q == NULL) {
    t2s_engine_drop(e, T2S_DROP_NO_BUFFER, now, NULL);
    return;
  }
  q->next = NULL;
  q->dst = *dst;
  q->len = len;
  memcpy(q->data, data, len);
  if (s->qtail) {
    s->qtail->next = q;
  } else {
    s->qhead = q;
  }
  s->qtail = q;
  s->qcount++;
  s->qbytes += len;
}

/* The session became ready: sends what was queued. */
static void queue_flush(t2s_engine *e, usess *s, t2s_tstamp now) {
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

/* The no-UDP fallback for one datagram: DNS over TCP for port 53, else ICMP unreachable. */
static void fallback_send(t2s_engine *e, const t2s_addr *client, const t2s_addr *dst,
                          const uint8_t *data, size_t len, const t2s_pkt *orig, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  if (dst->port != DNS_PORT) {
    t2s_engine_drop(e, T2S_DROP_UDP_NO_UDP, now, orig);
    send_port_unreach(e, client, dst, orig);
    return;
  }
  usess *s = lookup(u, client, dst);
  if (s == NULL) {
    s = sess_open(e, MODE_DNS_TCP, client, dst, now);
    if (s == NULL) {
      return;
    }
  }
  touch(u, s, now);
  sess_send(e, s, dst, data, len, now);
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
    if (!(t2s_engine_proxies_all_down(e) && t2s_engine_dns_servfail(e, pkt))) {
      send_port_unreach(e, &pkt->src, &pkt->dst, pkt);
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
  /* DNS hijack: the datagram goes to the resolver; deliver() maps the answers back. */
  bool hijack = e->cfg.dns_hijack.family != 0 && pkt->dst.port == DNS_PORT;
  const t2s_addr *dst = hijack ? &e->cfg.dns_hijack : &pkt->dst;
  if (socks && no_udp_now(e, now)) {
    fallback_send(e, &pkt->src, dst, pkt->payload, pkt->payload_len, pkt, now);
    usess *fs = hijack ? lookup(u, &pkt->src, dst) : NULL;
    if (fs != NULL) {
      fs->hijacked = pkt->dst;
    }
    reap(u);
    return;
  }
  t2s_addr none;
  memset(&none, 0, sizeof(none));
  const t2s_addr *key = socks ? &none : dst;
  usess *s = NULL;
  if (t2s_engine_fakedns_on(e) && (s = lookup(u, &pkt->src, dst)) == NULL) {
    const char *fake_name = NULL;
    int fk = t2s_engine_fakedns_flow_start(e, dst, &fake_name, now);
    if (fk < 0 || (fk > 0 && !socks)) {
      if (fk > 0) {
        t2s_engine_fakedns_flow_end(e, dst); /* a name needs the proxy */
      }
      send_port_unreach(e, &pkt->src, &pkt->dst, pkt);
      return;
    }
    if (fk > 0) {
      s = sess_open(e, MODE_ASSOC, &pkt->src, dst, now);
      if (s == NULL) {
        t2s_engine_fakedns_flow_end(e, dst);
        reap(u);
        return;
      }
      hash_remove(u, s); /* keyed by its pool address, not as the client's shared association */
      s->dst_key = *dst;
      hash_insert(u, s);
      s->fake_name = fake_name;
    }
  }
  if (s == NULL) {
    s = lookup(u, &pkt->src, key);
  }
  if (s == NULL) {
    s = sess_open(e, socks ? MODE_ASSOC : MODE_DIRECT, &pkt->src, dst, now);
    if (s == NULL) {
      reap(u);
      return;
    }
  }
  if (hijack) {
    s->hijacked = pkt->dst;
  }
  if (s->dns && dst->port != DNS_PORT) {
    s->dns = false; /* moves to the other list in touch() */
  }
  touch(u, s, now);
  sess_send(e, s, dst, pkt->payload, pkt->payload_len, now);
  reap(u);
}

/* ---------------- datagrams from the upstream ---------------- */

static usess *by_id(const t2s_engine *e, uint64_t id) {
  if (e->udp == NULL) {
    return NULL;
  }
  usess *s = t2s_idmap_get(&e->udp->ids, id);
  return s && s->state != ST_DEAD ? s : NULL;
}

void t2s_engine_dgram_recv(t2s_engine *e, uint64_t id, const uint8_t *data, size_t len,
                           t2s_tstamp now) {
  e->now = now;
  usess *s = by_id(e, id);
  if (s == NULL || s->dgram_id != id) {
    return;
  }
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
  touch(e->udp, s, now);
  deliver(e, s, &src, payload, plen, now);
  reap(e->udp);
}

void t2s_engine_dgram_error(t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  e->now = now;
  usess *s = by_id(e, id);
  if (s == NULL || s->dgram_id != id) {
    return;
  }
  s->dgram_open = false; /* the connector forgot it */
  if (s->mode == MODE_DIRECT && (err == T2S_ERR_REFUSED || err == T2S_ERR_UNREACHABLE)) {
    send_port_unreach(e, &s->client, &s->dst_key, NULL);
  }
  e->stats.upstream_errors++;
  sess_close(e, s, err, now);
  reap(e->udp);
}

/* ---------------- control streams ---------------- */

bool t2s_engine_udp_owns_stream(const t2s_engine *e, uint64_t id) {
  if (e->udp == NULL) {
    return false;
  }
  usess *s = t2s_idmap_get(&e->udp->ids, id);
  return s != NULL && s->ctl_id == id;
}

/* Writes pending SOCKS5 output. Returns 0 or an error. */
static int ctl_flush(t2s_engine *e, usess *s) {
  const uint8_t *p;
  size_t len;
  for (int i = 0; i < 8 && !s->ctl_blocked; i++) { /* a handshake has at most 3 messages */
    t2s_socks5_client_pending_output(&s->socks, &p, &len);
    if (len == 0) {
      break;
    }
    t2s_ssize n = e->up.ops->stream_write(e->up.self, s->ctl_id, p, len);
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

static void dns_tx_flush(t2s_engine *e, usess *s, t2s_tstamp now) {
  if (s->state != ST_READY || s->ctl_blocked || s->txlen == 0 || !s->ctl_open) {
    return;
  }
  t2s_ssize n = e->up.ops->stream_write(e->up.self, s->ctl_id, s->tx, s->txlen);
  if (n < 0) {
    e->stats.upstream_errors++;
    sess_close(e, s, (int)n, now);
    return;
  }
  if ((size_t)n < s->txlen) {
    s->ctl_blocked = true;
  }
  memmove(s->tx, s->tx + n, s->txlen - (size_t)n);
  s->txlen -= (size_t)n;
}

/* The association (or the DNS stream) could not be set up. */
static void setup_failed(t2s_engine *e, usess *s, int err, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  t2s_socks5_error_reason why = t2s_socks5_client_reason(&s->socks);
  bool no_udp = s->mode == MODE_ASSOC && err == T2S_ERR_UNSUPPORTED &&
                (why == T2S_SOCKS5_REASON_REP_CMD_UNSUPPORTED ||
                 why == T2S_SOCKS5_REASON_CLOSED_AFTER_REQUEST);
  e->stats.upstream_errors++;
  /* Detach the queue first: the fallback may open sessions, and s must be gone by then. */
  qitem *q = s->qhead;
  s->qhead = s->qtail = NULL;
  s->qcount = 0;
  s->qbytes = 0;
  t2s_addr client = s->client;
  t2s_addr hijacked = s->hijacked; /* DNS hijack: the fallback answers from it too */
  sess_close(e, s, err, now);
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
      fallback_send(e, &client, &q->dst, q->data, q->len, NULL, now);
      usess *fs = hijacked.family != 0 && t2s_addr_eq(&q->dst, &e->cfg.dns_hijack)
                      ? lookup(u, &client, &q->dst)
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
  struct t2s_udp *u = e->udp;
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
      s->dgram_id = new_id(e);
      rv = t2s_idmap_put(&u->ids, s->dgram_id, s);
      if (rv != 0) {
        s->dgram_id = 0;
      }
    }
    if (rv == 0) {
      rv = e->up.ops->dgram_open(e->up.self, s->dgram_id, &relay, &s->egress);
    }
    if (rv != 0) {
      setup_failed(e, s, rv, now);
      return;
    }
    s->dgram_open = true;
  }
  s->state = ST_READY;
  queue_flush(e, s, now);
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
      sess_close(e, s, T2S_ERR_PROTO, now); /* recv_space makes this unreachable */
      return;
    }
    uint8_t *p = t2s_realloc(e->mem, s->rx, cap);
    if (p == NULL) {
      sess_close(e, s, T2S_ERR_NOMEM, now);
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
    touch(u, s, now);
    e->stats.udp_dns_tcp_answers++;
    deliver(e, s, &s->dst_key, s->rx + off + 2, mlen, now);
    off += 2 + mlen;
    if (s->dns_pending > 0) {
      s->dns_pending--;
    }
  }
  if (off > 0) {
    memmove(s->rx, s->rx + off, s->rxlen - off);
    s->rxlen -= off;
  }
  /* Every query answered: the stream is closed at once rather than held for the idle
   * timeout (resolvers serve few TCP connections; a later query opens a new one). */
  if (off > 0 && s->dns_pending == 0 && s->txlen == 0 && s->rxlen == 0) {
    sess_close(e, s, 0, now);
  }
}

void t2s_engine_udp_stream_opened(t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  e->now = now;
  usess *s = by_id(e, id);
  if (s == NULL || s->state != ST_CONNECTING) {
    return;
  }
  if (err != 0) {
    s->ctl_open = false; /* the connector forgot it */
    setup_failed(e, s, err, now);
    reap(e->udp);
    return;
  }
  if (e->cfg.proxy_kind != T2S_PROXY_SOCKS5) {
    s->state = ST_READY; /* DNS over TCP straight to the resolver */
    queue_flush(e, s, now);
    reap(e->udp);
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
  reap(e->udp);
}

size_t t2s_engine_udp_stream_recv_space(const t2s_engine *e, uint64_t id) {
  usess *s = by_id(e, id);
  if (s == NULL) {
    return 0;
  }
  if (s->mode == MODE_DNS_TCP && s->state == ST_READY) {
    return (size_t)DNS_MSG_MAX + 2 - s->rxlen;
  }
  return CTL_RECV_SPACE;
}

size_t t2s_engine_udp_stream_recv(t2s_engine *e, uint64_t id, const uint8_t *data, size_t len,
                                  t2s_tstamp now) {
  e->now = now;
  usess *s = by_id(e, id);
  if (s == NULL) {
    return len;
  }
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
  reap(e->udp);
  return len;
}

void t2s_engine_udp_stream_eof(t2s_engine *e, uint64_t id, t2s_tstamp now) {
  e->now = now;
  usess *s = by_id(e, id);
  if (s == NULL) {
    return;
  }
  if (s->state == ST_HANDSHAKE || s->state == ST_CONNECTING) {
    int rv = s->state == ST_HANDSHAKE ? t2s_socks5_client_eof(&s->socks) : T2S_ERR_CLOSED;
    setup_failed(e, s, rv ? rv : T2S_ERR_CLOSED, now);
  } else {
    /* The association (or the DNS stream) is over: so is the session. */
    sess_close(e, s, T2S_ERR_CLOSED, now);
  }
  reap(e->udp);
}

void t2s_engine_udp_stream_writable(t2s_engine *e, uint64_t id, t2s_tstamp now) {
  e->now = now;
  usess *s = by_id(e, id);
  if (s == NULL) {
    return;
  }
  s->ctl_blocked = false;
  if (s->state == ST_HANDSHAKE) {
    int rv = ctl_flush(e, s);
    if (rv != 0) {
      setup_failed(e, s, rv, now);
    }
  } else if (s->mode == MODE_DNS_TCP) {
    dns_tx_flush(e, s, now);
  }
  reap(e->udp);
}

void t2s_engine_udp_stream_error(t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  e->now = now;
  usess *s = by_id(e, id);
  if (s == NULL) {
    return;
  }
  s->ctl_open = false; /* the connector forgot it */
  if (s->state == ST_READY) {
    e->stats.upstream_errors++;
    sess_close(e, s, err, now);
  } else {
    setup_failed(e, s, err, now);
  }
  reap(e->udp);
}

/* ---------------- timers, flush, life ---------------- */

t2s_tstamp t2s_engine_udp_get_expiry(const t2s_engine *e) {
  const struct t2s_udp *u = e->udp;
  t2s_tstamp t = t2s_reasm_get_expiry(u->reasm);
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
  size_t n = t2s_reasm_handle_expiry(u->reasm, now);
  for (size_t i = 0; i < n; i++) {
    t2s_engine_drop(e, T2S_DROP_FRAG_TIMEOUT, now, NULL);
  }
  for (int l = 0; l < 2; l++) {
    /* Each iteration closes the head: bounded by the number of sessions. */
    while (u->lru[l].head && u->lru[l].head->last + sess_timeout(e, u->lru[l].head) <= now) {
      e->stats.udp_timeouts++;
      sess_close(e, u->lru[l].head, T2S_ERR_TIMEOUT, now);
    }
  }
  reap(u);
}

size_t t2s_engine_udp_flush(t2s_engine *e, const t2s_egress *keep, t2s_tstamp now) {
  struct t2s_udp *u = e->udp;
  size_t n = 0;
  for (int l = 0; l < 2; l++) {
    usess *s = u->lru[l].head;
    while (s) { /* bounded by the number of sessions */
      usess *next = s->lru_next;
      if (keep == NULL || t2s_engine_egress_differs(&s->egress, keep)) {
        sess_close(e, s, T2S_ERR_NETWORK_CHANGED, now);
        n++;
      }
      s = next;
    }
  }
  reap(u);
  return n;
}

t2s_drop_reason t2s_engine_frag_input(t2s_engine *e, const t2s_pkt *frag, t2s_tstamp now,
                                      const uint8_t **pwhole, size_t *pwholelen) {
  struct t2s_udp *u = e->udp;
  *pwhole = NULL;
  *pwholelen = 0;
  t2s_drop_reason why = T2S_DROP_NONE;
  t2s_ssize n = t2s_reasm_input(u->reasm, frag, now, u->whole, sizeof(u->whole), &why);
  if (n < 0) {
    return why != T2S_DROP_NONE ? why : T2S_DROP_FRAG_BAD;
  }
  if (n > 0) {
    e->stats.frag_reassembled++;
    *pwhole = u->whole;
    *pwholelen = (size_t)n;
  }
  return T2S_DROP_NONE;
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
  t2s_reasm_config rc;
  t2s_reasm_config_default(&rc);
  rc.mem = e->mem;
  if (u->buckets == NULL || t2s_reasm_new(&u->reasm, &rc) != 0) {
    t2s_free(e->mem, u->buckets);
    t2s_free(e->mem, u);
    return T2S_ERR_NOMEM;
  }
  u->hseed = t2s_rand_u64(&e->rand);
  u->frag_ident = t2s_rand_u32(&e->rand);
  t2s_idmap_init(&u->ids);
  u->ids.mem = e->mem;
  e->udp = u;
  return 0;
}

void t2s_engine_udp_free(t2s_engine *e) {
  struct t2s_udp *u = e->udp;
  if (u == NULL) {
    return;
  }
  for (int l = 0; l < 2; l++) {
    while (u->lru[l].head) { /* bounded by the number of sessions */
      usess *s = u->lru[l].head;
      lru_unlink(u, s);
      if (s->ctl_open) {
        e->up.ops->stream_close(e->up.self, s->ctl_id, false);
      }
      if (s->dgram_open) {
        e->up.ops->dgram_close(e->up.self, s->dgram_id);
      }
      queue_free(u->mem, s);
      if (s->fake_name) {
        s->fake_name = NULL;
        t2s_engine_fakedns_flow_end(e, &s->dst_key);
      }
      s->state = ST_DEAD;
      s->next_dead = u->dead;
      u->dead = s;
    }
  }
  reap(u);
  t2s_reasm_del(u->reasm);
  t2s_idmap_free(&u->ids);
  t2s_free(e->mem, u->buckets);
  t2s_free(e->mem, u);
  e->udp = NULL;
  e->stats.udp_sessions_active = 0;
}
