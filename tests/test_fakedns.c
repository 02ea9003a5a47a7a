/* test_fakedns.c: the fake-IP table (addresses per name, LRU recycling order, pinned entries,
 * the pool cursor, the memory bound) and its responder and state file. */
#include <stdio.h>
#include <string.h>

#include <stdlib.h>
#include <unistd.h>

#include "fakedns.h"
#include "fakedns_host.h"
#include "test_util.h"

static t2s_addr ip(const char *s) {
  t2s_addr a;
  CU_ASSERT_FATAL(t2s_addr_parse(s, &a) == 0);
  return a;
}

static t2s_fakedns *table(uint32_t size, t2s_mem *mem) {
  t2s_fakedns_config cfg;
  t2s_fakedns_config_default(&cfg);
  cfg.size = size;
  cfg.seed = 42;
  cfg.mem = mem;
  t2s_fakedns *t = NULL;
  CU_ASSERT_FATAL(t2s_fakedns_new(&t, &cfg) == 0);
  return t;
}

static t2s_addr resolve4(t2s_fakedns *t, const char *name) {
  t2s_addr a;
  memset(&a, 0, sizeof(a));
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, name, T2S_AF_INET, &a), 0);
  return a;
}

static void test_addresses(void) {
  t2s_mem mem = {0};
  t2s_fakedns *t = table(8, &mem);
  t2s_addr a = resolve4(t, "Example.COM");
  t2s_addr want = ip("198.19.0.1");
  CU_ASSERT(t2s_addr_eq(&a, &want));
  /* The same name, any case: the same address; its IPv6 address has the same offset. */
  t2s_addr b = resolve4(t, "example.com");
  CU_ASSERT(t2s_addr_eq(&a, &b));
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, "EXAMPLE.com", T2S_AF_INET6, &b), 0);
  want = ip("fd00:19::1");
  CU_ASSERT(t2s_addr_eq(&b, &want));
  b = resolve4(t, "example.org");
  want = ip("198.19.0.2");
  CU_ASSERT(t2s_addr_eq(&b, &want));
  CU_ASSERT_STRING_EQUAL(t2s_fakedns_name_of(t, &a, false), "example.com");
  t2s_addr v6 = ip("fd00:19::2");
  CU_ASSERT_STRING_EQUAL(t2s_fakedns_name_of(t, &v6, false), "example.org");
  /* In the pool but never given out; outside the pool; the network address. */
  t2s_addr none = ip("198.19.0.3");
  CU_ASSERT(t2s_fakedns_in_pool(t, &none));
  CU_ASSERT_PTR_NULL(t2s_fakedns_name_of(t, &none, false));
  none = ip("198.18.0.1");
  CU_ASSERT(!t2s_fakedns_in_pool(t, &none));
  CU_ASSERT_PTR_NULL(t2s_fakedns_name_of(t, &none, false));
  none = ip("198.19.0.0");
  CU_ASSERT_PTR_NULL(t2s_fakedns_name_of(t, &none, false));
  none = ip("fd00:19::1:0:0:1");
  CU_ASSERT(t2s_fakedns_in_pool(t, &none));
  CU_ASSERT_PTR_NULL(t2s_fakedns_name_of(t, &none, false));
  /* Names that are not plain. */
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, "", T2S_AF_INET, &b), T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, "a..b", T2S_AF_INET, &b), T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, "a b", T2S_AF_INET, &b), T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, "a.", T2S_AF_INET, &b), T2S_ERR_INVALID_ARGUMENT);
  t2s_fakedns_stats st;
  t2s_fakedns_get_stats(t, &st);
  CU_ASSERT_EQUAL(st.entries, 2);
  t2s_fakedns_del(t);
  CU_ASSERT_EQUAL(mem.live, 0);
}

