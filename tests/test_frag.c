/* test_frag.c: fragment reassembly (v4, v6, any order, duplicates, overlaps, bounds, timeout)
 * and fragmentation (split then reassemble gives the original back). */
#include <stdlib.h>
#include <string.h>

#include "frag.h"
#include "packet.h"
#include "test_util.h"

static t2s_addr addr(const char *s) {
  t2s_addr a;
  CU_ASSERT_FATAL(t2s_addr_parse(s, &a) == 0);
  return a;
}

/* Collected fragments of one split. */
typedef struct frags {
  uint8_t pkt[16][1600];
  size_t len[16];
  size_t n;
} frags;

static int collect(void *arg, const uint8_t *pkt, size_t len) {
  frags *f = arg;
  if (f->n >= 16 || len > sizeof(f->pkt[0])) {
    return T2S_ERR_NOBUF;
  }
  memcpy(f->pkt[f->n], pkt, len);
  f->len[f->n++] = len;
  return 0;
}

static uint8_t big[T2S_REASM_MAX_PKT];
static uint8_t out[T2S_REASM_MAX_PKT];
static uint8_t scratch[2000];

/* A UDP packet with plen payload bytes (a counting pattern). */
static size_t make_udp(const char *src, const char *dst, size_t plen) {
  t2s_addr s = addr(src), d = addr(dst);
  uint8_t *payload = malloc(plen);
  CU_ASSERT_FATAL(payload != NULL);
  for (size_t i = 0; i < plen; i++) {
    payload[i] = (uint8_t)(i * 7 + 3);
  }
  t2s_ssize n = t2s_build_udp(big, sizeof(big), &s, &d, payload, plen);
  free(payload);
  CU_ASSERT_FATAL(n > 0);
  return (size_t)n;
}

/* Builds a UDP packet (make_udp) and splits it at mtu with identification ident into *f;
 * returns the packet's length. */
static size_t split_udp(frags *f, const char *src, const char *dst, size_t plen, uint32_t mtu,
                        uint32_t ident) {
  size_t len = make_udp(src, dst, plen);
  memset(f, 0, sizeof(*f));
  t2s_ssize n = t2s_frag_split(big, len, mtu, ident, scratch, sizeof(scratch), collect, f);
  CU_ASSERT_FATAL(n > 0 && (size_t)n == f->n);
  return len;
}

/* Parses fragment i of f into *p (p points into f). */
static void parse_frag(const frags *f, size_t i, t2s_pkt *p) {
  CU_ASSERT_FATAL(t2s_pkt_parse(f->pkt[i], f->len[i], p) == T2S_DROP_FRAGMENT);
}

/* Recomputes the checksum of an IPv4 packet's 20-byte header after an edit. */
static void ipv4_fix_csum(uint8_t *pkt) {
  t2s_put16(pkt + 10, 0);
  t2s_put16(pkt + 10, t2s_csum_fold(t2s_csum_add(0, pkt, 20)));
}

/* Feeds fragments in the given order; returns the whole length (0 if never complete). */
static t2s_ssize feed(t2s_reasm *r, frags *f, const size_t *order, size_t n, t2s_tstamp now) {
  t2s_ssize whole = 0;
  for (size_t i = 0; i < n; i++) {
    t2s_pkt p;
    parse_frag(f, order[i], &p);
    t2s_drop_reason why;
    t2s_ssize rv = t2s_reasm_input(r, &p, now, out, sizeof(out), &why);
    CU_ASSERT(rv >= 0);
    if (rv > 0) {
      CU_ASSERT(i == n - 1);
      whole = rv;
    }
  }
  return whole;
}

/* A reassembler with config *cfg (NULL: the defaults). */
static t2s_reasm *new_reasm(const t2s_reasm_config *cfg) {
  t2s_reasm_config c;
  t2s_reasm_config_default(&c);
  t2s_reasm *r = NULL;
  CU_ASSERT_FATAL(t2s_reasm_new(&r, cfg != NULL ? cfg : &c) == 0);
  return r;
}

