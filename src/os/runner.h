/*
 * runner.h: the binary's event loop. It owns the TUN, the clock, the upstream connector, the
 * engine and (optionally) the metrics server, all on one libevent base:
 *
 *   TUN readable   -> t2s_engine_input() for each packet, at most T2S_RUNNER_BATCH per wakeup
 *   timer          -> t2s_engine_handle_expiry()
 *   upstream I/O   -> the t2s_engine_stream_* / dgram_* completions (upstream_sock.c)
 *   after each of them: upstream housekeeping, then the timer re-armed to get_expiry()
 *   network monitor (monitor_linux.h) -> t2s_engine_network_event(); the engine's network
 *                     events -> log lines and the listener below
 *   systemd-logind's PrepareForSleep (sleep_logind.h; optional, off with --no-logind)
 *                  -> PAUSED / RESUMED to the engine, a wake the clocks report again dropped
 *   SIGINT/SIGTERM/SIGHUP/SIGQUIT -> clean stop; SIGUSR1 -> counters to the log
 *
 * Stopping undoes the setup: every flow closed (t2s_engine_del), the addresses we added on a
 * TUN that outlives us removed, a TUN we created deleted (it goes with its fd).
 */
#ifndef T2S_RUNNER_H
#define T2S_RUNNER_H

#include "cli.h"
#include "engine.h"

#define T2S_RUNNER_BATCH 64 /* packets read from the TUN per wakeup */

typedef struct t2s_runner t2s_runner;

typedef struct t2s_runner_config {
  const t2s_cli_opts *opts; /* device, addresses, MTU, egress, timeouts, metrics (copied) */
  t2s_addr proxy;           /* the proxy, resolved */
  const char *username;     /* NULL = no authentication offered */
  const char *password;
  bool handle_signals; /* install SIGINT/TERM/HUP/QUIT/USR1 handlers (the binary; not embedders) */
  bool owns_fd;        /* with fd://N: close N when done */
} t2s_runner_config;

/* Sets everything up (TUN, addresses, egress, engine, metrics). On failure logs what went
 * wrong and what to do, and returns the exit code (T2S_EXIT_FAILURE or T2S_EXIT_USAGE);
 * 0 on success with *prunner set. */
int t2s_runner_new(t2s_runner **prunner, const t2s_runner_config *cfg);
/* Runs until stopped. Returns the exit code (0 after a clean stop, 1 after a fatal error). */
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
/* The TUN's interface index and whether the upstream is bound (for the capability policy). */
uint32_t t2s_runner_tun_ifindex(const t2s_runner *r);
/* True when teardown needs CAP_NET_ADMIN (addresses to remove from a TUN that outlives us),
 * or upstream sockets need it (SO_MARK). */
bool t2s_runner_needs_net_admin(const t2s_runner *r);

#endif
