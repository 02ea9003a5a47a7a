/* test_socks5.c: the SOCKS5 client codec (byte vectors, hostile replies, every split), the UDP
 * header, and the client against the simulator's server model for every pair of options. */
#include <stdio.h>
#include <string.h>

#include "sim_socks5.h"
#include "socks5.h"
#include "test_util.h"

/* ---------------- helpers ---------------- */

static t2s_addr addr_of(const char *s) {
  t2s_addr a;
  memset(&a, 0, sizeof(a));
  CU_ASSERT_FATAL(t2s_addr_parse(s, &a) == 0);
  return a;
}

/* Asserts that the client's pending output is exactly want[0..wantlen), then consumes it. */
static void expect_output(t2s_socks5_client *c, const uint8_t *want, size_t wantlen) {
  const uint8_t *p;
  size_t n;
  t2s_socks5_client_pending_output(c, &p, &n);
  CU_ASSERT_EQUAL(n, wantlen);
  if (n == wantlen && n > 0) {
    CU_ASSERT(memcmp(p, want, n) == 0);
  }
  t2s_socks5_client_output_consumed(c, n);
}

static void drain(t2s_socks5_client *c) {
  const uint8_t *p;
  size_t n;
  t2s_socks5_client_pending_output(c, &p, &n);
  t2s_socks5_client_output_consumed(c, n);
}

/* Feeds data in chunks of `chunk` bytes (0 = all at once), draining output in between.
 * Stops at the first result other than NEED_MORE. *ptotal = bytes consumed. */
static int feed_split(t2s_socks5_client *c, const uint8_t *data, size_t len, size_t chunk,
                      size_t *ptotal) {
  size_t off = 0, consumed;
  int rv = T2S_SOCKS5_NEED_MORE;
  *ptotal = 0;
  if (chunk == 0) {
    chunk = len ? len : 1;
  }
  while (off < len) {
    drain(c);
    size_t n = T2S_MIN(chunk, len - off);
    rv = t2s_socks5_client_feed(c, data + off, n, &consumed);
    CU_ASSERT(consumed <= n);
    *ptotal += consumed;
    off += n;
    if (rv != T2S_SOCKS5_NEED_MORE) {
      break;
    }
    CU_ASSERT_EQUAL(consumed, n);
  }
  return rv;
}

static const uint8_t V4_REQ_CONNECT[] = {5, 1, 0, 1, 192, 0, 2, 1, 0, 80};
static const uint8_t V4_REPLY_OK[] = {5, 0, 0, 1, 198, 51, 100, 7, 0x1f, 0x90};

/* ---------------- output vectors ---------------- */

static void test_greeting_vectors(void) {
  t2s_socks5_client c;
  t2s_addr dst = addr_of("192.0.2.1:80");

  /* No credentials, not pipelined: greeting only, offering 0x00. */
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, NULL, NULL, false),
                  0);
  static const uint8_t g0[] = {5, 1, 0};
  expect_output(&c, g0, sizeof(g0));
  expect_output(&c, NULL, 0);

  /* Credentials, not pipelined: offers 0x00 and 0x02, the server chooses. */
  CU_ASSERT_EQUAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "user", "pass", false), 0);
  static const uint8_t g1[] = {5, 2, 0, 2};
  expect_output(&c, g1, sizeof(g1));

  /* Credentials, pipelined: greeting (0x02 only) + RFC 1929 + request in one go. */
  CU_ASSERT_EQUAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "user", "pass", true), 0);
  static const uint8_t g2[] = {5,   1,   2, 1, 4, 'u', 's', 'e', 'r', 4, 'p', 'a',
                               's', 's', 5, 1, 0, 1,   192, 0,   2,   1, 0,   80};
  expect_output(&c, g2, sizeof(g2));

  /* No credentials, pipelined: greeting + request. */
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, NULL, NULL, true),
                  0);
  static const uint8_t g3[] = {5, 1, 0, 5, 1, 0, 1, 192, 0, 2, 1, 0, 80};
  expect_output(&c, g3, sizeof(g3));

  /* Empty password is allowed; partial writes are tracked. */
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "u", NULL, true),
                  0);
  const uint8_t *p;
  size_t n;
  t2s_socks5_client_pending_output(&c, &p, &n);
  CU_ASSERT_EQUAL(n, 3 + 4 + 10);
  t2s_socks5_client_output_consumed(&c, 5);
  static const uint8_t g4_tail[] = {'u', 0, 5, 1, 0, 1, 192, 0, 2, 1, 0, 80};
  expect_output(&c, g4_tail, sizeof(g4_tail));
}

static void test_request_atyp_vectors(void) {
  t2s_socks5_client c;
  t2s_socks5_host h;
  t2s_addr v6 = addr_of("[2001:db8::1]:443");
  static const uint8_t r6[] = {5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0,
                               0, 0, 0, 0, 0,    0,    0,    0,    1, 1, 0xbb};
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &v6, NULL, NULL, true),
                  0);
  drain(&c); /* greeting and request were released together */
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &v6, NULL, NULL, false),
                  0);
  drain(&c);
  size_t used;
  static const uint8_t m0[] = {5, 0};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, m0, 2, &used), T2S_SOCKS5_NEED_MORE);
  expect_output(&c, r6, sizeof(r6));

  CU_ASSERT_EQUAL(t2s_socks5_host_from_domain(&h, "example.com", 443), 0);
  static const uint8_t rd[] = {5,   1,   0,   3,   11,  'e', 'x', 'a', 'm',
                               'p', 'l', 'e', '.', 'c', 'o', 'm', 1,   0xbb};
  CU_ASSERT_EQUAL(t2s_socks5_client_init(&c, T2S_SOCKS5_CMD_CONNECT, &h, NULL, NULL, false), 0);
  drain(&c);
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, m0, 2, &used), T2S_SOCKS5_NEED_MORE);
  expect_output(&c, rd, sizeof(rd));

  /* UDP ASSOCIATE with no source given: 0.0.0.0:0. */
  static const uint8_t ru[] = {5, 3, 0, 1, 0, 0, 0, 0, 0, 0};
  CU_ASSERT_EQUAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_UDP_ASSOCIATE, NULL, NULL, NULL, false), 0);
  drain(&c);
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, m0, 2, &used), T2S_SOCKS5_NEED_MORE);
  expect_output(&c, ru, sizeof(ru));

  /* A 255-byte name is the longest. */
  char name[257];
  memset(name, 'a', 255);
  name[255] = '\0';
  CU_ASSERT_EQUAL(t2s_socks5_host_from_domain(&h, name, 1), 0);
  CU_ASSERT_EQUAL(t2s_socks5_host_len(&h), 259);
  name[255] = 'a';
  name[256] = '\0';
  CU_ASSERT_EQUAL(t2s_socks5_host_from_domain(&h, name, 1), T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_socks5_host_from_domain(&h, "", 1), T2S_ERR_INVALID_ARGUMENT);
}

static void test_init_invalid(void) {
  t2s_socks5_client c;
  t2s_addr dst = addr_of("192.0.2.1:80");
  t2s_addr unset;
  memset(&unset, 0, sizeof(unset));
  char longname[300];
  memset(longname, 'x', 256);
  longname[256] = '\0';
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_BIND, &dst, NULL, NULL, false),
                  T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, NULL, NULL, NULL, false),
                  T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &unset, NULL, NULL, false),
      T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "", "p", false),
                  T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, longname, "p", false),
      T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "u", longname, false),
      T2S_ERR_INVALID_ARGUMENT);
  longname[255] = '\0';
  CU_ASSERT_EQUAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, longname, longname, true), 0);
  const uint8_t *p;
  size_t n;
  t2s_socks5_client_pending_output(&c, &p, &n);
  CU_ASSERT_EQUAL(n, 3 + 513 + 10);
}

