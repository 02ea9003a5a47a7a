/*
 * netwatch.h: the network side of the runner. It starts the network monitor (monitor_linux.h)
 * and, unless told not to, systemd-logind's PrepareForSleep (sleep_logind.h), merges the two
 * sleep sources (sleep_merge.h: one sleep, one reset), hands every change to the engine
 * (t2s_engine_network_event), kicks --auto-route's re-apply after each, and turns the
 * engine's network events into log lines and the embedder's listener calls:
 *
 *   monitor events --+--> t2s_engine_network_event() --> engine network events --> log lines,
 *   logind (merged) -+    autoroute kick, loop re-arm                               listener
 *
 * It measures what the metrics report about decisions: the wall-clock time of the engine call
 * that reset flows, and the sum of the recovery times.
 */
#ifndef T2S_NETWATCH_H
#define T2S_NETWATCH_H

#include "autoroute_watch.h"
#include "monitor_linux.h"
#include "runner.h"
#include "runner_loop.h"
#include "sleep_logind.h"
#include "sleep_merge.h"

typedef struct t2s_netwatch {
  struct event_base *base;
  t2s_engine *engine;
  t2s_rec *rec;                 /* --record: events go through it (rec.h); NULL = none */
  t2s_monitor monitor;          /* the ops the engine also holds (maybe a wrapper) */
  const t2s_monitor_linux *mon; /* the driver under them: is it reporting its initial dump? */
  t2s_clock clock;              /* now() for the engine calls; boottime() - now(): the sleep gap */
  t2s_loop *loop;               /* re-armed after every event */
  t2s_autoroute_watch *autoroute; /* kicked after every event; NULL without --auto-route */
  t2s_runner_listener listener;   /* the embedder's (tun2sock.h); fields may be NULL */
  t2s_sleep_logind *logind;       /* NULL: off, or not available */
  t2s_sleep_merge sleep;
  bool started;
  bool decided;             /* a decision (NET_DECISION) happened in the current engine call */
  t2s_tstamp last_reset_ns; /* wall-clock time of the engine call that reset flows */
  uint64_t recovery_seen;   /* recovery observations already summed */
  double recovery_sum_s;    /* sum of the recovery times (the histogram's _sum) */
  char default_ifname[T2S_IFNAMSIZ];
  bool default_known; /* the listener was told once */
  uint32_t default_ifindex;
} t2s_netwatch;

/* Sets nw up over what it borrows (nothing is started). */
void t2s_netwatch_init(t2s_netwatch *nw, struct event_base *base, t2s_engine *engine,
                       const t2s_monitor *monitor, const t2s_monitor_linux *mon,
                       const t2s_clock *clock, t2s_loop *loop, t2s_autoroute_watch *autoroute);
/* Sets (copies) the listener; NULL clears it. */
void t2s_netwatch_set_listener(t2s_netwatch *nw, const t2s_runner_listener *l);
/* Once (later calls do nothing): starts the monitor (a failure is logged: changes will not be
 * noticed), tells the log and the listener where traffic leaves now, and with `logind`
 * subscribes to PrepareForSleep (a failure is logged at info level). */
void t2s_netwatch_start(t2s_netwatch *nw, bool logind);
/* True for the engine events this module handles (T2S_EV_NET_*, T2S_EV_EGRESS,
 * T2S_EV_ROUTE_UPDATE); T2S_EV_TCP_ESTABLISHED is also passed for the recovery sum. */
bool t2s_netwatch_is_net_event(t2s_engine_event_type type);
/* The engine's event (from its on_event hook). */
void t2s_netwatch_engine_event(t2s_netwatch *nw, const t2s_engine_event *ev);
/* After an engine call that began at `started` and may have taken a decision. */
void t2s_netwatch_call_end(t2s_netwatch *nw, t2s_tstamp started);
/* Closes the logind connection. */
void t2s_netwatch_free(t2s_netwatch *nw);

#endif
