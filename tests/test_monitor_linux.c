/* test_monitor_linux.c: the Linux monitor's translation of rtnetlink messages into network
 * events (t2s_monitor_linux_feed, no socket), and the sleep detector. */
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>

#include "monitor_linux.h"
#include "test_util.h"

#define TUN_IFINDEX 9

typedef struct got {
  t2s_net_event ev[16];
  size_t n;
} got;

static void collect(void *arg, const t2s_net_event *ev) {
  got *g = arg;
  if (g->n < 16) {
    g->ev[g->n++] = *ev;
  }
}

typedef struct fixture {
  t2s_monitor_linux *m;
  t2s_monitor ops;
  got g;
  char buf[4096];
} fixture;

static void fx_init(fixture *f) {
  memset(f, 0, sizeof(*f));
  t2s_monitor_linux_config cfg = {.ignore_ifindex = TUN_IFINDEX};
  CU_ASSERT_FATAL(t2s_monitor_linux_new(&f->m, NULL, &cfg) == 0);
  t2s_monitor_linux_ops(f->m, &f->ops);
  CU_ASSERT_FATAL(f->ops.ops->start(f->ops.self, collect, &f->g) == 0);
}

static void fx_free(fixture *f) {
  t2s_monitor_linux_del(f->m);
}

/* Feeds one message and returns how many events it produced (the events land in f->g). */
static int feed(fixture *f, struct nlmsghdr *nlh) {
  f->g.n = 0;
  return t2s_monitor_linux_feed(f->m, nlh, nlh->nlmsg_len);
}

static struct nlmsghdr *link_msg(fixture *f, uint16_t type, int ifindex, const char *name,
                                 unsigned flags) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(f->buf);
  nlh->nlmsg_type = type;
  struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = ifindex;
  ifi->ifi_flags = flags;
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
  return nlh;
}

static struct nlmsghdr *addr_msg(fixture *f, uint16_t type, int ifindex, const char *ip,
                                 uint8_t prefixlen, uint32_t flags) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(f->buf);
  nlh->nlmsg_type = type;
  struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
  t2s_addr a;
  CU_ASSERT_FATAL(t2s_addr_parse(ip, &a) == 0);
  ifa->ifa_family = a.family == T2S_AF_INET ? AF_INET : AF_INET6;
  ifa->ifa_prefixlen = prefixlen;
  ifa->ifa_index = (unsigned)ifindex;
  ifa->ifa_flags = (uint8_t)flags;
  size_t n = a.family == T2S_AF_INET ? 4 : 16;
  mnl_attr_put(nlh, a.family == T2S_AF_INET ? IFA_LOCAL : IFA_ADDRESS, n, a.ip);
  mnl_attr_put_u32(nlh, IFA_FLAGS, flags);
  return nlh;
}

/* A route: dst NULL = default. */
static struct nlmsghdr *route_msg(fixture *f, uint16_t type, uint8_t family, const char *dst,
                                  uint8_t dst_len, const char *gw, int oif, uint32_t table,
                                  uint8_t rtype) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(f->buf);
  nlh->nlmsg_type = type;
  struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
  rtm->rtm_family = family == T2S_AF_INET ? AF_INET : AF_INET6;
  rtm->rtm_dst_len = dst_len;
  rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
  rtm->rtm_type = rtype;
  rtm->rtm_protocol = RTPROT_STATIC;
  size_t n = family == T2S_AF_INET ? 4 : 16;
  t2s_addr a;
  if (dst) {
    CU_ASSERT_FATAL(t2s_addr_parse(dst, &a) == 0);
    mnl_attr_put(nlh, RTA_DST, n, a.ip);
  }
  if (gw) {
    CU_ASSERT_FATAL(t2s_addr_parse(gw, &a) == 0);
    mnl_attr_put(nlh, RTA_GATEWAY, n, a.ip);
  }
  if (oif) {
    mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)oif);
  }
  mnl_attr_put_u32(nlh, RTA_TABLE, table);
  return nlh;
}

#define UP_RUNNING (IFF_UP | IFF_RUNNING | IFF_LOWER_UP)

static void test_links(void) {
  fixture f;
  fx_init(&f);
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, 3, "eth0", UP_RUNNING)), 1);
  CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_LINK_UP);
  CU_ASSERT_EQUAL(f.g.ev[0].ifindex, 3);
  CU_ASSERT_STRING_EQUAL(f.g.ev[0].ifname, "eth0");
  /* The same state again (statistics, MTU): nothing. */
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, 3, "eth0", UP_RUNNING)), 0);
  /* Carrier lost while administratively up: down. */
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, 3, "eth0", IFF_UP)), 1);
  CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_LINK_DOWN);
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, 3, "eth0", UP_RUNNING)), 1);
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_DELLINK, 3, "eth0", UP_RUNNING)), 1);
  CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_LINK_DOWN);
  /* A link that appears down: nothing to say. Loopback: never counted. Our TUN: ignored. */
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, 4, "wlan0", 0)), 0);
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, 1, "lo", UP_RUNNING | IFF_LOOPBACK)), 0);
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, TUN_IFINDEX, "t2s0", UP_RUNNING)), 0);
  fx_free(&f);
}