/* ---------------- replies ---------------- */

static void test_connect_noauth(void) {
  t2s_socks5_client c;
  t2s_addr dst = addr_of("192.0.2.1:80");
  size_t used;
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, NULL, NULL, false),
                  0);
  CU_ASSERT_EQUAL(t2s_socks5_client_rep(&c), -1);
  CU_ASSERT_PTR_NULL(t2s_socks5_client_bnd(&c));
  static const uint8_t g[] = {5, 1, 0};
  expect_output(&c, g, sizeof(g));
  static const uint8_t m[] = {5, 0};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, m, sizeof(m), &used), T2S_SOCKS5_NEED_MORE);
  CU_ASSERT_EQUAL(used, 2);
  expect_output(&c, V4_REQ_CONNECT, sizeof(V4_REQ_CONNECT));
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, V4_REPLY_OK, sizeof(V4_REPLY_OK), &used),
                  T2S_SOCKS5_DONE);
  CU_ASSERT_EQUAL(used, sizeof(V4_REPLY_OK));
  CU_ASSERT_TRUE(t2s_socks5_client_done(&c));
  CU_ASSERT_EQUAL(t2s_socks5_client_rep(&c), 0);
  const t2s_socks5_host *b = t2s_socks5_client_bnd(&c);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  t2s_addr want = addr_of("198.51.100.7:8080");
  CU_ASSERT_EQUAL(b->atyp, T2S_SOCKS5_ATYP_IPV4);
  CU_ASSERT_TRUE(t2s_addr_eq(&b->addr, &want));
  CU_ASSERT_EQUAL(t2s_socks5_client_error(&c), 0);
  CU_ASSERT_EQUAL(t2s_socks5_client_eof(&c), 0); /* EOF of the data stream */
}

/* Runs a non-pipelined no-auth CONNECT (or UDP) up to the reply and feeds reply. */
static int run_reply(t2s_socks5_cmd cmd, const uint8_t *reply, size_t len, size_t chunk,
                     t2s_socks5_client *c, size_t *pused) {
  t2s_addr dst = addr_of("192.0.2.1:80");
  size_t used;
  CU_ASSERT_FATAL(t2s_socks5_client_init_addr(c, cmd, &dst, NULL, NULL, false) == 0);
  drain(c);
  static const uint8_t m[] = {5, 0};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(c, m, 2, &used), T2S_SOCKS5_NEED_MORE);
  return feed_split(c, reply, len, chunk, pused);
}

static void test_reply_atyps(void) {
  t2s_socks5_client c;
  size_t used;
  static const uint8_t r6[] = {5, 0, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0,    0,
                               0, 0, 0, 0, 0,    0,    0,    0,    2, 0x30, 0x39};
  CU_ASSERT_EQUAL(run_reply(T2S_SOCKS5_CMD_CONNECT, r6, sizeof(r6), 0, &c, &used), T2S_SOCKS5_DONE);
  t2s_addr w6 = addr_of("[2001:db8::2]:12345");
  CU_ASSERT_TRUE(t2s_addr_eq(&t2s_socks5_client_bnd(&c)->addr, &w6));
  CU_ASSERT_EQUAL(t2s_socks5_client_bnd(&c)->atyp, T2S_SOCKS5_ATYP_IPV6);

  static const uint8_t rd[] = {5, 0, 0, 3, 5, 'p', 'r', 'o', 'x', 'y', 0x04, 0x38};
  CU_ASSERT_EQUAL(run_reply(T2S_SOCKS5_CMD_CONNECT, rd, sizeof(rd), 0, &c, &used), T2S_SOCKS5_DONE);
  CU_ASSERT_EQUAL(used, sizeof(rd));
  const t2s_socks5_host *b = t2s_socks5_client_bnd(&c);
  CU_ASSERT_EQUAL(b->atyp, T2S_SOCKS5_ATYP_DOMAIN);
  CU_ASSERT_EQUAL(b->domainlen, 5);
  CU_ASSERT_STRING_EQUAL(b->domain, "proxy");
  CU_ASSERT_EQUAL(b->addr.port, 1080);
  CU_ASSERT_EQUAL(b->addr.family, 0);

  /* A UDP relay given as a name cannot be used by a sans-I/O client. */
  CU_ASSERT_EQUAL(run_reply(T2S_SOCKS5_CMD_UDP_ASSOCIATE, rd, sizeof(rd), 0, &c, &used),
                  T2S_ERR_UNSUPPORTED);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_DOMAIN_RELAY);

  static const uint8_t ru[] = {5, 0, 0, 1, 0, 0, 0, 0, 0x9c, 0x40};
  CU_ASSERT_EQUAL(run_reply(T2S_SOCKS5_CMD_UDP_ASSOCIATE, ru, sizeof(ru), 0, &c, &used),
                  T2S_SOCKS5_DONE);
  CU_ASSERT_EQUAL(t2s_socks5_client_bnd(&c)->addr.port, 40000);
  /* The control connection closing ends the association. */
  CU_ASSERT_EQUAL(t2s_socks5_client_eof(&c), T2S_ERR_CLOSED);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_EOF);
}

static void test_rep_codes(void) {
  static const struct {
    uint8_t rep;
    int err;
    t2s_socks5_error_reason reason;
  } cases[] = {
      {0, T2S_SOCKS5_DONE, T2S_SOCKS5_REASON_NONE},
      {1, T2S_ERR_REFUSED, T2S_SOCKS5_REASON_REP_GENERAL_FAILURE},
      {2, T2S_ERR_REFUSED, T2S_SOCKS5_REASON_REP_NOT_ALLOWED},
      {3, T2S_ERR_UNREACHABLE, T2S_SOCKS5_REASON_REP_NET_UNREACHABLE},
      {4, T2S_ERR_UNREACHABLE, T2S_SOCKS5_REASON_REP_HOST_UNREACHABLE},
      {5, T2S_ERR_REFUSED, T2S_SOCKS5_REASON_REP_CONN_REFUSED},
      {6, T2S_ERR_UNREACHABLE, T2S_SOCKS5_REASON_REP_TTL_EXPIRED},
      {7, T2S_ERR_UNSUPPORTED, T2S_SOCKS5_REASON_REP_CMD_UNSUPPORTED},
      {8, T2S_ERR_UNSUPPORTED, T2S_SOCKS5_REASON_REP_ATYP_UNSUPPORTED},
      {9, T2S_ERR_PROTO, T2S_SOCKS5_REASON_REP_UNKNOWN},
      {0xff, T2S_ERR_PROTO, T2S_SOCKS5_REASON_REP_UNKNOWN},
  };
  for (size_t i = 0; i < T2S_ARRAY_LEN(cases); i++) {
    for (size_t chunk = 0; chunk <= 1; chunk++) {
      t2s_socks5_client c;
      size_t used;
      uint8_t reply[sizeof(V4_REPLY_OK)];
      memcpy(reply, V4_REPLY_OK, sizeof(reply));
      reply[1] = cases[i].rep;
      int rv = run_reply(T2S_SOCKS5_CMD_CONNECT, reply, sizeof(reply), chunk, &c, &used);
      CU_ASSERT_EQUAL(rv, cases[i].err);
      CU_ASSERT_EQUAL(t2s_socks5_client_rep(&c), cases[i].rep);
      CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), cases[i].reason);
      if (cases[i].rep != 0) {
        /* Failure is known from VER REP alone; the rest is not consumed. */
        CU_ASSERT_EQUAL(used, 2);
        CU_ASSERT_EQUAL(t2s_socks5_client_error(&c), cases[i].err);
        /* Final: further feeds and EOF repeat the error. */
        CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, reply, 1, &used), cases[i].err);
        CU_ASSERT_EQUAL(used, 0);
        CU_ASSERT_EQUAL(t2s_socks5_client_eof(&c), cases[i].err);
      }
      t2s_socks5_error_reason r;
      CU_ASSERT_EQUAL(t2s_socks5_rep_to_error(cases[i].rep, &r),
                      cases[i].rep == 0 ? 0 : cases[i].err);
      CU_ASSERT_EQUAL(r, cases[i].reason);
    }
  }
  CU_ASSERT_STRING_EQUAL(t2s_socks5_rep_name(4), "host unreachable");
  CU_ASSERT_STRING_EQUAL(t2s_socks5_rep_name(9), "unknown");
  CU_ASSERT_STRING_EQUAL(t2s_socks5_rep_name(-1), "unknown");
}

