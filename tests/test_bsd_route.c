/* test_bsd_route.c: the BSD routing-socket parser (src/os/bsd_route_parse.c) on byte vectors
 * laid out as route(4) and Darwin's <net/route.h> describe them (see bsd_route_parse.h). */
#include <string.h>

#include "bsd_route_parse.h"
#include "test_util.h"

/* ---------------- building messages ---------------- */

typedef struct msgbuf {
  uint8_t b[512];
  size_t len;
} msgbuf;

static void put16(uint8_t *p, uint16_t v) {
  memcpy(p, &v, 2); /* host order, as the kernel writes it */
}

static void put32(uint8_t *p, int32_t v) {
  memcpy(p, &v, 4);
}

/* rt_msghdr: msglen, version, type, index @4, flags @8, addrs @12 (92 bytes). */
static void rt_hdr(msgbuf *m, uint8_t type, uint16_t index, int32_t flags, int32_t addrs) {
  memset(m, 0, sizeof(*m));
  m->b[2] = T2S_BSD_RTM_VERSION;
  m->b[3] = type;
  put16(m->b + 4, index);
  put32(m->b + 8, flags);
  put32(m->b + 12, addrs);
  put32(m->b + 16, 4242); /* pid */
  m->len = T2S_BSD_RT_MSGHDR_LEN;
}

/* if_msghdr / ifa_msghdr: addrs @4, flags @8, index @12. */
static void if_hdr(msgbuf *m, uint8_t type, size_t hdrlen, uint16_t index, int32_t flags,
                   int32_t addrs) {
  memset(m, 0, sizeof(*m));
  m->b[2] = T2S_BSD_RTM_VERSION;
  m->b[3] = type;
  put32(m->b + 4, addrs);
  put32(m->b + 8, flags);
  put16(m->b + 12, index);
  m->len = hdrlen;
}

static void finish(msgbuf *m) {
  put16(m->b, (uint16_t)m->len);
}

static void pad4(msgbuf *m, size_t salen) {
  m->len += salen == 0 ? 4 : (salen + 3) & ~(size_t)3;
}

static void sa_in(msgbuf *m, const char *ip) {
  uint8_t *sa = m->b + m->len;
  t2s_addr a;
  CU_ASSERT_FATAL(t2s_addr_parse(ip, &a) == 0);
  sa[0] = 16;
  sa[1] = T2S_BSD_AF_INET;
  memcpy(sa + 4, a.ip, 4);
  pad4(m, 16);
}

static void sa_in6(msgbuf *m, const char *ip, uint8_t embedded_scope) {
  uint8_t *sa = m->b + m->len;
  t2s_addr a;
  CU_ASSERT_FATAL(t2s_addr_parse(ip, &a) == 0);
  sa[0] = 28;
  sa[1] = T2S_BSD_AF_INET6;
  memcpy(sa + 8, a.ip, 16);
  sa[8 + 3] |= embedded_scope; /* KAME's scope in bytes 2-3 of a link-local address */
  pad4(m, 28);
}

/* A netmask of `salen` bytes whose mask bytes (from byte `off`) are given. */
static void sa_mask(msgbuf *m, uint8_t family, uint8_t salen, size_t off, const uint8_t *mask,
                    size_t masklen) {
  uint8_t *sa = m->b + m->len;
  sa[0] = salen;
  sa[1] = family;
  if (masklen) {
    memcpy(sa + off, mask, masklen);
  }
  pad4(m, salen);
}

/* sockaddr_dl: len, AF_LINK, index @2, type @4, nlen @5, alen @6, slen @7, data @8. */
static void sa_dl(msgbuf *m, uint16_t index, const char *name) {
  uint8_t *sa = m->b + m->len;
  size_t n = strlen(name);
  sa[0] = (uint8_t)(8 + n + 6 > 20 ? 8 + n + 6 : 20);
  sa[1] = T2S_BSD_AF_LINK;
  put16(sa + 2, index);
  sa[4] = 6; /* IFT_ETHER */
  sa[5] = (uint8_t)n;
  sa[6] = 6;
  memcpy(sa + 8, name, n);
  memset(sa + 8 + n, 0xaa, 6); /* the MAC */
  pad4(m, sa[0]);
}

static t2s_addr A(const char *s) {
  t2s_addr a;
  memset(&a, 0, sizeof(a));
  CU_ASSERT_FATAL(t2s_addr_parse(s, &a) == 0);
  return a;
}

typedef struct parsed {
  t2s_bsd_route_msg msg;
  t2s_net_event ev; /* valid when the message is an event */
} parsed;

