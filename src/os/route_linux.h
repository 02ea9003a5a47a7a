/*
 * route_linux.h: route queries (`ip route get`) and the choice of the egress interface for
 * upstream sockets. The rtnetlink event monitor (a later monitor_linux.c) reuses
 * t2s_route_query() as its route_get op.
 */
#ifndef T2S_ROUTE_LINUX_H
#define T2S_ROUTE_LINUX_H

#include "iface.h"

/* Asks the kernel which interface and source address reach dst with socket mark `mark`
 * (0 = none). Fills *out (local = RTN_LOCAL, or the route leaves through a loopback
 * interface). Returns 0, T2S_ERR_UNREACHABLE when there is no route, T2S_ERR_INVALID_ARGUMENT
 * for a bad dst, or T2S_ERR_INTERNAL. */
int t2s_route_query(const t2s_addr *dst, uint32_t mark, t2s_route *out);

/* Where to bind upstream sockets, decided once at start. */
typedef struct t2s_egress_choice {
  t2s_egress egress; /* ifindex 0 = unbound */
  bool pinned;       /* --interface */
  bool local_proxy;  /* the proxy is on this host: unbound */
  bool no_route;     /* no route to the proxy now: unbound, the kernel decides later */
} t2s_egress_choice;

/*
 * Chooses the egress toward proxy:
 *   pin_ifname != "" (--interface): that interface, whatever the routes say;
 *   otherwise the route to the proxy (with `mark`): unbound when the proxy is local, bound to
 *   the route's interface otherwise.
 * tun_ifindex is our own TUN: a route to the proxy through it is a loop and an error.
 * Returns 0, T2S_ERR_NOT_FOUND (pinned interface missing), T2S_ERR_PROTO (the route to the
 * proxy goes through our own TUN), or another error. Writes a human explanation into why.
 */
int t2s_egress_select(const t2s_addr *proxy, uint32_t mark, const char *pin_ifname,
                      uint32_t tun_ifindex, t2s_egress_choice *out, char *why, size_t whylen);

#endif
