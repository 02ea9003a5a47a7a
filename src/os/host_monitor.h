/*
 * host_monitor.h: a network monitor (iface.h's t2s_monitor_ops) fed by the embedding program
 * instead of rtnetlink (tun2sock.h, TUN2SOCK_MONITOR_HOST). The host reports the default
 * interface, sleep and wake from any thread; each report is queued under a mutex and an eventfd
 * wakes the loop, which hands it to the network watch as the matching t2s_net_event (the same
 * state machine and policies as rtnetlink's). No rtnetlink socket is opened.
 *
 * route_get (the engine's question at the end of every debounce) is answered from the host's
 * last report: the proxy leaves through the reported default interface; "none" is no route
 * (T2S_ERR_UNREACHABLE); a loopback proxy is local. Before the first report: the egress
 * chosen at start.
 */
#ifndef T2S_HOST_MONITOR_H
#define T2S_HOST_MONITOR_H

#include <event2/event.h>

#include "iface.h"

typedef struct t2s_host_monitor t2s_host_monitor;

/* Creates the monitor on base for the proxy at `proxy`, starting from the egress `initial`
 * (ifindex 0: unbound or unknown). Returns 0, T2S_ERR_NOMEM or T2S_ERR_INTERNAL (eventfd). */
int t2s_host_monitor_new(t2s_host_monitor **pm, struct event_base *base, const t2s_addr *proxy,
                         const t2s_egress *initial);
void t2s_host_monitor_ops(t2s_host_monitor *m, t2s_monitor *out);
/* The host's route answer (tun2sock.h's config.route), used by route_get instead of the
 * fallback when set: family 4/6, addr 4/16 bytes; fills ifname (T2S_IFNAMSIZ) and/or *ifindex
 * and returns 0 (both empty: local), nonzero = no route. */
typedef int (*t2s_host_route_fn)(void *arg, int family, const uint8_t *addr, char *ifname,
                                 unsigned *ifindex);
void t2s_host_monitor_set_route(t2s_host_monitor *m, t2s_host_route_fn fn, void *arg);
/* Frees m (after the loop stopped). */
void t2s_host_monitor_del(t2s_host_monitor *m);

/* From any thread. Return 0, or -1 when the queue (64 reports) is full (dropped). */
/* The default interface is now ifname (index ifindex; either may be given, the other is looked
 * up); "" / NULL and 0: none (no network). */
int t2s_host_monitor_changed(t2s_host_monitor *m, const char *ifname, uint32_t ifindex);
int t2s_host_monitor_paused(t2s_host_monitor *m);
int t2s_host_monitor_resumed(t2s_host_monitor *m, uint64_t slept_ms);

#endif