/* Finishes m (msglen), checks that it parses whole and whether it is an event (want_ev). */
static parsed parse_ok(msgbuf *m, bool want_ev) {
  parsed r;
  memset(&r, 0xa5, sizeof(r)); /* what the parser leaves unset shows */
  finish(m);
  t2s_ssize n = t2s_bsd_route_parse(m->b, m->len, &r.msg, NULL);
  CU_ASSERT_EQUAL(n, (t2s_ssize)m->len);
  CU_ASSERT_EQUAL(t2s_bsd_route_event(&r.msg, &r.ev), want_ev);
  return r;
}

/* ---------------- tests ---------------- */

static void test_default_route_v4_added(void) {
  msgbuf m;
  rt_hdr(&m, T2S_BSD_RTM_ADD, 4, T2S_BSD_RTF_UP | T2S_BSD_RTF_GATEWAY,
         T2S_BSD_RTA_DST | T2S_BSD_RTA_GATEWAY | T2S_BSD_RTA_NETMASK);
  sa_in(&m, "0.0.0.0");
  sa_in(&m, "192.0.2.1");
  sa_mask(&m, 0, 0, 4, NULL, 0); /* sa_len 0: 4 bytes, an all-zero mask */
  CU_ASSERT_EQUAL(m.len, 92 + 16 + 16 + 4);
  parsed r = parse_ok(&m, true);
  CU_ASSERT_EQUAL(r.msg.index, 4);
  CU_ASSERT_EQUAL(r.msg.prefixlen, 0);
  CU_ASSERT_EQUAL(r.ev.type, T2S_NET_DEFAULT_ROUTE_CHANGED);
  CU_ASSERT_EQUAL(r.ev.family, T2S_AF_INET);
  CU_ASSERT_FALSE(r.ev.removed);
  CU_ASSERT_EQUAL(r.ev.ifindex, 4);
  t2s_addr gw = A("192.0.2.1");
  CU_ASSERT(t2s_addr_ip_eq(&r.ev.addr, &gw));
}

static void test_default_route_v6_deleted_scope_cleared(void) {
  msgbuf m;
  rt_hdr(&m, T2S_BSD_RTM_DELETE, 7, T2S_BSD_RTF_UP | T2S_BSD_RTF_GATEWAY,
         T2S_BSD_RTA_DST | T2S_BSD_RTA_GATEWAY | T2S_BSD_RTA_NETMASK);
  sa_in6(&m, "::", 0);
  sa_in6(&m, "fe80::1", 7);
  sa_mask(&m, T2S_BSD_AF_INET6, 0, 8, NULL, 0);
  parsed r = parse_ok(&m, true);
  CU_ASSERT_EQUAL(r.ev.type, T2S_NET_DEFAULT_ROUTE_CHANGED);
  CU_ASSERT_EQUAL(r.ev.family, T2S_AF_INET6);
  CU_ASSERT_TRUE(r.ev.removed);
  t2s_addr gw = A("fe80::1");
  CU_ASSERT(t2s_addr_ip_eq(&r.ev.addr, &gw));
}

static void test_prefix_route_short_mask_link_gateway(void) {
  msgbuf m;
  rt_hdr(&m, T2S_BSD_RTM_CHANGE, 5, T2S_BSD_RTF_UP,
         T2S_BSD_RTA_DST | T2S_BSD_RTA_GATEWAY | T2S_BSD_RTA_NETMASK);
  sa_in(&m, "10.1.0.0");
  sa_dl(&m, 5, "en0");
  static const uint8_t mask16[] = {0xff, 0xff};
  sa_mask(&m, 0xff, 6, 4, mask16, sizeof(mask16)); /* shortened: 6 bytes, family 255 */
  parsed r = parse_ok(&m, true);
  CU_ASSERT_TRUE(r.msg.gateway_is_link);
  CU_ASSERT_STRING_EQUAL(r.msg.ifname, "en0");
  CU_ASSERT_EQUAL(r.ev.type, T2S_NET_ROUTE_CHANGED);
  CU_ASSERT_EQUAL(r.ev.prefixlen, 16);
  CU_ASSERT_STRING_EQUAL(r.ev.ifname, "en0");
  t2s_addr dst = A("10.1.0.0");
  CU_ASSERT(t2s_addr_ip_eq(&r.ev.addr, &dst));
}

static void test_host_route_without_mask_is_not_default(void) {
  msgbuf m;
  rt_hdr(&m, T2S_BSD_RTM_ADD, 5, T2S_BSD_RTF_UP | T2S_BSD_RTF_HOST | T2S_BSD_RTF_GATEWAY,
         T2S_BSD_RTA_DST | T2S_BSD_RTA_GATEWAY);
  sa_in(&m, "203.0.113.7");
  sa_in(&m, "192.0.2.1");
  parsed r = parse_ok(&m, true);
  CU_ASSERT_EQUAL(r.msg.prefixlen, -1);
  CU_ASSERT_EQUAL(r.ev.type, T2S_NET_ROUTE_CHANGED);
  CU_ASSERT_EQUAL(r.ev.prefixlen, 32);
}

