/*
 * monitor_linux.h: the Linux network monitor, a t2s_monitor (iface.h) over rtnetlink (libmnl)
 * and the clocks.
 *
 *   rtnetlink   one socket subscribed to RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR,
 *               RTNLGRP_IPV6_IFADDR, RTNLGRP_IPV4_ROUTE and RTNLGRP_IPV6_ROUTE, read from the
 *               libevent loop; start() first dumps links, addresses and routes (synchronously,
 *               on a second socket) and reports what it finds as events, with
 *               t2s_monitor_linux_dumping() true while it does.
 *   translation RTM_NEWLINK/DELLINK -> LINK_UP/LINK_DOWN on a change of "usable" (IFF_UP and
 *               IFF_LOWER_UP or IFF_RUNNING); RTM_NEWADDR/DELADDR -> ADDR_ADDED/REMOVED (new
 *               addresses only: lifetime refreshes are not events; IPv6 tentative and
 *               link-local addresses ignored); RTM_NEWROUTE/DELROUTE with dst_len 0 ->
 *               DEFAULT_ROUTE_CHANGED (removed = no default route of that family left in any
 *               table), others -> ROUTE_CHANGED (table local, cloned, multicast and broadcast
 *               routes and IPv6 link-local prefixes ignored). Everything about our own TUN
 *               (its links, addresses, routes through it) is ignored.
 *               A receive-buffer overrun (ENOBUFS: events were lost) becomes one ROUTE_CHANGED
 *               so the engine re-asks the kernel.
 *   route_get   RTM_GETROUTE with the mark (route_linux.c, `ip route get DST mark M`); a route
 *               through our own TUN is a loop and answered T2S_ERR_UNREACHABLE.
 *   sleep       every check interval (1 s) the difference CLOCK_BOOTTIME - CLOCK_MONOTONIC is
 *               read through the clock interface; when it grew by more than the threshold
 *               (2 s) the machine slept: RESUMED with slept_ns = the growth. Tests inject a
 *               jump through the clock (clock_linux.h, TUN2SOCK_TEST_BOOTTIME_OFFSET_FILE).
 */
#ifndef T2S_MONITOR_LINUX_H
#define T2S_MONITOR_LINUX_H

#include <event2/event.h>

#include "iface.h"

typedef struct t2s_monitor_linux t2s_monitor_linux;

typedef struct t2s_monitor_linux_config {
  uint32_t ignore_ifindex;         /* our own TUN (0 = none) */
  const t2s_clock *clock;          /* boottime/now for the sleep detector; NULL = no detector */
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
