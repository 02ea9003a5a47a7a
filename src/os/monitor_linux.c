/* monitor_linux.c: the rtnetlink and sleep monitor (see monitor_linux.h). */
#include "monitor_linux.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "netlink_linux.h"
#include "route_linux.h"

#define MON_MAX_LINKS 256
#define MON_MAX_ADDRS 512
#define MON_MAX_DEFAULTS 64
#define RCVBUF_BYTES (1 << 20)
#define READS_PER_WAKEUP 64 /* datagrams read per wakeup (each holds several messages) */
#define DUMP_ROUNDS 4096    /* bound on the datagrams of one dump */

typedef struct mon_link {
  uint32_t ifindex;
  char name[T2S_IFNAMSIZ];
  bool usable;
} mon_link;

typedef struct mon_addr {
  uint32_t ifindex;
  t2s_addr addr;
} mon_addr;

typedef struct mon_default {
  uint8_t family;
  uint32_t table, oif, priority;
  t2s_addr gateway;
} mon_default;

struct t2s_monitor_linux {
  t2s_monitor_linux_config cfg;
  struct event_base *base;
  struct mnl_socket *nl;
  struct event *nl_ev;
  struct event *tick;
  t2s_net_event_cb cb;
  void *cb_arg;
  bool dumping;
  t2s_sleep_detector sleep;
  mon_link links[MON_MAX_LINKS];
  size_t nlinks;
  mon_addr addrs[MON_MAX_ADDRS];
  size_t naddrs;
  mon_default defaults[MON_MAX_DEFAULTS];
  size_t ndefaults;
  uint8_t buf[32768]; /* one rtnetlink datagram */
};

/* ---------------- sleep detector ---------------- */

void t2s_sleep_detector_init(t2s_sleep_detector *d, t2s_tstamp threshold) {
  memset(d, 0, sizeof(*d));
  d->threshold = threshold ? threshold : 2 * T2S_SECONDS;
}

t2s_tstamp t2s_sleep_detector_check(t2s_sleep_detector *d, t2s_tstamp mono, t2s_tstamp boot) {
  t2s_tstamp gap = boot > mono ? boot - mono : 0;
  if (!d->primed) {
    d->primed = true;
    d->gap = gap;
    return 0;
  }
  t2s_tstamp grown = gap > d->gap ? gap - d->gap : 0;
  /* The gap never shrinks in reality; a test hook lowering its offset just re-bases. */
  d->gap = gap;
  return grown > d->threshold ? grown : 0;
}

/* ---------------- state tables ---------------- */

static mon_link *find_link(t2s_monitor_linux *m, uint32_t ifindex) {
  for (size_t i = 0; i < m->nlinks; i++) {
    if (m->links[i].ifindex == ifindex) {
      return &m->links[i];
    }
  }
  return NULL;
}

static void ifname_of(t2s_monitor_linux *m, uint32_t ifindex, char *out) {
  mon_link *l = find_link(m, ifindex);
  if (l) {
    memcpy(out, l->name, T2S_IFNAMSIZ);
  } else {
    out[0] = 0;
  }
}

static int find_addr(const t2s_monitor_linux *m, uint32_t ifindex, const t2s_addr *a) {
  for (size_t i = 0; i < m->naddrs; i++) {
    if (m->addrs[i].ifindex == ifindex && t2s_addr_ip_eq(&m->addrs[i].addr, a)) {
      return (int)i;
    }
  }
  return -1;
}

static int find_default(const t2s_monitor_linux *m, const mon_default *d) {
  for (size_t i = 0; i < m->ndefaults; i++) {
    const mon_default *x = &m->defaults[i];
    if (x->family == d->family && x->table == d->table && x->oif == d->oif &&
        x->priority == d->priority && t2s_addr_ip_eq(&x->gateway, &d->gateway)) {
      return (int)i;
    }
  }
  return -1;
}

static bool any_default(const t2s_monitor_linux *m, uint8_t family) {
  for (size_t i = 0; i < m->ndefaults; i++) {
    if (m->defaults[i].family == family) {
      return true;
    }
  }
  return false;
}

/* ---------------- translation ---------------- */