static void test_addresses(void) {
  fixture f;
  fx_init(&f);
  feed(&f, link_msg(&f, RTM_NEWLINK, 3, "eth0", UP_RUNNING));
  CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, 3, "198.51.100.10", 24, 0)), 1);
  CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ADDR_ADDED);
  CU_ASSERT_EQUAL(f.g.ev[0].prefixlen, 24);
  CU_ASSERT_EQUAL(f.g.ev[0].family, T2S_AF_INET);
  CU_ASSERT_STRING_EQUAL(f.g.ev[0].ifname, "eth0");
  /* A lifetime refresh of the same address: nothing. */
  CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, 3, "198.51.100.10", 24, 0)), 0);
  /* IPv6: tentative first (nothing), then usable (added); link-local never. */
  CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, 3, "2001:db8::10", 64, IFA_F_TENTATIVE)), 0);
  CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, 3, "2001:db8::10", 64, 0)), 1);
  CU_ASSERT_EQUAL(f.g.ev[0].family, T2S_AF_INET6);
  CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, 3, "fe80::1", 64, 0)), 0);
  CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_DELADDR, 3, "198.51.100.10", 24, 0)), 1);
  CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ADDR_REMOVED);
  /* Removing what we never saw, and our TUN's addresses: nothing. */
  CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_DELADDR, 3, "198.51.100.77", 24, 0)), 0);
  CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, TUN_IFINDEX, "198.18.0.1", 15, 0)), 0);
  fx_free(&f);
}

static void test_default_routes(void) {
  fixture f;
  fx_init(&f);
  feed(&f, link_msg(&f, RTM_NEWLINK, 3, "eth0", UP_RUNNING));
  feed(&f, link_msg(&f, RTM_NEWLINK, 4, "wlan0", UP_RUNNING));
  CU_ASSERT_EQUAL(feed(&f, route_msg(&f, RTM_NEWROUTE, T2S_AF_INET, NULL, 0, "198.51.100.1", 3,
                                     RT_TABLE_MAIN, RTN_UNICAST)),
                  1);
  t2s_net_event *ev = &f.g.ev[0];
  CU_ASSERT_EQUAL(ev->type, T2S_NET_DEFAULT_ROUTE_CHANGED);
  CU_ASSERT_EQUAL(ev->family, T2S_AF_INET);
  CU_ASSERT_FALSE(ev->removed);
  CU_ASSERT_EQUAL(ev->ifindex, 3);
  CU_ASSERT_STRING_EQUAL(ev->ifname, "eth0");
  t2s_addr gw;
  t2s_addr_parse("198.51.100.1", &gw);
  CU_ASSERT(t2s_addr_ip_eq(&ev->addr, &gw));
  /* The same route replaced with the same values: nothing. */
  CU_ASSERT_EQUAL(feed(&f, route_msg(&f, RTM_NEWROUTE, T2S_AF_INET, NULL, 0, "198.51.100.1", 3,
                                     RT_TABLE_MAIN, RTN_UNICAST)),
                  0);
  /* A second default (another table), then the first removed: one is left. */
  feed(&f, route_msg(&f, RTM_NEWROUTE, T2S_AF_INET, NULL, 0, "192.0.2.1", 4, 100, RTN_UNICAST));
  CU_ASSERT_EQUAL(feed(&f, route_msg(&f, RTM_DELROUTE, T2S_AF_INET, NULL, 0, "198.51.100.1", 3,
                                     RT_TABLE_MAIN, RTN_UNICAST)),
                  1);
  CU_ASSERT_FALSE(f.g.ev[0].removed);
  CU_ASSERT_EQUAL(
      feed(&f, route_msg(&f, RTM_DELROUTE, T2S_AF_INET, NULL, 0, "192.0.2.1", 4, 100, RTN_UNICAST)),
      1);
  CU_ASSERT_TRUE(f.g.ev[0].removed);
  /* IPv6 defaults are a family of their own. */
  CU_ASSERT_EQUAL(feed(&f, route_msg(&f, RTM_NEWROUTE, T2S_AF_INET6, NULL, 0, "fe80::1", 4,
                                     RT_TABLE_MAIN, RTN_UNICAST)),
                  1);
  CU_ASSERT_EQUAL(f.g.ev[0].family, T2S_AF_INET6);
  CU_ASSERT_FALSE(f.g.ev[0].removed);
  /* A default route through our own TUN (how traffic reaches us): ignored. */
  CU_ASSERT_EQUAL(feed(&f, route_msg(&f, RTM_NEWROUTE, T2S_AF_INET, NULL, 0, NULL, TUN_IFINDEX,
                                     2022, RTN_UNICAST)),
                  0);
  fx_free(&f);
}

