/*
 * proxy_host.h: the binary's side of several proxies (docs/proxies.md): resolves the second
 * and later --proxy, gives the list to the engine, runs the probes the engine asks for
 * (proxy_probe.c) and hands their results back, and writes the log lines of the proxies'
 * health at the default level (failures rate-limited by the engine, DOWN with the flows reset,
 * UP again).
 */
#ifndef T2S_PROXY_HOST_H
#define T2S_PROXY_HOST_H

#include "cli.h"
#include "engine.h"
#include "metrics.h"

struct event_base;
struct t2s_loop;

typedef struct t2s_proxy_host t2s_proxy_host;

/* With two or more --proxy: resolves the others (names through the system resolver, once),
 * gives the engine the list (first = `first`, with username/password, NULL = none), and
 * creates the prober. *ph stays NULL with a single proxy (the engine then keeps no health).
 * loop is re-armed after each probe result. Returns 0 or an error (logged). */
int t2s_proxy_host_start(t2s_proxy_host **ph, struct event_base *base, struct t2s_loop *loop,
                         t2s_engine *engine, const t2s_clock *clock, const t2s_cli_opts *opts,
                         const t2s_addr *first, const char *username, const char *password);
/* Stops the probes and frees ph (NULL allowed). Call before the engine is freed. */
void t2s_proxy_host_del(t2s_proxy_host *ph);
/* Handles an engine event of the T2S_EV_PROXY_* kinds (others are ignored). */
void t2s_proxy_host_event(t2s_proxy_host *ph, const t2s_engine_event *ev);
/* Fills snap->nproxies and snap->proxies (nothing when ph is NULL). */
void t2s_proxy_host_collect(const t2s_proxy_host *ph, t2s_metrics_snapshot *snap);
/* True for the T2S_EV_PROXY_* kinds. */
bool t2s_proxy_host_is_event(t2s_engine_event_type t);

#endif