static void test_cloned_and_neighbour_routes_skipped(void) {
  int32_t flags[] = {T2S_BSD_RTF_UP | T2S_BSD_RTF_WASCLONED, T2S_BSD_RTF_UP | T2S_BSD_RTF_LLINFO};
  for (size_t i = 0; i < 2; i++) {
    msgbuf m;
    rt_hdr(&m, T2S_BSD_RTM_ADD, 5, flags[i], T2S_BSD_RTA_DST | T2S_BSD_RTA_GATEWAY);
    sa_in(&m, "192.0.2.99");
    sa_dl(&m, 5, "en0");
    parse_ok(&m, false);
  }
}

static void test_ifinfo_up_and_down(void) {
  int32_t flags[] = {T2S_BSD_IFF_UP | T2S_BSD_IFF_RUNNING, T2S_BSD_IFF_UP, 0};
  t2s_net_event_type want[] = {T2S_NET_LINK_UP, T2S_NET_LINK_DOWN, T2S_NET_LINK_DOWN};
  for (size_t i = 0; i < 3; i++) {
    msgbuf m;
    if_hdr(&m, T2S_BSD_RTM_IFINFO, T2S_BSD_IF_MSGHDR_LEN, 6, flags[i], T2S_BSD_RTA_IFP);
    sa_dl(&m, 6, "en1");
    parsed r = parse_ok(&m, true);
    CU_ASSERT_EQUAL(r.ev.type, want[i]);
    CU_ASSERT_EQUAL(r.ev.ifindex, 6);
    CU_ASSERT_STRING_EQUAL(r.ev.ifname, "en1");
  }
}

static void test_newaddr_v4(void) {
  msgbuf m;
  if_hdr(&m, T2S_BSD_RTM_NEWADDR, T2S_BSD_IFA_MSGHDR_LEN, 5, 0,
         T2S_BSD_RTA_NETMASK | T2S_BSD_RTA_IFP | T2S_BSD_RTA_IFA | T2S_BSD_RTA_BRD);
  static const uint8_t mask24[] = {0xff, 0xff, 0xff, 0};
  sa_mask(&m, T2S_BSD_AF_INET, 16, 4, mask24, sizeof(mask24));
  sa_dl(&m, 5, "en1");
  sa_in(&m, "192.0.2.10");
  sa_in(&m, "192.0.2.255");
  parsed r = parse_ok(&m, true);
  CU_ASSERT_EQUAL(r.ev.type, T2S_NET_ADDR_ADDED);
  CU_ASSERT_EQUAL(r.ev.family, T2S_AF_INET);
  CU_ASSERT_EQUAL(r.ev.prefixlen, 24);
  CU_ASSERT_EQUAL(r.ev.ifindex, 5);
  CU_ASSERT_STRING_EQUAL(r.ev.ifname, "en1");
  t2s_addr a = A("192.0.2.10");
  CU_ASSERT(t2s_addr_ip_eq(&r.ev.addr, &a));
}