static void test_other_routes(void) {
  fixture f;
  fx_init(&f);
  CU_ASSERT_EQUAL(feed(&f, route_msg(&f, RTM_NEWROUTE, T2S_AF_INET, "10.1.0.0", 16, "198.51.100.1",
                                     3, RT_TABLE_MAIN, RTN_UNICAST)),
                  1);
  CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ROUTE_CHANGED);
  CU_ASSERT_EQUAL(f.g.ev[0].prefixlen, 16);
  CU_ASSERT_EQUAL(feed(&f, route_msg(&f, RTM_NEWROUTE, T2S_AF_INET, "10.2.0.0", 16, NULL, 0,
                                     RT_TABLE_MAIN, RTN_BLACKHOLE)),
                  1);
  /* The local table, broadcast and multicast routes, IPv6 link-local prefixes: ignored. */
  static const struct {
    uint8_t family;
    const char *dst;
    uint8_t dst_len;
    uint32_t table;
    uint8_t rtype;
  } ignored[] = {
      {T2S_AF_INET, "198.51.100.10", 32, RT_TABLE_LOCAL, RTN_LOCAL},
      {T2S_AF_INET, "198.51.100.255", 32, RT_TABLE_MAIN, RTN_BROADCAST},
      {T2S_AF_INET, "224.0.0.0", 4, RT_TABLE_MAIN, RTN_MULTICAST},
      {T2S_AF_INET6, "fe80::", 64, RT_TABLE_MAIN, RTN_UNICAST},
  };
  for (size_t i = 0; i < T2S_ARRAY_LEN(ignored); i++) {
    CU_ASSERT_EQUAL(
        feed(&f, route_msg(&f, RTM_NEWROUTE, ignored[i].family, ignored[i].dst, ignored[i].dst_len,
                           NULL, 3, ignored[i].table, ignored[i].rtype)),
        0);
  }
  fx_free(&f);
}

static void test_truncated_and_batched(void) {
  fixture f;
  fx_init(&f);
  /* Two messages in one buffer: both translated. */
  char two[8192];
  struct nlmsghdr *a = link_msg(&f, RTM_NEWLINK, 3, "eth0", UP_RUNNING);
  size_t alen = a->nlmsg_len;
  memcpy(two, a, alen);
  struct nlmsghdr *b = addr_msg(&f, RTM_NEWADDR, 3, "198.51.100.10", 24, 0);
  memcpy(two + MNL_ALIGN(alen), b, b->nlmsg_len);
  f.g.n = 0;
  CU_ASSERT_EQUAL(t2s_monitor_linux_feed(f.m, two, MNL_ALIGN(alen) + b->nlmsg_len), 2);
  /* A message cut short, and one whose payload is smaller than its header struct. */
  struct nlmsghdr *c = link_msg(&f, RTM_NEWLINK, 4, "wlan0", UP_RUNNING);
  CU_ASSERT(t2s_monitor_linux_feed(f.m, c, c->nlmsg_len - 4) < 0);
  struct nlmsghdr *d = mnl_nlmsg_put_header(f.buf);
  d->nlmsg_type = RTM_NEWROUTE;
  mnl_nlmsg_put_extra_header(d, 4);
  CU_ASSERT_EQUAL(t2s_monitor_linux_feed(f.m, d, d->nlmsg_len), T2S_ERR_MALFORMED);
  fx_free(&f);
}

static void test_sleep_detector(void) {
  t2s_sleep_detector d;
  t2s_sleep_detector_init(&d, 2 * T2S_SECONDS);
  t2s_tstamp mono = 100 * T2S_SECONDS, boot = 150 * T2S_SECONDS;
  CU_ASSERT_EQUAL(t2s_sleep_detector_check(&d, mono, boot), 0); /* first reading: the base */
  mono += T2S_SECONDS;
  boot += T2S_SECONDS;
  CU_ASSERT_EQUAL(t2s_sleep_detector_check(&d, mono, boot), 0); /* awake: both moved alike */
  mono += T2S_SECONDS;
  boot += T2S_SECONDS + 1500 * T2S_MILLISECONDS; /* a 1.5 s gap: below the threshold */
  CU_ASSERT_EQUAL(t2s_sleep_detector_check(&d, mono, boot), 0);
  mono += T2S_SECONDS;
  boot += T2S_SECONDS + 30 * T2S_SECONDS; /* slept 30 s */
  CU_ASSERT_EQUAL(t2s_sleep_detector_check(&d, mono, boot), 30 * T2S_SECONDS);
  mono += T2S_SECONDS;
  boot += T2S_SECONDS;
  CU_ASSERT_EQUAL(t2s_sleep_detector_check(&d, mono, boot), 0); /* reported once */
  boot -= 10 * T2S_SECONDS; /* a test hook lowering its offset: re-based, no event */
  CU_ASSERT_EQUAL(t2s_sleep_detector_check(&d, mono, boot), 0);
  boot += 7200 * T2S_SECONDS;
  CU_ASSERT_EQUAL(t2s_sleep_detector_check(&d, mono, boot), 7200 * T2S_SECONDS);
}

/* A default route with flags (NLM_F_REPLACE, NLM_F_APPEND, ...) and a priority (metric). */
static struct nlmsghdr *default_msg(fixture *f, uint16_t type, uint16_t flags, const char *gw,
                                    int oif, uint32_t table, uint32_t priority) {
  struct nlmsghdr *nlh = route_msg(f, type, T2S_AF_INET, NULL, 0, gw, oif, table, RTN_UNICAST);
  nlh->nlmsg_flags = flags;
  if (priority) {
    mnl_attr_put_u32(nlh, RTA_PRIORITY, priority);
  }
  return nlh;
}

