/* test_dns.c: the DNS codec of the fake-IP responder: queries parsed strictly (hostile names,
 * compression pointers, counts, lengths), reverse names, answers byte for byte. */
#include <string.h>

#include "dns.h"
#include "test_util.h"

/* Builds a query for name/qtype (class IN, RD set) into buf; with an OPT record of the given
 * UDP size and version when edns. Returns its length. */
static size_t mkquery(uint8_t *buf, uint16_t id, const char *name, uint16_t qtype, bool edns,
                      uint16_t size, uint8_t version) {
  memset(buf, 0, 12);
  t2s_put16(buf, id);
  t2s_put16(buf + 2, 0x0100);
  t2s_put16(buf + 4, 1);
  t2s_put16(buf + 10, edns ? 1 : 0);
  t2s_ssize n = t2s_dns_name_to_wire(name, buf + 12, 300);
  CU_ASSERT_FATAL(n > 0);
  size_t off = 12 + (size_t)n;
  t2s_put16(buf + off, qtype);
  t2s_put16(buf + off + 2, T2S_DNS_CLASS_IN);
  off += 4;
  if (edns) {
    buf[off] = 0;
    t2s_put16(buf + off + 1, T2S_DNS_TYPE_OPT);
    t2s_put16(buf + off + 3, size);
    t2s_put32(buf + off + 5, (uint32_t)version << 16);
    t2s_put16(buf + off + 9, 0);
    off += 11;
  }
  return off;
}

static void test_parse_query(void) {
  uint8_t m[512];
  size_t n = mkquery(m, 0x1234, "www.ExAmple.COM", T2S_DNS_TYPE_A, true, 4096, 0);
  t2s_dns_query q;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, n, &q), 0);
  CU_ASSERT_EQUAL(q.id, 0x1234);
  CU_ASSERT_EQUAL(q.qtype, T2S_DNS_TYPE_A);
  CU_ASSERT_EQUAL(q.qclass, T2S_DNS_CLASS_IN);
  CU_ASSERT_STRING_EQUAL(q.qname, "www.example.com");
  CU_ASSERT_EQUAL(q.qnamelen, 15);
  CU_ASSERT(q.qname_plain);
  CU_ASSERT_EQUAL(q.qname_wirelen, 17);
  CU_ASSERT(memcmp(q.qname_wire,
                   "\x03www\x07"
                   "ExAmple\x03"
                   "COM",
                   17) == 0);
  CU_ASSERT(q.edns);
  CU_ASSERT_EQUAL(q.edns_size, 4096);
  CU_ASSERT_EQUAL(t2s_dns_udp_limit(&q), 4096);
  /* Without OPT the limit is 512; an OPT below 512 counts as 512. */
  n = mkquery(m, 1, "a.b", T2S_DNS_TYPE_AAAA, false, 0, 0);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, n, &q), 0);
  CU_ASSERT(!q.edns);
  CU_ASSERT_EQUAL(t2s_dns_udp_limit(&q), 512);
  n = mkquery(m, 1, "a.b", T2S_DNS_TYPE_AAAA, true, 100, 0);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, n, &q), 0);
  CU_ASSERT_EQUAL(t2s_dns_udp_limit(&q), 512);
  /* The root. */
  n = mkquery(m, 1, ".", T2S_DNS_TYPE_NS, false, 0, 0);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, n, &q), 0);
  CU_ASSERT_EQUAL(q.qnamelen, 0);
  CU_ASSERT_STRING_EQUAL(q.qname, "");
}

static void test_parse_not_plain(void) {
  /* A label with a dot or a control byte inside: parsed, but the text is not the name. */
  uint8_t m[64] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a', '.', 'b', 1, 'c', 0, 0, 1, 0, 1};
  t2s_dns_query q;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, 23, &q), 0);
  CU_ASSERT(!q.qname_plain);
  m[14] = 0x01;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, 23, &q), 0);
  CU_ASSERT(!q.qname_plain);
  m[14] = 0x80;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, 23, &q), 0);
  CU_ASSERT(!q.qname_plain);
  m[14] = '-';
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, 23, &q), 0);
  CU_ASSERT(q.qname_plain);
  CU_ASSERT_STRING_EQUAL(q.qname, "a-b.c");
}

