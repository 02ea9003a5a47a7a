/*
 * flow.h: the engine's flow table: the one owner of "which flow is this id".
 *
 * Every stream and datagram socket the engine opens through the upstream connector has an id,
 * and every id belongs to exactly one flow of the table. A flow is a small header
 * (struct t2s_flow) embedded in its kind's own state (a TCP session, a UDP session, ...); its
 * ops table says what the kind does with each upstream completion and with a reset. The hub
 * (engine.c) looks the id up and dispatches through the ops: it never knows the kinds, and the
 * kind files never call each other.
 *
 * Adding a kind (docs/architecture.md, "Adding a flow kind"): a value in t2s_flow_kind, a
 * static const t2s_flow_ops in the kind's own file, a t2s_flow embedded in its state with
 * ops, id (t2s_flow_table_new_id) and egress set, t2s_flow_table_add() when the upstream is
 * opened and t2s_flow_table_remove() when the kind forgets the id.
 *
 * Sans-I/O, no global state.
 */
#ifndef T2S_FLOW_H
#define T2S_FLOW_H

#include "alloc.h"
#include "common.h"
#include "idmap.h"
#include "iface.h"

struct t2s_engine;
typedef struct t2s_flow t2s_flow;

/*
 * The table keeps the ids of each group in an id map of its own. The TCP group's map is
 * allocated with the table (the common case: no block appears or goes with the first flows);
 * every other group's map appears with its first flow and is freed with its last, so an engine
 * without such flows pays nothing for them. The iterator visits the groups in this order, so a
 * reset sends the TCP flows' RSTs before it closes the UDP sessions.
 */
typedef enum t2s_flow_group {
  T2S_FLOW_GROUP_TCP = 0, /* TCP sessions */
  T2S_FLOW_GROUP_UDP,     /* everything that carries client UDP (datagrams, DNS over TCP) */
  T2S_FLOW_GROUPS,
} t2s_flow_group;

typedef enum t2s_flow_kind {
  T2S_FLOW_TCP = 1,   /* a TCP session spliced to its upstream stream (engine_tcp.c) */
  T2S_FLOW_UDP,       /* a UDP session's datagram socket (engine_udp.c) */
  T2S_FLOW_UDP_ASSOC, /* a UDP session's SOCKS5 UDP ASSOCIATE control stream (engine_udp.c) */
  T2S_FLOW_DNS_TCP,   /* a no-UDP fallback DNS-over-TCP stream (engine_udp.c) */
  T2S_FLOW_DNS_LOCAL, /* --fake-dns: a client's DNS-over-TCP connection answered here, and its
                       * upstream for forwarded queries (engine_fakedns_tcp.c) */
  T2S_FLOW_KIND_MAX,  /* new kinds (fake-IP DNS, ...) go above this line */
} t2s_flow_kind;

/*
 * What a kind does. Every completion op may be NULL: the hub then ignores the completion (and
 * answers 0 for stream_recv_space and stream_recv). The ops are the t2s_engine_stream_* /
 * t2s_engine_dgram_* completions of engine.h with the flow already looked up; the hub has set
 * engine->now. They may end the flow (t2s_flow_table_remove) but must free it only at the
 * kind's next safe point (the hub calls the kinds' reap after every entry point).
 */
typedef struct t2s_flow_ops {
  t2s_flow_kind kind;
  t2s_flow_group group;
  const char *name; /* "tcp", "udp", ... (logs, tests) */
  void (*stream_opened)(struct t2s_engine *e, t2s_flow *f, int err, t2s_tstamp now);
  size_t (*stream_recv_space)(const struct t2s_engine *e, const t2s_flow *f);
  /* Optional: where up to len received bytes could be read in place (engine.h,
   * t2s_engine_stream_recv_buf); 0 when the kind has no such room. */
  size_t (*stream_recv_buf)(struct t2s_engine *e, t2s_flow *f, size_t len, uint8_t **pbuf);
  size_t (*stream_recv)(struct t2s_engine *e, t2s_flow *f, const uint8_t *data, size_t len,
                        t2s_tstamp now);
  void (*stream_eof)(struct t2s_engine *e, t2s_flow *f, t2s_tstamp now);
  void (*stream_writable)(struct t2s_engine *e, t2s_flow *f, t2s_tstamp now);
  void (*stream_error)(struct t2s_engine *e, t2s_flow *f, int err, t2s_tstamp now);
  void (*dgram_recv)(struct t2s_engine *e, t2s_flow *f, const uint8_t *data, size_t len,
                     t2s_tstamp now);
  void (*dgram_error)(struct t2s_engine *e, t2s_flow *f, int err, t2s_tstamp now);
  /*
   * The network-change policy ends the flow now (the client learns it: RST, ...; the upstream
   * is closed) with T2S_ERR_NETWORK_CHANGED. Returns how many flows that counts as (1; 0 when
   * it was already ending). A kind with several ids (a UDP session's control stream and
   * datagram socket) removes them all: the iterator then skips the others.
   */
  size_t (*reset)(struct t2s_engine *e, t2s_flow *f, t2s_tstamp now);
  /* Engine teardown: closes the upstreams without telling the client, removes every id of
   * the flow from the table; the memory is freed at the kind's reap. */
  void (*destroy)(struct t2s_engine *e, t2s_flow *f);
} t2s_flow_ops;