/* `ip route replace default via ...` flipping between two uplinks, A -> B -> A -> B: one
 * NEWROUTE with NLM_F_REPLACE each time, no DELROUTE. Every flip is a change. */
static void test_replace_flips(void) {
  fixture f;
  fx_init(&f);
  feed(&f, link_msg(&f, RTM_NEWLINK, 3, "eth0", UP_RUNNING));
  feed(&f, link_msg(&f, RTM_NEWLINK, 4, "wlan0", UP_RUNNING));
  CU_ASSERT_EQUAL(feed(&f, default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, "198.51.100.1",
                                       3, RT_TABLE_MAIN, 0)),
                  1);
  for (int i = 0; i < 4; i++) {
    bool to_b = i % 2 == 0;
    CU_ASSERT_EQUAL(
        feed(&f, default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE,
                             to_b ? "192.0.2.1" : "198.51.100.1", to_b ? 4 : 3, RT_TABLE_MAIN, 0)),
        1);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_DEFAULT_ROUTE_CHANGED);
    CU_ASSERT_EQUAL(f.g.ev[0].ifindex, to_b ? 4u : 3u);
    CU_ASSERT_FALSE(f.g.ev[0].removed);
  }
  fx_free(&f);
}

#define GW_A "198.51.100.1"
#define GW_B "192.0.2.1"
#define IF_A 3
#define IF_B 4

/* eth0 (A) and wlan0 (B), both up; the fixture ready for default-route tests. */
static void fx_two_links(fixture *f) {
  fx_init(f);
  feed(f, link_msg(f, RTM_NEWLINK, IF_A, "eth0", UP_RUNNING));
  feed(f, link_msg(f, RTM_NEWLINK, IF_B, "wlan0", UP_RUNNING));
}

/* Feeds msg and checks it produced exactly one DEFAULT_ROUTE_CHANGED naming ifindex (0: the
 * default route is gone). */
static void expect_default(fixture *f, struct nlmsghdr *msg, uint32_t ifindex) {
  CU_ASSERT_EQUAL(feed(f, msg), 1);
  CU_ASSERT_EQUAL(f->g.ev[0].type, T2S_NET_DEFAULT_ROUTE_CHANGED);
  CU_ASSERT_EQUAL(f->g.ev[0].ifindex, ifindex);
  CU_ASSERT_EQUAL(f->g.ev[0].removed, ifindex == 0);
}

/* A default route over several nexthops (RTA_MULTIPATH, no RTA_OIF), as `ip route replace
 * default nexthop via A dev eth0 nexthop via B dev wlan0` sends it. */
static struct nlmsghdr *multipath_msg(fixture *f, uint16_t type, uint16_t flags,
                                      const char *const *gws, const int *oifs, size_t n) {
  struct nlmsghdr *nlh =
      route_msg(f, type, T2S_AF_INET, NULL, 0, NULL, 0, RT_TABLE_MAIN, RTN_UNICAST);
  nlh->nlmsg_flags = flags;
  struct nlattr *mp = mnl_attr_nest_start(nlh, RTA_MULTIPATH);
  for (size_t i = 0; i < n; i++) {
    struct rtnexthop *nh = mnl_nlmsg_get_payload_tail(nlh);
    size_t at = nlh->nlmsg_len;
    nlh->nlmsg_len += RTNH_ALIGN(sizeof(*nh));
    memset(nh, 0, sizeof(*nh));
    nh->rtnh_ifindex = oifs[i];
    t2s_addr a;
    CU_ASSERT_FATAL(t2s_addr_parse(gws[i], &a) == 0);
    mnl_attr_put(nlh, RTA_GATEWAY, 4, a.ip);
    nh->rtnh_len = (unsigned short)(nlh->nlmsg_len - at);
  }
  mnl_attr_nest_end(nlh, mp);
  return nlh;
}

/* NetworkManager's way: the new default with a lower metric, then the old one deleted. */
static void test_add_delete_flips(void) {
  fixture f;
  fx_two_links(&f);
  uint32_t metric = 100;
  expect_default(
      &f,
      default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, GW_A, IF_A, RT_TABLE_MAIN, metric),
      IF_A);
  for (int i = 0; i < 4; i++) {
    bool to_b = i % 2 == 0;
    expect_default(&f,
                   default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, to_b ? GW_B : GW_A,
                               to_b ? IF_B : IF_A, RT_TABLE_MAIN, metric - 1),
                   to_b ? IF_B : IF_A);
    expect_default(&f,
                   default_msg(&f, RTM_DELROUTE, 0, to_b ? GW_A : GW_B, to_b ? IF_A : IF_B,
                               RT_TABLE_MAIN, metric),
                   to_b ? IF_B : IF_A);
    metric--;
  }
  /* The last one deleted: no default route left. */
  expect_default(&f, default_msg(&f, RTM_DELROUTE, 0, GW_B, IF_B, RT_TABLE_MAIN, metric), 0);
  fx_free(&f);
}

/* `ip route change` (NLM_F_REPLACE without NLM_F_CREATE), `ip route append` (NLM_F_APPEND: a
 * second route under the same key) and its removal, A -> B -> A -> B. */