static void test_config(void) {
  t2s_fakedns_config cfg;
  t2s_fakedns *t;
  t2s_fakedns_config_default(&cfg);
  CU_ASSERT_EQUAL(t2s_fakedns_new(&t, &cfg), 0);
  t2s_fakedns_del(t);
  /* A /29 has 6 usable offsets: a size of 6 leaves none free for the cursor. */
  cfg.pool4 = ip("192.0.2.8");
  cfg.pool4_prefix = 29;
  cfg.size = 6;
  CU_ASSERT_EQUAL(t2s_fakedns_new(&t, &cfg), T2S_ERR_INVALID_ARGUMENT);
  cfg.size = 5;
  CU_ASSERT_EQUAL(t2s_fakedns_new(&t, &cfg), 0);
  t2s_fakedns_del(t);
  cfg.size = 0;
  CU_ASSERT_EQUAL(t2s_fakedns_new(&t, &cfg), T2S_ERR_INVALID_ARGUMENT);
  cfg.size = 4;
  cfg.pool4_prefix = 31;
  CU_ASSERT_EQUAL(t2s_fakedns_new(&t, &cfg), T2S_ERR_INVALID_ARGUMENT);
  cfg.pool4_prefix = 29;
  cfg.pool4.family = 0;
  cfg.pool6.family = 0;
  CU_ASSERT_EQUAL(t2s_fakedns_new(&t, &cfg), T2S_ERR_INVALID_ARGUMENT);
  t2s_fakedns_config_default(&cfg);
  cfg.exclude[0] = "bad..name";
  cfg.nexclude = 1;
  CU_ASSERT_EQUAL(t2s_fakedns_new(&t, &cfg), T2S_ERR_INVALID_ARGUMENT);
  cfg.size = T2S_FAKEDNS_SIZE_MAX + 1;
  cfg.nexclude = 0;
  CU_ASSERT_EQUAL(t2s_fakedns_new(&t, &cfg), T2S_ERR_INVALID_ARGUMENT);
}

/* Recycling takes the least recently used entry; a query or a flow makes an entry recent;
 * the recycled address is not given out again until the cursor comes round. */
static void test_recycling_order(void) {
  t2s_fakedns *t = table(3, NULL);
  t2s_addr a = resolve4(t, "a.test"), b = resolve4(t, "b.test"), c = resolve4(t, "c.test");
  resolve4(t, "a.test");              /* a used again: b is now the oldest */
  t2s_addr d = resolve4(t, "d.test"); /* recycles b */
  CU_ASSERT_PTR_NULL(t2s_fakedns_name_of(t, &b, false));
  CU_ASSERT_STRING_EQUAL(t2s_fakedns_name_of(t, &a, false), "a.test");
  CU_ASSERT_STRING_EQUAL(t2s_fakedns_name_of(t, &c, false), "c.test");
  t2s_addr want = ip("198.19.0.4");
  CU_ASSERT(t2s_addr_eq(&d, &want)); /* not b's address */
  /* A touching lookup (a new flow) makes c recent: a goes next. */
  CU_ASSERT_PTR_NOT_NULL(t2s_fakedns_name_of(t, &c, true));
  resolve4(t, "e.test");
  CU_ASSERT_PTR_NULL(t2s_fakedns_name_of(t, &a, false));
  CU_ASSERT_PTR_NOT_NULL(t2s_fakedns_name_of(t, &c, false));
  /* b comes back with a new address: the same name keeps an address only while it lives. */
  t2s_addr b2 = resolve4(t, "b.test");
  CU_ASSERT(!t2s_addr_eq(&b2, &b));
  t2s_fakedns_stats st;
  t2s_fakedns_get_stats(t, &st);
  CU_ASSERT_EQUAL(st.recycled, 3);
  CU_ASSERT_EQUAL(st.entries, 3);
  t2s_fakedns_del(t);
}