static void test_auth(void) {
  t2s_socks5_client c;
  t2s_addr dst = addr_of("192.0.2.1:80");
  size_t used;
  static const uint8_t m2[] = {5, 2};
  static const uint8_t ok[] = {1, 0};
  static const uint8_t bad[] = {1, 1};

  /* Not pipelined: server picks 0x02, the RFC 1929 request is released, then the request. */
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "al", "pw", false),
                  0);
  drain(&c);
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, m2, 2, &used), T2S_SOCKS5_NEED_MORE);
  static const uint8_t a[] = {1, 2, 'a', 'l', 2, 'p', 'w'};
  expect_output(&c, a, sizeof(a));
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, ok, 2, &used), T2S_SOCKS5_NEED_MORE);
  expect_output(&c, V4_REQ_CONNECT, sizeof(V4_REQ_CONNECT));
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, V4_REPLY_OK, sizeof(V4_REPLY_OK), &used),
                  T2S_SOCKS5_DONE);

  /* Not pipelined with credentials: server picks 0x00, the credentials are never sent. */
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "al", "pw", false),
                  0);
  drain(&c);
  static const uint8_t m0[] = {5, 0};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, m0, 2, &used), T2S_SOCKS5_NEED_MORE);
  expect_output(&c, V4_REQ_CONNECT, sizeof(V4_REQ_CONNECT));
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, V4_REPLY_OK, sizeof(V4_REPLY_OK), &used),
                  T2S_SOCKS5_DONE);

  /* Failure status. */
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "al", "pw", true),
                  0);
  drain(&c);
  uint8_t both[4] = {5, 2, 1, 1};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, both, 4, &used), T2S_ERR_AUTH);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_AUTH_FAILED);
  CU_ASSERT_EQUAL(used, 4);
  (void)bad;

  /* Some servers answer the sub-negotiation with VER 5: accepted. Others with garbage. */
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "al", "pw", true),
                  0);
  drain(&c);
  uint8_t v5[4] = {5, 2, 5, 0};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, v5, 4, &used), T2S_SOCKS5_NEED_MORE);
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "al", "pw", true),
                  0);
  drain(&c);
  uint8_t v2[4] = {5, 2, 2, 0};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, v2, 4, &used), T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_BAD_AUTH_VERSION);

  /* Method 0xFF: no acceptable method. */
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, NULL, NULL, false),
                  0);
  drain(&c);
  static const uint8_t mff[] = {5, 0xff};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, mff, 2, &used), T2S_ERR_AUTH);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_NO_ACCEPTABLE_METHOD);

  /* A method that was not offered: 0x02 without credentials, 0x00 when pipelining with them,
   * GSSAPI (0x01). */
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, NULL, NULL, false),
                  0);
  drain(&c);
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, m2, 2, &used), T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_BAD_METHOD);
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "u", "p", true), 0);
  drain(&c);
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, m0, 2, &used), T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_BAD_METHOD);
  CU_ASSERT_EQUAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, "u", "p", false),
                  0);
  drain(&c);
  static const uint8_t m1[] = {5, 1};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, m1, 2, &used), T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_BAD_METHOD);
}

/* The whole server side of a pipelined, authenticated CONNECT with an IPv6 BND. */
static const uint8_t FULL[] = {5, 2, 1, 0, 5, 0, 0, 4, 0x20, 1, 0x0d, 0xb8, 0,
                               0, 0, 0, 0, 0, 0, 0, 0, 0,    0, 9,    0,    80};
enum { FULL_AUTH_AT = 2, FULL_REPLY_AT = 4 };

static void init_full(t2s_socks5_client *c, t2s_socks5_cmd cmd) {
  t2s_addr dst = addr_of("192.0.2.1:80");
  CU_ASSERT_FATAL(t2s_socks5_client_init_addr(c, cmd, &dst, "u", "p", true) == 0);
  drain(c);
}

static void test_pipelined_split(void) {
  t2s_addr want = addr_of("[2001:db8::9]:80");
  /* Every chunk size, and the same outcome, with stream data after the reply. */
  uint8_t buf[sizeof(FULL) + 5];
  memcpy(buf, FULL, sizeof(FULL));
  memcpy(buf + sizeof(FULL), "hello", 5);
  for (size_t chunk = 0; chunk <= sizeof(buf); chunk++) {
    t2s_socks5_client c;
    size_t used;
    init_full(&c, T2S_SOCKS5_CMD_CONNECT);
    CU_ASSERT_EQUAL(feed_split(&c, buf, sizeof(buf), chunk, &used), T2S_SOCKS5_DONE);
    CU_ASSERT_EQUAL(used, sizeof(FULL));
    CU_ASSERT_TRUE(t2s_addr_eq(&t2s_socks5_client_bnd(&c)->addr, &want));
    /* After DONE a CONNECT client consumes nothing: it is all stream data. */
    size_t n;
    CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, (const uint8_t *)"x", 1, &n), T2S_SOCKS5_DONE);
    CU_ASSERT_EQUAL(n, 0);
  }
}

static void test_truncated_every_length(void) {
  for (size_t k = 0; k < sizeof(FULL); k++) {
    for (int cmd = T2S_SOCKS5_CMD_CONNECT; cmd <= T2S_SOCKS5_CMD_UDP_ASSOCIATE; cmd += 2) {
      t2s_socks5_client c;
      size_t used;
      init_full(&c, (t2s_socks5_cmd)cmd);
      CU_ASSERT_EQUAL(feed_split(&c, FULL, k, 0, &used), T2S_SOCKS5_NEED_MORE);
      CU_ASSERT_EQUAL(used, k);
      CU_ASSERT_FALSE(t2s_socks5_client_done(&c));
      int rv = t2s_socks5_client_eof(&c);
      if (k == 0) {
        CU_ASSERT_EQUAL(rv, T2S_ERR_CLOSED);
        CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_EOF);
      } else if (k == FULL_AUTH_AT) {
        CU_ASSERT_EQUAL(rv, T2S_ERR_AUTH);
        CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_EOF);
      } else if (k == FULL_REPLY_AT) {
        CU_ASSERT_EQUAL(rv, cmd == T2S_SOCKS5_CMD_CONNECT ? T2S_ERR_CLOSED : T2S_ERR_UNSUPPORTED);
        CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), cmd == T2S_SOCKS5_CMD_CONNECT
                                                          ? T2S_SOCKS5_REASON_EOF
                                                          : T2S_SOCKS5_REASON_CLOSED_AFTER_REQUEST);
      } else {
        CU_ASSERT_EQUAL(rv, T2S_ERR_MALFORMED);
        CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_TRUNCATED);
      }
      /* Final. */
      CU_ASSERT_EQUAL(t2s_socks5_client_eof(&c), rv);
    }
  }
}

