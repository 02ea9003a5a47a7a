/*
 * sim_upstream.h: the plain simulated upstream, an implementation of t2s_upstream_ops
 * (iface.h) over the simulator's event queue.
 *
 * Each stream gets a behaviour chosen by its destination (rules set by the scenario, or the
 * default): echo, sink, source N bytes, refuse, black hole, optionally reset after N bytes,
 * with a virtual latency. Datagram sockets echo (or sink, or vanish into a black hole).
 *
 * Re-entrancy: the ops never call the engine. Everything the engine must learn (connected,
 * bytes arrived, EOF, writable, reset) is scheduled as an event of kind SIM_EV_UPSTREAM and
 * delivered from the loop. Backpressure: at most t2s_engine_stream_recv_space() bytes are
 * handed over at a time, and nothing while the engine has paused reading.
 *
 * Protocol fronts: a factory may install a front on each new stream (the simulated SOCKS5
 * server). While a front is installed, bytes from the engine go to the front, which answers
 * with sim_up_stream_emit() and finally hands the stream to the behaviour of the destination
 * it was asked for with sim_up_stream_front_done().
 */
#ifndef T2S_SIM_UPSTREAM_H
#define T2S_SIM_UPSTREAM_H

#include "common.h"
#include "iface.h"

typedef struct sim_world sim_world;
typedef struct sim_upstream sim_upstream;
typedef struct sim_up_stream sim_up_stream;

typedef enum sim_up_kind {
  SIM_UP_ECHO = 0,    /* sends back what it gets; EOF after the peer's EOF */
  SIM_UP_SINK,        /* takes everything (counted, hashed, checked against the pattern) */
  SIM_UP_SOURCE,      /* sends `source_len` pattern bytes, then EOF; discards input */
  SIM_UP_REFUSE,      /* the connect fails with T2S_ERR_REFUSED */
  SIM_UP_BLACKHOLE,   /* the connect never completes; datagrams vanish */
  SIM_UP_UNREACHABLE, /* the connect fails with T2S_ERR_UNREACHABLE (via a proxy: REP 4) */
} sim_up_kind;

/* Name of a kind ("echo"). */
const char *sim_up_kind_name(sim_up_kind k);

typedef struct sim_up_behaviour {
  sim_up_kind kind;
  t2s_addr reply_from;  /* datagrams through the simulated proxy: echoed also from this remote
                         * (a second remote answering: full cone); family 0 = none */
  uint64_t source_len;  /* SOURCE: bytes to send */
  uint64_t reset_after; /* reset once this many bytes moved (both ways); UINT64_MAX: never */
  t2s_tstamp latency;   /* connect time, and the delay of every echo / EOF / reset */
  /* Seeded faults of the far end (docs/scenarios.md), drawn from the run's seed; none after
   * the liveness phase begins (the device's faults.until). */
  uint32_t refuse_num, refuse_den; /* a direct connect is refused */
  uint32_t reset_num, reset_den;   /* a stream is reset after a seeded count of bytes moved */
  uint64_t reset_within;           /* ... below this (default 1 MiB) */
  uint32_t stall_num, stall_den;   /* at each read or write, the far end stalls ... */
  t2s_tstamp stall_for;            /* ... for this long (reads nothing, sends nothing) */
  uint64_t slow_read;              /* bytes per second the far end reads (0: no limit) */
} sim_up_behaviour;

/* Totals for every stream to one destination (for expectations and the summary). */
typedef struct sim_up_dst_stats {
  uint64_t streams;        /* stream_open calls */
  uint64_t connected;      /* connects that succeeded */
  uint64_t rx_bytes;       /* bytes received from the engine */
  uint64_t tx_bytes;       /* bytes handed to the engine */
  uint64_t rx_bad_pattern; /* received bytes that differ from the pattern at their offset */
  uint64_t resets;         /* streams reset by reset-after */
  uint64_t eofs_in;        /* EOFs received from the engine (shutdown_write) */
  uint64_t datagrams;      /* datagrams received */
} sim_up_dst_stats;

/* Creates the upstream of world w (w's loop, log and engine are used). Default behaviour:
 * echo with 1 ms latency. Returns NULL when out of memory. */
sim_upstream *sim_upstream_new(sim_world *w);
void sim_upstream_del(sim_upstream *up);

/* Sets the behaviour of destinations that no rule matches. */
void sim_upstream_set_default(sim_upstream *up, const sim_up_behaviour *b);
/* Adds a rule for dst (port 0 matches every port of that address). The first matching rule
 * wins, exact ports before port 0. Returns 0 or T2S_ERR_NOMEM. */
int sim_upstream_add_rule(sim_upstream *up, const t2s_addr *dst, const sim_up_behaviour *b);
/* The behaviour for dst. */
const sim_up_behaviour *sim_upstream_lookup(const sim_upstream *up, const t2s_addr *dst);
/* Sums the statistics of every stream and datagram socket whose destination is dst (port 0:
 * any port of that address). */
void sim_upstream_dst_stats(const sim_upstream *up, const t2s_addr *dst, sim_up_dst_stats *out);
/* Streams that were opened and are not closed yet. */
uint64_t sim_upstream_open_streams(const sim_upstream *up);

/* What the invariant checkers (sim_check.c) learn about one stream. */
typedef struct sim_up_stream_info {
  uint64_t id;
  t2s_addr dst;    /* what the engine connected to */
  t2s_addr target; /* whose behaviour ran */
  sim_up_kind kind;
  bool open;       /* not closed yet */
  bool reset;      /* the far end reset it (reset-after, reset P%, a front's failure) */
  uint64_t rx;     /* bytes from the engine (since the front handed over) */
  uint64_t tx;     /* bytes to the engine (since the front handed over) */
  uint64_t rx_bad; /* of rx, bytes that differ from the pattern at their offset */
} sim_up_stream_info;