static void test_pinned(void) {
  t2s_fakedns *t = table(2, NULL);
  t2s_addr a = resolve4(t, "a.test"), b = resolve4(t, "b.test");
  CU_ASSERT_STRING_EQUAL(t2s_fakedns_pin(t, &a), "a.test");
  CU_ASSERT_STRING_EQUAL(t2s_fakedns_pin(t, &a), "a.test"); /* two flows */
  /* a is the oldest but pinned: b is recycled. */
  t2s_addr c = resolve4(t, "c.test");
  CU_ASSERT_PTR_NULL(t2s_fakedns_name_of(t, &b, false));
  CU_ASSERT_PTR_NOT_NULL(t2s_fakedns_name_of(t, &a, false));
  CU_ASSERT_PTR_NOT_NULL(t2s_fakedns_pin(t, &c));
  /* Every entry pinned: a new name is refused, nothing is recycled. */
  t2s_addr x;
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, "d.test", T2S_AF_INET, &x), T2S_ERR_LIMIT);
  t2s_fakedns_stats st;
  t2s_fakedns_get_stats(t, &st);
  CU_ASSERT_EQUAL(st.full, 1);
  CU_ASSERT_EQUAL(st.pinned, 2);
  CU_ASSERT_EQUAL(st.flows, 3);
  /* An address no entry holds cannot be pinned (counted as stale when in a pool). */
  CU_ASSERT_PTR_NULL(t2s_fakedns_pin(t, &b));
  t2s_addr outside = ip("192.0.2.1");
  CU_ASSERT_PTR_NULL(t2s_fakedns_pin(t, &outside));
  t2s_fakedns_get_stats(t, &st);
  CU_ASSERT_EQUAL(st.stale, 1);
  CU_ASSERT_EQUAL(st.flows, 3);
  /* One of a's flows ends: still pinned. */
  t2s_fakedns_unpin(t, &a);
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, "d.test", T2S_AF_INET, &x), T2S_ERR_LIMIT);
  /* c's flow ends, then a's last: a is the most recently used, c is recycled. */
  t2s_fakedns_unpin(t, &c);
  t2s_fakedns_unpin(t, &a);
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, "d.test", T2S_AF_INET, &x), 0);
  CU_ASSERT_PTR_NULL(t2s_fakedns_name_of(t, &c, false));
  CU_ASSERT_STRING_EQUAL(t2s_fakedns_name_of(t, &a, false), "a.test");
  t2s_fakedns_get_stats(t, &st);
  CU_ASSERT_EQUAL(st.pinned, 0);
  t2s_fakedns_del(t);
}

/* The cursor walks the pool and wraps; avoided addresses are skipped. */
static void test_cursor_and_avoid(void) {
  t2s_fakedns_config cfg;
  t2s_fakedns_config_default(&cfg);
  cfg.pool4 = ip("192.0.2.0");
  cfg.pool4_prefix = 29; /* offsets 1..6 */
  cfg.pool6.family = 0;
  cfg.size = 2;
  cfg.avoid[0] = ip("192.0.2.2");
  cfg.navoid = 1;
  t2s_fakedns *t;
  CU_ASSERT_FATAL(t2s_fakedns_new(&t, &cfg) == 0);
  const char *want[] = {"192.0.2.1", "192.0.2.3", "192.0.2.4", "192.0.2.5",
                        "192.0.2.6", "192.0.2.1", "192.0.2.3"};
  for (size_t i = 0; i < T2S_ARRAY_LEN(want); i++) {
    char name[16];
    snprintf(name, sizeof(name), "n%zu.test", i);
    t2s_addr a = resolve4(t, name), w = ip(want[i]);
    CU_ASSERT(t2s_addr_eq(&a, &w));
  }
  /* No IPv6 pool: AAAA is unsupported. */
  t2s_addr x;
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, "n0.test", T2S_AF_INET6, &x), T2S_ERR_UNSUPPORTED);
  t2s_fakedns_del(t);
}

/* 100,000 distinct names through a table of 1,000: the table never holds more, its memory
 * stays under a bound fixed at creation plus the names, and everything is freed. */