static void test_hostile(void) {
  t2s_socks5_client c;
  size_t used;
  static const struct {
    const char *name;
    uint8_t bytes[16];
    size_t len;
    int err;
    t2s_socks5_error_reason reason;
    size_t used; /* bytes consumed when the error is reported */
  } cases[] = {
      {"bad version in method answer", {4, 0}, 2, T2S_ERR_PROTO, T2S_SOCKS5_REASON_BAD_VERSION, 2},
      {"bad version in reply",
       {5, 0, 4, 0, 0, 1},
       6,
       T2S_ERR_PROTO,
       T2S_SOCKS5_REASON_BAD_VERSION,
       4},
      {"reserved nonzero",
       {5, 0, 5, 0, 1, 1},
       6,
       T2S_ERR_PROTO,
       T2S_SOCKS5_REASON_RESERVED_NONZERO,
       6},
      {"unknown atyp",
       {5, 0, 5, 0, 0, 2, 1, 2, 3, 4},
       10,
       T2S_ERR_MALFORMED,
       T2S_SOCKS5_REASON_UNKNOWN_ATYP,
       6},
      {"atyp zero", {5, 0, 5, 0, 0, 0}, 6, T2S_ERR_MALFORMED, T2S_SOCKS5_REASON_UNKNOWN_ATYP, 6},
      {"domain length zero",
       {5, 0, 5, 0, 0, 3, 0, 0, 80},
       9,
       T2S_ERR_MALFORMED,
       T2S_SOCKS5_REASON_BAD_DOMAIN_LEN,
       7},
  };
  for (size_t i = 0; i < T2S_ARRAY_LEN(cases); i++) {
    for (size_t chunk = 0; chunk <= 1; chunk++) {
      t2s_addr dst = addr_of("192.0.2.1:80");
      CU_ASSERT_FATAL(
          t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, NULL, NULL, true) == 0);
      drain(&c);
      int rv = feed_split(&c, cases[i].bytes, cases[i].len, chunk, &used);
      if (rv != cases[i].err || t2s_socks5_client_reason(&c) != cases[i].reason) {
        fprintf(stderr, "case %s: rv %d reason %s\n", cases[i].name, rv,
                t2s_socks5_reason_name(t2s_socks5_client_reason(&c)));
      }
      CU_ASSERT_EQUAL(rv, cases[i].err);
      CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), cases[i].reason);
      CU_ASSERT_EQUAL(used, cases[i].used);
    }
  }

  /* Domain length 255 with only part of the name, then EOF: truncated, never an over-read. */
  uint8_t big[300];
  memset(big, 'z', sizeof(big));
  memcpy(big, (const uint8_t[]){5, 0, 5, 0, 0, 3, 255}, 7);
  t2s_addr dst = addr_of("192.0.2.1:80");
  CU_ASSERT_FATAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, NULL, NULL, true) ==
                  0);
  drain(&c);
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, big, 100, &used), T2S_SOCKS5_NEED_MORE);
  CU_ASSERT_EQUAL(t2s_socks5_client_eof(&c), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_TRUNCATED);
  /* The same with the whole name and port: 255 bytes are fine; the rest stays unconsumed. */
  CU_ASSERT_FATAL(t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, NULL, NULL, true) ==
                  0);
  drain(&c);
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, big, sizeof(big), &used), T2S_SOCKS5_DONE);
  CU_ASSERT_EQUAL(used, 2 + 4 + 1 + 255 + 2);
  CU_ASSERT_EQUAL(t2s_socks5_client_bnd(&c)->domainlen, 255);

  /* Trailing bytes after a UDP ASSOCIATE reply, in the same read or a later one. */
  static const uint8_t ru[] = {5, 0, 0, 1, 10, 0, 0, 1, 0x9c, 0x40, 0xaa};
  CU_ASSERT_EQUAL(run_reply(T2S_SOCKS5_CMD_UDP_ASSOCIATE, ru, sizeof(ru), 0, &c, &used),
                  T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_TRAILING_BYTES);
  CU_ASSERT_EQUAL(run_reply(T2S_SOCKS5_CMD_UDP_ASSOCIATE, ru, sizeof(ru), 1, &c, &used),
                  T2S_SOCKS5_DONE);
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, ru + 10, 1, &used), T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_TRAILING_BYTES);

  /* Answers before the message they answer was written. */
  CU_ASSERT_FATAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, NULL, NULL, false) == 0);
  static const uint8_t early[] = {5, 0};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, early, 2, &used), T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_UNSOLICITED);
  CU_ASSERT_FATAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_CONNECT, &dst, NULL, NULL, false) == 0);
  drain(&c);
  /* A server that sends its method answer and the reply before seeing the request. */
  static const uint8_t both[] = {5, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 80};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, both, sizeof(both), &used), T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_UNSOLICITED);
  CU_ASSERT_EQUAL(used, 2);
}

static void test_eof_stages(void) {
  t2s_socks5_client c;
  t2s_addr dst = addr_of("192.0.2.1:80");
  size_t used;
  /* Before the greeting was even written. */
  CU_ASSERT_FATAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_UDP_ASSOCIATE, &dst, NULL, NULL, true) == 0);
  CU_ASSERT_EQUAL(t2s_socks5_client_eof(&c), T2S_ERR_CLOSED);
  /* UDP ASSOCIATE answered by a close (ssh -D), but only once the request was written. */
  CU_ASSERT_FATAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_UDP_ASSOCIATE, &dst, NULL, NULL, false) == 0);
  drain(&c);
  static const uint8_t m0[] = {5, 0};
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, m0, 2, &used), T2S_SOCKS5_NEED_MORE);
  CU_ASSERT_EQUAL(t2s_socks5_client_eof(&c), T2S_ERR_CLOSED);
  CU_ASSERT_FATAL(
      t2s_socks5_client_init_addr(&c, T2S_SOCKS5_CMD_UDP_ASSOCIATE, &dst, NULL, NULL, false) == 0);
  drain(&c);
  CU_ASSERT_EQUAL(t2s_socks5_client_feed(&c, m0, 2, &used), T2S_SOCKS5_NEED_MORE);
  drain(&c);
  CU_ASSERT_EQUAL(t2s_socks5_client_eof(&c), T2S_ERR_UNSUPPORTED);
  CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c), T2S_SOCKS5_REASON_CLOSED_AFTER_REQUEST);
  CU_ASSERT_EQUAL(t2s_socks5_client_error(&c), T2S_ERR_UNSUPPORTED);
}

/* ---------------- UDP ---------------- */

