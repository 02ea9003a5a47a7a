/* test_monitor_linux.c: the Linux monitor's translation of rtnetlink messages into network
 * events (t2s_monitor_linux_feed, no socket), and the sleep detector. */
#include <libmnl/libmnl.h>
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

int t2s_test_register_monitor_linux(void) {
  CU_pSuite s = CU_add_suite("monitor_linux", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "links", test_links) ||
      !CU_add_test(s, "addresses", test_addresses) ||
      !CU_add_test(s, "default routes", test_default_routes) ||
      !CU_add_test(s, "other routes", test_other_routes) ||
      !CU_add_test(s, "truncated and batched", test_truncated_and_batched) ||
      !CU_add_test(s, "sleep detector", test_sleep_detector)) {
    return -1;
  }
  return 0;
}