/* Hostile headers and counts: never answered as a query. */
static void test_parse_hostile_header(void) {
  uint8_t m[512];
  size_t n = mkquery(m, 7, "example.com", T2S_DNS_TYPE_A, false, 0, 0);
  t2s_dns_query q;
  /* Every truncation fails; shorter than a header it cannot even get a FORMERR. */
  for (size_t l = 0; l < n; l++) {
    CU_ASSERT_EQUAL(t2s_dns_parse_query(m, l, &q), T2S_ERR_MALFORMED);
    CU_ASSERT_EQUAL(q.header_ok, l >= 12);
  }
  /* A response is never answered. */
  m[2] |= 0x80;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, n, &q), T2S_ERR_MALFORMED);
  CU_ASSERT(!q.header_ok);
  m[2] &= 0x7f;
  /* OPCODE 2 (STATUS): NOTIMP. */
  m[2] |= 0x10;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, n, &q), T2S_ERR_UNSUPPORTED);
  CU_ASSERT(q.header_ok);
  m[2] &= (uint8_t)~0x78;
  /* QDCOUNT 0 and 2, ANCOUNT 1, NSCOUNT 1, ARCOUNT 1 with nothing there, ARCOUNT 5. */
  const size_t field[] = {4, 4, 6, 8, 10, 10};
  const uint16_t value[] = {0, 2, 1, 1, 1, 5};
  for (size_t i = 0; i < T2S_ARRAY_LEN(field); i++) {
    uint8_t c[512];
    memcpy(c, m, n);
    t2s_put16(c + field[i], value[i]);
    CU_ASSERT_EQUAL(t2s_dns_parse_query(c, n, &q), T2S_ERR_MALFORMED);
    CU_ASSERT(q.header_ok);
  }
  /* Trailing bytes. */
  m[n] = 0;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, n + 1, &q), T2S_ERR_MALFORMED);
  CU_ASSERT(q.header_ok);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, n, &q), 0);
}

static void test_parse_hostile_names(void) {
  uint8_t m[1024];
  t2s_dns_query q;
  memset(m, 0, sizeof(m));
  t2s_put16(m + 4, 1);
  /* 5 labels of 63: 321 octets, over 255. 4 labels of 61 + 0 = 249: fine. */
  size_t off = 12;
  for (int i = 0; i < 5; i++) {
    m[off++] = 63;
    memset(m + off, 'a', 63);
    off += 63;
  }
  m[off++] = 0;
  t2s_put16(m + off, 1);
  t2s_put16(m + off + 2, 1);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, off + 4, &q), T2S_ERR_MALFORMED);
  off = 12;
  for (int i = 0; i < 4; i++) {
    m[off++] = 62;
    memset(m + off, 'b', 62);
    off += 62;
  }
  m[off++] = 0; /* 4 * 63 + 1 = 253 octets */
  t2s_put16(m + off, 1);
  t2s_put16(m + off + 2, 1);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, off + 4, &q), 0);
  CU_ASSERT_EQUAL(q.qname_wirelen, 253);
  CU_ASSERT_EQUAL(q.qnamelen, 251);
  /* Exactly 255: 3 * 64 + 62 + 1. */
  off = 12;
  for (int i = 0; i < 3; i++) {
    m[off++] = 63;
    memset(m + off, 'c', 63);
    off += 63;
  }
  m[off++] = 61;
  memset(m + off, 'd', 61);
  off += 61;
  m[off++] = 0;
  t2s_put16(m + off, 1);
  t2s_put16(m + off + 2, 1);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, off + 4, &q), 0);
  CU_ASSERT_EQUAL(q.qname_wirelen, 255);
  CU_ASSERT_EQUAL(q.qnamelen, 253);
  /* One more octet: 256. */
  m[12 + 3 * 64] = 62;
  memset(m + 12 + 3 * 64 + 1, 'd', 62);
  m[12 + 3 * 64 + 63] = 0;
  t2s_put16(m + 12 + 3 * 64 + 64, 1);
  t2s_put16(m + 12 + 3 * 64 + 66, 1);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, 12 + 3 * 64 + 68, &q), T2S_ERR_MALFORMED);
  /* Label types 0x40 and 0x80; a label past the end. */
  uint8_t r[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x41, 'a', 0, 0, 1, 0, 1};
  CU_ASSERT_EQUAL(t2s_dns_parse_query(r, sizeof(r), &q), T2S_ERR_MALFORMED);
  CU_ASSERT(q.header_ok);
  r[12] = 0x81;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(r, sizeof(r), &q), T2S_ERR_MALFORMED);
  r[12] = 20;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(r, sizeof(r), &q), T2S_ERR_MALFORMED);
  r[12] = 1;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(r, sizeof(r), &q), 0);
  /* The question's name cannot be compressed: any pointer lands in the header or itself. */
  uint8_t p[] = {0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1};
  CU_ASSERT_EQUAL(t2s_dns_parse_query(p, sizeof(p), &q), T2S_ERR_MALFORMED);
  p[13] = 0;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(p, sizeof(p), &q), T2S_ERR_MALFORMED);
  p[13] = 14;
  CU_ASSERT_EQUAL(t2s_dns_parse_query(p, sizeof(p), &q), T2S_ERR_MALFORMED);
}