static void test_memory_bound(void) {
  t2s_mem mem = {0};
  t2s_fakedns *t = table(1000, &mem);
  uint64_t base = mem.bytes;
  uint64_t peak = 0;
  for (unsigned i = 0; i < 100000; i++) {
    char name[64];
    snprintf(name, sizeof(name), "host-%u.some-longer-domain-name.example", i);
    t2s_addr a;
    CU_ASSERT_EQUAL_FATAL(t2s_fakedns_resolve(t, name, T2S_AF_INET, &a), 0);
    peak = T2S_MAX(peak, mem.bytes);
  }
  t2s_fakedns_stats st;
  t2s_fakedns_get_stats(t, &st);
  CU_ASSERT_EQUAL(st.entries, 1000);
  CU_ASSERT_EQUAL(st.recycled, 99000);
  CU_ASSERT(peak - base <= 1000 * 64);
  CU_ASSERT(base < 1000 * 64);
  /* The newest 1,000 are all there. */
  for (unsigned i = 99000; i < 100000; i++) {
    char name[64];
    snprintf(name, sizeof(name), "host-%u.some-longer-domain-name.example", i);
    t2s_addr a;
    CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, name, T2S_AF_INET, &a), 0);
  }
  t2s_fakedns_get_stats(t, &st);
  CU_ASSERT_EQUAL(st.recycled, 99000);
  t2s_fakedns_del(t);
  CU_ASSERT_EQUAL(mem.live, 0);
  CU_ASSERT_EQUAL(mem.bytes, 0);
}

/* ---------------- the responder ---------------- */

static size_t query(uint8_t *buf, const char *name, uint16_t qtype, uint16_t qclass) {
  memset(buf, 0, 12);
  t2s_put16(buf, 0x4242);
  t2s_put16(buf + 2, 0x0100);
  t2s_put16(buf + 4, 1);
  t2s_ssize n = t2s_dns_name_to_wire(name, buf + 12, 300);
  CU_ASSERT_FATAL(n > 0);
  t2s_put16(buf + 12 + n, qtype);
  t2s_put16(buf + 14 + n, qclass);
  return 16 + (size_t)n;
}

/* Sends a query; returns the verdict and leaves the answer in out. */
static t2s_fakedns_verdict ask(t2s_fakedns *t, const char *name, uint16_t qtype, uint8_t *out,
                               size_t *poutlen) {
  uint8_t m[512];
  size_t n = query(m, name, qtype, T2S_DNS_CLASS_IN);
  return t2s_fakedns_respond(t, m, n, false, out, T2S_FAKEDNS_ANSWER_MAX, poutlen);
}

