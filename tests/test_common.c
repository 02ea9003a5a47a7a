/* test_common.c: address helpers, error names, the seeded PRNG. */
#include <string.h>

#include "common.h"
#include "drop.h"
#include "rand.h"
#include "test_util.h"

static void test_addr_parse_format(void) {
  t2s_addr a;
  char buf[64];
  CU_ASSERT_EQUAL(t2s_addr_parse("192.0.2.1:80", &a), 0);
  CU_ASSERT_EQUAL(a.family, T2S_AF_INET);
  CU_ASSERT_EQUAL(a.port, 80);
  CU_ASSERT_STRING_EQUAL(t2s_addr_format(&a, true, buf, sizeof(buf)), "192.0.2.1:80");
  CU_ASSERT_EQUAL(t2s_addr_parse("[2001:db8::1]:443", &a), 0);
  CU_ASSERT_EQUAL(a.family, T2S_AF_INET6);
  CU_ASSERT_EQUAL(a.port, 443);
  CU_ASSERT_STRING_EQUAL(t2s_addr_format(&a, true, buf, sizeof(buf)), "[2001:db8::1]:443");
  CU_ASSERT_EQUAL(t2s_addr_parse("fd00:1:0:0:0:0:0:2", &a), 0);
  CU_ASSERT_STRING_EQUAL(t2s_addr_format(&a, false, buf, sizeof(buf)), "fd00:1::2");
  CU_ASSERT_EQUAL(t2s_addr_parse("::ffff:192.0.2.1", &a), 0);
  CU_ASSERT_EQUAL(a.ip[15], 1);
  CU_ASSERT_EQUAL(t2s_addr_parse("256.1.1.1", &a), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_addr_parse("1.2.3", &a), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_addr_parse("1.2.3.4:70000", &a), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_addr_parse("1::2::3", &a), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_addr_parse("", &a), T2S_ERR_MALFORMED);
}

static void test_names(void) {
  CU_ASSERT_STRING_EQUAL(t2s_strerror(T2S_ERR_RESET), "connection reset");
  CU_ASSERT_STRING_EQUAL(t2s_drop_name(T2S_DROP_TCP_BAD_CHECKSUM), "tcp_bad_checksum");
  CU_ASSERT_STRING_EQUAL(t2s_drop_name(-1), "unknown");
  CU_ASSERT_STRING_EQUAL(t2s_drop_name(T2S_DROP_MAX), "unknown");
}

static void test_rand_deterministic(void) {
  t2s_rand a, b;
  t2s_rand_init(&a, 42);
  t2s_rand_init(&b, 42);
  for (int i = 0; i < 100; i++) {
    CU_ASSERT_EQUAL(t2s_rand_u64(&a), t2s_rand_u64(&b));
  }
  t2s_rand_init(&b, 43);
  CU_ASSERT_NOT_EQUAL(t2s_rand_u64(&a), t2s_rand_u64(&b));
  for (int i = 0; i < 1000; i++) {
    CU_ASSERT(t2s_rand_below(&a, 7) < 7);
  }
  CU_ASSERT_FALSE(t2s_rand_chance(&a, 0, 100));
  CU_ASSERT_TRUE(t2s_rand_chance(&a, 100, 100));
}

int t2s_test_register_common(void) {
  CU_pSuite s = CU_add_suite("common", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "addr parse/format", test_addr_parse_format) ||
      !CU_add_test(s, "error and drop names", test_names) ||
      !CU_add_test(s, "rand deterministic", test_rand_deterministic)) {
    return -1;
  }
  return 0;
}