/* Compression pointers, through the name reader: backwards only, each before the last. */
static void test_read_name_pointers(void) {
  uint8_t m[64];
  memset(m, 0, sizeof(m));
  /* 12: "a.b" (1a1b0, 5 octets); 17: "c" + ptr 12; 21: "d" + ptr 17; 25: ptr to itself;
   * 27: ptr forward to 29; 29: "e" + ptr 31 (forward); 33: "f" + ptr 17 where 17 points
   * to 12: decreasing, fine; 37: loop 37 -> 39 is forward; 41: ptr 43: forward. */
  const uint8_t body[] = {1,    'a', 1,    'b', 0, 1,   'c',  0xc0, 12, 1,   'd',  0xc0, 17,
                          0xc0, 25,  0xc0, 29,  1, 'e', 0xc0, 31,   1,  'f', 0xc0, 21};
  memcpy(m + 12, body, sizeof(body));
  size_t len = 12 + sizeof(body);
  uint8_t wire[T2S_DNS_NAME_MAX];
  size_t wl, next;
  CU_ASSERT_EQUAL(t2s_dns_read_name(m, len, 17, wire, &wl, &next), 0);
  CU_ASSERT_EQUAL(wl, 7);
  CU_ASSERT(memcmp(wire,
                   "\x01"
                   "c\x01"
                   "a\x01"
                   "b",
                   7) == 0);
  CU_ASSERT_EQUAL(next, 21);
  CU_ASSERT_EQUAL(t2s_dns_read_name(m, len, 21, wire, &wl, &next), 0);
  CU_ASSERT_EQUAL(wl, 9);
  CU_ASSERT_EQUAL(next, 25);
  CU_ASSERT_EQUAL(t2s_dns_read_name(m, len, 25, wire, &wl, &next), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_dns_read_name(m, len, 27, wire, &wl, &next), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_dns_read_name(m, len, 29, wire, &wl, &next), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_dns_read_name(m, len, 33, wire, &wl, &next), 0);
  CU_ASSERT_EQUAL(wl, 11);
  /* A pointer cut short. */
  CU_ASSERT_EQUAL(t2s_dns_read_name(m, 18 + 2, 17, wire, &wl, &next), T2S_ERR_MALFORMED);
  /* A loop of two pointers: 40 -> 42 is forward; 42 -> 40 backward, then 40 -> 42 is not
   * before 40: refused. */
  uint8_t l[48];
  memset(l, 0, sizeof(l));
  l[40] = 0xc0;
  l[41] = 42;
  l[42] = 0xc0;
  l[43] = 40;
  CU_ASSERT_EQUAL(t2s_dns_read_name(l, 44, 42, wire, &wl, &next), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_dns_read_name(l, 44, 40, wire, &wl, &next), T2S_ERR_MALFORMED);
  /* A long chain of pointers, each one before the last, ending in the root: fine. */
  uint8_t c[300];
  memset(c, 0, sizeof(c));
  c[12] = 0;
  for (size_t i = 13; i + 1 < sizeof(c); i += 2) {
    c[i] = (uint8_t)(0xc0 | ((i - 2 < 13 ? 12 : i - 2) >> 8));
    c[i + 1] = (uint8_t)((i - 2 < 13 ? 12 : i - 2) & 0xff);
  }
  CU_ASSERT_EQUAL(t2s_dns_read_name(c, sizeof(c) - 1, sizeof(c) - 3, wire, &wl, &next), 0);
  CU_ASSERT_EQUAL(wl, 1);
}