static void test_respond(void) {
  t2s_fakedns_config cfg;
  t2s_fakedns_config_default(&cfg);
  cfg.exclude[0] = "Corp.Example.";
  cfg.nexclude = 1;
  t2s_fakedns *t;
  CU_ASSERT_FATAL(t2s_fakedns_new(&t, &cfg) == 0);
  uint8_t out[T2S_FAKEDNS_ANSWER_MAX];
  size_t n;
  /* A: the pool address, TTL 1, the question echoed in its case. */
  CU_ASSERT_EQUAL(ask(t, "WWW.example.net", T2S_DNS_TYPE_A, out, &n), T2S_FAKEDNS_ANSWER);
  CU_ASSERT_EQUAL(t2s_get16(out), 0x4242);
  CU_ASSERT_EQUAL(out[3] & 0xf, 0);
  CU_ASSERT_EQUAL(t2s_get16(out + 6), 1);
  CU_ASSERT(memcmp(out + 13, "WWW", 3) == 0);
  CU_ASSERT_EQUAL(t2s_get32(out + n - 10), T2S_FAKEDNS_TTL);
  CU_ASSERT(memcmp(out + n - 4, "\xc6\x13\x00\x01", 4) == 0);
  /* AAAA: the IPv6 address of the same entry. */
  CU_ASSERT_EQUAL(ask(t, "www.example.net", T2S_DNS_TYPE_AAAA, out, &n), T2S_FAKEDNS_ANSWER);
  t2s_addr v6 = ip("fd00:19::1");
  CU_ASSERT(memcmp(out + n - 16, v6.ip, 16) == 0);
  /* HTTPS and SVCB: NODATA. */
  CU_ASSERT_EQUAL(ask(t, "www.example.net", T2S_DNS_TYPE_HTTPS, out, &n), T2S_FAKEDNS_ANSWER);
  CU_ASSERT_EQUAL(t2s_get16(out + 6), 0);
  CU_ASSERT_EQUAL(out[3] & 0xf, 0);
  CU_ASSERT_EQUAL(ask(t, "www.example.net", T2S_DNS_TYPE_SVCB, out, &n), T2S_FAKEDNS_ANSWER);
  CU_ASSERT_EQUAL(t2s_get16(out + 6), 0);
  /* PTR of a pool address held: the name; of a pool address not held: NXDOMAIN; of a real
   * address: forwarded. */
  CU_ASSERT_EQUAL(ask(t, "1.0.19.198.in-addr.arpa", T2S_DNS_TYPE_PTR, out, &n), T2S_FAKEDNS_ANSWER);
  CU_ASSERT_EQUAL(t2s_get16(out + 6), 1);
  CU_ASSERT(memcmp(out + n - 17,
                   "\x03www\x07"
                   "example\x03"
                   "net\0",
                   17) == 0);
  CU_ASSERT_EQUAL(ask(t, "9.0.19.198.in-addr.arpa", T2S_DNS_TYPE_PTR, out, &n), T2S_FAKEDNS_ANSWER);
  CU_ASSERT_EQUAL(out[3] & 0xf, T2S_DNS_RCODE_NXDOMAIN);
  CU_ASSERT_EQUAL(ask(t, "8.8.8.8.in-addr.arpa", T2S_DNS_TYPE_PTR, out, &n), T2S_FAKEDNS_FORWARD);
  /* Other types, excluded names and other classes are forwarded. */
  CU_ASSERT_EQUAL(ask(t, "example.net", T2S_DNS_TYPE_MX, out, &n), T2S_FAKEDNS_FORWARD);
  CU_ASSERT_EQUAL(ask(t, "example.net", T2S_DNS_TYPE_TXT, out, &n), T2S_FAKEDNS_FORWARD);
  CU_ASSERT_EQUAL(ask(t, "corp.example", T2S_DNS_TYPE_A, out, &n), T2S_FAKEDNS_FORWARD);
  CU_ASSERT_EQUAL(ask(t, "git.CORP.example", T2S_DNS_TYPE_AAAA, out, &n), T2S_FAKEDNS_FORWARD);
  CU_ASSERT_EQUAL(ask(t, "notcorp.example", T2S_DNS_TYPE_A, out, &n), T2S_FAKEDNS_ANSWER);
  uint8_t m[512];
  size_t ml = query(m, "version.bind", T2S_DNS_TYPE_TXT, 3);
  CU_ASSERT_EQUAL(t2s_fakedns_respond(t, m, ml, false, out, sizeof(out), &n), T2S_FAKEDNS_FORWARD);
  ml = query(m, "chaos.test", T2S_DNS_TYPE_A, 3);
  CU_ASSERT_EQUAL(t2s_fakedns_respond(t, m, ml, false, out, sizeof(out), &n), T2S_FAKEDNS_FORWARD);
  /* The root is never faked. */
  CU_ASSERT_EQUAL(ask(t, ".", T2S_DNS_TYPE_A, out, &n), T2S_FAKEDNS_FORWARD);
  /* Malformed: FORMERR (header only); a response or a runt: dropped; OPCODE: NOTIMP. */
  ml = query(m, "x.test", T2S_DNS_TYPE_A, T2S_DNS_CLASS_IN);
  CU_ASSERT_EQUAL(t2s_fakedns_respond(t, m, ml - 1, false, out, sizeof(out), &n),
                  T2S_FAKEDNS_ANSWER);
  CU_ASSERT_EQUAL(n, 12);
  CU_ASSERT_EQUAL(out[3] & 0xf, T2S_DNS_RCODE_FORMERR);
  CU_ASSERT_EQUAL(t2s_fakedns_respond(t, m, 11, false, out, sizeof(out), &n), T2S_FAKEDNS_DROP);
  m[2] |= 0x80;
  CU_ASSERT_EQUAL(t2s_fakedns_respond(t, m, ml, false, out, sizeof(out), &n), T2S_FAKEDNS_DROP);
  m[2] = 0x28; /* OPCODE 5 (UPDATE) */
  CU_ASSERT_EQUAL(t2s_fakedns_respond(t, m, ml, false, out, sizeof(out), &n), T2S_FAKEDNS_ANSWER);
  CU_ASSERT_EQUAL(out[3] & 0xf, T2S_DNS_RCODE_NOTIMP);
  t2s_fakedns_stats st;
  t2s_fakedns_get_stats(t, &st);
  CU_ASSERT_EQUAL(st.answered, 7);
  CU_ASSERT_EQUAL(st.forwarded, 8);
  CU_ASSERT_EQUAL(st.refused, 2);
  CU_ASSERT_EQUAL(st.dropped, 2);
  t2s_fakedns_del(t);
}