static void test_udp_relay(void) {
  t2s_addr relay;
  t2s_addr proxy4 = addr_of("203.0.113.5:1080");
  t2s_addr proxy6 = addr_of("[2001:db8::5]:1080");
  t2s_addr any4 = addr_of("0.0.0.0:40000");
  t2s_addr any6 = addr_of("[::]:40001");
  t2s_addr other6 = addr_of("[2001:db8::77]:40002");
  CU_ASSERT_EQUAL(t2s_socks5_udp_relay(&any4, &proxy4, &relay), 0);
  t2s_addr w = addr_of("203.0.113.5:40000");
  CU_ASSERT_TRUE(t2s_addr_eq(&relay, &w));
  /* 0.0.0.0 over an IPv6 control connection: the proxy's IPv6 address. */
  CU_ASSERT_EQUAL(t2s_socks5_udp_relay(&any4, &proxy6, &relay), 0);
  w = addr_of("[2001:db8::5]:40000");
  CU_ASSERT_TRUE(t2s_addr_eq(&relay, &w));
  CU_ASSERT_EQUAL(t2s_socks5_udp_relay(&any6, &proxy4, &relay), 0);
  w = addr_of("203.0.113.5:40001");
  CU_ASSERT_TRUE(t2s_addr_eq(&relay, &w));
  /* A specific relay of the other family is used as is. */
  CU_ASSERT_EQUAL(t2s_socks5_udp_relay(&other6, &proxy4, &relay), 0);
  CU_ASSERT_TRUE(t2s_addr_eq(&relay, &other6));
  t2s_addr port0 = addr_of("198.51.100.1");
  CU_ASSERT_EQUAL(t2s_socks5_udp_relay(&port0, &proxy4, &relay), T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(t2s_socks5_udp_relay(&any4, NULL, &relay), T2S_ERR_PROTO);
  t2s_addr unset;
  memset(&unset, 0, sizeof(unset));
  CU_ASSERT_EQUAL(t2s_socks5_udp_relay(&unset, &proxy4, &relay), T2S_ERR_INVALID_ARGUMENT);
}

static void test_udp_header(void) {
  uint8_t buf[64];
  t2s_addr v4 = addr_of("192.0.2.1:53");
  t2s_addr v6 = addr_of("[2001:db8::1]:443");
  t2s_addr src;
  const uint8_t *pl;
  size_t pllen;
  t2s_socks5_error_reason r;

  CU_ASSERT_EQUAL(t2s_socks5_udp_header_len(&v4), 10);
  CU_ASSERT_EQUAL(t2s_socks5_udp_header_len(&v6), 22);
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode(buf, sizeof(buf), &v4, (const uint8_t *)"abc", 3), 13);
  static const uint8_t e4[] = {0, 0, 0, 1, 192, 0, 2, 1, 0, 53, 'a', 'b', 'c'};
  CU_ASSERT(memcmp(buf, e4, sizeof(e4)) == 0);
  CU_ASSERT_EQUAL(t2s_socks5_udp_decode(buf, 13, &src, &pl, &pllen, &r), 0);
  CU_ASSERT_TRUE(t2s_addr_eq(&src, &v4));
  CU_ASSERT_EQUAL(pllen, 3);
  CU_ASSERT(memcmp(pl, "abc", 3) == 0);

  /* In place: the payload already sits after the header room. */
  memcpy(buf + 22, "hello", 5);
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode(buf, sizeof(buf), &v6, buf + 22, 5), 27);
  static const uint8_t e6[] = {0, 0, 0, 4, 0x20, 1, 0x0d, 0xb8, 0,   0,   0,   0,   0,  0,
                               0, 0, 0, 0, 0,    1, 1,    0xbb, 'h', 'e', 'l', 'l', 'o'};
  CU_ASSERT(memcmp(buf, e6, sizeof(e6)) == 0);
  CU_ASSERT_EQUAL(t2s_socks5_udp_decode(buf, 27, &src, &pl, &pllen, NULL), 0);
  CU_ASSERT_TRUE(t2s_addr_eq(&src, &v6));
  CU_ASSERT_EQUAL(pllen, 5);
  /* Payload overlapping the header region (placed at the buffer start). */
  memcpy(buf, "world", 5);
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode(buf, sizeof(buf), &v4, buf, 5), 15);
  CU_ASSERT(memcmp(buf + 10, "world", 5) == 0);
  /* Empty payload. */
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode(buf, 10, &v4, NULL, 0), 10);
  CU_ASSERT_EQUAL(t2s_socks5_udp_decode(buf, 10, &src, &pl, &pllen, NULL), 0);
  CU_ASSERT_EQUAL(pllen, 0);
  /* Errors. */
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode(buf, 12, &v4, (const uint8_t *)"abc", 3), T2S_ERR_NOBUF);
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode(buf, 5, &v4, NULL, 0), T2S_ERR_NOBUF);
  t2s_addr unset;
  memset(&unset, 0, sizeof(unset));
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode(buf, sizeof(buf), &unset, NULL, 0),
                  T2S_ERR_INVALID_ARGUMENT);

  /* Truncated at every length: never a success, never an over-read. */
  t2s_socks5_udp_encode(buf, sizeof(buf), &v6, (const uint8_t *)"x", 1);
  for (size_t k = 0; k < 22; k++) {
    uint8_t copy[22];
    memcpy(copy, buf, k); /* exact-size copy so ASan catches any over-read */
    CU_ASSERT_EQUAL(t2s_socks5_udp_decode(copy, k, &src, &pl, &pllen, &r), T2S_ERR_MALFORMED);
    CU_ASSERT_EQUAL(r, T2S_SOCKS5_REASON_TRUNCATED);
  }

  /* FRAG != 0: a named error the caller counts. */
  static const uint8_t frag[] = {0, 0, 1, 1, 192, 0, 2, 1, 0, 53, 'a'};
  CU_ASSERT_EQUAL(t2s_socks5_udp_decode(frag, sizeof(frag), &src, &pl, &pllen, &r),
                  T2S_ERR_UNSUPPORTED);
  CU_ASSERT_EQUAL(r, T2S_SOCKS5_REASON_FRAG);
  static const uint8_t rsv[] = {0, 1, 0, 1, 192, 0, 2, 1, 0, 53};
  CU_ASSERT_EQUAL(t2s_socks5_udp_decode(rsv, sizeof(rsv), &src, &pl, &pllen, &r), T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(r, T2S_SOCKS5_REASON_RESERVED_NONZERO);
  static const uint8_t atyp[] = {0, 0, 0, 5, 192, 0, 2, 1, 0, 53};
  CU_ASSERT_EQUAL(t2s_socks5_udp_decode(atyp, sizeof(atyp), &src, &pl, &pllen, &r),
                  T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(r, T2S_SOCKS5_REASON_UNKNOWN_ATYP);

  /* Domain source: rejected by _decode, reported by _decode_host. */
  static const uint8_t dom[] = {0, 0, 0, 3, 3, 'd', 'n', 's', 0, 53, 'q'};
  CU_ASSERT_EQUAL(t2s_socks5_udp_decode(dom, sizeof(dom), &src, &pl, &pllen, &r),
                  T2S_ERR_UNSUPPORTED);
  CU_ASSERT_EQUAL(r, T2S_SOCKS5_REASON_DOMAIN_UNSUPPORTED);
  t2s_socks5_host h;
  CU_ASSERT_EQUAL(t2s_socks5_udp_decode_host(dom, sizeof(dom), &h, &pl, &pllen, &r), 0);
  CU_ASSERT_STRING_EQUAL(h.domain, "dns");
  CU_ASSERT_EQUAL(h.addr.port, 53);
  CU_ASSERT_EQUAL(pllen, 1);
  CU_ASSERT_EQUAL(*pl, 'q');
  /* Domain length running past the datagram, or zero. */
  static const uint8_t over[] = {0, 0, 0, 3, 200, 'd', 'n', 's', 0, 53};
  CU_ASSERT_EQUAL(t2s_socks5_udp_decode(over, sizeof(over), &src, &pl, &pllen, &r),
                  T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(r, T2S_SOCKS5_REASON_BAD_DOMAIN_LEN);
  static const uint8_t zero[] = {0, 0, 0, 3, 0, 0, 53};
  CU_ASSERT_EQUAL(t2s_socks5_udp_decode(zero, sizeof(zero), &src, &pl, &pllen, &r),
                  T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(r, T2S_SOCKS5_REASON_BAD_DOMAIN_LEN);
}

/* UDP datagrams to a domain name (ATYP 3, --fake-dns): the header, in place, and what the
 * server-side decoder reads back. */
static void test_udp_header_domain(void) {
  uint8_t buf[300];
  t2s_socks5_host h, got;
  const uint8_t *pl;
  size_t pllen;
  t2s_socks5_error_reason r;
  CU_ASSERT_EQUAL(t2s_socks5_host_from_domain(&h, "quic.example", 443), 0);
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode_host(buf, sizeof(buf), &h, (const uint8_t *)"hi", 2),
                  3 + 1 + 1 + 12 + 2 + 2);
  static const uint8_t want[] = {0,   0,   0,   3,   12,  'q', 'u', 'i',  'c', '.', 'e',
                                 'x', 'a', 'm', 'p', 'l', 'e', 1,   0xbb, 'h', 'i'};
  CU_ASSERT(memcmp(buf, want, sizeof(want)) == 0);
  CU_ASSERT_EQUAL(t2s_socks5_udp_decode_host(buf, sizeof(want), &got, &pl, &pllen, &r), 0);
  CU_ASSERT_EQUAL(got.atyp, T2S_SOCKS5_ATYP_DOMAIN);
  CU_ASSERT_STRING_EQUAL(got.domain, "quic.example");
  CU_ASSERT_EQUAL(got.addr.port, 443);
  CU_ASSERT(pllen == 2 && memcmp(pl, "hi", 2) == 0);
  /* In place, the payload already after the header room. */
  memcpy(buf + 19, "xyz", 3);
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode_host(buf, sizeof(buf), &h, buf + 19, 3), 22);
  CU_ASSERT(memcmp(buf + 19, "xyz", 3) == 0);
  /* An IP host encodes as t2s_socks5_udp_encode does. */
  t2s_addr v4 = addr_of("192.0.2.1:53");
  uint8_t a[32], b[32];
  CU_ASSERT_EQUAL(t2s_socks5_host_from_addr(&h, &v4), 0);
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode_host(a, sizeof(a), &h, (const uint8_t *)"q", 1), 11);
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode(b, sizeof(b), &v4, (const uint8_t *)"q", 1), 11);
  CU_ASSERT(memcmp(a, b, 11) == 0);
  /* Errors: no room, an invalid host. */
  CU_ASSERT_EQUAL(t2s_socks5_host_from_domain(&h, "quic.example", 443), 0);
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode_host(buf, 19, &h, (const uint8_t *)"hi", 2), T2S_ERR_NOBUF);
  memset(&h, 0, sizeof(h));
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode_host(buf, sizeof(buf), &h, NULL, 0),
                  T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_socks5_udp_encode_host(buf, sizeof(buf), NULL, NULL, 0),
                  T2S_ERR_INVALID_ARGUMENT);
}

