/*
 * runner_report.h: what the runner tells the outside about its counters: the "stats:" lines
 * (SIGUSR1 and at stop), the debug line of each flow event, and the snapshot behind the
 * --metrics endpoint (metrics.h). Read-only over what it is given.
 */
#ifndef T2S_RUNNER_REPORT_H
#define T2S_RUNNER_REPORT_H

#include "metrics.h"
#include "netwatch.h"
#include "tun_linux.h"
#include "upstream_sock.h"

/* Where the numbers come from (all borrowed). */
typedef struct t2s_report_sources {
  const t2s_engine *engine;
  const t2s_upstream_sock *up; /* socket errors by errno name, sockets open */
  const t2s_tun *tun;          /* device-level packet counters */
  const t2s_netwatch *net;     /* reset duration, recovery sum */
  t2s_tstamp started;          /* monotonic time at start (uptime) */
} t2s_report_sources;

/* The counters as "stats: ..." info lines. */
void t2s_report_stats(const t2s_report_sources *src);
/* A flow's event as a debug line (nothing unless the debug level is on). */
void t2s_report_engine_event(const t2s_engine_event *ev);
/* Fills *snap (the metrics collector; see t2s_metrics_collect_fn). */
void t2s_report_collect(const t2s_report_sources *src, t2s_metrics_snapshot *snap);

#endif