static void test_parse_opt(void) {
  uint8_t m[512];
  t2s_dns_query q;
  size_t n = mkquery(m, 9, "example.org", T2S_DNS_TYPE_A, true, 1232, 0);
  /* An option (COOKIE, 8 bytes) that fits; then one whose length runs past RDATA. */
  uint8_t c[512];
  memcpy(c, m, n);
  t2s_put16(c + n - 2, 12);
  t2s_put16(c + n, 10);
  t2s_put16(c + n + 2, 8);
  memset(c + n + 4, 0xaa, 8);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(c, n + 12, &q), 0);
  CU_ASSERT(q.edns);
  t2s_put16(c + n + 2, 9);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(c, n + 12, &q), T2S_ERR_MALFORMED);
  /* RDLENGTH past the end. */
  t2s_put16(c + n - 2, 13);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(c, n + 12, &q), T2S_ERR_MALFORMED);
  /* Two OPT records. */
  memcpy(c, m, n);
  memcpy(c + n, m + n - 11, 11);
  t2s_put16(c + 10, 2);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(c, n + 11, &q), T2S_ERR_MALFORMED);
  /* An OPT owned by another name than the root. */
  memcpy(c, m, n - 11);
  c[n - 11] = 1;
  c[n - 10] = 'x';
  c[n - 9] = 0;
  memcpy(c + n - 8, m + n - 10, 10);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(c, n + 2, &q), T2S_ERR_MALFORMED);
  /* Another additional record (a TXT owned by the root) is skipped. */
  memcpy(c, m, n - 11);
  memcpy(c + n - 11, m + n - 11, 11);
  t2s_put16(c + n - 10, T2S_DNS_TYPE_TXT);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(c, n, &q), 0);
  CU_ASSERT(!q.edns);
  /* The version is reported. */
  n = mkquery(m, 9, "example.org", T2S_DNS_TYPE_A, true, 1232, 1);
  CU_ASSERT_EQUAL(t2s_dns_parse_query(m, n, &q), 0);
  CU_ASSERT_EQUAL(q.edns_version, 1);
}