/* The header a kind embeds in its state (one per id it holds). */
struct t2s_flow {
  const t2s_flow_ops *ops;
  uint64_t id;              /* the upstream stream or datagram id; 0 = none yet */
  const t2s_egress *egress; /* where its upstream left from (the kind's own copy) */
  int proxy;                /* index of the proxy carrying it (engine_proxy.c); -1: none/cfg */
  /* Multipath TCP (engine_net.c; zero for plain TCP): what the connector reported */
  uint8_t mp;         /* t2s_stream_mp (iface.h) */
  uint8_t subflows;   /* its last subflow count */
  bool stall_pending; /* a survivor whose stall ends with its next bytes */
  uint32_t gap_burst; /* the burst whose start rx_gap spans (engine_net.c) */
  t2s_tstamp rx_at;   /* last bytes from the upstream (multipath flows only) */
  t2s_tstamp rx_gap;  /* the silence that spanned the start of burst gap_burst */
};

typedef struct t2s_flow_table {
  t2s_idmap ids[T2S_FLOW_GROUPS]; /* id -> t2s_flow, per group; an id is in one map only */
  uint64_t next_id;               /* ids are handed out in order from 1 and never reused */
} t2s_flow_table;

/* Initialises an empty table counted in mem, with room for a few flows so that the first ones
 * do not change its block count. Returns 0 or T2S_ERR_NOMEM. */
int t2s_flow_table_init(t2s_flow_table *ft, t2s_mem *mem);
/* Frees the table (not the flows: their kinds own them). */
void t2s_flow_table_free(t2s_flow_table *ft);
/* A fresh id (never 0, never handed out before). */
uint64_t t2s_flow_table_new_id(t2s_flow_table *ft);
/* Adds f under f->id (which must not be in the table: asserted). f->ops must be set.
 * Returns 0 or T2S_ERR_NOMEM (nothing added). */
int t2s_flow_table_add(t2s_flow_table *ft, t2s_flow *f);
/* Moves f to newid (fresh from t2s_flow_table_new_id): a kind that reopens its upstream under
 * a new id. f is added under newid first, then its old id removed. Returns 0 or T2S_ERR_NOMEM
 * (f unchanged). */
int t2s_flow_table_rekey(t2s_flow_table *ft, t2s_flow *f, uint64_t newid);
/* Removes f (which must be the flow under f->id: asserted). */
void t2s_flow_table_remove(t2s_flow_table *ft, t2s_flow *f);
/* The flow of id, or NULL. */
t2s_flow *t2s_flow_table_get(const t2s_flow_table *ft, uint64_t id);
/* Flows in the table (every group). */
size_t t2s_flow_table_len(const t2s_flow_table *ft);

/*
 * Iterates over every flow, whatever its kind: group by group (t2s_flow_group order), each in
 * its map's order. Removing flows (the current one or others) while iterating is allowed;
 * adding is not.
 *   t2s_flow_iter it = T2S_FLOW_ITER_INIT;
 *   for (t2s_flow *f; (f = t2s_flow_iter_next(ft, &it)) != NULL;) { ... }
 */
typedef struct t2s_flow_iter {
  size_t group;
  size_t pos;
} t2s_flow_iter;
#define T2S_FLOW_ITER_INIT                                                                         \
  { 0, 0 }
t2s_flow *t2s_flow_iter_next(const t2s_flow_table *ft, t2s_flow_iter *it);

#endif
