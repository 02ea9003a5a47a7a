/* monitor_linux_state.c: the Linux monitor's pure half: rtnetlink messages in, network events
 * out, through the state tables keyed as the kernel keys its objects (monitor_linux.h). No
 * socket, no clock. */
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "autoroute_linux.h"
#include "log.h"
#include "monitor_linux_internal.h"

/* ---------------- events ---------------- */

static mon_link *find_link(t2s_monitor_linux *m, uint32_t ifindex) {
  for (size_t i = 0; i < m->nlinks; i++) {
    if (m->links[i].ifindex == ifindex) {
      return &m->links[i];
    }
  }
  return NULL;
}

static void deliver(t2s_monitor_linux *m, t2s_net_event *ev, int *pcount) {
  if (ev->ifindex && !ev->ifname[0]) {
    mon_link *l = find_link(m, ev->ifindex);
    if (l) {
      memcpy(ev->ifname, l->name, T2S_IFNAMSIZ);
    }
  }
  (*pcount)++;
  if (m->resyncing) {
    m->resync_events++;
  }
  if (m->cb) {
    m->cb(m->cb_arg, ev);
  }
}

static void deliver_type(t2s_monitor_linux *m, t2s_net_event_type type, uint32_t ifindex,
                         uint8_t family, int *pcount) {
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = type;
  ev.ifindex = ifindex;
  ev.family = family;
  deliver(m, &ev, pcount);
}

/* ---------------- attributes ---------------- */

typedef struct attrs {
  const struct nlattr *tb[64];
} attrs;

static int attr_cb(const struct nlattr *attr, void *arg) {
  attrs *a = arg;
  unsigned type = mnl_attr_get_type(attr);
  if (type < 64) {
    a->tb[type] = attr;
  }
  return MNL_CB_OK;
}

static bool get_ip_raw(const void *p, size_t len, uint8_t family, t2s_addr *out) {
  size_t want = family == AF_INET ? 4 : 16;
  memset(out, 0, sizeof(*out));
  if (p == NULL || len != want) {
    return false;
  }
  out->family = family == AF_INET ? T2S_AF_INET : T2S_AF_INET6;
  memcpy(out->ip, p, want);
  return true;
}

static bool get_ip(const struct nlattr *attr, uint8_t family, t2s_addr *out) {
  if (attr == NULL) {
    memset(out, 0, sizeof(*out));
    return false;
  }
  return get_ip_raw(mnl_attr_get_payload(attr), mnl_attr_get_payload_len(attr), family, out);
}

static uint32_t get_u32(const struct nlattr *attr, uint32_t dflt) {
  return attr && mnl_attr_get_payload_len(attr) == 4 ? mnl_attr_get_u32(attr) : dflt;
}

static bool is_v6_link_local(const t2s_addr *a) {
  return a->family == T2S_AF_INET6 && a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0x80;
}

/* FNV-1a, 64 bits: the fingerprints of routes and rules. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) {
    h = (h ^ b[i]) * 0x100000001b3ull;
  }
  return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

static uint64_t fnv_attr(uint64_t h, const struct nlattr *a) {
  if (a == NULL) {
    return h;
  }
  uint16_t type = mnl_attr_get_type(a), len = mnl_attr_get_payload_len(a);
  h = fnv(h, &type, sizeof(type));
  h = fnv(h, &len, sizeof(len));
  return fnv(h, mnl_attr_get_payload(a), len);
}

/* ---------------- links ---------------- */

static void forget_routes_via(t2s_monitor_linux *m, uint32_t ifindex, bool gone, int *pcount);
static void forget_addrs_of(t2s_monitor_linux *m, uint32_t ifindex, int *pcount);