static void test_build_answer(void) {
  uint8_t m[512], out[1024];
  t2s_dns_query q;
  size_t n = mkquery(m, 0xbeef, "Foo.Example", T2S_DNS_TYPE_A, false, 0, 0);
  CU_ASSERT_FATAL(t2s_dns_parse_query(m, n, &q) == 0);
  const uint8_t ip[4] = {198, 19, 0, 7};
  t2s_ssize r = t2s_dns_build_answer(out, sizeof(out), 512, &q, 0, ip, 4, 1);
  /* header 12 + question 13 + 4 + answer 2 + 10 + 4 */
  CU_ASSERT_EQUAL(r, 12 + 17 + 16);
  const uint8_t want[] = {0xbe, 0xef, 0x81, 0x80, 0,   1,   0,   1,   0,   0, 0, 0,   3,  'F', 'o',
                          'o',  7,    'E',  'x',  'a', 'm', 'p', 'l', 'e', 0, 0, 1,   0,  1,   0xc0,
                          12,   0,    1,    0,    1,   0,   0,   0,   1,   0, 4, 198, 19, 0,   7};
  CU_ASSERT_EQUAL(sizeof(want), 45);
  CU_ASSERT(r == 45 && memcmp(out, want, 45) == 0);
  /* NODATA with EDNS: the OPT record comes back. */
  n = mkquery(m, 2, "x.y", T2S_DNS_TYPE_HTTPS, true, 1400, 0);
  CU_ASSERT_FATAL(t2s_dns_parse_query(m, n, &q) == 0);
  r = t2s_dns_build_answer(out, sizeof(out), 1400, &q, 0, NULL, 0, 0);
  CU_ASSERT_EQUAL(r, 12 + 5 + 4 + 11);
  CU_ASSERT_EQUAL(t2s_get16(out + 6), 0);
  CU_ASSERT_EQUAL(t2s_get16(out + 10), 1);
  CU_ASSERT_EQUAL(t2s_get16(out + 21 + 1), T2S_DNS_TYPE_OPT);
  CU_ASSERT_EQUAL(t2s_get16(out + 21 + 3), T2S_DNS_EDNS_SIZE);
  /* BADVERS: RCODE 0 in the header, extended RCODE 1 in the OPT. */
  r = t2s_dns_build_answer(out, sizeof(out), 1400, &q, T2S_DNS_RCODE_BADVERS, NULL, 0, 0);
  CU_ASSERT_EQUAL(out[3] & 0xf, 0);
  CU_ASSERT_EQUAL(out[21 + 5], 1);
  /* Without EDNS an extended RCODE cannot be sent. */
  n = mkquery(m, 2, "x.y", T2S_DNS_TYPE_A, false, 0, 0);
  CU_ASSERT_FATAL(t2s_dns_parse_query(m, n, &q) == 0);
  CU_ASSERT_EQUAL(t2s_dns_build_answer(out, sizeof(out), 512, &q, 16, NULL, 0, 0),
                  T2S_ERR_INVALID_ARGUMENT);
  /* Over the client's limit: TC, no answer record. */
  r = t2s_dns_build_answer(out, sizeof(out), 30, &q, 0, ip, 4, 1);
  CU_ASSERT_EQUAL(r, 12 + 5 + 4);
  CU_ASSERT(out[2] & 0x02);
  CU_ASSERT_EQUAL(t2s_get16(out + 6), 0);
  /* Too small a buffer. */
  CU_ASSERT_EQUAL(t2s_dns_build_answer(out, 20, 512, &q, 0, ip, 4, 1), T2S_ERR_NOBUF);
  /* Header-only errors keep ID, OPCODE and RD. */
  q.flags = 0x2100;
  CU_ASSERT_EQUAL(t2s_dns_build_header_error(out, sizeof(out), &q, T2S_DNS_RCODE_NOTIMP), 12);
  CU_ASSERT_EQUAL(t2s_get16(out + 2), 0x8000 | 0x2000 | 0x0100 | 0x0080 | 4);
  CU_ASSERT_EQUAL(t2s_get16(out + 4), 0);
  CU_ASSERT_EQUAL(t2s_dns_build_header_error(out, 11, &q, 1), T2S_ERR_NOBUF);
}

static void test_name_to_wire(void) {
  uint8_t w[300];
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire("a.bc", w, sizeof(w)), 6);
  CU_ASSERT(memcmp(w,
                   "\x01"
                   "a\x02"
                   "bc",
                   6) == 0);
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire("a.bc.", w, sizeof(w)), 6);
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire("", w, sizeof(w)), 1);
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire(".", w, sizeof(w)), 1);
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire("a..b", w, sizeof(w)), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire(".a", w, sizeof(w)), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire("a..", w, sizeof(w)), T2S_ERR_MALFORMED);
  char big[300];
  memset(big, 'x', 64);
  big[64] = '\0';
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire(big, w, sizeof(w)), T2S_ERR_MALFORMED);
  big[63] = '\0';
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire(big, w, sizeof(w)), 65);
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire(big, w, 64), T2S_ERR_NOBUF);
  /* 254 characters of text: 256 octets. */
  memset(big, 'y', 254);
  for (int i = 63; i < 254; i += 64) {
    big[i] = '.';
  }
  big[254] = '\0';
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire(big, w, sizeof(w)), T2S_ERR_MALFORMED);
  big[253] = '\0';
  CU_ASSERT_EQUAL(t2s_dns_name_to_wire(big, w, sizeof(w)), 255);
}

