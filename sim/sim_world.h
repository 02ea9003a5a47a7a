/*
 * sim_world.h: the simulated world around one engine: the virtual clock and event queue, the
 * device link (with seeded faults) that carries packets between the engine and the captures,
 * scripted injections and client hosts, the simulated upstream, and the event log.
 *
 * Every random choice comes from `rand`, seeded with the run's seed; the engine's seed, the
 * fault generator and the client hosts' generator are drawn from it in a fixed order.
 */
#ifndef T2S_SIM_WORLD_H
#define T2S_SIM_WORLD_H

#include "engine.h"
#include "rand.h"
#include "sim_events.h"
#include "sim_loop.h"
#include "sim_pcap.h"
#include "sim_upstream.h"

typedef struct sim_world sim_world;
typedef struct sim_clients sim_clients;

/* Where a packet entering the engine came from (for the log and the counters). */
typedef enum sim_origin {
  SIM_ORIGIN_PCAP = 0,
  SIM_ORIGIN_INJECT,
  SIM_ORIGIN_CLIENT,
  SIM_ORIGIN_MAX
} sim_origin;

const char *sim_origin_name(sim_origin o);

/* Direction over the device link. */
typedef enum sim_dir { SIM_DIR_TO_ENGINE = 0, SIM_DIR_TO_CLIENT = 1 } sim_dir;

/* Faults of the device link; probabilities are integer ratios num/den. */
typedef struct sim_faults {
  uint32_t loss_num, loss_den;
  uint32_t reorder_num, reorder_den;
  uint32_t dup_num, dup_den;
  uint32_t corrupt_num, corrupt_den; /* a 1..15-bit burst inside the checksummed L4 bytes */
  t2s_tstamp latency;                /* one-way delay of the link (def. 0) */
  t2s_tstamp reorder_window;         /* longest a reordered packet is held (def. 10 ms) */
  t2s_tstamp jitter;                 /* extra delay per packet, uniform in [0, jitter] */
  t2s_tstamp until; /* no fault (device or upstream) after this time: the liveness phase */
} sim_faults;

/* The device: the engine's t2s_device, and the link to the client hosts. */
typedef struct sim_device {
  sim_world *w;
  uint32_t mtu;
  sim_faults faults;
  t2s_rand rand; /* fault decisions */
  struct {
    uint8_t *data; /* a packet held back to be overtaken (reorder), or NULL */
    size_t len;
    uint64_t origin;
    uint64_t gen;
  } held[2];
  uint64_t lost, duplicated, reordered;
  uint64_t corrupted[2];     /* corrupted packets sent, by direction */
  uint64_t corrupt_arrived;  /* corrupted packets that reached the engine */
  uint64_t corrupt_accepted; /* of those (either side), accepted: an invariant failure */
} sim_device;

/* Counters of the run kept by the simulator itself (outside the code under test). */
typedef struct sim_counts {
  uint64_t in_by_origin[SIM_ORIGIN_MAX]; /* packets handed to t2s_engine_input */
  uint64_t out;                          /* packets the engine sent to the device */
  uint64_t out_to_clients;               /* of which delivered toward a client host */
  uint64_t echo_replies_seen;            /* ICMP/ICMPv6 echo replies among them */
  uint64_t pcap_skipped;                 /* capture records without an IP packet */
} sim_counts;

struct sim_world {
  sim_loop loop;
  sim_log log;
  uint64_t seed;
  t2s_rand rand;
  t2s_engine_config cfg;
  t2s_engine *engine;
  sim_device dev;
  sim_upstream *up;
  sim_clients *clients;
  sim_pcap_writer *pcap_out; /* may be NULL */
  sim_counts counts;
  uint64_t client_seed;       /* seeds the client hosts' generator (sim_client.c) */
  uint64_t next_inject_id;    /* ICMP ids of scripted echo requests */
  struct sim_replay *replays; /* captures still being replayed (freed at the end) */
  struct sim_proxy *proxy;    /* the simulated SOCKS5 proxy, or NULL (sim_proxy.c) */
  struct sim_net *net;        /* the host's links and routes, or NULL (sim_net.c) */
  t2s_monitor monitor;        /* over net, given to the engine (t2s_engine_set_monitor) */
  struct sim_check *check;    /* the invariant checkers' state (sim_check.c) */
  int fatal;                  /* first fatal error of the engine (0: none) */
  uint64_t invariant_failures;
  char *first_invariant; /* the first invariant failure, for the summary */
  /* The fake-IP table and the client hosts' name lookups, or NULL (sim_fakedns.c). */
  struct sim_fakedns *fakedns;
};

/* Sets up a world: seed, logging to log (may be NULL), output capture pcap_out (may be NULL,
 * owned afterwards). The engine is not created yet (sim_world_start does it), so that the
 * scenario can configure the device and the upstream first. Returns 0 or T2S_ERR_NOMEM. */
int sim_world_init(sim_world *w, uint64_t seed, FILE *log, sim_pcap_writer *pcap_out);
/* Creates the engine with w->cfg (proxy none unless set) and registers its timer. Returns 0
 * or the engine's error. */
int sim_world_start(sim_world *w);
/* Runs until idle, the time bound or the step bound; logs the end line. With settle, a run
 * that goes idle early still moves the clock to `until` (a scenario's `run until T`). */
sim_end_reason sim_world_run(sim_world *w, t2s_tstamp until, uint64_t max_steps, bool settle);
/* Frees everything (the engine first, so that it closes its upstreams). */
void sim_world_free(sim_world *w);

/* Hands a packet to the device link toward the engine (faults apply). */
void sim_world_to_engine(sim_world *w, const uint8_t *pkt, size_t len, sim_origin origin,
                         t2s_tstamp now);
/* Records an invariant failure (bytes corrupted, a flow leaked, ...): logged, counted, and
 * the run fails. */
void sim_world_invariant(sim_world *w, t2s_tstamp now, const char *what);

/* Schedules the replay of a capture: its first record enters at `at`, the others at their
 * recorded offsets from it. Returns 0 or an error (message in err). */
int sim_world_replay(sim_world *w, const char *path, t2s_tstamp at, char *err, size_t errlen);

/* Builds an ICMP (v4) or ICMPv6 echo request from src to dst with `size` payload bytes of the
 * pattern, id and seq, into buf. Returns the length or T2S_ERR_NOBUF /
 * T2S_ERR_INVALID_ARGUMENT (families differ). */
t2s_ssize sim_build_echo_request(uint8_t *buf, size_t buflen, const t2s_addr *src,
                                 const t2s_addr *dst, uint16_t id, uint16_t seq, size_t size);

/* ---- device (sim_device.c) ---- */

void sim_device_init(sim_device *d, sim_world *w, uint64_t seed);
void sim_device_free(sim_device *d);
/* The t2s_device for the engine. */
t2s_device sim_device_iface(sim_device *d);
/* Sends a packet over the link in direction dir: faults apply, then it arrives (an event)
 * after the link latency. */
void sim_device_link(sim_device *d, sim_dir dir, const uint8_t *pkt, size_t len, uint64_t origin,
                     t2s_tstamp now);

/* ---- client hosts (sim_client.c) ---- */

/* True when the packet is addressed to a client host. */
bool sim_clients_owns(const sim_clients *c, const uint8_t *pkt, size_t len);
/* A packet arrives at the client hosts. */
void sim_clients_input(sim_clients *c, const uint8_t *pkt, size_t len, t2s_tstamp now);

#endif