static void on_link(t2s_monitor_linux *m, const struct nlmsghdr *nlh, int *pcount) {
  const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
  uint32_t ifindex = (uint32_t)ifi->ifi_index;
  if (ifindex == 0 || ifindex == m->cfg.ignore_ifindex) {
    return;
  }
  attrs a;
  memset(&a, 0, sizeof(a));
  mnl_attr_parse(nlh, sizeof(*ifi), attr_cb, &a);
  mon_link *l = find_link(m, ifindex);
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.ifindex = ifindex;
  if (nlh->nlmsg_type == RTM_DELLINK) {
    /* Its addresses and routes went with it (the kernel may not say so one by one), also when
     * the link was not tracked (a full table). */
    forget_addrs_of(m, ifindex, pcount);
    forget_routes_via(m, ifindex, true, pcount);
    l = find_link(m, ifindex);
    if (l == NULL) {
      return;
    }
    bool was = l->usable;
    memcpy(ev.ifname, l->name, sizeof(ev.ifname));
    *l = m->links[--m->nlinks];
    if (was) {
      ev.type = T2S_NET_LINK_DOWN;
      deliver(m, &ev, pcount);
    }
    return;
  }
  bool renamed = false;
  if (l == NULL) {
    if (m->nlinks == MON_MAX_LINKS) {
      /* Not tracked: say what it is, every time. */
      ev.type = (ifi->ifi_flags & IFF_UP) ? T2S_NET_LINK_UP : T2S_NET_LINK_DOWN;
      deliver(m, &ev, pcount);
      return;
    }
    l = &m->links[m->nlinks++];
    memset(l, 0, sizeof(*l));
    l->ifindex = ifindex;
    l->up = true;
  } else if (a.tb[IFLA_IFNAME] &&
             strncmp(l->name, mnl_attr_get_str(a.tb[IFLA_IFNAME]), sizeof(l->name)) != 0) {
    renamed = true;
  }
  l->epoch = m->epoch;
  if (a.tb[IFLA_IFNAME]) {
    snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(a.tb[IFLA_IFNAME]));
  }
  unsigned flags = ifi->ifi_flags;
  bool up = (flags & IFF_UP) != 0;
  bool usable = up && (flags & (IFF_LOWER_UP | IFF_RUNNING)) && !(flags & IFF_LOOPBACK);
  if (l->up && !up) {
    forget_routes_via(m, ifindex, true, pcount); /* an administrative down removes them */
  } else if (usable != l->usable) {
    forget_routes_via(m, ifindex, false, pcount); /* carrier: marked linkdown, maybe */
  }
  l = find_link(m, ifindex);
  l->up = up;
  if (usable == l->usable && !(renamed && usable)) {
    return; /* statistics, MTU, ...: not a change of reachability */
  }
  l->usable = usable;
  memcpy(ev.ifname, l->name, sizeof(ev.ifname));
  ev.type = usable ? T2S_NET_LINK_UP : T2S_NET_LINK_DOWN;
  deliver(m, &ev, pcount);
}

/* ---------------- addresses ---------------- */

static int find_addr(const t2s_monitor_linux *m, uint32_t ifindex, const t2s_addr *a,
                     uint8_t prefixlen) {
  for (size_t i = 0; i < m->naddrs; i++) {
    const mon_addr *x = &m->addrs[i];
    if (x->ifindex == ifindex && x->prefixlen == prefixlen && t2s_addr_ip_eq(&x->addr, a)) {
      return (int)i;
    }
  }
  return -1;
}

static bool has_addr_of_family(const t2s_monitor_linux *m, uint32_t ifindex, uint8_t family) {
  for (size_t i = 0; i < m->naddrs; i++) {
    if (m->addrs[i].ifindex == ifindex && m->addrs[i].addr.family == family) {
      return true;
    }
  }
  return false;
}

static void addr_removed(t2s_monitor_linux *m, size_t k, int *pcount) {
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = T2S_NET_ADDR_REMOVED;
  ev.ifindex = m->addrs[k].ifindex;
  ev.addr = m->addrs[k].addr;
  ev.family = ev.addr.family;
  ev.prefixlen = m->addrs[k].prefixlen;
  m->addrs[k] = m->addrs[--m->naddrs];
  deliver(m, &ev, pcount);
  /* The kernel drops routes with that source, and every IPv4 route through the link with its
   * last IPv4 address, without a message for each. */
  forget_routes_via(m, ev.ifindex,
                    ev.family == T2S_AF_INET && !has_addr_of_family(m, ev.ifindex, T2S_AF_INET),
                    pcount);
}

static void forget_addrs_of(t2s_monitor_linux *m, uint32_t ifindex, int *pcount) {
  /* Bounded: each step removes one or moves on. */
  for (size_t i = 0; i < m->naddrs;) {
    if (m->addrs[i].ifindex == ifindex) {
      addr_removed(m, i, pcount);
    } else {
      i++;
    }
  }
}

