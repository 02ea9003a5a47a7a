/*
 * monitor_linux.h: the Linux network monitor, a t2s_monitor (iface.h) over rtnetlink (libmnl)
 * and the clocks.
 *
 *   rtnetlink   one socket subscribed to links, IPv4 and IPv6 addresses, routes and policy rules
 *               and nexthop objects, read from the libevent loop; start() first dumps links,
 *               addresses, routes and rules (synchronously, on a second socket) and reports what
 *               it finds as events, with t2s_monitor_linux_dumping() true while it does.
 *   state       the monitor keeps what the kernel told it, keyed the way the kernel identifies
 *               each object: links by index (name, usable), addresses by (index, address,
 *               prefix), routes by (family, table, destination and prefix, TOS, priority) with a
 *               fingerprint of where the route leaves (type, gateway, interface, every nexthop of
 *               RTA_MULTIPATH, source, ...), and rules by their whole content. A message is
 *               dropped as redundant only when the state proves it: a route message whose key
 *               holds exactly one route with the same fingerprint, known for sure (not touched by
 *               a link or address change the kernel does not announce route by route), an
 *               address or link state already known. Everything else is an event: a spurious
 *               one costs a debounce and a route query, a missed one the reset of the flows.
 *   translation RTM_NEWLINK/DELLINK -> LINK_UP/LINK_DOWN on a change of "usable" (IFF_UP and
 *               IFF_LOWER_UP or IFF_RUNNING), and LINK_UP for a usable link renamed;
 *               RTM_NEWADDR/DELADDR -> ADDR_ADDED/REMOVED (lifetime refreshes are not events; IPv6
 *               tentative and link-local addresses ignored; a known address turning tentative
 *               again is REMOVED); a link deleted takes its addresses and routes with it.
 *               RTM_NEWROUTE/DELROUTE with dst_len 0 -> DEFAULT_ROUTE_CHANGED for the family,
 *               describing the default route that now counts (table main first, lowest
 *               priority; removed = no unicast default route of that family left in any table),
 *               whatever the flags (NLM_F_REPLACE from `ip route replace` and `ip route change`,
 *               NLM_F_APPEND, a plain add); others -> ROUTE_CHANGED (table local, cloned,
 *               multicast and broadcast routes and IPv6 link-local prefixes ignored).
 *               RTM_NEWRULE/DELRULE (IPv4 and IPv6) and RTM_NEWNEXTHOP/DELNEXTHOP ->
 *               ROUTE_CHANGED: any of them can move the path to the proxy. Everything about our
 *               own TUN (its links, addresses, routes through it) is ignored, and so are our own
 *               --auto-route table and rules (own_table, own_priority below).
 *   overrun     a receive-buffer overrun (ENOBUFS: events were lost) drains the socket, dumps
 *               everything again and reports the differences with the state before (a route
 *               gone, a rule added, ...) as events, then one ROUTE_CHANGED for what is not
 *               tracked (nexthop objects).
 *   route_get   RTM_GETROUTE with the mark (route_linux.c, `ip route get DST mark M`); a route
 *               through our own TUN is a loop and answered T2S_ERR_UNREACHABLE.
 *   sleep       every check interval (1 s) the difference CLOCK_BOOTTIME - CLOCK_MONOTONIC is
 *               read through the clock interface; when it grew by more than the threshold
 *               (2 s) the machine slept: RESUMED with slept_ns = the growth. Tests inject a
 *               jump through the clock (clock_linux.h, TUN2SOCK_TEST_BOOTTIME_OFFSET_FILE).
 *
 * Errors: every function returns 0 or a T2S_ERR_* code; an errno is logged where it is read.
 */
#ifndef T2S_MONITOR_LINUX_H
#define T2S_MONITOR_LINUX_H

#include <event2/event.h>

#include "iface.h"

typedef struct t2s_monitor_linux t2s_monitor_linux;

typedef struct t2s_monitor_linux_config {
  uint32_t ignore_ifindex; /* our own TUN (0 = none) */
  uint32_t own_table;      /* --auto-route's table (0 = none): its routes, and the rules that
                            * select it, are ours and not events */
  uint32_t own_priority;   /* with own_table: rules with a priority in [own_priority,
                            * own_priority + T2S_AUTOROUTE_SPAN) are ours */
  const t2s_clock *clock;  /* boottime/now for the sleep detector; NULL = no detector */
  t2s_tstamp sleep_check_interval; /* default 1 s */
  t2s_tstamp sleep_threshold;      /* default 2 s */
} t2s_monitor_linux_config;

/* Creates the monitor on base (NULL: no sockets and no timer; only t2s_monitor_linux_feed
 * works, for tests). Nothing is read before start(). Returns 0 or T2S_ERR_NOMEM. */
int t2s_monitor_linux_new(t2s_monitor_linux **pm, struct event_base *base,
                          const t2s_monitor_linux_config *cfg);
/* Stops and frees. */
void t2s_monitor_linux_del(t2s_monitor_linux *m);
/* The t2s_monitor over m (borrowed). */
void t2s_monitor_linux_ops(t2s_monitor_linux *m, t2s_monitor *out);
/* True while start() reports the initial dump (those events describe the state at start, not
 * changes). */
bool t2s_monitor_linux_dumping(const t2s_monitor_linux *m);

/* Translates a buffer of rtnetlink messages (as read from the socket) into events delivered
 * to the callback given to start(). Returns how many events were delivered, or
 * T2S_ERR_MALFORMED for a truncated message (the messages before it are used). */
int t2s_monitor_linux_feed(t2s_monitor_linux *m, const void *buf, size_t len);

/* A resynchronisation (what the driver does after an overrun, on its own for tests): begin()
 * marks everything known as unconfirmed; the fresh dumps are then fed with
 * t2s_monitor_linux_feed(), which reports only what differs from the known state (a new link,
 * address, route or rule, a changed route) and confirms the rest; end() forgets whatever the
 * dumps did not confirm and reports each as gone. end() returns how many events the whole
 * resynchronisation delivered. */
void t2s_monitor_linux_resync_begin(t2s_monitor_linux *m);
int t2s_monitor_linux_resync_end(t2s_monitor_linux *m);

/* How many overruns (ENOBUFS) the monitor resynchronised from. */
uint64_t t2s_monitor_linux_overruns(const t2s_monitor_linux *m);

/* The sleep detector, on its own (pure: readings come in as arguments). */
typedef struct t2s_sleep_detector {
  t2s_tstamp threshold; /* growth of boottime - monotonic that means a sleep */
  bool primed;
  t2s_tstamp gap; /* boottime - monotonic at the last check */
} t2s_sleep_detector;

/* Sets the threshold (0 = 2 s) and forgets earlier readings. */
void t2s_sleep_detector_init(t2s_sleep_detector *d, t2s_tstamp threshold);
/* Takes one reading. Returns how long the machine slept since the last reading (the growth
 * of boottime - monotonic) when that exceeds the threshold, else 0. */
t2s_tstamp t2s_sleep_detector_check(t2s_sleep_detector *d, t2s_tstamp mono, t2s_tstamp boot);

#endif