static void test_change_and_append(void) {
  fixture f;
  fx_two_links(&f);
  expect_default(
      &f, default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, GW_A, IF_A, RT_TABLE_MAIN, 0),
      IF_A);
  for (int i = 0; i < 4; i++) {
    bool to_b = i % 2 == 0;
    expect_default(&f,
                   default_msg(&f, RTM_NEWROUTE, NLM_F_REPLACE, to_b ? GW_B : GW_A,
                               to_b ? IF_B : IF_A, RT_TABLE_MAIN, 0),
                   to_b ? IF_B : IF_A);
  }
  /* Now A. Append B under the same key, remove it, again: each is an event; the route that
   * counts stays A's (the first). */
  for (int i = 0; i < 4; i++) {
    expect_default(
        &f,
        default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_APPEND, GW_B, IF_B, RT_TABLE_MAIN, 0),
        IF_A);
    expect_default(&f, default_msg(&f, RTM_DELROUTE, 0, GW_B, IF_B, RT_TABLE_MAIN, 0), IF_A);
  }
  /* Two routes under the key: the same values replaced are not proof of nothing (which one
   * did the kernel replace?): an event each time. */
  feed(&f,
       default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_APPEND, GW_B, IF_B, RT_TABLE_MAIN, 0));
  for (int i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL(
        feed(&f, default_msg(&f, RTM_NEWROUTE, NLM_F_REPLACE, GW_A, IF_A, RT_TABLE_MAIN, 0)), 1);
  }
  /* One route left under it: the same values again are a refresh (a DHCP renewal): none. */
  expect_default(&f, default_msg(&f, RTM_DELROUTE, 0, GW_B, IF_B, RT_TABLE_MAIN, 0), IF_A);
  CU_ASSERT_EQUAL(
      feed(&f, default_msg(&f, RTM_NEWROUTE, NLM_F_REPLACE, GW_A, IF_A, RT_TABLE_MAIN, 0)), 0);
  fx_free(&f);
}

/* A multipath default route (RTA_MULTIPATH, no RTA_OIF) losing a nexthop and getting it back,
 * repeatedly; the same multipath route told again is a refresh. */
static void test_multipath_default(void) {
  fixture f;
  fx_two_links(&f);
  static const char *const gws[] = {GW_A, GW_B};
  static const int oifs[] = {IF_A, IF_B};
  expect_default(&f, multipath_msg(&f, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, gws, oifs, 2),
                 IF_A);
  CU_ASSERT(t2s_addr_ip_eq(&f.g.ev[0].addr, &(t2s_addr){0}) == false);
  CU_ASSERT_EQUAL(feed(&f, multipath_msg(&f, RTM_NEWROUTE, NLM_F_REPLACE, gws, oifs, 2)), 0);
  for (int i = 0; i < 4; i++) {
    /* Loses A (only B left), then both again. */
    expect_default(&f, multipath_msg(&f, RTM_NEWROUTE, NLM_F_REPLACE, gws + 1, oifs + 1, 1), IF_B);
    expect_default(&f, multipath_msg(&f, RTM_NEWROUTE, NLM_F_REPLACE, gws, oifs, 2), IF_A);
  }
  /* Loses B: the route's first nexthop is still A, and it is still an event. */
  expect_default(&f, multipath_msg(&f, RTM_NEWROUTE, NLM_F_REPLACE, gws, oifs, 1), IF_A);
  /* The link of a nexthop goes down: the route is unsure; the same route told again is news. */
  feed(&f, link_msg(&f, RTM_NEWLINK, IF_A, "eth0", IFF_UP));
  CU_ASSERT_EQUAL(feed(&f, multipath_msg(&f, RTM_NEWROUTE, NLM_F_REPLACE, gws, oifs, 1)), 1);
  fx_free(&f);
}

/* Routes in other tables (policy routing: the route to the proxy may live there) are events,
 * flipped repeatedly; the default that counts stays main's. Our own --auto-route table is not. */
static void test_other_tables(void) {
  fixture f;
  fx_init(&f);
  feed(&f, link_msg(&f, RTM_NEWLINK, IF_A, "eth0", UP_RUNNING));
  feed(&f, link_msg(&f, RTM_NEWLINK, IF_B, "wlan0", UP_RUNNING));
  expect_default(&f, default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE, GW_A, IF_A, RT_TABLE_MAIN, 0),
                 IF_A);
  for (int i = 0; i < 4; i++) {
    bool b = i % 2 == 0;
    expect_default(&f,
                   default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, b ? GW_B : GW_A,
                               b ? IF_B : IF_A, 100, 0),
                   IF_A);
  }
  /* 10.0.0.0/8 in table 100, replaced back and forth. */
  for (int i = 0; i < 4; i++) {
    struct nlmsghdr *nlh = route_msg(&f, RTM_NEWROUTE, T2S_AF_INET, "10.0.0.0", 8,
                                     i % 2 ? GW_A : GW_B, i % 2 ? IF_A : IF_B, 100, RTN_UNICAST);
    nlh->nlmsg_flags = NLM_F_REPLACE;
    CU_ASSERT_EQUAL(feed(&f, nlh), 1);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ROUTE_CHANGED);
  }
  fx_free(&f);
}