static void on_addr(t2s_monitor_linux *m, const struct nlmsghdr *nlh, int *pcount) {
  const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
  if ((ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6) ||
      ifa->ifa_index == m->cfg.ignore_ifindex) {
    return;
  }
  attrs a;
  memset(&a, 0, sizeof(a));
  mnl_attr_parse(nlh, sizeof(*ifa), attr_cb, &a);
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  /* IFA_LOCAL is the address itself; IFA_ADDRESS the peer on point-to-point links (and the
   * address everywhere else, and for IPv6). */
  if (!get_ip(a.tb[IFA_LOCAL], ifa->ifa_family, &ev.addr) &&
      !get_ip(a.tb[IFA_ADDRESS], ifa->ifa_family, &ev.addr)) {
    return;
  }
  if (is_v6_link_local(&ev.addr)) {
    return;
  }
  uint32_t flags = get_u32(a.tb[IFA_FLAGS], ifa->ifa_flags);
  ev.ifindex = ifa->ifa_index;
  ev.family = ev.addr.family;
  ev.prefixlen = ifa->ifa_prefixlen;
  int k = find_addr(m, ifa->ifa_index, &ev.addr, ifa->ifa_prefixlen);
  bool usable = !(flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED));
  if (nlh->nlmsg_type == RTM_DELADDR || !usable) {
    /* Removed, or known and back to tentative (DAD again): not usable now. A tentative one we
     * do not know: the NEWADDR that clears the flag follows. */
    if (k >= 0) {
      addr_removed(m, (size_t)k, pcount);
    }
    return;
  }
  if (k >= 0) {
    m->addrs[k].epoch = m->epoch;
    return; /* a lifetime refresh of an address we know */
  }
  if (m->naddrs < MON_MAX_ADDRS) {
    mon_addr *x = &m->addrs[m->naddrs++];
    x->ifindex = ifa->ifa_index;
    x->addr = ev.addr;
    x->prefixlen = ifa->ifa_prefixlen;
    x->epoch = m->epoch;
  }
  ev.type = T2S_NET_ADDR_ADDED;
  deliver(m, &ev, pcount);
}

/* ---------------- routes ---------------- */

static bool route_key_eq(const mon_route *a, const mon_route *b) {
  return a->family == b->family && a->dst_len == b->dst_len && a->tos == b->tos &&
         a->table == b->table && a->priority == b->priority &&
         memcmp(a->dst, b->dst, sizeof(a->dst)) == 0;
}

static bool route_via(const mon_route *r, uint32_t ifindex) {
  if (r->oif == ifindex || r->nh_more) {
    return true;
  }
  for (size_t i = 0; i < MON_MAX_NH; i++) {
    if (r->nh[i] == ifindex) {
      return true;
    }
  }
  return false;
}

/* The default route of family that counts now: table main first, then the lowest priority;
 * unicast only. NULL when there is none. */
static const mon_route *best_default(const t2s_monitor_linux *m, uint8_t family) {
  const mon_route *best = NULL;
  for (size_t i = 0; i < m->nroutes; i++) {
    const mon_route *r = &m->routes[i];
    if (r->family != family || r->dst_len != 0 || r->type != RTN_UNICAST) {
      continue;
    }
    if (best == NULL) {
      best = r;
      continue;
    }
    bool r_main = r->table == RT_TABLE_MAIN, b_main = best->table == RT_TABLE_MAIN;
    if ((r_main && !b_main) || (r_main == b_main && r->priority < best->priority)) {
      best = r;
    }
  }
  return best;
}

static void deliver_default(t2s_monitor_linux *m, uint8_t family, int *pcount) {
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = T2S_NET_DEFAULT_ROUTE_CHANGED;
  ev.family = family;
  const mon_route *b = best_default(m, family);
  if (b) {
    ev.ifindex = b->oif;
    ev.addr = b->gateway;
  } else {
    ev.removed = true;
  }
  deliver(m, &ev, pcount);
}

