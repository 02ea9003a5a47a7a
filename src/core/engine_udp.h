/*
 * engine_udp.h: the UDP session module's shared state, private to engine_udp.c (input, the
 * kinds' flow ops, the SOCKS5 control streams, the no-UDP fallback) and engine_udp_sess.c
 * (the session store below it: table, LRU lists, open and close, the datapath toward the
 * upstream and toward the clients, timers). engine_udp_sess.c never calls engine_udp.c.
 */
#ifndef T2S_ENGINE_UDP_H
#define T2S_ENGINE_UDP_H

#include "engine_fakedns.h"
#include "engine_internal.h"
#include "socks5.h"

#define NO_UDP_RETRY (5 * 60 * T2S_SECONDS) /* a no-UDP verdict is re-tried after this */
#define QUEUE_MAX_PKTS 32                   /* datagrams queued per session during setup */
#define QUEUE_MAX_BYTES (64 * 1024)
#define CTL_RECV_SPACE 512 /* a SOCKS5 reply is at most 262 bytes */
#define DNS_PORT 53
#define DNS_MSG_MAX 65535            /* RFC 7766: 2-byte length */
#define DNS_TX_MAX (64 * 1024 + 256) /* framed queries waiting for the stream */
#define PKTBUF_LEN (65536 + 64)
#define DNS_KEPT_MAX 64 /* DNS_TCP: queries kept per session until answered (SERVFAIL if lost) */

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
  t2s_flow ctl; /* control stream (ASSOC) or DNS stream (DNS_TCP); ctl.id 0: none */
  t2s_flow dg;  /* datagram socket (DIRECT, ASSOC once ready); dg.id 0: none */
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
  uint32_t dns_pending;         /* DNS_TCP: queries not answered yet */
  qitem *kept_head, *kept_tail; /* DNS_TCP: copies of them, oldest first (DNS_KEPT_MAX) */
  uint32_t kept_count;
  const char *fake_name; /* --fake-dns: ASSOC to the name dst_key (a pool address) stands for */
  uint64_t dgrams_up, dgrams_down, bytes_up, bytes_down;
  struct usess *next_dead;
} usess;

struct t2s_udp {
  t2s_mem *mem; /* the engine's allocation counter */
  usess **buckets;
  size_t nbuckets; /* power of two */
  uint64_t hseed;
  struct {
    usess *head, *tail; /* head: least recently used */
  } lru[2];
  size_t count;
  usess *dead;
  bool no_udp; /* the proxy is believed to have no UDP */
  t2s_tstamp no_udp_until;
  uint8_t pkt[PKTBUF_LEN]; /* packets built toward clients */
  uint8_t enc[PKTBUF_LEN]; /* SOCKS5-encapsulated datagrams */
};

/* ---- engine_udp_sess.c ---- */

/* The session of client (and dst for DIRECT / DNS_TCP; unset family for ASSOC), or NULL. */
usess *t2s_udp_lookup(const struct t2s_udp *u, const t2s_addr *client, const t2s_addr *dst);
/* Keys s by dst in the table (a --fake-dns association, keyed by its pool address). */
void t2s_udp_rekey(struct t2s_udp *u, usess *s, const t2s_addr *dst);
/* Marks activity: the session becomes the most recently used of its list. */
void t2s_udp_touch(struct t2s_udp *u, usess *s, t2s_tstamp now);
/* Sends a datagram from src to the client of s. */
void t2s_udp_deliver(t2s_engine *e, usess *s, const t2s_addr *src, const uint8_t *data, size_t len,
                     t2s_tstamp now);
/* The address the client sent to, for a datagram the session carries to dst (a hijacked
 * resolver's answer comes from where the client asked; --fake-dns from the pool address). */
const t2s_addr *t2s_udp_reply_src(const t2s_engine *e, const usess *s, const t2s_addr *dst);
/* A DNS query (data, to port 53 of asked, from client) that cannot be carried: answered
 * SERVFAIL at once from asked, counted under cause. Returns false when data is not a query to
 * port 53 (nothing sent: the caller does what it does for other datagrams). */
bool t2s_udp_servfail(t2s_engine *e, const t2s_addr *client, const t2s_addr *asked,
                      const uint8_t *data, size_t len, t2s_dns_servfail_cause cause);
/* ICMP port unreachable to client from dst, quoting orig (or a header-only datagram from
 * client to dst when orig is NULL). */
void t2s_udp_port_unreach(t2s_engine *e, const t2s_addr *client, const t2s_addr *dst,
                          const t2s_pkt *orig);
/* Creates a session of mode and starts its upstream: its first flow (the datagram socket for
 * DIRECT, the control or DNS stream otherwise) gets ops and a fresh id in the flow table.
 * Returns it (the caller sends or queues), or NULL (counted). */
usess *t2s_udp_sess_open(t2s_engine *e, umode mode, const t2s_flow_ops *ops, const t2s_addr *client,
                         const t2s_addr *dst, t2s_tstamp now);
/* Closes the upstreams of s and forgets its ids; freed at the next reap. reason goes to the
 * event (T2S_ERR_TIMEOUT idle, T2S_ERR_LIMIT evicted, an error, or 0). */
void t2s_udp_sess_close(t2s_engine *e, usess *s, int reason, t2s_tstamp now);
/* Engine teardown of one session: upstreams closed, ids forgotten, no event. */
void t2s_udp_sess_destroy(t2s_engine *e, usess *s);
/* Sends now when ready, else queues (bounded). */
void t2s_udp_sess_send(t2s_engine *e, usess *s, const t2s_addr *dst, const uint8_t *data,
                       size_t len, t2s_tstamp now);
/* The session became ready: sends what was queued. */
void t2s_udp_queue_flush(t2s_engine *e, usess *s, t2s_tstamp now);
/* DNS_TCP: an answer with ID id (have_id) ended: forgets the copy of its query. */
void t2s_udp_kept_answered(t2s_engine *e, usess *s, bool have_id, uint16_t id);
/* DNS_TCP: writes the framed queries the stream takes now. */
void t2s_udp_dns_tx_flush(t2s_engine *e, usess *s, t2s_tstamp now);

#endif
