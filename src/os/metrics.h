/*
 * metrics.h: the --metrics HTTP endpoint (libevent evhttp): Prometheus text at /metrics,
 * JSON at /stats. The numbers come from a snapshot the host fills on each request.
 */
#ifndef T2S_METRICS_H
#define T2S_METRICS_H

#include <event2/buffer.h>
#include <event2/event.h>

#include "engine.h"
#include "fakedns.h"

#define T2S_METRICS_MAX_ERROR_KINDS 32

#define T2S_PROXY_LABEL_MAX 300 /* a proxy's name in the log and the metrics: HOST:PORT */

/* One proxy's health for /metrics and /stats (docs/proxies.md). */
typedef struct t2s_metrics_proxy {
  char name[T2S_PROXY_LABEL_MAX];           /* "192.0.2.1:1080" or "proxy.test:1080" */
  char address[64];                         /* the address in use; "" while unresolved */
  uint32_t state;                           /* t2s_proxy_state */
  double since_change_s;                    /* seconds in this state */
  double last_success_ago_s;                /* seconds since the last success; < 0: never */
  double last_failure_ago_s;                /* seconds since the last failure; < 0: never */
  uint32_t last_cause;                      /* t2s_proxy_cause of the last failure */
  uint64_t flows;                           /* flows sent to it */
  uint64_t downs;                           /* times it went DOWN */
  uint64_t probes;                          /* probes asked for */
  uint64_t failures[T2S_PROXY_CAUSE_COUNT]; /* by cause (real connections and probes) */
  uint64_t bytes_up, bytes_down;            /* payload (TCP, UDP) carried through it */
  uint64_t lookups;                         /* lookups of its name started */
} t2s_metrics_proxy;

typedef struct t2s_metrics_snapshot {
  t2s_engine_stats engine;
  size_t nerror_kinds; /* upstream socket errors by errno name */
  const char *error_names[T2S_METRICS_MAX_ERROR_KINDS];
  uint64_t error_counts[T2S_METRICS_MAX_ERROR_KINDS];
  uint64_t network_changes; /* decisions that changed the path to the proxy (engine) */
  uint64_t route_updates;   /* decisions that left it as it was (engine) */
  t2s_tstamp last_reset_ns; /* wall-clock time of the last decision that reset flows */
  double recovery_sum_s;    /* sum of the recovery times (histogram _sum) */
  uint64_t tun_rx_packets, tun_tx_packets, tun_tx_errors;
  uint64_t upstream_streams, upstream_dgrams; /* sockets open now */
  double uptime_seconds;
  uint64_t reloads_applied;   /* SIGHUP reloads of --config that were read (docs/config.md) */
  uint64_t reloads_failed;    /* ... that changed nothing because the options were bad */
  uint64_t last_reload_ok;    /* 1 unless the last reload failed */
  uint64_t fake_dns_on;       /* 1 with --fake-dns */
  t2s_fakedns_stats fake_dns; /* the fake-IP table's counters (fakedns.h); zero when off */
  size_t nproxies;            /* 0: no proxy list (an embedder without one) */
  t2s_metrics_proxy proxies[T2S_PROXY_MAX];
} t2s_metrics_snapshot;

typedef void (*t2s_metrics_collect_fn)(void *arg, t2s_metrics_snapshot *snap);

typedef struct t2s_metrics t2s_metrics;

/* Listens on host:port (host "" = every address) on base. Returns 0, or T2S_ERR_NOMEM, or the
 * T2S_ERR_* of the errno that kept the address from being bound (EADDRINUSE -> EXISTS, ...),
 * with *perrno set to that errno for the message. */
int t2s_metrics_new(t2s_metrics **pm, struct event_base *base, const char *host, uint16_t port,
                    t2s_metrics_collect_fn collect, void *arg, int *perrno);
/* Stops listening and frees. */
void t2s_metrics_del(t2s_metrics *m);

/* Renders the Prometheus text exposition of snap into out. */
void t2s_metrics_render_prometheus(const t2s_metrics_snapshot *snap, struct evbuffer *out);
/* Renders snap as one JSON object into out (the same values as the Prometheus text, from one
 * table in metrics.c; key order is not part of the format). */
void t2s_metrics_render_json(const t2s_metrics_snapshot *snap, struct evbuffer *out);

#endif
