/* sim_upstream_internal.h: what sim_upstream.c and sim_upstream_front.c share (the simulated
 * upstream's private state and helpers; not for other files). */
#ifndef SIM_UPSTREAM_INTERNAL_H
#define SIM_UPSTREAM_INTERNAL_H

#include "idmap.h"
#include "sim_net.h"
#include "sim_upstream.h"
#include "sim_util.h"
#include "sim_world.h"

/* How long a multipath stream whose path died stalls before its bytes move to another path
 * (about an RTO: the kernel notices the dead subflow and reinjects on a live one). */
#define SIM_MPTCP_SWITCH_NS (200 * T2S_MILLISECONDS)
/* Bytes a stream accepts from the engine before a short write (its "socket buffer"). */
#define SOCKBUF (256 * 1024)
/* Largest chunk handed to the engine at once. */
#define CHUNK (64 * 1024)
/* Retry interval when the engine has no room but did not pause reading. */
#define POLL_NS (10 * T2S_MILLISECONDS)

typedef enum st_state { ST_CONNECTING = 0, ST_OPEN, ST_CLOSED } st_state;

struct sim_up_stream {
  sim_upstream *up;
  uint64_t id;
  size_t idx;      /* index in up->streams: the handle events carry */
  t2s_addr dst;    /* what the engine connected to (the proxy, with a front) */
  t2s_addr target; /* whose behaviour runs (dst, or what the front was asked for) */
  sim_up_behaviour beh;
  st_state state;
  bool paused;
  bool deliver_pending; /* a deliver event is queued */
  bool want_writable;   /* a short write happened; writable follows when room opens */
  bool eof_queued;      /* send EOF once out and the source are drained */
  bool eof_sent;
  bool reset_pending;
  sim_bytes out;        /* toward the engine */
  uint64_t source_left; /* SOURCE bytes still to generate */
  uint64_t source_off;
  uint64_t inflight; /* echo bytes accepted and not yet back */
  uint64_t rx, tx, rx_bad, rx_hash;
  const sim_up_front_ops *front_ops;
  void *front;
  int front_err;         /* set by sim_up_stream_front_fail */
  bool connect_override; /* sim_up_stream_override_connect */
  sim_up_kind connect_kind;
  /* Seeded faults (sim_up_behaviour): */
  t2s_tstamp fault_stall_until;   /* the far end reads and sends nothing before this */
  t2s_tstamp write_blocked_until; /* no stream_writable before this (stall, slow read) */
  uint64_t slow_tokens;           /* slow-read: bytes the far end may read now */
  uint64_t tx_base;               /* tx when the front handed over (its own replies) */
  t2s_tstamp slow_at;             /* slow-read: when slow_tokens was last refilled */
  /* With a simulated network (sim_net.h): where the socket leaves from. While the path is
   * dead (interface down, source address gone, machine asleep) the stream stalls: no bytes,
   * no error, as a real socket would. */
  bool has_path;
  sim_net_path path;
  int open_err;      /* the connect fails with this (no route) */
  bool open_stalled; /* the connect waits for the path */
  bool stalled;      /* delivery waits for the path */
  /* Multipath TCP (sim_upstream_set_mptcp): a t2s_stream_mp; a multipath stream whose path
   * died moves to the path of the route to its destination after SIM_MPTCP_SWITCH_NS. */
  uint8_t mp;
  bool switching;       /* a SEV_MP_SWITCH is queued */
  uint32_t mp_subflows; /* what was last reported to the engine */
};

typedef struct up_dgram {
  uint64_t id;
  t2s_addr relay;
  sim_up_behaviour beh;
  bool open;
  bool front; /* claimed by the datagram front (the proxy's relay) */
  uint64_t rx, tx;
  bool has_path; /* with a simulated network: datagrams on a dead path vanish */
  sim_net_path path;
  uint64_t lost;
} up_dgram;

typedef struct up_rule {
  t2s_addr dst;
  sim_up_behaviour beh;
} up_rule;

struct sim_upstream {
  sim_world *w;
  sim_up_behaviour def;
  up_rule *rules;
  size_t nrules;
  sim_up_stream **streams; /* every stream ever opened, in order (freed at del) */
  size_t nstreams, capstreams;
  up_dgram *dgrams;
  size_t ndgrams, capdgrams;
  t2s_idmap smap; /* stream id -> sim_up_stream */
  t2s_idmap dmap; /* datagram id -> index in dgrams, plus 1 */
  uint64_t open_streams;
  sim_up_front_factory front_factory;
  void *front_arg;
  t2s_rand rand; /* seeded faults of the far ends (drawn from the world's seed) */
  uint64_t faults_refused, faults_reset, faults_stalled;
  const sim_up_dgram_front_ops *dfront_ops;
  void *dfront;
  bool mptcp;         /* streams are opened with Multipath TCP (`engine mptcp`) */
  bool has_mp_server; /* ... and this far end speaks it (`proxy ... mptcp`) */
  t2s_addr mp_server;
};

enum {
  SEV_OPEN = 1, /* the connect completes (or is refused) */
  SEV_ECHO,     /* echoed bytes come back (data) */
  SEV_PEER_EOF, /* the engine's EOF reached the far end */
  SEV_DELIVER,  /* hand queued bytes / EOF / writable to the engine */
  SEV_RESET,    /* the far end resets the stream */
  SEV_DGRAM,    /* a datagram comes back (data) */
  SEV_DGRAM_ERR,
  SEV_MP_SWITCH, /* a multipath stream moves to another path */
};

/* The stream helpers (sim_upstream.c). */
void sup_stream_event(void *arg, sim_event *ev, t2s_tstamp now);
void sup_schedule(sim_up_stream *s, t2s_tstamp at, int what, const uint8_t *data, size_t len);
void sup_schedule_deliver(sim_up_stream *s, t2s_tstamp at);
void sup_log_stream(sim_up_stream *s, t2s_tstamp now, const char *ev);
void sup_draw_stream_faults(sim_up_stream *s, bool may_refuse, t2s_tstamp now);
void sup_beh_start(sim_up_stream *s, t2s_tstamp now);
void sup_mp_report(sim_up_stream *s, t2s_tstamp now);
bool sup_path_ok(sim_up_stream *s);
bool sup_dst_match(const t2s_addr *pattern, const t2s_addr *a);
up_dgram *sup_find_dgram(sim_upstream *up, uint64_t id, size_t *pidx);

#endif