static void test_reason_names(void) {
  CU_ASSERT_STRING_EQUAL(t2s_socks5_reason_name(T2S_SOCKS5_REASON_BAD_VERSION), "bad_version");
  CU_ASSERT_STRING_EQUAL(t2s_socks5_reason_name(T2S_SOCKS5_REASON_UNKNOWN_ATYP), "unknown_atyp");
  CU_ASSERT_STRING_EQUAL(t2s_socks5_reason_name(T2S_SOCKS5_REASON_TRAILING_BYTES),
                         "trailing_bytes");
  CU_ASSERT_STRING_EQUAL(t2s_socks5_reason_name(T2S_SOCKS5_REASON_MAX), "unknown");
  CU_ASSERT_STRING_EQUAL(t2s_socks5_reason_name(-1), "unknown");
  for (int i = 0; i < T2S_SOCKS5_REASON_MAX; i++) {
    CU_ASSERT(strlen(t2s_socks5_reason_name(i)) > 0);
  }
}

/* ---------------- server model ---------------- */

static int server_feed_all(t2s_sim_socks5_server *s, const uint8_t *data, size_t len,
                           size_t *pused) {
  return t2s_sim_socks5_server_feed(s, data, len, pused);
}

static void expect_server_output(t2s_sim_socks5_server *s, const uint8_t *want, size_t wantlen) {
  const uint8_t *p;
  size_t n;
  t2s_sim_socks5_server_pending_output(s, &p, &n);
  CU_ASSERT_EQUAL(n, wantlen);
  if (n == wantlen && n > 0) {
    CU_ASSERT(memcmp(p, want, n) == 0);
  }
  t2s_sim_socks5_server_output_consumed(s, n);
}