static void test_respond_limits(void) {
  /* IPv4 pool only: AAAA gets NODATA. A full table: SERVFAIL. */
  t2s_fakedns_config cfg;
  t2s_fakedns_config_default(&cfg);
  cfg.pool6.family = 0;
  cfg.size = 1;
  t2s_fakedns *t;
  CU_ASSERT_FATAL(t2s_fakedns_new(&t, &cfg) == 0);
  uint8_t out[T2S_FAKEDNS_ANSWER_MAX];
  size_t n;
  CU_ASSERT_EQUAL(ask(t, "a.test", T2S_DNS_TYPE_AAAA, out, &n), T2S_FAKEDNS_ANSWER);
  CU_ASSERT_EQUAL(out[3] & 0xf, 0);
  CU_ASSERT_EQUAL(t2s_get16(out + 6), 0);
  CU_ASSERT_EQUAL(ask(t, "a.test", T2S_DNS_TYPE_A, out, &n), T2S_FAKEDNS_ANSWER);
  t2s_addr a = ip("198.19.0.1");
  CU_ASSERT_PTR_NOT_NULL(t2s_fakedns_pin(t, &a));
  CU_ASSERT_EQUAL(ask(t, "b.test", T2S_DNS_TYPE_A, out, &n), T2S_FAKEDNS_ANSWER);
  CU_ASSERT_EQUAL(out[3] & 0xf, T2S_DNS_RCODE_SERVFAIL);
  t2s_fakedns_unpin(t, &a);
  /* The longest name's PTR answer fits in 512 bytes. */
  char big[254];
  memset(big, 'q', 253);
  for (int i = 63; i < 253; i += 64) {
    big[i] = '.';
  }
  big[253] = '\0';
  CU_ASSERT_EQUAL(ask(t, big, T2S_DNS_TYPE_A, out, &n), T2S_FAKEDNS_ANSWER);
  CU_ASSERT_EQUAL(ask(t, "2.0.19.198.in-addr.arpa", T2S_DNS_TYPE_PTR, out, &n), T2S_FAKEDNS_ANSWER);
  CU_ASSERT_EQUAL(t2s_get16(out + 6), 1);
  CU_ASSERT(n <= 512);
  t2s_fakedns_del(t);
}

/* ---------------- the state file ---------------- */

