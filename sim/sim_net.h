/*
 * sim_net.h: the simulated host's network: interfaces (links) with addresses, gateways and
 * latencies, a routing table (default route per family, prefix routes), suspend and resume.
 * It is the simulator's t2s_monitor: route_get answers from the table the way `ip route get`
 * would, and every change of the world is reported to the engine as the t2s_net_event a
 * kernel monitor would have produced (docs/scenarios.md, "The network").
 *
 * It is also what the simulated upstream asks where a stream leaves from and whether that
 * path still works: a stream whose interface went down or lost its source address stalls
 * (sim_upstream.h).
 *
 * Interface indexes: 1 is the loopback ("lo", always up, 127.0.0.1 and ::1); declared links
 * get 2, 3, ... in the order they first appear in the scenario.
 */
#ifndef T2S_SIM_NET_H
#define T2S_SIM_NET_H

#include "common.h"
#include "iface.h"

typedef struct sim_world sim_world;
typedef struct sim_net sim_net;

#define SIM_NET_MAX_LINKS 16
#define SIM_NET_MAX_ADDRS 8
#define SIM_NET_MAX_ROUTES 32

typedef struct sim_cidr {
  t2s_addr addr; /* port 0 */
  uint8_t len;   /* prefix length */
} sim_cidr;

/* What a scripted network action does (parsed by sim_scenario.c, applied by sim_net_apply). */
typedef enum sim_net_op {
  SIM_NET_LINK = 0,     /* link NAME up|down [addr CIDR]... [gateway ADDR]... [latency T] */
  SIM_NET_ADDR_ADD,     /* addr add CIDR dev NAME */
  SIM_NET_ADDR_DEL,     /* addr del CIDR dev NAME */
  SIM_NET_DEFAULT_VIA,  /* route default via NAME [inet|inet6] */
  SIM_NET_DEFAULT_NONE, /* route default none [inet|inet6] */
  SIM_NET_ROUTE_VIA,    /* route ADDR/LEN via NAME */
  SIM_NET_ROUTE_DEL,    /* route ADDR/LEN none */
  SIM_NET_SUSPEND,      /* suspend */
  SIM_NET_RESUME,       /* resume [slept T] */
} sim_net_op;

typedef struct sim_net_action {
  sim_net_op op;
  char link[T2S_IFNAMSIZ];
  bool up;                           /* LINK */
  sim_cidr addrs[SIM_NET_MAX_ADDRS]; /* LINK: addresses to add; ADDR_*: addrs[0] */
  size_t naddrs;
  t2s_addr gateways[2]; /* LINK: gateway per family (v4, v6); family 0 = none */
  bool has_latency;     /* LINK */
  t2s_tstamp latency;   /* LINK: one-way latency of the link */
  uint8_t family;       /* DEFAULT_*: T2S_AF_INET/INET6, 0 = both */
  sim_cidr prefix;      /* ROUTE_* */
  bool has_slept;       /* RESUME */
  t2s_tstamp slept;     /* RESUME: how long the machine slept */
} sim_net_action;

/* Where one upstream socket leaves from (recorded at open; see sim_upstream.h). */
typedef struct sim_net_path {
  uint32_t ifindex; /* 1 = loopback (the proxy is on this host) */
  char ifname[T2S_IFNAMSIZ];
  t2s_addr src;       /* source address (port 0) */
  t2s_tstamp latency; /* one-way latency of the interface */
} sim_net_path;

/* Creates the network of world w (empty: only the loopback). Returns NULL when out of memory. */
sim_net *sim_net_new(sim_world *w);
void sim_net_del(sim_net *n);

/* Checks that an action names what exists when it is a configuration line (before the run):
 * returns 0, or an error with the reason in err. The same action at run time (at T ...) does
 * not fail: a missing link is reported in the event log and ignored. */
int sim_net_check(const sim_net *n, const sim_net_action *a, char *err, size_t errlen);
/* Applies a configuration line before the run: no events. Returns 0 or an error (err). */
int sim_net_configure(sim_net *n, const sim_net_action *a, char *err, size_t errlen);
/* Applies a scripted action at `now`: the world changes, the engine receives the monitor
 * events (t2s_engine_network_event), and stalled upstream sockets are re-evaluated. */
void sim_net_apply(sim_net *n, const sim_net_action *a, t2s_tstamp now);

/* The t2s_monitor for t2s_engine_set_monitor. */
t2s_monitor sim_net_monitor(sim_net *n);
/* route_get without the interface: which interface and source address reach dst now. Returns
 * 0, or T2S_ERR_UNREACHABLE. */
int sim_net_route_get(const sim_net *n, const t2s_addr *dst, t2s_route *out);

/* The path of a new socket toward dst leaving through *egress (ifindex 0: wherever the route
 * to dst goes; otherwise bound to that interface, which then needs an address of dst's family
 * and a route to dst through it). Returns 0 or T2S_ERR_UNREACHABLE. */
int sim_net_path_open(const sim_net *n, const t2s_addr *dst, const t2s_egress *egress,
                      sim_net_path *out);
/* True while a path carries packets: its interface is up and still holds the source address,
 * and the machine is not suspended. */
bool sim_net_path_alive(const sim_net *n, const sim_net_path *p);

/* The name of ifindex ("lo", a link's name, or "none" for 0). */
const char *sim_net_ifname(const sim_net *n, uint32_t ifindex);

/* Parses "ADDR/LEN" (the address without a port). Returns 0 or -1. */
int sim_cidr_parse(const char *s, sim_cidr *out);

#endif
