/*
 * monitor_linux_internal.h: what the Linux monitor's two halves share (not an API): the state
 * tables and the monitor itself. monitor_linux_state.c is the pure half (rtnetlink messages in,
 * events out, the state tables, the resynchronisation), monitor_linux.c the driver (sockets,
 * dumps, the overrun, the sleep timer, the t2s_monitor ops).
 */
#ifndef T2S_MONITOR_LINUX_INTERNAL_H
#define T2S_MONITOR_LINUX_INTERNAL_H

#include "monitor_linux.h"

#define MON_MAX_LINKS 256
#define MON_MAX_ADDRS 512
#define MON_MAX_ROUTES 4096
#define MON_MAX_RULES 512
#define MON_MAX_NH 4 /* nexthop interfaces remembered per route */

typedef struct mon_link {
  uint32_t ifindex;
  char name[T2S_IFNAMSIZ];
  bool usable;
  bool up; /* IFF_UP: the kernel removes the routes through a link that goes down */
  uint32_t epoch;
} mon_link;

typedef struct mon_addr {
  uint32_t ifindex;
  t2s_addr addr;
  uint8_t prefixlen;
  uint32_t epoch;
} mon_addr;

/* A route as the kernel identifies it (key) and where it leaves (fingerprint). */
typedef struct mon_route {
  uint8_t family, dst_len, tos, type;
  uint32_t table, priority;
  uint8_t dst[16];
  uint64_t fp;             /* hash of everything that says where the route leaves */
  uint32_t oif;            /* RTA_OIF, or the first nexthop's */
  uint32_t nh[MON_MAX_NH]; /* the interfaces of its nexthops (0: none) */
  bool nh_more;            /* more nexthops than nh holds */
  t2s_addr gateway;        /* RTA_GATEWAY, or the first nexthop's */
  bool unsure;             /* the kernel may have changed or dropped it without a message */
  uint32_t epoch;
} mon_route;

typedef struct mon_rule {
  uint8_t family;
  uint64_t fp; /* hash of the whole rule */
  uint32_t epoch;
} mon_rule;

struct t2s_monitor_linux {
  t2s_monitor_linux_config cfg;
  struct event_base *base;
  struct mnl_socket *nl;
  struct event *nl_ev;
  struct event *tick;
  t2s_net_event_cb cb;
  void *cb_arg;
  bool dumping;
  bool resyncing;
  int resync_events;
  uint32_t epoch; /* objects confirmed by the current (re)synchronisation carry it */
  uint64_t overruns;
  t2s_sleep_detector sleep;
  mon_link links[MON_MAX_LINKS];
  size_t nlinks;
  mon_addr addrs[MON_MAX_ADDRS];
  size_t naddrs;
  mon_route routes[MON_MAX_ROUTES];
  size_t nroutes;
  mon_rule rules[MON_MAX_RULES];
  size_t nrules;
  uint8_t buf[32768]; /* one rtnetlink datagram */
};

/* Counts the event, fills its ifname from the link table, hands it to the callback. */
void t2s_monitor_linux_deliver(t2s_monitor_linux *m, t2s_net_event *ev);
/* An event with only a type, an interface and a family. */
void t2s_monitor_linux_deliver_type(t2s_monitor_linux *m, t2s_net_event_type type, uint32_t ifindex,
                                    uint8_t family);

#endif