/* The event for a change of route r (already applied to the table). */
static void route_event(t2s_monitor_linux *m, const mon_route *r, int *pcount) {
  if (r->dst_len == 0) {
    deliver_default(m, r->family, pcount);
    return;
  }
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = T2S_NET_ROUTE_CHANGED;
  ev.family = r->family;
  ev.ifindex = r->oif;
  get_ip_raw(r->dst, r->family == T2S_AF_INET ? 4 : 16,
             r->family == T2S_AF_INET ? AF_INET : AF_INET6, &ev.addr);
  ev.prefixlen = r->dst_len;
  deliver(m, &ev, pcount);
}

static void route_remove(t2s_monitor_linux *m, size_t k) {
  m->routes[k] = m->routes[--m->nroutes];
}

/* A link went down or away (gone: the kernel removed the routes through it) or lost its
 * carrier, or an address went: the kernel changes or drops routes through the link without a
 * message for each. Routes through nothing but that link are forgotten when gone, the others
 * become unsure (never again proof that a message is redundant). A default route forgotten
 * changes the default that counts: reported. */
static void forget_routes_via(t2s_monitor_linux *m, uint32_t ifindex, bool gone, int *pcount) {
  bool defaults_gone[2] = {false, false};
  /* Bounded: each step removes one route or moves on. */
  for (size_t i = 0; i < m->nroutes;) {
    mon_route *r = &m->routes[i];
    if (!route_via(r, ifindex)) {
      i++;
      continue;
    }
    bool single = r->oif == ifindex && !r->nh_more && r->nh[1] == 0;
    if (gone && single) {
      if (r->dst_len == 0 && r->type == RTN_UNICAST) {
        defaults_gone[r->family == T2S_AF_INET6] = true;
      }
      route_remove(m, i);
      continue;
    }
    r->unsure = true;
    i++;
  }
  for (int f = 0; f < 2; f++) {
    if (defaults_gone[f]) {
      deliver_default(m, f ? T2S_AF_INET6 : T2S_AF_INET, pcount);
    }
  }
}