static void test_ptr_addr(void) {
  t2s_addr a;
  CU_ASSERT_EQUAL(t2s_dns_ptr_addr("7.0.19.198.in-addr.arpa", &a), 0);
  CU_ASSERT_EQUAL(a.family, T2S_AF_INET);
  CU_ASSERT(memcmp(a.ip, "\xc6\x13\x00\x07", 4) == 0);
  CU_ASSERT_EQUAL(t2s_dns_ptr_addr("255.255.255.255.in-addr.arpa", &a), 0);
  const char *bad[] = {"in-addr.arpa",
                       "0.19.198.in-addr.arpa",
                       "1.0.0.0.0.in-addr.arpa",
                       "256.0.19.198.in-addr.arpa",
                       "07.0.19.198.in-addr.arpa",
                       "1..19.198.in-addr.arpa",
                       "a.0.19.198.in-addr.arpa",
                       "1.0.19.198.in-addr.arpa.x",
                       "1234.0.19.198.in-addr.arpa",
                       ".1.0.19.198.in-addr.arpa",
                       "example.com",
                       "1.0.0.ip6.arpa"};
  for (size_t i = 0; i < T2S_ARRAY_LEN(bad); i++) {
    CU_ASSERT_EQUAL(t2s_dns_ptr_addr(bad[i], &a), T2S_ERR_NOT_FOUND);
  }
  const char *v6 = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.1.0.0.0.0.d.f.ip6.arpa";
  CU_ASSERT_EQUAL(t2s_dns_ptr_addr(v6, &a), 0);
  CU_ASSERT_EQUAL(a.family, T2S_AF_INET6);
  t2s_addr want;
  CU_ASSERT_FATAL(t2s_addr_parse("fd00:19::5", &want) == 0);
  CU_ASSERT(t2s_addr_ip_eq(&a, &want));
  const char *v6bad = "5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.1.0.0.0.0.d.g.ip6.arpa";
  CU_ASSERT_EQUAL(t2s_dns_ptr_addr(v6bad, &a), T2S_ERR_NOT_FOUND);
  const char *v6short = "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.1.0.0.0.0.d.f.ip6.arpa";
  CU_ASSERT_EQUAL(t2s_dns_ptr_addr(v6short, &a), T2S_ERR_NOT_FOUND);
  const char *v6wide = "50.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.9.1.0.0.0.0.d.fip6.arpa";
  CU_ASSERT_EQUAL(t2s_dns_ptr_addr(v6wide, &a), T2S_ERR_NOT_FOUND);
}

/* Every single-byte change of a few valid queries: the parser never reads out of bounds (ASan
 * in the sanitized build), and whatever parses can be answered within its limit. */
static void test_mutations(void) {
  uint8_t base[3][512];
  size_t lens[3];
  lens[0] = mkquery(base[0], 1, "www.example.com", T2S_DNS_TYPE_A, true, 1232, 0);
  lens[1] = mkquery(base[1], 2, "5.0.19.198.in-addr.arpa", T2S_DNS_TYPE_PTR, false, 0, 0);
  lens[2] = mkquery(base[2], 3, "a", T2S_DNS_TYPE_AAAA, true, 512, 0);
  size_t parsed = 0, refused = 0;
  for (int b = 0; b < 3; b++) {
    for (size_t i = 0; i < lens[b]; i++) {
      for (int v = 0; v < 256; v += 7) {
        uint8_t m[512], out[1024];
        memcpy(m, base[b], lens[b]);
        m[i] = (uint8_t)v;
        t2s_dns_query q;
        if (t2s_dns_parse_query(m, lens[b], &q) == 0) {
          parsed++;
          CU_ASSERT(q.qname_wirelen >= 1 && q.qname_wirelen <= T2S_DNS_NAME_MAX);
          CU_ASSERT(strlen(q.qname) == q.qnamelen);
          t2s_ssize r = t2s_dns_build_answer(out, sizeof(out), t2s_dns_udp_limit(&q), &q, 0,
                                             (const uint8_t *)"\1\2\3\4", 4, 1);
          CU_ASSERT(r > 0 && (size_t)r <= t2s_dns_udp_limit(&q));
        } else {
          refused++;
        }
      }
    }
  }
  CU_ASSERT(parsed > 0 && refused > 0);
}

int t2s_test_register_dns(void) {
  CU_pSuite s = CU_add_suite("dns", NULL, NULL);
  if (s == NULL) {
    return -1;
  }
  CU_add_test(s, "parse_query", test_parse_query);
  CU_add_test(s, "parse_not_plain", test_parse_not_plain);
  CU_add_test(s, "parse_hostile_header", test_parse_hostile_header);
  CU_add_test(s, "parse_hostile_names", test_parse_hostile_names);
  CU_add_test(s, "read_name_pointers", test_read_name_pointers);
  CU_add_test(s, "parse_opt", test_parse_opt);
  CU_add_test(s, "build_answer", test_build_answer);
  CU_add_test(s, "name_to_wire", test_name_to_wire);
  CU_add_test(s, "ptr_addr", test_ptr_addr);
  CU_add_test(s, "mutations", test_mutations);
  return 0;
}