/* A policy rule, as `ip rule add/del` sends it. */
static struct nlmsghdr *rule_msg(fixture *f, uint16_t type, uint8_t family, uint32_t prio,
                                 uint32_t table, uint32_t fwmark, bool invert) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(f->buf);
  nlh->nlmsg_type = type;
  struct fib_rule_hdr *frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
  frh->family = family;
  frh->action = FR_ACT_TO_TBL;
  frh->table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
  frh->flags = invert ? FIB_RULE_INVERT : 0;
  mnl_attr_put_u32(nlh, FRA_PRIORITY, prio);
  mnl_attr_put_u32(nlh, FRA_TABLE, table);
  if (fwmark) {
    mnl_attr_put_u32(nlh, FRA_FWMARK, fwmark);
    mnl_attr_put_u32(nlh, FRA_FWMASK, 0xffffffffu);
  }
  return nlh;
}

static void fx_init_autoroute(fixture *f) {
  memset(f, 0, sizeof(*f));
  t2s_monitor_linux_config cfg = {
      .ignore_ifindex = TUN_IFINDEX, .own_table = 2022, .own_priority = 9000};
  CU_ASSERT_FATAL(t2s_monitor_linux_new(&f->m, NULL, &cfg) == 0);
  t2s_monitor_linux_ops(f->m, &f->ops);
  CU_ASSERT_FATAL(f->ops.ops->start(f->ops.self, collect, &f->g) == 0);
}

/* wg-quick's rule (`ip rule add priority 100 not fwmark 0x1234 table 100`) added and removed,
 * IPv4 and IPv6, four times each: every one an event. Our own --auto-route rules (priorities
 * 9000..9009, or a lookup of table 2022) and routes of table 2022: none. */
static void test_rules(void) {
  fixture f;
  fx_init_autoroute(&f);
  for (int i = 0; i < 4; i++) {
    uint8_t fam = i < 2 ? AF_INET : AF_INET6;
    CU_ASSERT_EQUAL(feed(&f, rule_msg(&f, RTM_NEWRULE, fam, 100, 100, 0x1234, true)), 1);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ROUTE_CHANGED);
    CU_ASSERT_EQUAL(f.g.ev[0].family, fam == AF_INET ? T2S_AF_INET : T2S_AF_INET6);
    CU_ASSERT_EQUAL(feed(&f, rule_msg(&f, RTM_DELRULE, fam, 100, 100, 0x1234, true)), 1);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ROUTE_CHANGED);
  }
  /* A rule to main (Tailscale's `lookup main suppress_prefixlength 0` shape): an event. */
  CU_ASSERT_EQUAL(feed(&f, rule_msg(&f, RTM_NEWRULE, AF_INET, 5210, RT_TABLE_MAIN, 0, false)), 1);
  /* Ours: nothing. */
  CU_ASSERT_EQUAL(feed(&f, rule_msg(&f, RTM_NEWRULE, AF_INET, 9000, RT_TABLE_MAIN, 0x2022, 0)), 0);
  CU_ASSERT_EQUAL(feed(&f, rule_msg(&f, RTM_NEWRULE, AF_INET6, 9009, 0, 0, false)), 0);
  CU_ASSERT_EQUAL(feed(&f, rule_msg(&f, RTM_NEWRULE, AF_INET, 1234, 2022, 0, false)), 0);
  CU_ASSERT_EQUAL(feed(&f, rule_msg(&f, RTM_DELRULE, AF_INET, 9003, 2022, 0, false)), 0);
  CU_ASSERT_EQUAL(feed(&f, default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE, GW_B, IF_B, 2022, 0)), 0);
  /* Just beside our range: not ours. */
  CU_ASSERT_EQUAL(feed(&f, rule_msg(&f, RTM_NEWRULE, AF_INET, 9010, 100, 0, false)), 1);
  CU_ASSERT_EQUAL(feed(&f, rule_msg(&f, RTM_NEWRULE, AF_INET, 8999, 100, 0, false)), 1);
  fx_free(&f);
  /* Without --auto-route nothing is ours. */
  fx_init(&f);
  CU_ASSERT_EQUAL(feed(&f, rule_msg(&f, RTM_NEWRULE, AF_INET, 9000, 2022, 0, false)), 1);
  fx_free(&f);
}

/* The kernel drops the routes through a link that goes administratively down, or away, or
 * loses its last IPv4 address, without a DELROUTE: the same route added again afterwards is a
 * change, every time. */