/* Reads the route in nlh into r. False when it is not one the monitor follows. */
static bool parse_route(t2s_monitor_linux *m, const struct nlmsghdr *nlh, mon_route *r) {
  const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
  if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) {
    return false;
  }
  if (rtm->rtm_flags & RTM_F_CLONED) {
    return false;
  }
  if (rtm->rtm_type != RTN_UNICAST && rtm->rtm_type != RTN_BLACKHOLE &&
      rtm->rtm_type != RTN_UNREACHABLE && rtm->rtm_type != RTN_PROHIBIT) {
    return false; /* local, broadcast, multicast, anycast, throw: follow the addresses */
  }
  attrs a;
  memset(&a, 0, sizeof(a));
  mnl_attr_parse(nlh, sizeof(*rtm), attr_cb, &a);
  memset(r, 0, sizeof(*r));
  r->family = rtm->rtm_family == AF_INET ? T2S_AF_INET : T2S_AF_INET6;
  r->dst_len = rtm->rtm_dst_len;
  r->tos = rtm->rtm_tos;
  r->type = rtm->rtm_type;
  r->table = get_u32(a.tb[RTA_TABLE], rtm->rtm_table);
  if (r->table == RT_TABLE_LOCAL || (m->cfg.own_table && r->table == m->cfg.own_table)) {
    return false; /* the host's own addresses; our --auto-route table */
  }
  r->priority = get_u32(a.tb[RTA_PRIORITY], 0);
  size_t alen = r->family == T2S_AF_INET ? 4 : 16;
  if (a.tb[RTA_DST] && mnl_attr_get_payload_len(a.tb[RTA_DST]) == alen) {
    memcpy(r->dst, mnl_attr_get_payload(a.tb[RTA_DST]), alen);
  }
  if (r->dst_len != 0) {
    t2s_addr dst;
    get_ip_raw(r->dst, alen, rtm->rtm_family, &dst);
    if (is_v6_link_local(&dst)) {
      return false;
    }
  }
  r->oif = get_u32(a.tb[RTA_OIF], 0);
  r->nh[0] = r->oif;
  get_ip(a.tb[RTA_GATEWAY], rtm->rtm_family, &r->gateway);
  if (a.tb[RTA_MULTIPATH]) {
    /* struct rtnexthop entries, each followed by its attributes (RTA_GATEWAY). */
    const uint8_t *p = mnl_attr_get_payload(a.tb[RTA_MULTIPATH]);
    size_t left = mnl_attr_get_payload_len(a.tb[RTA_MULTIPATH]);
    size_t n = r->oif ? 1 : 0;
    /* Bounded by left: each step consumes one rtnexthop of at least sizeof(rtnexthop). */
    while (left >= sizeof(struct rtnexthop)) {
      const struct rtnexthop *nh = (const struct rtnexthop *)p;
      if (nh->rtnh_len < sizeof(*nh) || nh->rtnh_len > left) {
        break;
      }
      if (n < MON_MAX_NH) {
        r->nh[n++] = (uint32_t)nh->rtnh_ifindex;
      } else {
        r->nh_more = true;
      }
      if (r->oif == 0) {
        r->oif = (uint32_t)nh->rtnh_ifindex; /* the first nexthop stands for the route */
        /* Its gateway: the first RTA_GATEWAY among its attributes. */
        size_t alen2 = nh->rtnh_len - sizeof(*nh);
        const uint8_t *ap = p + sizeof(*nh);
        while (alen2 >= sizeof(struct nlattr)) {
          const struct nlattr *at = (const struct nlattr *)ap;
          if (at->nla_len < sizeof(*at) || at->nla_len > alen2) {
            break;
          }
          if ((at->nla_type & NLA_TYPE_MASK) == RTA_GATEWAY && !r->gateway.family) {
            get_ip_raw(ap + sizeof(*at), at->nla_len - sizeof(*at), rtm->rtm_family, &r->gateway);
          }
          size_t step = MNL_ALIGN(at->nla_len);
          if (step >= alen2) {
            break;
          }
          ap += step;
          alen2 -= step;
        }
      }
      size_t step = RTNH_ALIGN(nh->rtnh_len);
      if (step >= left) {
        break;
      }
      p += step;
      left -= step;
    }
  }
  if (r->oif != 0 && r->oif == m->cfg.ignore_ifindex && !a.tb[RTA_MULTIPATH]) {
    return false; /* routes into our own TUN are how traffic reaches us, not the way out */
  }
  /* Where it leaves: everything but the key, the cache and expiry information. */
  uint64_t h = FNV_INIT;
  uint8_t hdr[5] = {rtm->rtm_type, rtm->rtm_scope, rtm->rtm_protocol, rtm->rtm_src_len,
                    (uint8_t)(rtm->rtm_flags & 0xff)};
  h = fnv(h, hdr, sizeof(hdr));
  static const uint16_t where[] = {RTA_OIF, RTA_GATEWAY, RTA_PREFSRC,    RTA_MULTIPATH,
                                   RTA_VIA, RTA_NH_ID,   RTA_ENCAP_TYPE, RTA_ENCAP,
                                   RTA_SRC, RTA_FLOW,    RTA_METRICS,    RTA_PREF};
  for (size_t i = 0; i < T2S_ARRAY_LEN(where); i++) {
    h = fnv_attr(h, a.tb[where[i]]);
  }
  r->fp = h;
  return true;
}