static void deliver(t2s_monitor_linux *m, t2s_net_event *ev, int *pcount) {
  if (ev->ifindex && !ev->ifname[0]) {
    ifname_of(m, ev->ifindex, ev->ifname);
  }
  (*pcount)++;
  if (m->cb) {
    m->cb(m->cb_arg, ev);
  }
}

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

static bool get_ip(const struct nlattr *attr, uint8_t family, t2s_addr *out) {
  size_t want = family == AF_INET ? 4 : 16;
  memset(out, 0, sizeof(*out));
  if (attr == NULL || mnl_attr_get_payload_len(attr) != want) {
    return false;
  }
  out->family = family == AF_INET ? T2S_AF_INET : T2S_AF_INET6;
  memcpy(out->ip, mnl_attr_get_payload(attr), want);
  return true;
}

static uint32_t get_u32(const struct nlattr *attr, uint32_t dflt) {
  return attr && mnl_attr_get_payload_len(attr) == 4 ? mnl_attr_get_u32(attr) : dflt;
}

static bool is_v6_link_local(const t2s_addr *a) {
  return a->family == T2S_AF_INET6 && a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0x80;
}

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
  if (l == NULL) {
    if (m->nlinks == MON_MAX_LINKS) {
      return;
    }
    l = &m->links[m->nlinks++];
    memset(l, 0, sizeof(*l));
    l->ifindex = ifindex;
  }
  if (a.tb[IFLA_IFNAME]) {
    snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(a.tb[IFLA_IFNAME]));
  }
  unsigned flags = ifi->ifi_flags;
  bool usable =
      (flags & IFF_UP) && (flags & (IFF_LOWER_UP | IFF_RUNNING)) && !(flags & IFF_LOOPBACK);
  if (usable == l->usable) {
    return; /* statistics, MTU, ...: not a change of reachability */
  }
  l->usable = usable;
  memcpy(ev.ifname, l->name, sizeof(ev.ifname));
  ev.type = usable ? T2S_NET_LINK_UP : T2S_NET_LINK_DOWN;
  deliver(m, &ev, pcount);
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
  int k = find_addr(m, ifa->ifa_index, &ev.addr);
  if (nlh->nlmsg_type == RTM_DELADDR) {
    if (k < 0) {
      return;
    }
    m->addrs[k] = m->addrs[--m->naddrs];
    ev.type = T2S_NET_ADDR_REMOVED;
    deliver(m, &ev, pcount);
    return;
  }
  if (flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED)) {
    return; /* not usable yet: the NEWADDR that clears the flag follows */
  }
  if (k >= 0 || m->naddrs == MON_MAX_ADDRS) {
    return; /* a lifetime refresh of an address we know */
  }
  m->addrs[m->naddrs].ifindex = ifa->ifa_index;
  m->addrs[m->naddrs].addr = ev.addr;
  m->naddrs++;
  ev.type = T2S_NET_ADDR_ADDED;
  deliver(m, &ev, pcount);
}

static void on_route(t2s_monitor_linux *m, const struct nlmsghdr *nlh, int *pcount) {
  const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
  if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) {
    return;
  }
  if (rtm->rtm_flags & RTM_F_CLONED) {
    return;
  }
  if (rtm->rtm_type != RTN_UNICAST && rtm->rtm_type != RTN_BLACKHOLE &&
      rtm->rtm_type != RTN_UNREACHABLE && rtm->rtm_type != RTN_PROHIBIT) {
    return; /* local, broadcast, multicast, anycast: follow the addresses */
  }
  attrs a;
  memset(&a, 0, sizeof(a));
  mnl_attr_parse(nlh, sizeof(*rtm), attr_cb, &a);
  uint32_t table = get_u32(a.tb[RTA_TABLE], rtm->rtm_table);
  if (table == RT_TABLE_LOCAL) {
    return;
  }
  uint32_t oif = get_u32(a.tb[RTA_OIF], 0);
  if (oif != 0 && oif == m->cfg.ignore_ifindex) {
    return; /* routes into our own TUN are how traffic reaches us, not the way out */
  }
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.ifindex = oif;
  ev.family = rtm->rtm_family == AF_INET ? T2S_AF_INET : T2S_AF_INET6;
  bool del = nlh->nlmsg_type == RTM_DELROUTE;
  if (rtm->rtm_dst_len != 0) {
    t2s_addr dst;
    get_ip(a.tb[RTA_DST], rtm->rtm_family, &dst);
    if (is_v6_link_local(&dst)) {
      return;
    }
    ev.type = T2S_NET_ROUTE_CHANGED;
    ev.addr = dst;
    ev.prefixlen = rtm->rtm_dst_len;
    deliver(m, &ev, pcount);
    return;
  }
  mon_default d;
  memset(&d, 0, sizeof(d));
  d.family = ev.family;
  d.table = table;
  d.oif = oif;
  d.priority = get_u32(a.tb[RTA_PRIORITY], 0);
  get_ip(a.tb[RTA_GATEWAY], rtm->rtm_family, &d.gateway);
  int k = find_default(m, &d);
  if (del) {
    if (k < 0) {
      return;
    }
    m->defaults[k] = m->defaults[--m->ndefaults];
  } else {
    if (k >= 0) {
      return; /* a replace with the same values */
    }
    if (m->ndefaults < MON_MAX_DEFAULTS) {
      m->defaults[m->ndefaults++] = d;
    }
  }
  ev.type = T2S_NET_DEFAULT_ROUTE_CHANGED;
  ev.addr = d.gateway;
  ev.removed = !any_default(m, d.family);
  deliver(m, &ev, pcount);
}

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