static void test_silent_route_loss(void) {
  fixture f;
  fx_two_links(&f);
  for (int i = 0; i < 4; i++) {
    expect_default(
        &f,
        default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, GW_A, IF_A, RT_TABLE_MAIN, 100),
        IF_A);
    /* Down: LINK_DOWN, and the default route it took with it (none left). */
    CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, IF_A, "eth0", 0)), 2);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_DEFAULT_ROUTE_CHANGED);
    CU_ASSERT_TRUE(f.g.ev[0].removed);
    CU_ASSERT_EQUAL(f.g.ev[1].type, T2S_NET_LINK_DOWN);
    CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, IF_A, "eth0", UP_RUNNING)), 1);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_LINK_UP);
  }
  /* Its last IPv4 address flushed: the routes through it went too. */
  feed(&f, addr_msg(&f, RTM_NEWADDR, IF_A, "198.51.100.10", 24, 0));
  for (int i = 0; i < 4; i++) {
    expect_default(
        &f,
        default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, GW_A, IF_A, RT_TABLE_MAIN, 100),
        IF_A);
    CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_DELADDR, IF_A, "198.51.100.10", 24, 0)), 2);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ADDR_REMOVED);
    CU_ASSERT_EQUAL(f.g.ev[1].type, T2S_NET_DEFAULT_ROUTE_CHANGED);
    CU_ASSERT_TRUE(f.g.ev[1].removed);
    CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, IF_A, "198.51.100.10", 24, 0)), 1);
  }
  fx_free(&f);
}

/* A link deleted and created again under a new index (USB tethering, a VPN interface): down
 * with its addresses and routes, then up under the new index, four times; a renamed link. */
static void test_link_recreated_and_renamed(void) {
  fixture f;
  fx_init(&f);
  feed(&f, link_msg(&f, RTM_NEWLINK, IF_B, "wlan0", UP_RUNNING));
  expect_default(&f, default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE, GW_B, IF_B, RT_TABLE_MAIN, 200),
                 IF_B);
  for (int i = 0; i < 4; i++) {
    int idx = 10 + i;
    CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, idx, "usb0", UP_RUNNING)), 1);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_LINK_UP);
    CU_ASSERT_EQUAL(f.g.ev[0].ifindex, (uint32_t)idx);
    CU_ASSERT_STRING_EQUAL(f.g.ev[0].ifname, "usb0");
    CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, idx, "198.51.100.10", 24, 0)), 1);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ADDR_ADDED);
    expect_default(&f, default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE, GW_A, idx, RT_TABLE_MAIN, 100),
                   idx);
    /* Deleted without DELADDR or DELROUTE: the address, the route (back to wlan0's) and the
     * link are reported. */
    CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_DELLINK, idx, "usb0", UP_RUNNING)), 3);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ADDR_REMOVED);
    CU_ASSERT_EQUAL(f.g.ev[1].type, T2S_NET_DEFAULT_ROUTE_CHANGED);
    CU_ASSERT_EQUAL(f.g.ev[1].ifindex, IF_B);
    CU_ASSERT_EQUAL(f.g.ev[2].type, T2S_NET_LINK_DOWN);
    CU_ASSERT_STRING_EQUAL(f.g.ev[2].ifname, "usb0");
  }
  /* Renamed while up: reported under its new name; the same name again: nothing. */
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, IF_B, "wlan1", UP_RUNNING)), 1);
  CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_LINK_UP);
  CU_ASSERT_STRING_EQUAL(f.g.ev[0].ifname, "wlan1");
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, IF_B, "wlan1", UP_RUNNING)), 0);
  /* Renamed while down: the name is kept for the LINK_UP that follows. */
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, IF_B, "wlan1", 0)), 2);
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, IF_B, "wlan2", 0)), 0);
  CU_ASSERT_EQUAL(feed(&f, link_msg(&f, RTM_NEWLINK, IF_B, "wlan2", UP_RUNNING)), 1);
  CU_ASSERT_STRING_EQUAL(f.g.ev[0].ifname, "wlan2");
  fx_free(&f);
}

/* Addresses replaced (the same values: a refresh), re-added after removal, given another
 * prefix, turning tentative again: each reported as it is, repeatedly. */
static void test_address_repeats(void) {
  fixture f;
  fx_init(&f);
  feed(&f, link_msg(&f, RTM_NEWLINK, IF_A, "eth0", UP_RUNNING));
  for (int i = 0; i < 4; i++) {
    CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, IF_A, "198.51.100.10", 24, 0)), 1);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ADDR_ADDED);
    CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, IF_A, "198.51.100.10", 24, 0)), 0);
    CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_DELADDR, IF_A, "198.51.100.10", 24, 0)), 1);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ADDR_REMOVED);
  }
  /* Another prefix length is another address. */
  CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, IF_A, "198.51.100.10", 24, 0)), 1);
  CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, IF_A, "198.51.100.10", 25, 0)), 1);
  CU_ASSERT_EQUAL(f.g.ev[0].prefixlen, 25);
  /* IPv6, known, then tentative again (DAD after a link flap): not usable, then usable. */
  for (int i = 0; i < 4; i++) {
    CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, IF_A, "2001:db8::10", 64, 0)), 1);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ADDR_ADDED);
    CU_ASSERT_EQUAL(feed(&f, addr_msg(&f, RTM_NEWADDR, IF_A, "2001:db8::10", 64, IFA_F_TENTATIVE)),
                    1);
    CU_ASSERT_EQUAL(f.g.ev[0].type, T2S_NET_ADDR_REMOVED);
  }
  fx_free(&f);
}

/* Appends msg to a dump buffer. */
static size_t put_msg(char *dump, size_t at, const struct nlmsghdr *msg) {
  memcpy(dump + at, msg, msg->nlmsg_len);
  return at + MNL_ALIGN(msg->nlmsg_len);
}

