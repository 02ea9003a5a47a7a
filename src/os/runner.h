/*
 * runner.h: tun2sock as one object: the binary's (src/main.c) and the embedding API's
 * (tun2sock_api.c). t2s_runner_new is the composition root (runner.c): it turns the options
 * into drivers (the TUN, the clock, the upstream connector, the network monitor, --auto-route,
 * the metrics endpoint), hands their ops to the engine, and wires the loop (runner_loop.h:
 * device reads, the engine's timer, signals, stop) and the network watch (netwatch.h: the
 * monitor and logind in, decisions out to the log and the listener below) on one libevent base.
 *
 * Stopping undoes the setup: every flow closed (t2s_engine_del), the addresses we added on a
 * TUN that outlives us removed, a TUN we created deleted (it goes with its fd).
 *
 * Errors are T2S_ERR_* (common.h); exit codes are src/main.c's business.
 */
#ifndef T2S_RUNNER_H
#define T2S_RUNNER_H

#include "cli.h"
#include "engine.h"

typedef struct t2s_runner t2s_runner;

typedef struct t2s_runner_config {
  const t2s_cli_opts *opts; /* device, addresses, MTU, egress, timeouts, metrics (copied) */
  t2s_addr proxy;           /* the proxy, resolved */
  const char *username;     /* NULL = no authentication offered */
  const char *password;
  bool handle_signals; /* install SIGINT/TERM/HUP/QUIT/USR1 handlers (the binary; not embedders) */
  bool owns_fd;        /* with fd://N: close N when done */
  /* SIGHUP (with handle_signals): reads the options again into *opts and the first proxy's
   * password into password (docs/config.md). Returns 0, or -1 with one line in why (nothing
   * is changed then). NULL: SIGHUP stops cleanly, like SIGTERM. */
  int (*reload)(void *arg, t2s_cli_opts *opts, char *password, size_t passlen, char *why,
                size_t whylen);
  void *reload_arg;
  /* The embedder's protect (tun2sock.h): every upstream socket before it connects; NULL none. */
  int (*protect)(void *arg, int fd);
  void *protect_arg;
  /* Network events from the embedder (host_monitor.h) instead of rtnetlink: none is opened. */
  bool host_monitor;
  int (*host_route)(void *arg, int family, const uint8_t *addr, char *ifname, unsigned *ifindex);
  void *host_route_arg;
  const char *cmdline; /* the command line, for --record's header (NULL: none; truncated) */
  /* Packets through the embedder's callbacks (embed_packets.h) instead of a TUN: with
   * packet_output set no TUN is opened; opts->mtu is the device's MTU (0 = 1500). */
  int (*packet_output)(void *arg, const uint8_t *pkt, size_t len);
  void *packet_output_arg;
} t2s_runner_config;

/* Sets everything up (TUN, addresses, egress, engine, metrics). Returns 0 with *prunner set;
 * on failure logs what went wrong and what to do, and returns T2S_ERR_INVALID_ARGUMENT when an
 * option is to blame (a --device fd:// that is not a TUN, an --interface that does not exist),
 * another T2S_ERR_* otherwise (privilege, the kernel refused, out of memory). */
int t2s_runner_new(t2s_runner **prunner, const t2s_runner_config *cfg);
/* Starts the network watch (first call only) and runs the loop until stopped. Returns 0 after
 * a clean stop, or the fatal T2S_ERR_* that stopped it (logged). */
int t2s_runner_run(t2s_runner *r);
/* Asks a running loop to stop. Safe from any thread and from a signal handler. */
void t2s_runner_stop(t2s_runner *r);
/* Tears down (see above) and frees. */
void t2s_runner_del(t2s_runner *r);

/* Network-change callbacks for embedders (tun2sock.h's tun2sock_listener); any may be NULL.
 * They run on the loop's thread, after the runner's own log line. */
typedef struct t2s_runner_listener {
  /* Upstream traffic now leaves through `name` (index); "" and 0: unbound (a local proxy,
   * or no route to the proxy). Also called once at the start of t2s_runner_run. */
  void (*on_default_interface_changed)(void *arg, const char *name, uint32_t index);
  void (*on_network_paused)(void *arg);                     /* the machine is going to sleep */
  void (*on_network_resumed)(void *arg, uint64_t slept_ms); /* it woke; every flow was reset */
  void (*on_routes_changed)(void *arg); /* a debounced change was decided (see /stats) */
  void *arg;
} t2s_runner_listener;

/* Sets (copies) the listener; NULL clears it. Call before t2s_runner_run. */
void t2s_runner_set_listener(t2s_runner *r, const t2s_runner_listener *l);

/* Copies the engine's counters. */
void t2s_runner_get_stats(const t2s_runner *r, t2s_engine_stats *stats);
/* The host-fed monitor (with host_monitor), or NULL. */
struct t2s_host_monitor *t2s_runner_host_monitor(t2s_runner *r);
/* The packet-callback device (with packet_output), or NULL. */
struct t2s_embed_packets *t2s_runner_packets(t2s_runner *r);
/* Upstream sockets created, protect calls and protect failures (upstream_sock.h). */
void t2s_runner_protect_counts(const t2s_runner *r, uint64_t *popened, uint64_t *pcalls,
                               uint64_t *pfailures);
/* The TUN's interface index and whether the upstream is bound (for the capability policy). */
uint32_t t2s_runner_tun_ifindex(const t2s_runner *r);
/* True when teardown needs CAP_NET_ADMIN (addresses to remove from a TUN that outlives us,
 * --mptcp endpoints to add and remove),
 * or upstream sockets need it (SO_MARK). */
bool t2s_runner_needs_net_admin(const t2s_runner *r);

#endif