/* Streams ever opened (in order). */
size_t sim_upstream_nstreams(const sim_upstream *up);
/* Fills *out for the i-th stream ever opened (i < sim_upstream_nstreams). */
void sim_upstream_stream_info(const sim_upstream *up, size_t i, sim_up_stream_info *out);
/* Seeded faults injected so far: connects refused, streams reset, stalls. */
void sim_upstream_fault_counts(const sim_upstream *up, uint64_t *refused, uint64_t *reset,
                               uint64_t *stalled);

/* With a simulated network (w->net, sim_net.h): every socket records the path it leaves
 * through at open (the engine's egress, or the route to the destination when unbound); a
 * stream whose path dies (interface down, source address removed, machine asleep) stalls
 * until the path returns, and a datagram sent or received on a dead path vanishes. Call this
 * after every change of the network: stalled streams whose path works again carry on. */
void sim_upstream_paths_changed(sim_upstream *up, t2s_tstamp now);
/* Lists in buf, comma-separated and in first-use order, the distinct interfaces that streams
 * and datagram sockets toward dst (port 0: any port) left through. Returns how many sockets
 * toward dst had a path. */
size_t sim_upstream_dst_ifaces(const sim_upstream *up, const t2s_addr *dst, char *buf,
                               size_t buflen);

/* Multipath TCP (`engine mptcp`, `proxy socks5 ADDR:PORT mptcp`; docs/scenarios.md): with on,
 * every stream is opened as MPTCP and reported to the engine after its connect
 * (t2s_engine_stream_multipath): multipath when it goes to server (NULL: none speaks MPTCP),
 * fallen back to TCP otherwise. With a simulated network a multipath stream has a subflow on its
 * own path and one on the path the route to its destination takes now (a change of the count is
 * reported); when its path dies and another reaches the destination it stalls 200 ms, then its
 * bytes carry on over that path. A fallen-back stream behaves as a plain one. */
void sim_upstream_set_mptcp(sim_upstream *up, bool on, const t2s_addr *server);

/* The t2s_upstream to hand to t2s_engine_new. */
t2s_upstream sim_upstream_iface(sim_upstream *up);

/* ---- protocol fronts ---- */

typedef struct sim_up_front_ops {
  /* Bytes the engine wrote while the front is installed. Returns how many were taken (the
   * rest is offered again later) or a negative error (the stream is reset). Must not call the
   * engine. */
  t2s_ssize (*input)(void *front, sim_up_stream *s, const uint8_t *data, size_t len,
                     t2s_tstamp now);
  /* Frees the front (the stream closed or the front is done). */
  void (*del)(void *front);
} sim_up_front_ops;

/* Called for each stream right after stream_open; may call sim_up_stream_set_front. */
typedef void (*sim_up_front_factory)(void *arg, sim_up_stream *s);
void sim_upstream_set_front_factory(sim_upstream *up, sim_up_front_factory f, void *arg);

/* Installs a front on s (from the factory). */
void sim_up_stream_set_front(sim_up_stream *s, const sim_up_front_ops *ops, void *front);
/* From the factory: the connect to the front ends as kind says (REFUSE, BLACKHOLE) whatever
 * the rule for its address (a proxy scripted to fail, sim_proxy.c). */
void sim_up_stream_override_connect(sim_up_stream *s, sim_up_kind kind);
/* Resets every open stream whose connected address is dst (a proxy that died): the engine sees
 * T2S_ERR_RESET after the latency. Returns how many. */
size_t sim_upstream_reset_dst(sim_upstream *up, const t2s_addr *dst, t2s_tstamp now);
/* The address the engine connected to (the proxy when a front is installed). */
const t2s_addr *sim_up_stream_dst(const sim_up_stream *s);
/* Queues bytes from the front toward the engine. Returns 0 or T2S_ERR_NOMEM. */
int sim_up_stream_emit(sim_up_stream *s, const uint8_t *data, size_t len, t2s_tstamp now);
/* The front is done: the stream carries on with the behaviour of target. Bytes of the
 * current input past what the front took are given to the behaviour afterwards. */
void sim_up_stream_front_done(sim_up_stream *s, const t2s_addr *target, t2s_tstamp now);
/* Records the destination the front was asked for (for statistics), when it does not
 * hand over with sim_up_stream_front_done (a refusal, a black hole). */
void sim_up_stream_set_target(sim_up_stream *s, const t2s_addr *target);
/* The front is finished without a destination: err 0 closes the stream cleanly (EOF after
 * the bytes emitted), otherwise it is reset (the engine sees err) after the latency. */
void sim_up_stream_front_fail(sim_up_stream *s, int err, t2s_tstamp now);

/* ---- datagram fronts (the simulated proxy's UDP relay) ---- */

/* Datagrams the engine sends on a socket opened toward an address the front claims. The front
 * answers with sim_upstream_dgram_emit(). Must not call the engine. */
typedef struct sim_up_dgram_front_ops {
  bool (*claims)(void *front, const t2s_addr *relay);
  void (*input)(void *front, uint64_t id, const uint8_t *data, size_t len, t2s_tstamp now);
} sim_up_dgram_front_ops;
void sim_upstream_set_dgram_front(sim_upstream *up, const sim_up_dgram_front_ops *ops, void *front);
/* Delivers a datagram to the engine on socket id at time at (if it is still open). */
void sim_upstream_dgram_emit(sim_upstream *up, uint64_t id, const uint8_t *data, size_t len,
                             t2s_tstamp at);

#endif