/* After an overrun the monitor re-reads everything: a resynchronisation from a dump reports
 * what changed while events were lost (the default route moved, a rule went, a link came),
 * A -> B -> A -> B, and nothing when nothing changed. */
static void test_resync(void) {
  fixture f;
  fx_two_links(&f);
  feed(&f, default_msg(&f, RTM_NEWROUTE, NLM_F_CREATE, GW_A, IF_A, RT_TABLE_MAIN, 0));
  feed(&f, rule_msg(&f, RTM_NEWRULE, AF_INET, 100, 100, 0x1234, true));
  static char dump[16384];
  for (int i = 0; i < 4; i++) {
    bool b = i % 2 == 0;
    size_t len = 0;
    len = put_msg(dump, len, link_msg(&f, RTM_NEWLINK, IF_A, "eth0", UP_RUNNING));
    len = put_msg(dump, len, link_msg(&f, RTM_NEWLINK, IF_B, "wlan0", UP_RUNNING));
    len = put_msg(dump, len,
                  default_msg(&f, RTM_NEWROUTE, NLM_F_MULTI, b ? GW_B : GW_A, b ? IF_B : IF_A,
                              RT_TABLE_MAIN, 0));
    if (!b) {
      len = put_msg(dump, len, rule_msg(&f, RTM_NEWRULE, AF_INET, 100, 100, 0x1234, true));
    }
    f.g.n = 0;
    t2s_monitor_linux_resync_begin(f.m);
    CU_ASSERT(t2s_monitor_linux_feed(f.m, dump, len) >= 0);
    /* The new default (B's or A's), the old one gone, and the rule gone or back. */
    int n = t2s_monitor_linux_resync_end(f.m);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL((int)f.g.n, n);
    bool saw_default = false, saw_rule = false;
    for (size_t k = 0; k < f.g.n; k++) {
      if (f.g.ev[k].type == T2S_NET_DEFAULT_ROUTE_CHANGED) {
        saw_default = true;
        CU_ASSERT_FALSE(f.g.ev[k].removed);
      }
      saw_rule |= f.g.ev[k].type == T2S_NET_ROUTE_CHANGED;
    }
    CU_ASSERT_TRUE(saw_default);
    CU_ASSERT_TRUE(saw_rule);
    /* The last event leaves the default that counts on the dump's route. */
    const t2s_net_event *last = NULL;
    for (size_t k = 0; k < f.g.n; k++) {
      if (f.g.ev[k].type == T2S_NET_DEFAULT_ROUTE_CHANGED) {
        last = &f.g.ev[k];
      }
    }
    CU_ASSERT_EQUAL(last ? last->ifindex : 0, b ? (uint32_t)IF_B : (uint32_t)IF_A);
    if (!b) {
      /* The same dump again: nothing changed, nothing reported. */
      f.g.n = 0;
      t2s_monitor_linux_resync_begin(f.m);
      t2s_monitor_linux_feed(f.m, dump, len);
      CU_ASSERT_EQUAL(t2s_monitor_linux_resync_end(f.m), 0);
      CU_ASSERT_EQUAL(f.g.n, 0);
    }
  }
  /* A link gone during the overrun: LINK_DOWN from the sweep. */
  size_t len = put_msg(dump, 0, link_msg(&f, RTM_NEWLINK, IF_B, "wlan0", UP_RUNNING));
  f.g.n = 0;
  t2s_monitor_linux_resync_begin(f.m);
  t2s_monitor_linux_feed(f.m, dump, len);
  CU_ASSERT(t2s_monitor_linux_resync_end(f.m) >= 2); /* eth0's route and eth0 */
  bool down = false;
  for (size_t k = 0; k < f.g.n; k++) {
    down |= f.g.ev[k].type == T2S_NET_LINK_DOWN && f.g.ev[k].ifindex == IF_A;
  }
  CU_ASSERT_TRUE(down);
  fx_free(&f);
}

int t2s_test_register_monitor_linux(void) {
  CU_pSuite s = CU_add_suite("monitor_linux", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "links", test_links) ||
      !CU_add_test(s, "addresses", test_addresses) ||
      !CU_add_test(s, "default routes", test_default_routes) ||
      !CU_add_test(s, "replace flips A B A B", test_replace_flips) ||
      !CU_add_test(s, "add/delete flips (NetworkManager)", test_add_delete_flips) ||
      !CU_add_test(s, "route change and append", test_change_and_append) ||
      !CU_add_test(s, "multipath default", test_multipath_default) ||
      !CU_add_test(s, "other tables", test_other_tables) ||
      !CU_add_test(s, "policy rules", test_rules) ||
      !CU_add_test(s, "silent route loss", test_silent_route_loss) ||
      !CU_add_test(s, "link re-created and renamed", test_link_recreated_and_renamed) ||
      !CU_add_test(s, "address repeats", test_address_repeats) ||
      !CU_add_test(s, "resync after overrun", test_resync) ||
      !CU_add_test(s, "other routes", test_other_routes) ||
      !CU_add_test(s, "truncated and batched", test_truncated_and_batched) ||
      !CU_add_test(s, "sleep detector", test_sleep_detector)) {
    return -1;
  }
  return 0;
}
