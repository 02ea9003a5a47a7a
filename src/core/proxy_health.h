/*
 * proxy_health.h: the health of each configured proxy and the failover policy
 * (docs/proxies.md). Sans-I/O: time comes in as an argument, nothing here touches a socket.
 *
 * The host (the engine, the binary's prober) reports what it saw:
 *   - t2s_proxy_set_failure(): a real connection to the proxy failed before it carried data
 *     (refused, timed out, unreachable, reset or closed during the handshake, authentication
 *     rejected, a malformed reply). A SOCKS5 reply that refuses the destination (REP 1-8) is
 *     not a failure of the proxy: the proxy answered, report it with _success().
 *   - t2s_proxy_set_success(): a connection to the proxy completed its handshake.
 *   - t2s_proxy_set_probe_result(): the outcome of a probe the set asked for.
 * and asks:
 *   - t2s_proxy_set_pick(): which proxy a new flow goes to (-1: every proxy is down, refuse).
 *   - t2s_proxy_set_get_expiry() / _handle_expiry(): when a probe is due or a rate-limited
 *     failure report ends.
 * What the host must do comes out through the action callback: probe a proxy, reset the flows
 * of a proxy that went down (once per transition), log a line. The callback must not call back
 * into the set before it returns.
 *
 * States (per proxy): UP -(1 failure)-> SUSPECT -(down_after failures in a row, real or
 * probe)-> DOWN -(probe ok / success)-> UP; SUSPECT -(success / probe ok)-> UP; a proxy given
 * by a name that did not resolve yet is UNRESOLVED -(an address)-> UP; any state -(a new
 * address)-> UP.
 */
#ifndef T2S_PROXY_HEALTH_H
#define T2S_PROXY_HEALTH_H

#include "common.h"

#define T2S_PROXY_MAX 8 /* proxies in one set */

typedef enum t2s_proxy_state {
  T2S_PROXY_UP = 0,     /* no failure since the last success: takes new flows */
  T2S_PROXY_SUSPECT,    /* failed lately, below down_after: probed at once; new flows only when
                           no UP proxy exists */
  T2S_PROXY_DOWN,       /* down_after failures in a row: no new flows; probed with backoff */
  T2S_PROXY_UNRESOLVED, /* given by a name that has no address yet: no new flows, no probes;
                           the host resolves it with backoff (t2s_proxy_set_readdressed) */
  T2S_PROXY_STATE_COUNT
} t2s_proxy_state;

typedef enum t2s_proxy_cause {
  T2S_PROXY_CAUSE_REFUSED = 0, /* connect refused (RST to our SYN) */
  T2S_PROXY_CAUSE_TIMEOUT,     /* connect or handshake did not finish in time */
  T2S_PROXY_CAUSE_UNREACHABLE, /* no route / host unreachable toward the proxy */
  T2S_PROXY_CAUSE_RESET,       /* reset or closed during the handshake */
  T2S_PROXY_CAUSE_AUTH,        /* authentication rejected (or no acceptable method) */
  T2S_PROXY_CAUSE_PROTOCOL,    /* the proxy's reply does not parse or breaks SOCKS5 */
  T2S_PROXY_CAUSE_COUNT
} t2s_proxy_cause;

typedef enum t2s_proxy_action_kind {
  T2S_PROXY_ACT_PROBE = 1,   /* start a probe of proxy `proxy`; report it with _probe_result */
  T2S_PROXY_ACT_DOWN,        /* proxy went DOWN: reset its flows (once), flush its UDP */
  T2S_PROXY_ACT_UP,          /* proxy came back: new flows may use it; reset nothing */
  T2S_PROXY_ACT_LOG_FAILURE, /* log: `count` failures of `cause` in the last `period` ns */
} t2s_proxy_action_kind;

typedef struct t2s_proxy_action {
  t2s_proxy_action_kind kind;
  uint32_t proxy;        /* index in the set (order of preference) */
  t2s_proxy_cause cause; /* DOWN: the last failure's cause; LOG_FAILURE: the cause counted */
  uint32_t count;        /* LOG_FAILURE: failures in the period */
  t2s_tstamp period;     /* LOG_FAILURE: the period counted (0 for the first of a quiet time) */
} t2s_proxy_action;

typedef void (*t2s_proxy_action_cb)(void *arg, const t2s_proxy_action *act, t2s_tstamp now);

typedef struct t2s_proxy_health_config {
  uint32_t down_after;           /* failures in a row that make DOWN (def. 3, at least 2) */
  t2s_tstamp probe_interval;     /* SUSPECT: between probes; DOWN: the first wait (def. 1 s) */
  t2s_tstamp probe_interval_max; /* DOWN: the backoff doubles up to this (def. 30 s) */
  t2s_tstamp report_interval;    /* at most one failure line per proxy and cause (def. 10 s) */
} t2s_proxy_health_config;