/* ---------------- sockets ---------------- */

/* One dump (RTM_GETLINK, RTM_GETADDR or RTM_GETROUTE) on its own socket, fed as it arrives. */
static int dump(t2s_monitor_linux *m, uint16_t type) {
  struct mnl_socket *nl = t2s_nl_socket_open(0, 0);
  if (!nl) {
    return -errno;
  }
  int rv = 0;
  char req[1024];
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  nlh->nlmsg_seq = (unsigned)time(NULL);
  struct rtgenmsg *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
  g->rtgen_family = AF_UNSPEC;
  if (type == RTM_GETROUTE) {
    /* A full rtmsg: some kernels read beyond rtgenmsg for route dumps. */
    nlh->nlmsg_len = mnl_nlmsg_size(sizeof(struct rtmsg));
    memset(g, 0, sizeof(struct rtmsg));
  }
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
    rv = -errno;
    goto out;
  }
  unsigned portid = mnl_socket_get_portid(nl);
  for (int rounds = 0; rounds < DUMP_ROUNDS; rounds++) {
    ssize_t n = mnl_socket_recvfrom(nl, m->buf, sizeof(m->buf));
    if (n < 0) {
      rv = -errno;
      goto out;
    }
    t2s_monitor_linux_feed(m, m->buf, (size_t)n);
    /* mnl_cb_run only to find the end (NLMSG_DONE) or an error. */
    int r = mnl_cb_run(m->buf, (size_t)n, nlh->nlmsg_seq, portid, NULL, NULL);
    if (r <= MNL_CB_STOP) {
      rv = r < 0 ? -errno : 0;
      goto out;
    }
  }
  rv = -EIO;
out:
  mnl_socket_close(nl);
  return rv;
}

static void overrun(t2s_monitor_linux *m) {
  T2S_WARN("network monitor: rtnetlink events were lost (receive buffer overrun); re-checking "
           "the routes");
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = T2S_NET_ROUTE_CHANGED;
  int count = 0;
  deliver(m, &ev, &count);
}

static void nl_readable(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_monitor_linux *m = arg;
  for (int i = 0; i < READS_PER_WAKEUP; i++) {
    ssize_t n = recv(mnl_socket_get_fd(m->nl), m->buf, sizeof(m->buf), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == ENOBUFS) {
        overrun(m);
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        T2S_WARN("network monitor: reading rtnetlink: %s", strerror(errno));
      }
      return;
    }
    if (t2s_monitor_linux_feed(m, m->buf, (size_t)n) < 0) {
      T2S_DEBUG("network monitor: a truncated rtnetlink message");
    }
  }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_monitor_linux *m = arg;
  const t2s_clock *c = m->cfg.clock;
  t2s_tstamp mono = c->ops->now(c->self);
  t2s_tstamp boot = c->ops->boottime(c->self);
  t2s_tstamp slept = t2s_sleep_detector_check(&m->sleep, mono, boot);
  if (slept) {
    t2s_net_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = T2S_NET_RESUMED;
    ev.slept_ns = slept;
    int count = 0;
    deliver(m, &ev, &count);
  }
}