static void test_server_vectors(void) {
  t2s_sim_socks5_server s;
  t2s_sim_socks5_config cfg = {.udp_supported = true};
  size_t used;

  /* Greeting, CONNECT to a domain, then payload that is left to the caller. */
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_method(&s), -1);
  static const uint8_t in[] = {5, 1, 0, 5, 1, 0, 3, 3, 'a', '.', 'b', 0, 80, 'G', 'E', 'T'};
  CU_ASSERT_EQUAL(server_feed_all(&s, in, sizeof(in), &used), T2S_SIM_SOCKS5_REQUEST_READY);
  CU_ASSERT_EQUAL(used, sizeof(in) - 3);
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_method(&s), 0);
  uint8_t cmd = 0;
  const t2s_socks5_host *d = t2s_sim_socks5_server_request(&s, &cmd);
  CU_ASSERT_PTR_NOT_NULL_FATAL(d);
  CU_ASSERT_EQUAL(cmd, T2S_SOCKS5_CMD_CONNECT);
  CU_ASSERT_STRING_EQUAL(d->domain, "a.b");
  CU_ASSERT_EQUAL(d->addr.port, 80);
  /* Still waiting for the simulator's decision: nothing consumed. */
  CU_ASSERT_EQUAL(server_feed_all(&s, in + used, 3, &used), T2S_SIM_SOCKS5_REQUEST_READY);
  CU_ASSERT_EQUAL(used, 0);
  t2s_addr bnd = addr_of("10.0.0.1:5555");
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_reply(&s, 0, &bnd), 0);
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_reply(&s, 0, &bnd), T2S_ERR_INVALID_ARGUMENT);
  static const uint8_t out[] = {5, 0, 5, 0, 0, 1, 10, 0, 0, 1, 0x15, 0xb3};
  expect_server_output(&s, out, sizeof(out));
  CU_ASSERT_EQUAL(server_feed_all(&s, (const uint8_t *)"GET", 3, &used),
                  T2S_SIM_SOCKS5_ESTABLISHED);
  CU_ASSERT_EQUAL(used, 0);

  /* BIND: REP 7 and close. */
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  static const uint8_t bind[] = {5, 1, 0, 5, 2, 0, 1, 1, 2, 3, 4, 0, 80};
  CU_ASSERT_EQUAL(server_feed_all(&s, bind, sizeof(bind), &used), T2S_SIM_SOCKS5_CLOSE);
  static const uint8_t rep7[] = {5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0};
  expect_server_output(&s, rep7, sizeof(rep7));
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_reply(&s, 0, NULL), T2S_ERR_INVALID_ARGUMENT);

  /* Unknown command: REP 7 too, with the reason noted. */
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  uint8_t unk[sizeof(bind)];
  memcpy(unk, bind, sizeof(bind));
  unk[4] = 9;
  CU_ASSERT_EQUAL(server_feed_all(&s, unk, sizeof(unk), &used), T2S_SIM_SOCKS5_CLOSE);
  expect_server_output(&s, rep7, sizeof(rep7));
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_reason(&s), T2S_SOCKS5_REASON_BAD_COMMAND);

  /* Unknown ATYP: REP 8. */
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  static const uint8_t atyp[] = {5, 1, 0, 5, 1, 0, 7, 1, 2, 3, 4, 0, 80};
  CU_ASSERT_EQUAL(server_feed_all(&s, atyp, sizeof(atyp), &used), T2S_SIM_SOCKS5_CLOSE);
  static const uint8_t rep8[] = {5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0};
  expect_server_output(&s, rep8, sizeof(rep8));
  CU_ASSERT_PTR_NULL(t2s_sim_socks5_server_request(&s, NULL));

  /* Bad versions and a zero domain length: protocol errors, close. */
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  static const uint8_t v4[] = {4, 1, 0, 80, 1, 2, 3, 4, 0};
  CU_ASSERT_EQUAL(server_feed_all(&s, v4, sizeof(v4), &used), T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_reason(&s), T2S_SOCKS5_REASON_BAD_VERSION);
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_status(&s), T2S_SIM_SOCKS5_CLOSE);
  CU_ASSERT_EQUAL(server_feed_all(&s, v4, sizeof(v4), &used), T2S_ERR_PROTO);
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  static const uint8_t d0[] = {5, 1, 0, 5, 1, 0, 3, 0, 0, 80};
  CU_ASSERT_EQUAL(server_feed_all(&s, d0, sizeof(d0), &used), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_reason(&s), T2S_SOCKS5_REASON_BAD_DOMAIN_LEN);
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  static const uint8_t nm0[] = {5, 0};
  CU_ASSERT_EQUAL(server_feed_all(&s, nm0, sizeof(nm0), &used), T2S_SIM_SOCKS5_CLOSE);
  static const uint8_t ff[] = {5, 0xff};
  expect_server_output(&s, ff, sizeof(ff));

  /* Auth required: wrong password gets STATUS 1; no 0x02 offered gets 0xFF. */
  cfg.auth_required = true;
  cfg.username = "u";
  cfg.password = "secret";
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  static const uint8_t wrong[] = {5, 1, 2, 1, 1, 'u', 3, 'b', 'a', 'd'};
  CU_ASSERT_EQUAL(server_feed_all(&s, wrong, sizeof(wrong), &used), T2S_SIM_SOCKS5_CLOSE);
  static const uint8_t fail[] = {5, 2, 1, 1};
  expect_server_output(&s, fail, sizeof(fail));
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  static const uint8_t noauth[] = {5, 1, 0};
  CU_ASSERT_EQUAL(server_feed_all(&s, noauth, sizeof(noauth), &used), T2S_SIM_SOCKS5_CLOSE);
  expect_server_output(&s, ff, sizeof(ff));

  /* UDP unsupported: REP 7, or a bare close. */
  cfg = (t2s_sim_socks5_config){.udp_supported = false};
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  static const uint8_t udp[] = {5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0};
  CU_ASSERT_EQUAL(server_feed_all(&s, udp, sizeof(udp), &used), T2S_SIM_SOCKS5_CLOSE);
  expect_server_output(&s, rep7, sizeof(rep7));
  cfg.close_on_unsupported = true;
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  CU_ASSERT_EQUAL(server_feed_all(&s, udp, sizeof(udp), &used), T2S_SIM_SOCKS5_CLOSE);
  static const uint8_t m00[] = {5, 0};
  expect_server_output(&s, m00, sizeof(m00));

  /* Black hole: swallows everything, says nothing. */
  cfg = (t2s_sim_socks5_config){.black_hole = true};
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), 0);
  CU_ASSERT_EQUAL(server_feed_all(&s, in, sizeof(in), &used), T2S_SIM_SOCKS5_NEED_MORE);
  CU_ASSERT_EQUAL(used, sizeof(in));
  expect_server_output(&s, NULL, 0);

  /* Credentials too long for RFC 1929. */
  char longname[300];
  memset(longname, 'x', 256);
  longname[256] = '\0';
  cfg = (t2s_sim_socks5_config){.auth_required = true, .username = longname};
  CU_ASSERT_EQUAL(t2s_sim_socks5_server_init(&s, &cfg), T2S_ERR_INVALID_ARGUMENT);
}

/* ---------------- client against server ---------------- */

typedef struct pump_result {
  int client_rv;      /* last feed/eof result */
  bool request_seen;  /* the server reached REQUEST_READY */
  size_t unconsumed;  /* bytes the client left to the data stream */
  bool server_closed; /* the server asked to close */
  int server_err;     /* a protocol error seen by the server */
} pump_result;

/* Moves bytes both ways until the client finishes or nothing moves. chunk 0 = whole buffers.
 * At REQUEST_READY the server answers rep (BND bnd); a successful CONNECT reply is followed by
 * "pong" in the same write. */
static pump_result pump(t2s_socks5_client *c, t2s_sim_socks5_server *s, const t2s_socks5_host *dst,
                        uint8_t cmd, uint8_t rep, const t2s_addr *bnd, size_t chunk) {
  pump_result res = {.client_rv = T2S_SOCKS5_NEED_MORE};
  bool pong_sent = false;
  for (int iter = 0; iter < 32; iter++) {
    bool moved = false;
    const uint8_t *p;
    size_t n, used;
    t2s_socks5_client_pending_output(c, &p, &n);
    for (size_t off = 0; off < n;) {
      size_t k = chunk ? T2S_MIN(chunk, n - off) : n - off;
      int st = t2s_sim_socks5_server_feed(s, p + off, k, &used);
      if (st < 0) {
        res.server_err = st;
      }
      /* The client never sends beyond its request: the server takes all unless it closed. */
      if (st >= 0 && st != T2S_SIM_SOCKS5_CLOSE) {
        CU_ASSERT_EQUAL(used, k);
      }
      off += k;
      moved = true;
    }
    t2s_socks5_client_output_consumed(c, n);

    if (t2s_sim_socks5_server_status(s) == T2S_SIM_SOCKS5_REQUEST_READY) {
      uint8_t scmd;
      const t2s_socks5_host *sd = t2s_sim_socks5_server_request(s, &scmd);
      CU_ASSERT_PTR_NOT_NULL_FATAL(sd);
      CU_ASSERT_EQUAL(scmd, cmd);
      CU_ASSERT_EQUAL(sd->atyp, dst->atyp);
      CU_ASSERT_TRUE(t2s_addr_eq(&sd->addr, &dst->addr));
      CU_ASSERT_EQUAL(sd->domainlen, dst->domainlen);
      CU_ASSERT(memcmp(sd->domain, dst->domain, dst->domainlen) == 0);
      res.request_seen = true;
      CU_ASSERT_EQUAL(t2s_sim_socks5_server_reply(s, rep, bnd), 0);
    }

    uint8_t buf[T2S_SIM_SOCKS5_OUT_MAX + 8];
    t2s_sim_socks5_server_pending_output(s, &p, &n);
    memcpy(buf, p, n);
    t2s_sim_socks5_server_output_consumed(s, n);
    if (t2s_sim_socks5_server_status(s) == T2S_SIM_SOCKS5_ESTABLISHED &&
        cmd == T2S_SOCKS5_CMD_CONNECT && !pong_sent) {
      memcpy(buf + n, "pong", 4);
      n += 4;
      pong_sent = true;
    }
    for (size_t off = 0; off < n;) {
      size_t k = chunk ? T2S_MIN(chunk, n - off) : n - off;
      res.client_rv = t2s_socks5_client_feed(c, buf + off, k, &used);
      CU_ASSERT(used <= k);
      res.unconsumed += k - used;
      off += k;
      moved = true;
      if (res.client_rv < 0) {
        break;
      }
    }
    if (res.client_rv < 0) {
      break;
    }
    if (t2s_sim_socks5_server_status(s) == T2S_SIM_SOCKS5_CLOSE) {
      res.server_closed = true;
      res.client_rv = t2s_socks5_client_eof(c);
      break;
    }
    if (res.client_rv == T2S_SOCKS5_DONE && (pong_sent || cmd != T2S_SOCKS5_CMD_CONNECT)) {
      break;
    }
    if (!moved) {
      break;
    }
  }
  return res;
}

