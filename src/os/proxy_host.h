/*
 * proxy_host.h: the binary's side of the proxies (docs/proxies.md), one or several: gives the
 * list to the engine (each with a health state), runs the probes the engine asks for
 * (proxy_probe.c) and hands their results back, resolves the proxies given by name off the
 * loop (proxy_resolve.c: at start while a name does not resolve, with backoff; after every
 * network decision; when its proxy goes DOWN) and gives the engine each new address, and
 * writes the log lines of the proxies' health at the default level (failures rate-limited by
 * the engine, DOWN with the flows reset, UP again, a name resolved or moved).
 */
#ifndef T2S_PROXY_HOST_H
#define T2S_PROXY_HOST_H

#include "cli.h"
#include "engine.h"
#include "metrics.h"

struct event_base;
struct t2s_loop;

typedef struct t2s_proxy_host t2s_proxy_host;

/* Gives the engine the list of --proxy (one or more; the first at `first`, with
 * username/password, NULL = none; first->family 0 = its name did not resolve at start), each
 * with a health state, and creates the prober and the resolver; names without an address are
 * looked up at once (UNRESOLVED meanwhile: new flows refused). loop is re-armed after each
 * probe result and each new address. Returns 0 or an error (logged). */
int t2s_proxy_host_start(t2s_proxy_host **ph, struct event_base *base, struct t2s_loop *loop,
                         t2s_engine *engine, const t2s_clock *clock, const t2s_cli_opts *opts,
                         const t2s_addr *first, const char *username, const char *password);
/* A reload (docs/config.md): the proxies of opts (the first with username/password, NULL =
 * none) replace the running ones, in the engine (t2s_engine_replace_proxies: the flows of a
 * proxy removed, changed or moved in the order are reset) and here (a name keeps the address
 * it resolved to; a new name is looked up at once; probes and lookups still out are dropped).
 * *pph must be a started host; it is replaced. Returns the flows reset, or an error (logged;
 * *pph is then unchanged). */
t2s_ssize t2s_proxy_host_replace(t2s_proxy_host **pph, struct event_base *base,
                                 const t2s_cli_opts *opts, const char *username,
                                 const char *password);
/* Stops the probes and frees ph (NULL allowed). Call before the engine is freed. */
void t2s_proxy_host_del(t2s_proxy_host *ph);
/* Handles an engine event of the T2S_EV_PROXY_* kinds (others are ignored). */
void t2s_proxy_host_event(t2s_proxy_host *ph, const t2s_engine_event *ev);
/* Fills snap->nproxies and snap->proxies (nothing when ph is NULL). */
void t2s_proxy_host_collect(const t2s_proxy_host *ph, t2s_metrics_snapshot *snap);
/* The network changed (the engine's T2S_EV_NET_DECISION): every name is resolved again at
 * once (NULL allowed). */
void t2s_proxy_host_network_changed(t2s_proxy_host *ph);
/* True for the T2S_EV_PROXY_* kinds. */
bool t2s_proxy_host_is_event(t2s_engine_event_type t);

#endif