/* One proxy's health and what /stats shows of it. */
typedef struct t2s_proxy_health {
  t2s_proxy_state state;
  uint32_t fails_in_row;      /* failures since the last success */
  t2s_tstamp changed_at;      /* when the state last changed */
  t2s_tstamp last_success_at; /* T2S_TSTAMP_MAX: never */
  t2s_tstamp last_failure_at; /* T2S_TSTAMP_MAX: never */
  t2s_proxy_cause last_cause; /* of the last failure (valid when last_failure_at is set) */
  t2s_tstamp probe_at;        /* next probe; T2S_TSTAMP_MAX: none scheduled */
  t2s_tstamp backoff;         /* DOWN: the wait after the next failed probe */
  bool probing;               /* a probe is out; no other starts until it is reported */
  uint64_t picks;             /* new flows sent to it */
  uint64_t probes;            /* probes asked for */
  uint64_t downs;             /* times it went DOWN */
  uint64_t failures[T2S_PROXY_CAUSE_COUNT]; /* real connections and probes, by cause */
  uint64_t bytes_up;                        /* payload carried toward it */
  uint64_t bytes_down;                      /* payload carried from it */
  uint64_t readdressed;                     /* times its name gave it a new address */
  /* the rate-limited report, per cause */
  uint32_t report_count[T2S_PROXY_CAUSE_COUNT];     /* failures not yet reported */
  t2s_tstamp report_until[T2S_PROXY_CAUSE_COUNT];   /* end of the current window; MAX: quiet */
  t2s_tstamp report_started[T2S_PROXY_CAUSE_COUNT]; /* start of the current window */
} t2s_proxy_health;

typedef struct t2s_proxy_set {
  t2s_proxy_health_config cfg;
  size_t n;
  t2s_proxy_health p[T2S_PROXY_MAX];
  t2s_proxy_action_cb cb;
  void *cb_arg;
} t2s_proxy_set;

/* Fills *cfg with the defaults documented above. */
void t2s_proxy_health_config_default(t2s_proxy_health_config *cfg);

/* Initialises *set for n proxies (1..T2S_PROXY_MAX), every one UP, at time now. cfg NULL =
 * defaults; down_after below 2 is raised to 2 (one failure never takes a proxy down), a zero
 * interval takes its default, probe_interval_max below probe_interval is raised to it. cb
 * receives the actions (NULL: none are delivered). Returns 0 or T2S_ERR_INVALID_ARGUMENT. */
int t2s_proxy_set_init(t2s_proxy_set *set, size_t n, const t2s_proxy_health_config *cfg,
                       t2s_proxy_action_cb cb, void *cb_arg, t2s_tstamp now);

/* The proxy a new flow goes to: the first UP one in order of preference, else the first
 * SUSPECT one, else -1 (every proxy is DOWN: refuse the flow at once). Counts a pick. */
int t2s_proxy_set_pick(t2s_proxy_set *set);

/* The next proxy to try after `after` failed a flow's connect: the first UP or SUSPECT one
 * after it in order of preference, or -1. Counts a pick. */
int t2s_proxy_set_next(t2s_proxy_set *set, int after);

/* A real connection to proxy i failed before carrying data, because of cause. */
void t2s_proxy_set_failure(t2s_proxy_set *set, size_t i, t2s_proxy_cause cause, t2s_tstamp now);

/* A real connection to proxy i completed its handshake. */
void t2s_proxy_set_success(t2s_proxy_set *set, size_t i, t2s_tstamp now);

/* The probe of proxy i ended: ok, or failed because of cause. A result with no probe out is
 * ignored. */
void t2s_proxy_set_probe_result(t2s_proxy_set *set, size_t i, bool ok, t2s_proxy_cause cause,
                                t2s_tstamp now);

/* Proxy i has no address (its name did not resolve yet): UNRESOLVED, no new flows, no probes
 * (a probe out is forgotten), until t2s_proxy_set_readdressed(). */
void t2s_proxy_set_unresolved(t2s_proxy_set *set, size_t i, t2s_tstamp now);

/* Proxy i has a new address (its first, or its name now resolves elsewhere): the evidence
 * against the old address is forgotten and it is UP (no action: nothing is reset, the flows on
 * the old address stay where they are). */
void t2s_proxy_set_readdressed(t2s_proxy_set *set, size_t i, t2s_tstamp now);

/* The network changed under every proxy: a DOWN proxy is probed at once and its backoff
 * starts again (what failed on the old network says little about the new one). */
void t2s_proxy_set_network_changed(t2s_proxy_set *set, t2s_tstamp now);

/* True when proxy i may take new flows (UP or SUSPECT). */
bool t2s_proxy_set_usable(const t2s_proxy_set *set, size_t i);

/* The earliest time the set needs t2s_proxy_set_handle_expiry() (T2S_TSTAMP_MAX: none). */
t2s_tstamp t2s_proxy_set_get_expiry(const t2s_proxy_set *set);

/* Starts the probes that are due (ACT_PROBE) and ends the report windows that are over
 * (ACT_LOG_FAILURE with what they counted). */
void t2s_proxy_set_handle_expiry(t2s_proxy_set *set, t2s_tstamp now);

/* The cause a T2S_ERR_* of a connection to the proxy stands for, or -1 when the error says
 * nothing about the proxy (a limit, memory, a network change, a close we asked for). */
int t2s_proxy_cause_from_err(int err);

/* "UP", "SUSPECT", "DOWN", "UNRESOLVED". */
const char *t2s_proxy_state_name(t2s_proxy_state s);
/* "refused", "timeout", "unreachable", "reset", "auth", "protocol" (metric labels). */
const char *t2s_proxy_cause_name(t2s_proxy_cause c);
/* "connection refused", "timed out", ... (log text). */
const char *t2s_proxy_cause_text(t2s_proxy_cause c);

#endif