static void test_deladdr_v6(void) {
  msgbuf m;
  if_hdr(&m, T2S_BSD_RTM_DELADDR, T2S_BSD_IFA_MSGHDR_LEN, 5, 0,
         T2S_BSD_RTA_NETMASK | T2S_BSD_RTA_IFA);
  static const uint8_t mask64[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  sa_mask(&m, T2S_BSD_AF_INET6, 16, 8, mask64, sizeof(mask64)); /* shortened to 16 bytes */
  sa_in6(&m, "2001:db8::10", 0);
  parsed r = parse_ok(&m, true);
  CU_ASSERT_EQUAL(r.ev.type, T2S_NET_ADDR_REMOVED);
  CU_ASSERT_EQUAL(r.ev.family, T2S_AF_INET6);
  CU_ASSERT_EQUAL(r.ev.prefixlen, 64);
  t2s_addr a = A("2001:db8::10");
  CU_ASSERT(t2s_addr_ip_eq(&r.ev.addr, &a));
}

static void test_newaddr_without_inet_address_is_no_event(void) {
  msgbuf m;
  if_hdr(&m, T2S_BSD_RTM_NEWADDR, T2S_BSD_IFA_MSGHDR_LEN, 5, 0, T2S_BSD_RTA_IFP);
  sa_dl(&m, 5, "en1");
  parse_ok(&m, false);
}

static void test_skipped_types_and_versions(void) {
  msgbuf m;
  rt_hdr(&m, 0x14 /* RTM_GET2 */, 1, 0, 0);
  finish(&m);
  t2s_bsd_route_msg msg;
  size_t skip = 0;
  CU_ASSERT_EQUAL(t2s_bsd_route_parse(m.b, m.len, &msg, &skip), 0);
  CU_ASSERT_EQUAL(skip, m.len);
  rt_hdr(&m, T2S_BSD_RTM_ADD, 1, 0, 0);
  m.b[2] = 4; /* an older RTM_VERSION */
  finish(&m);
  CU_ASSERT_EQUAL(t2s_bsd_route_parse(m.b, m.len, &msg, &skip), 0);
  CU_ASSERT_EQUAL(skip, m.len);
}

static void test_malformed(void) {
  t2s_bsd_route_msg msg;
  msgbuf m;
  rt_hdr(&m, T2S_BSD_RTM_ADD, 4, T2S_BSD_RTF_UP, T2S_BSD_RTA_DST | T2S_BSD_RTA_GATEWAY);
  sa_in(&m, "0.0.0.0");
  sa_in(&m, "192.0.2.1");
  finish(&m);
  /* Every truncation of the buffer is refused (msglen says more than there is). */
  for (size_t len = 0; len < m.len; len++) {
    CU_ASSERT_EQUAL(t2s_bsd_route_parse(m.b, len, &msg, NULL), T2S_ERR_MALFORMED);
  }
  /* msglen shorter than the header. */
  put16(m.b, 40);
  CU_ASSERT_EQUAL(t2s_bsd_route_parse(m.b, m.len, &msg, NULL), T2S_ERR_MALFORMED);
  /* A sockaddr that runs past msglen. */
  put16(m.b, (uint16_t)(m.len - 8));
  CU_ASSERT_EQUAL(t2s_bsd_route_parse(m.b, m.len, &msg, NULL), T2S_ERR_MALFORMED);
  /* msglen below 4. */
  put16(m.b, 2);
  CU_ASSERT_EQUAL(t2s_bsd_route_parse(m.b, m.len, &msg, NULL), T2S_ERR_MALFORMED);
}

static void test_walk_two_messages(void) {
  msgbuf a, b;
  if_hdr(&a, T2S_BSD_RTM_IFINFO, T2S_BSD_IF_MSGHDR_LEN, 6, T2S_BSD_IFF_UP | T2S_BSD_IFF_RUNNING, 0);
  finish(&a);
  rt_hdr(&b, T2S_BSD_RTM_DELETE, 6, T2S_BSD_RTF_GATEWAY,
         T2S_BSD_RTA_DST | T2S_BSD_RTA_GATEWAY | T2S_BSD_RTA_NETMASK);
  sa_in(&b, "0.0.0.0");
  sa_in(&b, "198.51.100.1");
  sa_mask(&b, 0, 0, 4, NULL, 0);
  finish(&b);
  uint8_t buf[1024];
  memcpy(buf, a.b, a.len);
  memcpy(buf + a.len, b.b, b.len);
  size_t off = 0, total = a.len + b.len;
  t2s_net_event_type got[4];
  size_t n = 0;
  while (off < total && n < 4) {
    t2s_bsd_route_msg msg;
    t2s_ssize r = t2s_bsd_route_parse(buf + off, total - off, &msg, NULL);
    CU_ASSERT_FATAL(r > 0);
    t2s_net_event ev;
    if (t2s_bsd_route_event(&msg, &ev)) {
      got[n++] = ev.type;
    }
    off += (size_t)r;
  }
  CU_ASSERT_EQUAL(n, 2);
  CU_ASSERT_EQUAL(got[0], T2S_NET_LINK_UP);
  CU_ASSERT_EQUAL(got[1], T2S_NET_DEFAULT_ROUTE_CHANGED);
}

int t2s_test_register_bsd_route(void) {
  CU_pSuite s = CU_add_suite("bsd_route", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "default route v4 added", test_default_route_v4_added) ||
      !CU_add_test(s, "default route v6 deleted", test_default_route_v6_deleted_scope_cleared) ||
      !CU_add_test(s, "prefix route, short mask", test_prefix_route_short_mask_link_gateway) ||
      !CU_add_test(s, "host route", test_host_route_without_mask_is_not_default) ||
      !CU_add_test(s, "cloned and neighbour skipped", test_cloned_and_neighbour_routes_skipped) ||
      !CU_add_test(s, "ifinfo up and down", test_ifinfo_up_and_down) ||
      !CU_add_test(s, "newaddr v4", test_newaddr_v4) ||
      !CU_add_test(s, "deladdr v6", test_deladdr_v6) ||
      !CU_add_test(s, "newaddr without inet", test_newaddr_without_inet_address_is_no_event) ||
      !CU_add_test(s, "skipped types and versions", test_skipped_types_and_versions) ||
      !CU_add_test(s, "malformed", test_malformed) ||
      !CU_add_test(s, "two messages", test_walk_two_messages)) {
    return -1;
  }
  return 0;
}