static void on_route(t2s_monitor_linux *m, const struct nlmsghdr *nlh, int *pcount) {
  mon_route r;
  if (!parse_route(m, nlh, &r)) {
    return;
  }
  r.epoch = m->epoch;
  /* What the table holds under the same key. */
  int same = -1, first = -1, same_oif = -1, same_fresh = -1;
  size_t n = 0;
  for (size_t i = 0; i < m->nroutes; i++) {
    const mon_route *x = &m->routes[i];
    if (!route_key_eq(x, &r)) {
      continue;
    }
    n++;
    if (first < 0) {
      first = (int)i;
    }
    if (x->fp == r.fp) {
      same = (int)i;
      if (x->epoch != m->epoch) {
        same_fresh = (int)i; /* not yet confirmed by this resynchronisation */
      }
    }
    if (x->oif == r.oif && same_oif < 0) {
      same_oif = (int)i;
    }
  }
  if (nlh->nlmsg_type == RTM_DELROUTE) {
    /* Always a change: the kernel never announces the removal of a route that was not there. */
    int k = same >= 0 ? same : same_oif >= 0 ? same_oif : first;
    if (k >= 0) {
      route_remove(m, (size_t)k);
      if (same < 0) {
        for (size_t i = 0; i < m->nroutes; i++) {
          if (route_key_eq(&m->routes[i], &r)) {
            m->routes[i].unsure = true; /* we did not know it as the kernel did */
          }
        }
      }
    }
    route_event(m, &r, pcount);
    return;
  }
  if (m->resyncing && same_fresh >= 0) {
    m->routes[same_fresh].epoch = m->epoch; /* confirmed by the dump: nothing changed */
    return;
  }
  if (n == 1 && same >= 0 && !m->routes[same].unsure) {
    m->routes[same].epoch = m->epoch;
    return; /* the one route under that key, told again with the same values: a refresh */
  }
  bool replace = (nlh->nlmsg_flags & NLM_F_REPLACE) != 0;
  if (same >= 0) {
    m->routes[same] = r; /* known, but not for sure: now it is */
  } else if (replace && first >= 0) {
    /* The kernel replaced one route under that key (the first); which one we cannot tell when
     * it held several: keep the new one, unsure then, and drop the others. */
    r.unsure = n > 1;
    m->routes[first] = r;
    for (size_t i = m->nroutes; i-- > 0;) {
      if ((int)i != first && route_key_eq(&m->routes[i], &r)) {
        route_remove(m, i);
      }
    }
  } else if (m->nroutes < MON_MAX_ROUTES) {
    m->routes[m->nroutes++] = r; /* added, prepended or appended */
  }
  route_event(m, &r, pcount);
}

/* ---------------- rules ---------------- */

/* Our own --auto-route rules: a priority in our range, or a lookup of our table. */
static bool own_rule(const t2s_monitor_linux *m, const struct fib_rule_hdr *frh, uint32_t table,
                     uint32_t prio) {
  if (m->cfg.own_table == 0) {
    return false;
  }
  bool in_range = prio >= m->cfg.own_priority &&
                  (uint64_t)prio < (uint64_t)m->cfg.own_priority + T2S_AUTOROUTE_SPAN;
  return in_range || (frh->action == FR_ACT_TO_TBL && table == m->cfg.own_table);
}

static void on_rule(t2s_monitor_linux *m, const struct nlmsghdr *nlh, int *pcount) {
  const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
  if (frh->family != AF_INET && frh->family != AF_INET6) {
    return;
  }
  attrs a;
  memset(&a, 0, sizeof(a));
  mnl_attr_parse(nlh, sizeof(*frh), attr_cb, &a);
  uint32_t table = get_u32(a.tb[FRA_TABLE], frh->table);
  uint32_t prio = get_u32(a.tb[FRA_PRIORITY], 0);
  if (own_rule(m, frh, table, prio)) {
    return;
  }
  /* The rule's identity is all of it (`ip rule` may hold two equal ones). */
  uint64_t h = fnv(FNV_INIT, frh, sizeof(*frh));
  for (unsigned t = 0; t < 64; t++) {
    h = fnv_attr(h, a.tb[t]);
  }
  int same = -1, same_fresh = -1;
  for (size_t i = 0; i < m->nrules; i++) {
    if (m->rules[i].family == frh->family && m->rules[i].fp == h) {
      same = (int)i;
      if (m->rules[i].epoch != m->epoch) {
        same_fresh = (int)i;
      }
    }
  }
  bool del = nlh->nlmsg_type == RTM_DELRULE;
  if (del) {
    if (same >= 0) {
      m->rules[same] = m->rules[--m->nrules];
    }
  } else {
    if (m->resyncing && same_fresh >= 0) {
      m->rules[same_fresh].epoch = m->epoch; /* confirmed by the dump */
      return;
    }
    if (m->nrules < MON_MAX_RULES) {
      m->rules[m->nrules++] = (mon_rule){.family = frh->family, .fp = h, .epoch = m->epoch};
    }
  }
  if (!m->dumping) {
    T2S_DEBUG("network monitor: IPv%d rule %s: priority %u, table %u",
              frh->family == AF_INET ? 4 : 6, del ? "removed" : "added", prio, table);
  }
  deliver_type(m, T2S_NET_ROUTE_CHANGED, 0, frh->family == AF_INET ? T2S_AF_INET : T2S_AF_INET6,
               pcount);
}

/* ---------------- messages ---------------- */