static void test_v4_split_and_reassemble(void) {
  frags f;
  size_t len = split_udp(&f, "192.0.2.1:1000", "198.51.100.2:53", 3000, 1500, 0x1234);
  CU_ASSERT_EQUAL(f.n, 3);
  for (size_t i = 0; i < f.n; i++) {
    CU_ASSERT(f.len[i] <= 1500);
    t2s_pkt p;
    parse_frag(&f, i, &p);
    CU_ASSERT_EQUAL(p.frag_id, 0x1234);
    CU_ASSERT_EQUAL(p.more_frags, i + 1 < f.n);
  }
  t2s_reasm *r = new_reasm(NULL);
  size_t rev[] = {2, 0, 1}; /* out of order */
  t2s_ssize w = feed(r, &f, rev, 3, 0);
  CU_ASSERT_EQUAL((size_t)w, len);
  /* Same bytes from the header's end on; the header differs only in the DF bit (cleared). */
  CU_ASSERT(memcmp(out + 20, big + 20, len - 20) == 0);
  t2s_pkt p;
  CU_ASSERT_EQUAL(t2s_pkt_parse(out, (size_t)w, &p), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_UDP);
  CU_ASSERT_EQUAL(p.payload_len, 3000);
  CU_ASSERT_EQUAL(t2s_reasm_pending(r), 0);
  CU_ASSERT_EQUAL(t2s_reasm_bytes(r), 0);
  t2s_reasm_del(r);
}

static void test_v6_split_and_reassemble(void) {
  frags f;
  size_t len = split_udp(&f, "[2001:db8::1]:1000", "[2001:db8::2]:53", 4000, 1280, 0xdeadbeef);
  CU_ASSERT_EQUAL(f.n, 4);
  for (size_t i = 0; i < f.n; i++) {
    CU_ASSERT(f.len[i] <= 1280);
  }
  t2s_reasm *r = new_reasm(NULL);
  size_t order[] = {1, 3, 0, 2};
  t2s_ssize w = feed(r, &f, order, 4, 0);
  CU_ASSERT_EQUAL((size_t)w, len);
  CU_ASSERT(memcmp(out, big, len) == 0); /* exactly the original */
  t2s_reasm_del(r);
}

/* IPv6 fragments with a hop-by-hop header before the fragment header: the reassembled packet
 * keeps it, and its next-header names UDP again. */
static void test_v6_with_hop_by_hop(void) {
  frags f;
  size_t len = split_udp(&f, "[2001:db8::1]:1000", "[2001:db8::2]:53", 2000, 1280, 5);
  CU_ASSERT_EQUAL(f.n, 2);
  t2s_reasm *r = new_reasm(NULL);
  t2s_ssize w = 0;
  for (size_t i = 0; i < f.n; i++) {
    /* Insert an 8-byte hop-by-hop header (PadN) after the IPv6 header. */
    uint8_t pkt[1700];
    memcpy(pkt, f.pkt[i], 40);
    pkt[6] = 0; /* hop-by-hop */
    uint8_t hbh[8] = {44, 0, 1, 4, 0, 0, 0, 0};
    memcpy(pkt + 40, hbh, 8);
    memcpy(pkt + 48, f.pkt[i] + 40, f.len[i] - 40);
    t2s_put16(pkt + 4, (uint16_t)(f.len[i] - 40 + 8));
    t2s_pkt p;
    CU_ASSERT_FATAL(t2s_pkt_parse(pkt, f.len[i] + 8, &p) == T2S_DROP_FRAGMENT);
    CU_ASSERT_EQUAL(p.frag_hdroff, 48);
    w = t2s_reasm_input(r, &p, 0, out, sizeof(out), NULL);
  }
  CU_ASSERT_FATAL(w == (t2s_ssize)(len + 8));
  CU_ASSERT_EQUAL(out[6], 0);
  CU_ASSERT_EQUAL(out[40], T2S_IPPROTO_UDP);
  t2s_pkt p;
  CU_ASSERT_EQUAL(t2s_pkt_parse(out, (size_t)w, &p), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_UDP);
  CU_ASSERT_EQUAL(p.payload_len, 2000);
  t2s_reasm_del(r);
}