static void test_state_round_trip(void) {
  t2s_mem mem = {0};
  t2s_fakedns *t = table(4, &mem);
  resolve4(t, "one.test");
  resolve4(t, "two.test");
  resolve4(t, "three.test");
  resolve4(t, "one.test"); /* order now: two, three, one */
  t2s_addr three = resolve4(t, "three.test");
  CU_ASSERT_PTR_NOT_NULL(t2s_fakedns_pin(t, &three)); /* pinned: written last */
  size_t len = t2s_fakedns_state_len(t);
  char buf[1024];
  CU_ASSERT_FATAL(len < sizeof(buf));
  CU_ASSERT_EQUAL(t2s_fakedns_state_write(t, buf, len - 1), T2S_ERR_NOBUF);
  CU_ASSERT_EQUAL(t2s_fakedns_state_write(t, buf, sizeof(buf)), (t2s_ssize)len);
  buf[len] = '\0';
  CU_ASSERT_STRING_EQUAL(buf, "tun2sock-fakedns 1\nnext 4\n"
                              "198.19.0.2 fd00:19::2 two.test\n"
                              "198.19.0.1 fd00:19::1 one.test\n"
                              "198.19.0.3 fd00:19::3 three.test\n");
  t2s_fakedns_unpin(t, &three);
  t2s_fakedns *u = table(4, &mem);
  size_t loaded, skipped;
  CU_ASSERT_EQUAL(t2s_fakedns_state_load(u, buf, len, &loaded, &skipped), 0);
  CU_ASSERT_EQUAL(loaded, 3);
  CU_ASSERT_EQUAL(skipped, 0);
  CU_ASSERT_EQUAL(t2s_fakedns_state_load(u, buf, len, &loaded, &skipped), T2S_ERR_EXISTS);
  /* The same addresses, the same order (written back identically), the same cursor. */
  char buf2[1024];
  t2s_ssize l2 = t2s_fakedns_state_write(u, buf2, sizeof(buf2));
  CU_ASSERT(l2 == (t2s_ssize)len && memcmp(buf, buf2, len) == 0);
  const char *names[] = {"one.test", "two.test", "three.test"};
  const char *addrs[] = {"fd00:19::1", "198.19.0.2", "198.19.0.3"};
  for (int k = 0; k < 3; k++) {
    t2s_addr a = ip(addrs[k]);
    const char *got = t2s_fakedns_name_of(u, &a, false);
    CU_ASSERT(got != NULL && strcmp(got, names[k]) == 0);
  }
  t2s_addr four = resolve4(u, "four.test"), five_want = ip("198.19.0.5");
  t2s_addr four_want = ip("198.19.0.4");
  CU_ASSERT(t2s_addr_eq(&four, &four_want));
  t2s_addr five = resolve4(u, "five.test"); /* recycles two.test, the oldest */
  CU_ASSERT(t2s_addr_eq(&five, &five_want));
  t2s_addr two = ip("198.19.0.2");
  CU_ASSERT_PTR_NULL(t2s_fakedns_name_of(u, &two, false));
  t2s_fakedns_del(u);
  t2s_fakedns_del(t);
  CU_ASSERT_EQUAL(mem.live, 0);
}

static void test_state_hostile(void) {
  t2s_fakedns *t = table(2, NULL);
  size_t loaded, skipped;
  const char *bad = "not a state\n198.19.0.1 fd00:19::1 x.test\n";
  CU_ASSERT_EQUAL(t2s_fakedns_state_load(t, bad, strlen(bad), &loaded, &skipped),
                  T2S_ERR_MALFORMED);
  /* Lines that do not fit this table are skipped: other pool, offsets that differ, bad names,
   * duplicates, too many words, a NUL; past the size the oldest are recycled. */
  static const char s[] = "tun2sock-fakedns 1\n"
                          "next 99999999\n"
                          "10.0.0.1 fd00:19::1 other-pool.test\n"
                          "198.19.0.1 fd00:19::2 differ.test\n"
                          "198.19.0.1 - no-v6.test\n"
                          "198.19.0.1 fd00:19::1 bad..name\n"
                          "198.19.0.1 fd00:19::1 a b\n"
                          "198.19.0.0 fd00:19::0 network.test\n"
                          "198.19.0.1 fd00:19::1 ok1.test\n"
                          "198.19.0.1 fd00:19::1 dup-addr.test\n"
                          "198.19.0.7 fd00:19::7 OK1.test\n"
                          "198.19.0.8 fd00:19::8 ok2.test\n"
                          "198.19.0.9 fd00:19::9 ok3.test\n"
                          "198.19.0.10 fd00:19::a nul\0.test\n"
                          "garbage\n"
                          "\n";
  CU_ASSERT_EQUAL(t2s_fakedns_state_load(t, s, sizeof(s) - 1, &loaded, &skipped), 0);
  CU_ASSERT_EQUAL(loaded, 3);
  CU_ASSERT_EQUAL(skipped, 10);
  t2s_fakedns_stats st;
  t2s_fakedns_get_stats(t, &st);
  CU_ASSERT_EQUAL(st.entries, 2);
  t2s_addr a = ip("198.19.0.9");
  CU_ASSERT_STRING_EQUAL(t2s_fakedns_name_of(t, &a, false), "ok3.test");
  a = ip("198.19.0.1");
  CU_ASSERT_PTR_NULL(t2s_fakedns_name_of(t, &a, false)); /* ok1, the oldest, recycled */
  /* The bad cursor was ignored and loading does not move it: the next name gets offset 1,
   * free again since ok1 was recycled. */
  t2s_addr n = resolve4(t, "new.test");
  t2s_addr want = ip("198.19.0.1");
  CU_ASSERT(t2s_addr_eq(&n, &want));
  t2s_fakedns_del(t);
}