static void test_client_server_matrix(void) {
  static const char *const dsts[] = {"192.0.2.1:80", "[2001:db8::1]:443", "example.org"};
  static const struct {
    const char *user, *pass;
  } creds[] = {{NULL, NULL}, {"user", "pw"}, {"user", "wrong"}};
  int runs = 0;
  for (int ci = 0; ci < 3; ci++)
    for (int pipelined = 0; pipelined <= 1; pipelined++)
      for (int cmd = T2S_SOCKS5_CMD_CONNECT; cmd <= T2S_SOCKS5_CMD_UDP_ASSOCIATE; cmd += 2)
        for (int di = 0; di < 3; di++)
          for (int auth = 0; auth <= 1; auth++)
            for (int udp = 0; udp <= 1; udp++)
              for (int closeu = 0; closeu <= 1; closeu++)
                for (int hole = 0; hole <= 1; hole++)
                  for (int rep = 0; rep <= 5; rep += 5)
                    for (size_t chunk = 0; chunk <= 1; chunk++) {
                      t2s_socks5_host dst;
                      if (di < 2) {
                        t2s_addr a = addr_of(dsts[di]);
                        t2s_socks5_host_from_addr(&dst, &a);
                      } else {
                        t2s_socks5_host_from_domain(&dst, dsts[di], 8443);
                      }
                      t2s_socks5_client c;
                      CU_ASSERT_FATAL(t2s_socks5_client_init(&c, (t2s_socks5_cmd)cmd, &dst,
                                                             creds[ci].user, creds[ci].pass,
                                                             pipelined) == 0);
                      t2s_sim_socks5_config cfg = {
                          .auth_required = auth,
                          .username = "user",
                          .password = "pw",
                          .udp_supported = udp,
                          .close_on_unsupported = closeu,
                          .black_hole = hole,
                      };
                      t2s_sim_socks5_server s;
                      CU_ASSERT_FATAL(t2s_sim_socks5_server_init(&s, &cfg) == 0);
                      t2s_addr bnd = addr_of(di == 1 ? "[2001:db8::2]:7000" : "0.0.0.0:7000");
                      pump_result r = pump(&c, &s, &dst, (uint8_t)cmd, (uint8_t)rep, &bnd, chunk);
                      runs++;

                      /* The expected outcome. */
                      int want;
                      bool reaches_request = false;
                      if (hole) {
                        want = T2S_SOCKS5_NEED_MORE;
                      } else if (auth && ci == 0) {
                        want = T2S_ERR_AUTH; /* method 0xFF */
                      } else if (auth && ci == 2) {
                        want = T2S_ERR_AUTH; /* STATUS 1 */
                      } else if (cmd == T2S_SOCKS5_CMD_UDP_ASSOCIATE && !udp) {
                        want = T2S_ERR_UNSUPPORTED; /* REP 7, or the close */
                      } else {
                        reaches_request = true;
                        want = rep == 0 ? T2S_SOCKS5_DONE : T2S_ERR_REFUSED;
                      }
                      CU_ASSERT_EQUAL(r.client_rv, want);
                      CU_ASSERT_EQUAL(r.request_seen, reaches_request);
                      CU_ASSERT_EQUAL(r.server_err, 0);
                      if (r.client_rv != want) {
                        fprintf(stderr,
                                "matrix: creds %d pipelined %d cmd %d dst %d auth %d udp %d "
                                "close %d hole %d rep %d chunk %zu: got %d (%s) want %d\n",
                                ci, pipelined, cmd, di, auth, udp, closeu, hole, rep, chunk,
                                r.client_rv, t2s_socks5_reason_name(t2s_socks5_client_reason(&c)),
                                want);
                      }
                      if (want == T2S_SOCKS5_DONE) {
                        const t2s_socks5_host *b = t2s_socks5_client_bnd(&c);
                        CU_ASSERT_PTR_NOT_NULL_FATAL(b);
                        CU_ASSERT_TRUE(t2s_addr_eq(&b->addr, &bnd));
                        /* CONNECT: "pong" after the reply is left for the data stream. */
                        CU_ASSERT_EQUAL(r.unconsumed, cmd == T2S_SOCKS5_CMD_CONNECT ? 4 : 0);
                        CU_ASSERT_EQUAL(t2s_sim_socks5_server_status(&s),
                                        T2S_SIM_SOCKS5_ESTABLISHED);
                      }
                      if (cmd == T2S_SOCKS5_CMD_UDP_ASSOCIATE && !udp && !hole &&
                          want == T2S_ERR_UNSUPPORTED) {
                        CU_ASSERT_EQUAL(t2s_socks5_client_reason(&c),
                                        closeu ? T2S_SOCKS5_REASON_CLOSED_AFTER_REQUEST
                                               : T2S_SOCKS5_REASON_REP_CMD_UNSUPPORTED);
                      }
                      if (hole) {
                        /* Silence is the caller's to time out; EOF then says closed. */
                        CU_ASSERT_EQUAL(t2s_socks5_client_eof(&c), T2S_ERR_CLOSED);
                      }
                    }
  CU_ASSERT_EQUAL(runs, 3 * 2 * 2 * 3 * 2 * 2 * 2 * 2 * 2 * 2);
}

int t2s_test_register_socks5(void) {
  CU_pSuite s = CU_add_suite("socks5", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "greeting vectors", test_greeting_vectors) ||
      !CU_add_test(s, "request atyp vectors", test_request_atyp_vectors) ||
      !CU_add_test(s, "init invalid", test_init_invalid) ||
      !CU_add_test(s, "connect no auth", test_connect_noauth) ||
      !CU_add_test(s, "reply atyps", test_reply_atyps) ||
      !CU_add_test(s, "rep codes", test_rep_codes) || !CU_add_test(s, "auth", test_auth) ||
      !CU_add_test(s, "pipelined, every split", test_pipelined_split) ||
      !CU_add_test(s, "truncated at every length", test_truncated_every_length) ||
      !CU_add_test(s, "hostile replies", test_hostile) ||
      !CU_add_test(s, "eof by stage", test_eof_stages) ||
      !CU_add_test(s, "udp relay address", test_udp_relay) ||
      !CU_add_test(s, "udp header", test_udp_header) ||
      !CU_add_test(s, "udp header to a domain", test_udp_header_domain) ||
      !CU_add_test(s, "reason names", test_reason_names) ||
      !CU_add_test(s, "server vectors", test_server_vectors) ||
      !CU_add_test(s, "client x server matrix", test_client_server_matrix)) {
    return -1;
  }
  return 0;
}