int t2s_monitor_linux_feed(t2s_monitor_linux *m, const void *buf, size_t len) {
  int count = 0;
  const struct nlmsghdr *nlh = buf;
  int rem = (int)(len > INT32_MAX ? INT32_MAX : len);
  /* Bounded by len: each step consumes one message. */
  while (mnl_nlmsg_ok(nlh, rem)) {
    size_t need = 0;
    switch (nlh->nlmsg_type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      need = sizeof(struct ifinfomsg);
      break;
    case RTM_NEWADDR:
    case RTM_DELADDR:
      need = sizeof(struct ifaddrmsg);
      break;
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      need = sizeof(struct rtmsg);
      break;
    case RTM_NEWRULE:
    case RTM_DELRULE:
      need = sizeof(struct fib_rule_hdr);
      break;
    default:
      break;
    }
    if (need && mnl_nlmsg_get_payload_len(nlh) < need) {
      return T2S_ERR_MALFORMED;
    }
    switch (nlh->nlmsg_type) {
    case RTM_NEWLINK:
    case RTM_DELLINK:
      on_link(m, nlh, &count);
      break;
    case RTM_NEWADDR:
    case RTM_DELADDR:
      on_addr(m, nlh, &count);
      break;
    case RTM_NEWROUTE:
    case RTM_DELROUTE:
      on_route(m, nlh, &count);
      break;
    case RTM_NEWRULE:
    case RTM_DELRULE:
      on_rule(m, nlh, &count);
      break;
    case RTM_NEWNEXTHOP:
    case RTM_DELNEXTHOP:
      /* A nexthop object changed under the routes that use it: not tracked, always news. */
      if (!m->dumping && !m->resyncing) {
        deliver_type(m, T2S_NET_ROUTE_CHANGED, 0, 0, &count);
      }
      break;
    default:
      break; /* NLMSG_DONE, NLMSG_ERROR, others */
    }
    nlh = mnl_nlmsg_next(nlh, &rem);
  }
  if (rem > 0) {
    return T2S_ERR_MALFORMED;
  }
  return count;
}

/* ---------------- resynchronisation ---------------- */

void t2s_monitor_linux_resync_begin(t2s_monitor_linux *m) {
  m->epoch++;
  m->resyncing = true;
  m->resync_events = 0;
}

int t2s_monitor_linux_resync_end(t2s_monitor_linux *m) {
  int count = 0;
  /* Whatever the dumps did not confirm is gone. Each loop is bounded by its table. */
  for (size_t i = 0; i < m->nrules;) {
    if (m->rules[i].epoch != m->epoch) {
      uint8_t family = m->rules[i].family;
      m->rules[i] = m->rules[--m->nrules];
      deliver_type(m, T2S_NET_ROUTE_CHANGED, 0, family == AF_INET ? T2S_AF_INET : T2S_AF_INET6,
                   &count);
    } else {
      i++;
    }
  }
  for (size_t i = 0; i < m->nroutes;) {
    if (m->routes[i].epoch != m->epoch) {
      mon_route r = m->routes[i];
      route_remove(m, i);
      route_event(m, &r, &count);
    } else {
      i++;
    }
  }
  for (size_t i = 0; i < m->naddrs;) {
    if (m->addrs[i].epoch != m->epoch) {
      addr_removed(m, i, &count);
    } else {
      i++;
    }
  }
  for (size_t i = 0; i < m->nlinks;) {
    mon_link *l = &m->links[i];
    if (l->epoch != m->epoch) {
      t2s_net_event ev;
      memset(&ev, 0, sizeof(ev));
      ev.type = T2S_NET_LINK_DOWN;
      ev.ifindex = l->ifindex;
      memcpy(ev.ifname, l->name, sizeof(ev.ifname));
      bool was = l->usable;
      *l = m->links[--m->nlinks];
      if (was) {
        deliver(m, &ev, &count);
      }
    } else {
      i++;
    }
  }
  m->resyncing = false;
  return m->resync_events; /* the sweep's events included */
}

void t2s_monitor_linux_deliver(t2s_monitor_linux *m, t2s_net_event *ev) {
  int count = 0;
  deliver(m, ev, &count);
}

void t2s_monitor_linux_deliver_type(t2s_monitor_linux *m, t2s_net_event_type type, uint32_t ifindex,
                                    uint8_t family) {
  int count = 0;
  deliver_type(m, type, ifindex, family, &count);
}