/* The binary's side: the table from the options (the TUN's address never given out) and the
 * state file written atomically and read back; a missing file loads nothing. */
static void test_host_state_file(void) {
  t2s_cli_opts o;
  t2s_cli_defaults(&o);
  o.fake_dns = true;
  o.fake_dns_size = 8;
  o.addresses[0].addr = ip("198.19.0.1");
  o.addresses[0].prefixlen = 16;
  o.naddresses = 1;
  strcpy(o.fake_dns_exclude[0], "lan");
  o.nfake_dns_exclude = 1;
  t2s_fakedns *t;
  CU_ASSERT_FATAL(t2s_fakedns_host_new(&t, &o, 1) == 0);
  t2s_addr a = resolve4(t, "first.test"), want = ip("198.19.0.2");
  CU_ASSERT(t2s_addr_eq(&a, &want));
  CU_ASSERT(t2s_fakedns_excluded(t, "printer.lan"));
  char dir[] = "/tmp/t2s-fakedns-XXXXXX";
  CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof(path), "%s/state", dir);
  size_t loaded = 1, skipped = 1;
  t2s_fakedns *u;
  CU_ASSERT_FATAL(t2s_fakedns_host_new(&u, &o, 2) == 0);
  CU_ASSERT_EQUAL(t2s_fakedns_host_load(u, path, &loaded, &skipped), 0); /* no file yet */
  CU_ASSERT_EQUAL(loaded, 0);
  resolve4(t, "second.test");
  int err = -1;
  CU_ASSERT_EQUAL(t2s_fakedns_host_save(t, path, &err), 0);
  CU_ASSERT_EQUAL(err, 0);
  CU_ASSERT_EQUAL(t2s_fakedns_host_load(u, path, &loaded, &skipped), 0);
  CU_ASSERT_EQUAL(loaded, 2);
  CU_ASSERT_EQUAL(skipped, 0);
  CU_ASSERT_STRING_EQUAL(t2s_fakedns_name_of(u, &a, false), "first.test");
  /* Not a state file; a directory that does not exist. */
  FILE *f = fopen(path, "w");
  CU_ASSERT_FATAL(f != NULL);
  fputs("hello\n", f);
  fclose(f);
  t2s_fakedns *v;
  CU_ASSERT_FATAL(t2s_fakedns_host_new(&v, &o, 3) == 0);
  CU_ASSERT_EQUAL(t2s_fakedns_host_load(v, path, &loaded, &skipped), T2S_ERR_MALFORMED);
  char bad[160];
  snprintf(bad, sizeof(bad), "%s/no/such/dir/state", dir);
  CU_ASSERT_NOT_EQUAL(t2s_fakedns_host_save(t, bad, &err), 0);
  CU_ASSERT_NOT_EQUAL(err, 0);
  unlink(path);
  rmdir(dir);
  t2s_fakedns_del(t);
  t2s_fakedns_del(u);
  t2s_fakedns_del(v);
}

int t2s_test_register_fakedns(void) {
  CU_pSuite s = CU_add_suite("fakedns", NULL, NULL);
  if (s == NULL) {
    return -1;
  }
  CU_add_test(s, "addresses", test_addresses);
  CU_add_test(s, "config", test_config);
  CU_add_test(s, "recycling_order", test_recycling_order);
  CU_add_test(s, "pinned", test_pinned);
  CU_add_test(s, "cursor_and_avoid", test_cursor_and_avoid);
  CU_add_test(s, "memory_bound", test_memory_bound);
  CU_add_test(s, "respond", test_respond);
  CU_add_test(s, "respond_limits", test_respond_limits);
  CU_add_test(s, "state_round_trip", test_state_round_trip);
  CU_add_test(s, "state_hostile", test_state_hostile);
  CU_add_test(s, "host_state_file", test_host_state_file);
  return 0;
}