static void test_icmp_echo_reassembled(void) {
  t2s_addr s = addr("192.0.2.1"), d = addr("198.51.100.9");
  uint8_t body[3008];
  memset(body, 0xab, sizeof(body));
  /* An echo request built by hand: type 8, id/seq, checksum over the message. */
  uint8_t msg[8 + sizeof(body)];
  memset(msg, 0, 8);
  msg[0] = 8;
  t2s_put16(msg + 4, 7);
  t2s_put16(msg + 6, 1);
  memcpy(msg + 8, body, sizeof(body));
  t2s_put16(msg + 2, t2s_csum_fold(t2s_csum_add(0, msg, sizeof(msg))));
  size_t len = 20 + sizeof(msg);
  memset(big, 0, 20);
  big[0] = 0x45;
  t2s_put16(big + 2, (uint16_t)len);
  big[8] = 64;
  big[9] = T2S_IPPROTO_ICMP;
  memcpy(big + 12, s.ip, 4);
  memcpy(big + 16, d.ip, 4);
  ipv4_fix_csum(big);
  memcpy(big + 20, msg, sizeof(msg));
  frags f = {0};
  CU_ASSERT_EQUAL(t2s_frag_split(big, len, 1500, 99, scratch, sizeof(scratch), collect, &f), 3);
  t2s_reasm *r = new_reasm(NULL);
  size_t order[] = {0, 1, 2};
  t2s_ssize w = feed(r, &f, order, 3, 0);
  CU_ASSERT_EQUAL((size_t)w, len);
  t2s_pkt p;
  CU_ASSERT_EQUAL(t2s_pkt_parse(out, (size_t)w, &p), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(p.l4.icmp.type, 8);
  CU_ASSERT_EQUAL(p.payload_len, sizeof(body));
  t2s_reasm_del(r);
}

static void test_duplicate_ignored_overlap_dropped(void) {
  frags f;
  split_udp(&f, "192.0.2.1:1000", "198.51.100.2:53", 3000, 1500, 7);
  t2s_reasm *r = new_reasm(NULL);
  t2s_pkt p;
  t2s_drop_reason why;
  parse_frag(&f, 0, &p);
  CU_ASSERT_EQUAL(t2s_reasm_input(r, &p, 0, out, sizeof(out), &why), 0);
  CU_ASSERT_EQUAL(t2s_reasm_input(r, &p, 0, out, sizeof(out), &why), 0); /* duplicate */
  CU_ASSERT_EQUAL(t2s_reasm_pending(r), 1);
  /* The second fragment moved back by 8 bytes: overlaps the first. */
  uint8_t bad[1600];
  memcpy(bad, f.pkt[1], f.len[1]);
  uint16_t fo = t2s_get16(bad + 6);
  t2s_put16(bad + 6, (uint16_t)(fo - 1));
  ipv4_fix_csum(bad);
  CU_ASSERT_EQUAL(t2s_pkt_parse(bad, f.len[1], &p), T2S_DROP_FRAGMENT);
  CU_ASSERT(t2s_reasm_input(r, &p, 0, out, sizeof(out), &why) < 0);
  CU_ASSERT_EQUAL(why, T2S_DROP_FRAG_OVERLAP);
  CU_ASSERT_EQUAL(t2s_reasm_pending(r), 0);
  CU_ASSERT_EQUAL(t2s_reasm_bytes(r), 0);
  t2s_reasm_del(r);
}

static void test_bad_length(void) {
  frags f;
  split_udp(&f, "192.0.2.1:1000", "198.51.100.2:53", 3000, 1500, 7);
  /* First fragment cut by 3 bytes: MF set and a length not a multiple of 8. */
  uint8_t bad[1600];
  size_t blen = f.len[0] - 3;
  memcpy(bad, f.pkt[0], blen);
  t2s_put16(bad + 2, (uint16_t)blen);
  ipv4_fix_csum(bad);
  t2s_pkt p;
  CU_ASSERT_EQUAL(t2s_pkt_parse(bad, blen, &p), T2S_DROP_FRAGMENT);
  t2s_reasm *r = new_reasm(NULL);
  t2s_drop_reason why;
  CU_ASSERT(t2s_reasm_input(r, &p, 0, out, sizeof(out), &why) < 0);
  CU_ASSERT_EQUAL(why, T2S_DROP_FRAG_BAD);
  CU_ASSERT_EQUAL(t2s_reasm_pending(r), 0);
  t2s_reasm_del(r);
}

static void test_timeout_and_limits(void) {
  t2s_reasm_config c;
  t2s_reasm_config_default(&c);
  c.max_datagrams = 2;
  c.timeout = 5 * T2S_SECONDS;
  t2s_reasm *r = new_reasm(&c);
  t2s_drop_reason why;
  for (uint32_t id = 1; id <= 3; id++) {
    frags f;
    split_udp(&f, "192.0.2.1:1000", "198.51.100.2:53", 2000, 1500, id);
    t2s_pkt p;
    parse_frag(&f, 0, &p);
    t2s_ssize rv = t2s_reasm_input(r, &p, id * T2S_SECONDS, out, sizeof(out), &why);
    if (id <= 2) {
      CU_ASSERT_EQUAL(rv, 0);
    } else {
      CU_ASSERT(rv < 0);
      CU_ASSERT_EQUAL(why, T2S_DROP_FRAG_LIMIT);
    }
  }
  CU_ASSERT_EQUAL(t2s_reasm_pending(r), 2);
  CU_ASSERT_EQUAL(t2s_reasm_get_expiry(r), 6 * T2S_SECONDS);
  CU_ASSERT_EQUAL(t2s_reasm_handle_expiry(r, 6 * T2S_SECONDS), 1);
  CU_ASSERT_EQUAL(t2s_reasm_get_expiry(r), 7 * T2S_SECONDS);
  CU_ASSERT_EQUAL(t2s_reasm_handle_expiry(r, 100 * T2S_SECONDS), 1);
  CU_ASSERT_EQUAL(t2s_reasm_get_expiry(r), T2S_TSTAMP_MAX);
  CU_ASSERT_EQUAL(t2s_reasm_bytes(r), 0);
  t2s_reasm_del(r);
}

static void test_memory_bound(void) {
  t2s_reasm_config c;
  t2s_reasm_config_default(&c);
  c.max_bytes = 4000;
  t2s_reasm *r = new_reasm(&c);
  t2s_drop_reason why;
  int refused = 0;
  for (uint32_t id = 1; id <= 5; id++) {
    frags f;
    split_udp(&f, "192.0.2.1:1000", "198.51.100.2:53", 2000, 1500, id);
    t2s_pkt p;
    parse_frag(&f, 0, &p);
    if (t2s_reasm_input(r, &p, 0, out, sizeof(out), &why) < 0) {
      CU_ASSERT_EQUAL(why, T2S_DROP_FRAG_LIMIT);
      refused++;
    }
    CU_ASSERT(t2s_reasm_bytes(r) <= 4000);
  }
  CU_ASSERT_EQUAL(refused, 3);
  t2s_reasm_del(r);
}

static void test_split_fits_and_bad_args(void) {
  size_t len = make_udp("192.0.2.1:1000", "198.51.100.2:53", 100);
  frags f = {0};
  CU_ASSERT_EQUAL(t2s_frag_split(big, len, 1500, 1, scratch, sizeof(scratch), collect, &f), 1);
  CU_ASSERT(f.len[0] == len && memcmp(f.pkt[0], big, len) == 0);
  len = make_udp("[2001:db8::1]:1", "[2001:db8::2]:2", 3000);
  CU_ASSERT_EQUAL(t2s_frag_split(big, len, 1000, 1, scratch, sizeof(scratch), collect, &f),
                  T2S_ERR_INVALID_ARGUMENT);
}

int t2s_test_register_frag(void) {
  CU_pSuite s = CU_add_suite("frag", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "v4 split then reassemble out of order", test_v4_split_and_reassemble) ||
      !CU_add_test(s, "v6 split then reassemble gives the original",
                   test_v6_split_and_reassemble) ||
      !CU_add_test(s, "fragmented ICMP echo reassembled", test_icmp_echo_reassembled) ||
      !CU_add_test(s, "v6 with a hop-by-hop header before the fragment header",
                   test_v6_with_hop_by_hop) ||
      !CU_add_test(s, "duplicate ignored, overlap drops the datagram",
                   test_duplicate_ignored_overlap_dropped) ||
      !CU_add_test(s, "MF fragment with a length not a multiple of 8", test_bad_length) ||
      !CU_add_test(s, "timeout and datagram cap", test_timeout_and_limits) ||
      !CU_add_test(s, "memory bound", test_memory_bound) ||
      !CU_add_test(s, "split: fitting packet as is, v6 MTU below 1280 refused",
                   test_split_fits_and_bad_args)) {
    return -1;
  }
  return 0;
}
