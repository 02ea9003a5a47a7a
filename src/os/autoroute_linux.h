/*
 * autoroute_linux.h: --auto-route. Policy routing that sends every IPv4 and IPv6 flow of this
 * host into the TUN, written through rtnetlink (libmnl), never by running `ip`.
 * See docs/auto-route.md.
 *
 * What is installed, for each family (P = the priority base, default 9000; T = the table,
 * default 2022; M = the fwmark of our upstream sockets, default 0x2022):
 *
 *   rule P+0  fwmark M            lookup main     our own upstream sockets bypass the TUN
 *   rule P+1  fwmark M            unreachable     ... and never fall through into it
 *   rule P+2  uidrange A-B        lookup main     one per --exclude-uid
 *   rule P+3                      lookup T        everything else
 *   table T:  default dev TUN (or one route per --route-include), and `throw` routes for
 *             every --route-exclude, the proxy's address, loopback, link-local, multicast and
 *             limited broadcast (a throw ends the lookup in T and the next rule decides:
 *             main).
 *
 * --exclude-cgroup PATH adds an nftables table `inet t2s_autoroute_T` whose output route chain
 * marks the packets of sockets in that cgroup v2 with M (`socket cgroupv2`), so rule P+0 sends
 * them to main. That part runs /usr/sbin/nft.
 *
 * Every rule with a priority in [P, P+T2S_AUTOROUTE_SPAN) and every route of table T is ours:
 * start removes what a crashed run left there before adding, stop removes all of it.
 *
 * The code: autoroute_linux.c (these functions), autoroute_rtnl_linux.c (rules and routes),
 * autoroute_nft_linux.c (nftables); autoroute_watch.h decides when to refresh.
 */
#ifndef T2S_AUTOROUTE_LINUX_H
#define T2S_AUTOROUTE_LINUX_H

#include "cli_parse.h"
#include "common.h"

#define T2S_AUTOROUTE_SPAN 10 /* priorities P..P+9 are reserved */
#define T2S_AUTOROUTE_DEFAULT_TABLE 2022
#define T2S_AUTOROUTE_DEFAULT_PRIORITY 9000
#define T2S_AUTOROUTE_DEFAULT_FWMARK 0x2022

typedef struct t2s_uid_range {
  uint32_t start, end; /* inclusive */
} t2s_uid_range;

typedef struct t2s_autoroute_config {
  uint32_t tun_ifindex;
  uint32_t table;    /* 1..0xffffffff, not 253..255 (default, main, local) */
  uint32_t priority; /* the base P */
  uint32_t fwmark;   /* nonzero */
  t2s_addr proxy;    /* always excluded (family 0: none) */
  const t2s_cidr *exclude;
  size_t nexclude;
  const t2s_cidr *include; /* none: everything (default routes) */
  size_t ninclude;
  const t2s_uid_range *uids;
  size_t nuids;
  const char *const *cgroups; /* cgroup v2 paths (absolute, or relative to the v2 mount) */
  size_t ncgroups;
} t2s_autoroute_config;

typedef struct t2s_autoroute t2s_autoroute;

/* Removes what an earlier run left (rules in the range, routes of the table, our nftables
 * table), then installs the rules and routes. Returns 0, or a T2S_ERR_* with a message in why
 * that names the errno (nothing is left installed then): T2S_ERR_EXISTS when another
 * tun2sock in this network namespace holds the table or a priority, T2S_ERR_LIMIT for lists
 * over the maximum, T2S_ERR_PERMISSION without CAP_NET_ADMIN. cfg's arrays are copied. */
int t2s_autoroute_start(t2s_autoroute **par, const t2s_autoroute_config *cfg, char *why,
                        size_t whylen);

/* Re-applies after a network change: adds what is missing (e.g. routes the kernel removed with
 * a link that went down), removes what is ours but no longer wanted. Cheap when nothing changed
 * (two dumps per family). Returns 0 or a T2S_ERR_* (logged with its errno; the next refresh
 * tries again). */
int t2s_autoroute_refresh(t2s_autoroute *ar);

/* Removes everything installed and frees ar (NULL is fine). */
void t2s_autoroute_stop(t2s_autoroute *ar);

/* Removes the rules in [priority, priority + SPAN), the routes of table and the nftables table
 * of that table number. Returns how many objects were removed, or a T2S_ERR_*. */
int t2s_autoroute_cleanup(uint32_t table, uint32_t priority);

/* A nonblocking rtnetlink socket subscribed to link, route and rule changes (-1 when it could
 * not be opened): when it is readable, call t2s_autoroute_drain() and, if it returns true,
 * t2s_autoroute_refresh() (after a short debounce). Owned by ar. */
int t2s_autoroute_event_fd(const t2s_autoroute *ar);
/* Reads every pending notification. True when any could concern us (any link, route or rule
 * change, or an overrun). */
bool t2s_autoroute_drain(t2s_autoroute *ar);

/* How many times refresh found something missing and re-added it. */
uint64_t t2s_autoroute_repairs(const t2s_autoroute *ar);

#endif