static int mon_start(void *self, t2s_net_event_cb cb, void *arg) {
  t2s_monitor_linux *m = self;
  m->cb = cb;
  m->cb_arg = arg;
  if (m->base == NULL) {
    return 0;
  }
  /* Subscribe first, then dump: a change between the two shows up twice, never not at all. */
  m->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (!m->nl) {
    return -errno;
  }
  unsigned groups =
      RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
  int rcvbuf = RCVBUF_BYTES;
  setsockopt(mnl_socket_get_fd(m->nl), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  if (mnl_socket_bind(m->nl, groups, MNL_SOCKET_AUTOPID) < 0) {
    return -errno;
  }
  m->dumping = true;
  int rv = dump(m, RTM_GETLINK);
  if (rv == 0) {
    rv = dump(m, RTM_GETADDR);
  }
  if (rv == 0) {
    rv = dump(m, RTM_GETROUTE);
  }
  m->dumping = false;
  if (rv != 0) {
    return rv;
  }
  m->nl_ev = event_new(m->base, mnl_socket_get_fd(m->nl), EV_READ | EV_PERSIST, nl_readable, m);
  if (!m->nl_ev || event_add(m->nl_ev, NULL) != 0) {
    return T2S_ERR_NOMEM;
  }
  if (m->cfg.clock && m->cfg.sleep_check_interval) {
    const t2s_clock *c = m->cfg.clock;
    t2s_sleep_detector_check(&m->sleep, c->ops->now(c->self), c->ops->boottime(c->self));
    m->tick = event_new(m->base, -1, EV_PERSIST, tick_cb, m);
    uint64_t us = m->cfg.sleep_check_interval / 1000;
    struct timeval tv = {.tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000)};
    if (!m->tick || event_add(m->tick, &tv) != 0) {
      return T2S_ERR_NOMEM;
    }
  }
  return 0;
}

static void mon_stop(void *self) {
  t2s_monitor_linux *m = self;
  m->cb = NULL;
  if (m->nl_ev) {
    event_free(m->nl_ev);
    m->nl_ev = NULL;
  }
  if (m->tick) {
    event_free(m->tick);
    m->tick = NULL;
  }
  if (m->nl) {
    mnl_socket_close(m->nl);
    m->nl = NULL;
  }
}

static int mon_route_get(void *self, const t2s_addr *dst, uint32_t mark, t2s_route *out) {
  t2s_monitor_linux *m = self;
  int rv = t2s_route_query(dst, mark, out);
  if (rv == 0 && m->cfg.ignore_ifindex && out->ifindex == m->cfg.ignore_ifindex) {
    char b[64];
    T2S_WARN("the route to the proxy %s goes through our own TUN %s (a loop): treated as no "
             "route; add a route to the proxy through the real interface, or use --fwmark",
             t2s_addr_format(dst, false, b, sizeof(b)), out->ifname);
    return T2S_ERR_UNREACHABLE;
  }
  return rv;
}

static const t2s_monitor_ops monitor_linux_ops = {
    .start = mon_start,
    .stop = mon_stop,
    .route_get = mon_route_get,
};

int t2s_monitor_linux_new(t2s_monitor_linux **pm, struct event_base *base,
                          const t2s_monitor_linux_config *cfg) {
  t2s_monitor_linux *m = calloc(1, sizeof(*m));
  if (!m) {
    return T2S_ERR_NOMEM;
  }
  m->base = base;
  if (cfg) {
    m->cfg = *cfg;
  }
  if (m->cfg.sleep_check_interval == 0) {
    m->cfg.sleep_check_interval = T2S_SECONDS;
  }
  t2s_sleep_detector_init(&m->sleep, m->cfg.sleep_threshold);
  *pm = m;
  return 0;
}

void t2s_monitor_linux_del(t2s_monitor_linux *m) {
  if (!m) {
    return;
  }
  mon_stop(m);
  free(m);
}

void t2s_monitor_linux_ops(t2s_monitor_linux *m, t2s_monitor *out) {
  out->ops = &monitor_linux_ops;
  out->self = m;
}

bool t2s_monitor_linux_dumping(const t2s_monitor_linux *m) {
  return m->dumping;
}
