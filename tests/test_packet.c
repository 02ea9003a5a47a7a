/* test_packet.c: the packet codec: checksums, TCP options, builders, the parser and every
 * drop reason it can return, truncation and mutation robustness. */
#include <stdlib.h>
#include <string.h>

#include "packet.h"
#include "rand.h"
#include "test_util.h"

/* ---- helpers ---- */

static t2s_addr addr(const char *s) {
  t2s_addr a;
  CU_ASSERT_FATAL(t2s_addr_parse(s, &a) == 0);
  return a;
}

/* Parses a copy of pkt in a heap buffer of exactly len bytes, so that ASan sees any read
 * beyond it. The view in *out points into freed memory afterwards: only scalar fields and
 * offsets may be used. */
static t2s_drop_reason parse_exact(const uint8_t *pkt, size_t len, t2s_pkt *out) {
  uint8_t *copy = malloc(len ? len : 1);
  CU_ASSERT_FATAL(copy != NULL);
  if (len) {
    memcpy(copy, pkt, len);
  }
  t2s_drop_reason r = t2s_pkt_parse(copy, len, out);
  free(copy);
  out->data = NULL;
  out->payload = NULL;
  return r;
}

/* The RFC 1071 sum done the obvious way: big-endian 16-bit words, odd byte padded. */
static uint32_t ref_sum(const uint8_t *p, size_t len) {
  uint64_t s = 0;
  for (size_t i = 0; i + 1 < len; i += 2) {
    s += (uint32_t)(p[i] << 8 | p[i + 1]);
  }
  if (len & 1) {
    s += (uint32_t)p[len - 1] << 8;
  }
  while (s >> 16) {
    s = (s & 0xffff) + (s >> 16);
  }
  return (uint32_t)s;
}

/* Recomputes the IPv4 header checksum of a packet built by the builders (IHL 5). */
static void fix_ip4_csum(uint8_t *p) {
  t2s_put16(p + 10, 0);
  t2s_put16(p + 10, t2s_csum_fold(t2s_csum_add(0, p, 20)));
}

/* Recomputes the upper-layer checksum at l4off (field at csumoff inside it) over l4len bytes,
 * with the pseudo-header of the addresses in the IP header (v6 src/dst at 8/24). */
static void fix_l4_csum(uint8_t *p, size_t l4off, size_t l4len, uint8_t proto, size_t csumoff) {
  t2s_addr s = {0}, d = {0};
  uint32_t sum = 0;
  t2s_put16(p + l4off + csumoff, 0);
  if ((p[0] >> 4) == 4) {
    s.family = d.family = T2S_AF_INET;
    memcpy(s.ip, p + 12, 4);
    memcpy(d.ip, p + 16, 4);
    if (proto != T2S_IPPROTO_ICMP) {
      sum = t2s_csum_pseudo(&s, &d, proto, (uint32_t)l4len);
    }
  } else {
    s.family = d.family = T2S_AF_INET6;
    memcpy(s.ip, p + 8, 16);
    memcpy(d.ip, p + 24, 16);
    sum = t2s_csum_pseudo(&s, &d, proto, (uint32_t)l4len);
  }
  t2s_put16(p + l4off + csumoff, t2s_csum_fold(t2s_csum_add(sum, p + l4off, l4len)));
}

static const uint8_t payload_bytes[] = "The quick brown fox jumps over the lazy dog, 0123456789!";

/* A TCP segment with every option kind the writer knows: SYN-style (MSS, SACK-permitted, TS,
 * WS) when syn, data-style (TS + 3 SACK blocks) otherwise. Payload in two odd pieces. */
static size_t mk_tcp(uint8_t *buf, size_t buflen, bool v6, bool syn) {
  t2s_addr s = addr(v6 ? "[fd00::1]:40000" : "10.0.0.1:40000");
  t2s_addr d = addr(v6 ? "[2001:db8::2]:443" : "192.0.2.2:443");
  t2s_tcp_opts o = {0};
  if (syn) {
    o.has_mss = true;
    o.mss = 1460;
    o.sack_permitted = true;
    o.has_wscale = true;
    o.wscale = 7;
  }
  o.has_ts = true;
  o.ts_val = 0x01020304;
  o.ts_ecr = 0xa0b0c0d0;
  if (!syn) {
    o.nsack = 3;
    for (int i = 0; i < 3; i++) {
      o.sack[i].left = 1000u * (uint32_t)i + 1;
      o.sack[i].right = 1000u * (uint32_t)i + 501;
    }
  }
  t2s_ssize n = t2s_build_tcp(buf, buflen, &s, &d, 0x11223344, syn ? 0 : 0x55667788,
                              syn ? T2S_TCP_SYN : T2S_TCP_ACK | T2S_TCP_PSH, 0xfedc, &o,
                              payload_bytes, 7, payload_bytes + 7, 14);
  CU_ASSERT_FATAL(n > 0);
  return (size_t)n;
}

static size_t mk_udp(uint8_t *buf, size_t buflen, bool v6, size_t plen) {
  t2s_addr s = addr(v6 ? "[fd00::1]:5353" : "10.0.0.1:5353");
  t2s_addr d = addr(v6 ? "[2001:db8::53]:53" : "192.0.2.53:53");
  t2s_ssize n = t2s_build_udp(buf, buflen, &s, &d, payload_bytes, plen);
  CU_ASSERT_FATAL(n > 0);
  return (size_t)n;
}

/* An ICMP(v6) echo request, crafted by hand (the codec only builds replies); buf >= 256. */
static size_t mk_echo_req(uint8_t *buf, bool v6, uint16_t id, uint16_t seq, size_t plen) {
  t2s_addr s = addr(v6 ? "fd00::1" : "10.0.0.1");
  t2s_addr d = addr(v6 ? "2001:db8::9" : "192.0.2.9");
  /* Build a UDP datagram of the same size for the IP header, then rewrite the upper layer. */
  t2s_ssize n = t2s_build_udp(buf, 256, &s, &d, payload_bytes, plen);
  CU_ASSERT_FATAL(n > 0);
  size_t hl = v6 ? 40 : 20;
  uint8_t proto = v6 ? T2S_IPPROTO_ICMPV6 : T2S_IPPROTO_ICMP;
  buf[v6 ? 6 : 9] = proto;
  if (!v6) {
    fix_ip4_csum(buf);
  }
  uint8_t *ih = buf + hl;
  ih[0] = v6 ? 128 : 8;
  ih[1] = 0;
  t2s_put16(ih + 4, id);
  t2s_put16(ih + 6, seq);
  fix_l4_csum(buf, hl, (size_t)n - hl, proto, 2);
  return (size_t)n;
}

/* ---- checksums ---- */

static void test_csum_rfc1071(void) {
  /* RFC 1071 section 3: the sum of these bytes is ddf2, so the checksum is 220d. */
  static const uint8_t v[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
  CU_ASSERT_EQUAL(t2s_csum_add(0, v, sizeof(v)), 0xddf2);
  CU_ASSERT_EQUAL(t2s_csum_fold(t2s_csum_add(0, v, sizeof(v))), 0x220d);
  /* In even-length chunks the result is the same. */
  uint32_t s = t2s_csum_add(0, v, 2);
  s = t2s_csum_add(s, v + 2, 4);
  s = t2s_csum_add(s, v + 6, 2);
  CU_ASSERT_EQUAL(s, 0xddf2);
  /* The data with its checksum appended sums to all ones. */
  uint8_t w[10];
  memcpy(w, v, 8);
  t2s_put16(w + 8, 0x220d);
  CU_ASSERT_EQUAL(t2s_csum_fold(t2s_csum_add(0, w, 10)), 0);
  /* Odd length: the last byte is the high byte of a zero-padded word. */
  static const uint8_t odd[] = {0x01, 0x02, 0x03};
  CU_ASSERT_EQUAL(t2s_csum_add(0, odd, 3), 0x0402);
  CU_ASSERT_EQUAL(t2s_csum_add(0, odd, 0), 0);
  CU_ASSERT_EQUAL(t2s_csum_fold(0), 0xffff);
  /* Carries: 64 KiB of 0xff folds to 0xffff. */
  uint8_t *ff = malloc(65536);
  CU_ASSERT_FATAL(ff != NULL);
  memset(ff, 0xff, 65536);
  CU_ASSERT_EQUAL(t2s_csum_add(0, ff, 65536), 0xffff);
  /* An accumulator that starts at the maximum 32-bit value (0xffff + 0xffff, i.e. -0). */
  CU_ASSERT_EQUAL(t2s_csum_fold(t2s_csum_add(0xffffffffu, ff, 65535)),
                  t2s_csum_fold(ref_sum(ff, 65535)));
  free(ff);
}

static void test_csum_matches_reference(void) {
  t2s_rand r;
  t2s_rand_init(&r, 1071);
  uint8_t buf[600];
  for (size_t i = 0; i < sizeof(buf); i++) {
    buf[i] = (uint8_t)t2s_rand_u32(&r);
  }
  /* Every length at every alignment of the start pointer. */
  for (size_t align = 0; align < 8; align++) {
    for (size_t len = 0; len <= 520; len++) {
      uint32_t got = t2s_csum_add(0, buf + align, len);
      uint32_t want = ref_sum(buf + align, len);
      /* 0 and 0xffff are the same one's-complement value; the fold agrees on both. */
      CU_ASSERT_EQUAL(t2s_csum_fold(got), t2s_csum_fold(want));
      CU_ASSERT(got <= 0xffff);
    }
  }
  /* Chained even-length chunks equal the whole; an odd last chunk too. */
  for (int iter = 0; iter < 200; iter++) {
    size_t len = (size_t)t2s_rand_below(&r, 500) + 1;
    size_t cut = (size_t)t2s_rand_below(&r, len + 1) & ~(size_t)1;
    uint32_t whole = t2s_csum_add(0, buf, len);
    uint32_t part = t2s_csum_add(t2s_csum_add(0, buf, cut), buf + cut, len - cut);
    CU_ASSERT_EQUAL(t2s_csum_fold(whole), t2s_csum_fold(part));
    /* Starting from a non-zero accumulator is the same as adding it at the end. */
    uint32_t acc = (uint32_t)t2s_rand_u32(&r);
    CU_ASSERT_EQUAL(t2s_csum_fold(t2s_csum_add(acc, buf, len)),
                    t2s_csum_fold(ref_sum(buf, len) + (acc & 0xffff) + (acc >> 16)));
  }
}

static void test_csum_pseudo(void) {
  /* IPv4 pseudo-header of 192.0.2.1 -> 192.0.2.2, TCP, 20 bytes: c000+0201+c000+0202+6+14. */
  t2s_addr s = addr("192.0.2.1"), d = addr("192.0.2.2");
  uint32_t want = ref_sum(
      (const uint8_t[]){0xc0, 0x00, 0x02, 0x01, 0xc0, 0x00, 0x02, 0x02, 0x00, 0x06, 0x00, 0x14},
      12);
  CU_ASSERT_EQUAL(t2s_csum_fold(t2s_csum_pseudo(&s, &d, 6, 20)), t2s_csum_fold(want));
  /* IPv6: 32-bit length, both halves count. */
  t2s_addr s6 = addr("2001:db8::1"), d6 = addr("2001:db8::2");
  uint8_t ph[40] = {0};
  memcpy(ph, s6.ip, 16);
  memcpy(ph + 16, d6.ip, 16);
  t2s_put32(ph + 32, 0x00012345);
  ph[39] = 17;
  CU_ASSERT_EQUAL(t2s_csum_fold(t2s_csum_pseudo(&s6, &d6, 17, 0x00012345)),
                  t2s_csum_fold(ref_sum(ph, 40)));
}

static void test_csum_incremental(void) {
  t2s_rand r;
  t2s_rand_init(&r, 1624);
  uint8_t buf[256];
  for (int v6 = 0; v6 <= 1; v6++) {
    size_t n = mk_tcp(buf, sizeof(buf), v6, false);
    size_t hl = v6 ? 40 : 20;
    for (int iter = 0; iter < 500; iter++) {
      /* Change the window (16 bits) and the sequence number (32 bits) and, for IPv4, the
       * destination address (in the pseudo-header and the IP header). */
      uint16_t oldw = t2s_get16(buf + hl + 14), neww = (uint16_t)t2s_rand_u32(&r);
      if (iter % 50 == 0) {
        neww = (uint16_t)~oldw; /* the case that tempts a -0 result */
      }
      uint16_t ck = t2s_get16(buf + hl + 16);
      ck = t2s_csum_update16(ck, oldw, neww);
      t2s_put16(buf + hl + 14, neww);
      uint32_t olds = t2s_get32(buf + hl + 4), news = t2s_rand_u32(&r);
      ck = t2s_csum_update32(ck, olds, news);
      t2s_put32(buf + hl + 4, news);
      if (!v6) {
        uint32_t oldd = t2s_get32(buf + 16), newd = 0x0a000000u | (t2s_rand_u32(&r) & 0xffffff);
        ck = t2s_csum_update32(ck, oldd, newd);
        uint16_t ick = t2s_csum_update32(t2s_get16(buf + 10), oldd, newd);
        t2s_put32(buf + 16, newd);
        t2s_put16(buf + 10, ick);
        CU_ASSERT_EQUAL(t2s_csum_fold(t2s_csum_add(0, buf, 20)), 0);
      }
      t2s_put16(buf + hl + 16, ck);
      /* The incremental result verifies, and equals a full recompute (up to +0/-0). */
      uint8_t copy[256];
      memcpy(copy, buf, n);
      fix_l4_csum(copy, hl, n - hl, T2S_IPPROTO_TCP, 16);
      uint16_t full = t2s_get16(copy + hl + 16);
      CU_ASSERT(ck == full || (ck == 0xffff && full == 0) || (ck == 0 && full == 0xffff));
      t2s_pkt p;
      CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_NONE);
    }
  }
  /* RFC 1624 section 4 example: HC 0xdd2f, m 0x5555 -> m' 0x3285 gives HC' 0x0000. */
  CU_ASSERT_EQUAL(t2s_csum_update16(0xdd2f, 0x5555, 0x3285), 0x0000);
}

/* ---- TCP options ---- */

static void test_opts_write_layout(void) {
  uint8_t b[64];
  t2s_tcp_opts o = {0};
  o.has_mss = true;
  o.mss = 1460;
  o.sack_permitted = true;
  o.has_ts = true;
  o.ts_val = 1;
  o.ts_ecr = 2;
  o.has_wscale = true;
  o.wscale = 7;
  static const uint8_t linux_syn[] = {2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0,
                                      0, 1, 0,    0,    0, 2, 1, 3,  3, 7};
  CU_ASSERT_EQUAL(t2s_tcp_opts_write(&o, b, sizeof(b)), 20);
  CU_ASSERT_EQUAL(memcmp(b, linux_syn, 20), 0);
  /* Exactly enough room, one byte too few. */
  CU_ASSERT_EQUAL(t2s_tcp_opts_write(&o, b, 20), 20);
  CU_ASSERT_EQUAL(t2s_tcp_opts_write(&o, b, 19), T2S_ERR_NOBUF);
  /* Lone options are NOP-padded to 4 bytes each. */
  t2s_tcp_opts one = {0};
  one.sack_permitted = true;
  static const uint8_t sp[] = {1, 1, 4, 2};
  CU_ASSERT_EQUAL(t2s_tcp_opts_write(&one, b, sizeof(b)), 4);
  CU_ASSERT_EQUAL(memcmp(b, sp, 4), 0);
  one.sack_permitted = false;
  one.has_ts = true;
  CU_ASSERT_EQUAL(t2s_tcp_opts_write(&one, b, sizeof(b)), 12);
  CU_ASSERT(b[0] == 1 && b[1] == 1 && b[2] == 8 && b[3] == 10);
  memset(&one, 0, sizeof(one));
  CU_ASSERT_EQUAL(t2s_tcp_opts_write(&one, b, 0), 0);
  CU_ASSERT_EQUAL(t2s_tcp_opts_write(NULL, b, 0), 0);
  /* SACK: 4 blocks fit without timestamps (36 bytes), 3 with (40), never more than 40. */
  t2s_tcp_opts s = {0};
  s.nsack = 4;
  for (int i = 0; i < 4; i++) {
    s.sack[i].left = (uint32_t)i * 100;
    s.sack[i].right = (uint32_t)i * 100 + 50;
  }
  CU_ASSERT_EQUAL(t2s_tcp_opts_write(&s, b, sizeof(b)), 36);
  CU_ASSERT(b[0] == 1 && b[1] == 1 && b[2] == 5 && b[3] == 34);
  s.has_ts = true;
  CU_ASSERT_EQUAL(t2s_tcp_opts_write(&s, b, sizeof(b)), 40);
  t2s_tcp_opts back;
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(b, 40, &back), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(back.nsack, 3);
  CU_ASSERT_TRUE(back.has_ts);
  /* Everything at once stays within 40 bytes, SACK blocks dropped as needed. */
  s.has_mss = s.has_wscale = s.sack_permitted = true;
  t2s_ssize n = t2s_tcp_opts_write(&s, b, sizeof(b));
  CU_ASSERT(n > 0 && n <= 40 && n % 4 == 0);
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(b, (size_t)n, &back), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(back.nsack, 2);
  CU_ASSERT_TRUE(back.has_mss && back.has_wscale && back.sack_permitted && back.has_ts);
  /* An absurd nsack is clamped. */
  s.nsack = 200;
  n = t2s_tcp_opts_write(&s, b, sizeof(b));
  CU_ASSERT(n > 0 && n <= 40);
}

static void test_opts_parse(void) {
  t2s_tcp_opts o;
  /* Unknown kinds (TFO 34, MPTCP 30) are skipped by their length; EOL ends the list. */
  static const uint8_t a[] = {34, 6, 1, 2, 3, 4, 1, 2, 4, 0x05, 0xb4,
                              30, 3, 0, 3, 3, 9, 0, 2, 4, 0x00, 0x01};
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(a, sizeof(a), &o), T2S_DROP_NONE);
  CU_ASSERT_TRUE(o.has_mss);
  CU_ASSERT_EQUAL(o.mss, 1460);
  CU_ASSERT_TRUE(o.has_wscale);
  CU_ASSERT_EQUAL(o.wscale, 9); /* as sent, not clamped */
  /* After EOL nothing is read: the MSS 1 after it is ignored. */
  CU_ASSERT_EQUAL(o.mss, 1460);
  /* A known option with a wrong length is ignored (as Linux does), not fatal. */
  static const uint8_t wrong[] = {2, 3, 1, 8, 6, 0, 0, 0, 0, 5, 2, 1};
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(wrong, sizeof(wrong), &o), T2S_DROP_NONE);
  CU_ASSERT_FALSE(o.has_mss);
  CU_ASSERT_FALSE(o.has_ts);
  CU_ASSERT_EQUAL(o.nsack, 0);
  /* SACK with 1 and 4 blocks. */
  uint8_t sk[36] = {5, 34};
  for (int i = 0; i < 4; i++) {
    t2s_put32(sk + 2 + 8 * i, (uint32_t)i);
    t2s_put32(sk + 6 + 8 * i, (uint32_t)i + 10);
  }
  sk[34] = 1;
  sk[35] = 1;
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(sk, sizeof(sk), &o), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(o.nsack, 4);
  CU_ASSERT_EQUAL(o.sack[3].left, 3);
  CU_ASSERT_EQUAL(o.sack[3].right, 13);
  sk[1] = 10;
  sk[10] = 99; /* then a kind 99 with length byte 0 */
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(sk, 12, &o), T2S_DROP_TCP_BAD_OPTION);
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(sk, 10, &o), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(o.nsack, 1);
  /* Bad: length 0, length 1, length past the end, kind without a length byte. */
  static const uint8_t l0[] = {1, 99, 0, 1};
  static const uint8_t l1[] = {99, 1, 1, 1};
  static const uint8_t past[] = {1, 1, 8, 10, 0, 0, 0, 0};
  static const uint8_t nolen[] = {1, 1, 1, 2};
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(l0, sizeof(l0), &o), T2S_DROP_TCP_BAD_OPTION);
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(l1, sizeof(l1), &o), T2S_DROP_TCP_BAD_OPTION);
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(past, sizeof(past), &o), T2S_DROP_TCP_BAD_OPTION);
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(nolen, sizeof(nolen), &o), T2S_DROP_TCP_BAD_OPTION);
  CU_ASSERT_EQUAL(t2s_tcp_opts_parse(NULL, 0, &o), T2S_DROP_NONE);
}

/* ---- round trips ---- */

static void check_tcp_roundtrip(bool v6, bool syn) {
  uint8_t buf[256];
  size_t n = mk_tcp(buf, sizeof(buf), v6, syn);
  t2s_pkt p;
  CU_ASSERT_EQUAL_FATAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(p.ipver, v6 ? 6 : 4);
  CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_TCP);
  CU_ASSERT_EQUAL(p.ttl, 64);
  CU_ASSERT_EQUAL(p.len, n);
  CU_ASSERT_EQUAL(p.l4off, v6 ? 40 : 20);
  CU_ASSERT_FALSE(p.is_fragment);
  t2s_addr s = addr(v6 ? "[fd00::1]:40000" : "10.0.0.1:40000");
  t2s_addr d = addr(v6 ? "[2001:db8::2]:443" : "192.0.2.2:443");
  CU_ASSERT_TRUE(t2s_addr_eq(&p.src, &s));
  CU_ASSERT_TRUE(t2s_addr_eq(&p.dst, &d));
  if (!v6) {
    CU_ASSERT_EQUAL(t2s_get16(buf + 6), 0x4000); /* DF, offset 0 */
  }
  const t2s_tcp_hdr *th = &p.l4.tcp;
  CU_ASSERT_EQUAL(th->seq, 0x11223344);
  CU_ASSERT_EQUAL(th->ack, syn ? 0 : 0x55667788);
  CU_ASSERT_EQUAL(th->flags, syn ? T2S_TCP_SYN : (T2S_TCP_ACK | T2S_TCP_PSH));
  CU_ASSERT_EQUAL(th->wnd, 0xfedc);
  CU_ASSERT_EQUAL(th->hdrlen, syn ? 40 : 60); /* data: NOP NOP TS, NOP NOP SACK x3 */
  CU_ASSERT_TRUE(th->opts.has_ts);
  CU_ASSERT_EQUAL(th->opts.ts_val, 0x01020304);
  CU_ASSERT_EQUAL(th->opts.ts_ecr, 0xa0b0c0d0);
  if (syn) {
    CU_ASSERT_TRUE(th->opts.has_mss && th->opts.has_wscale && th->opts.sack_permitted);
    CU_ASSERT_EQUAL(th->opts.mss, 1460);
    CU_ASSERT_EQUAL(th->opts.wscale, 7);
    CU_ASSERT_EQUAL(th->opts.nsack, 0);
  } else {
    CU_ASSERT_EQUAL(th->opts.nsack, 3);
    CU_ASSERT_EQUAL(th->opts.sack[2].left, 2001);
    CU_ASSERT_EQUAL(th->opts.sack[2].right, 2501);
    CU_ASSERT_FALSE(th->opts.has_mss);
  }
  CU_ASSERT_EQUAL(p.payload_len, 21); /* odd: 7 + 14 */
  CU_ASSERT_EQUAL(memcmp(p.payload, payload_bytes, 21), 0);
  CU_ASSERT_PTR_EQUAL(p.payload, buf + p.l4off + th->hdrlen);
}

static void test_tcp_roundtrip(void) {
  check_tcp_roundtrip(false, true);
  check_tcp_roundtrip(false, false);
  check_tcp_roundtrip(true, true);
  check_tcp_roundtrip(true, false);
  /* Payload pieces of every odd/even split, including empty ones and NULL pointers. */
  t2s_addr s = addr("10.1.1.1:1"), d = addr("10.2.2.2:2");
  uint8_t buf[200];
  for (size_t len1 = 0; len1 <= 9; len1++) {
    for (size_t len2 = 0; len2 <= 9; len2++) {
      t2s_ssize n =
          t2s_build_tcp(buf, sizeof(buf), &s, &d, 1, 2, T2S_TCP_ACK, 3, NULL,
                        len1 ? payload_bytes : NULL, len1, len2 ? payload_bytes + 20 : NULL, len2);
      CU_ASSERT_EQUAL_FATAL(n, (t2s_ssize)(40 + len1 + len2));
      t2s_pkt p;
      CU_ASSERT_EQUAL(t2s_pkt_parse(buf, (size_t)n, &p), T2S_DROP_NONE);
      CU_ASSERT_EQUAL(p.payload_len, len1 + len2);
      CU_ASSERT_EQUAL(memcmp(p.payload, payload_bytes, len1), 0);
      CU_ASSERT_EQUAL(memcmp(p.payload + len1, payload_bytes + 20, len2), 0);
    }
  }
}

static void test_udp_roundtrip(void) {
  uint8_t buf[256];
  for (int v6 = 0; v6 <= 1; v6++) {
    for (size_t plen = 0; plen <= 9; plen++) {
      size_t n = mk_udp(buf, sizeof(buf), v6, plen);
      CU_ASSERT_EQUAL(n, (v6 ? 48u : 28u) + plen);
      t2s_pkt p;
      CU_ASSERT_EQUAL_FATAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_NONE);
      CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_UDP);
      CU_ASSERT_EQUAL(p.src.port, 5353);
      CU_ASSERT_EQUAL(p.dst.port, 53);
      CU_ASSERT_EQUAL(p.l4.udp.len, 8 + plen);
      CU_ASSERT_EQUAL(p.payload_len, plen);
      CU_ASSERT_EQUAL(memcmp(p.payload, payload_bytes, plen), 0);
      CU_ASSERT_NOT_EQUAL(t2s_get16(buf + p.l4off + 6), 0); /* never "no checksum" */
    }
  }
  /* IPv4 with checksum 0 means "none" and is accepted. */
  size_t n = mk_udp(buf, sizeof(buf), false, 5);
  t2s_put16(buf + 26, 0);
  t2s_pkt p;
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_NONE);
  /* The UDP length rules, not the IP one: trailing bytes inside the IP packet are ignored. */
  n = mk_udp(buf, sizeof(buf), false, 9);
  t2s_put16(buf + 24, 8 + 4);
  fix_l4_csum(buf, 20, 12, T2S_IPPROTO_UDP, 6);
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(p.payload_len, 4);
  CU_ASSERT_EQUAL(p.len, n);
}

static void test_icmp_echo_roundtrip(void) {
  uint8_t req[256], rep[256];
  for (int v6 = 0; v6 <= 1; v6++) {
    for (size_t plen = 0; plen <= 7; plen += 7) {
      size_t n = mk_echo_req(req, v6, 0xbeef, 0x0102, plen);
      t2s_pkt p;
      CU_ASSERT_EQUAL_FATAL(t2s_pkt_parse(req, n, &p), T2S_DROP_NONE);
      CU_ASSERT_EQUAL(p.l4.icmp.type, v6 ? 128 : 8);
      CU_ASSERT_EQUAL(p.l4.icmp.id, 0xbeef);
      CU_ASSERT_EQUAL(p.l4.icmp.seq, 0x0102);
      CU_ASSERT_EQUAL(p.payload_len, plen);
      t2s_ssize m = t2s_build_icmp_echo_reply(rep, sizeof(rep), &p);
      CU_ASSERT_EQUAL_FATAL(m, (t2s_ssize)n);
      t2s_pkt q;
      CU_ASSERT_EQUAL_FATAL(t2s_pkt_parse(rep, (size_t)m, &q), T2S_DROP_NONE);
      CU_ASSERT_EQUAL(q.proto, v6 ? T2S_IPPROTO_ICMPV6 : T2S_IPPROTO_ICMP);
      CU_ASSERT_EQUAL(q.l4.icmp.type, v6 ? 129 : 0);
      CU_ASSERT_EQUAL(q.l4.icmp.code, 0);
      CU_ASSERT_EQUAL(q.l4.icmp.id, 0xbeef);
      CU_ASSERT_EQUAL(q.l4.icmp.seq, 0x0102);
      CU_ASSERT_TRUE(t2s_addr_ip_eq(&q.src, &p.dst));
      CU_ASSERT_TRUE(t2s_addr_ip_eq(&q.dst, &p.src));
      CU_ASSERT_EQUAL(q.payload_len, plen);
      CU_ASSERT_EQUAL(memcmp(q.payload, payload_bytes, plen), 0);
      /* Too small a buffer at every size; a reply is not an echo request. */
      for (size_t b = 0; b < (size_t)m; b++) {
        CU_ASSERT_EQUAL(t2s_build_icmp_echo_reply(rep, b, &p), T2S_ERR_NOBUF);
      }
      CU_ASSERT_EQUAL(t2s_build_icmp_echo_reply(req, sizeof(req), &q), T2S_ERR_INVALID_ARGUMENT);
    }
  }
  /* A UDP packet is not an echo request either. */
  size_t n = mk_udp(req, sizeof(req), false, 3);
  t2s_pkt p;
  CU_ASSERT_EQUAL(t2s_pkt_parse(req, n, &p), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(t2s_build_icmp_echo_reply(rep, sizeof(rep), &p), T2S_ERR_INVALID_ARGUMENT);
}

static void test_icmp_unreach(void) {
  static uint8_t orig[1500], out[2000];
  for (int v6 = 0; v6 <= 1; v6++) {
    t2s_addr gw = addr(v6 ? "fd00::ffff" : "10.255.0.1");
    /* A small datagram is quoted whole. */
    size_t n = mk_udp(orig, sizeof(orig), v6, 10);
    t2s_pkt p;
    CU_ASSERT_EQUAL_FATAL(t2s_pkt_parse(orig, n, &p), T2S_DROP_NONE);
    uint8_t code = v6 ? 4 : 3;
    t2s_ssize m = t2s_build_icmp_unreach(out, sizeof(out), &gw, &p, code);
    size_t hl = v6 ? 40 : 20;
    CU_ASSERT_EQUAL_FATAL(m, (t2s_ssize)(hl + 8 + n));
    t2s_pkt q;
    CU_ASSERT_EQUAL_FATAL(t2s_pkt_parse(out, (size_t)m, &q), T2S_DROP_NONE);
    CU_ASSERT_EQUAL(q.l4.icmp.type, v6 ? 1 : 3);
    CU_ASSERT_EQUAL(q.l4.icmp.code, code);
    CU_ASSERT_TRUE(t2s_addr_ip_eq(&q.src, &gw));
    CU_ASSERT_TRUE(t2s_addr_ip_eq(&q.dst, &p.src));
    CU_ASSERT_EQUAL(q.payload_len, n);
    CU_ASSERT_EQUAL(memcmp(q.payload, orig, n), 0);
    /* A big one is cut at 576 (v4) / 1280 (v6) bytes in all. */
    t2s_addr s = addr(v6 ? "[fd00::1]:1000" : "10.0.0.1:1000");
    t2s_addr d = addr(v6 ? "[2001:db8::1]:80" : "192.0.2.1:80");
    static uint8_t big[1400];
    memset(big, 0xab, sizeof(big));
    t2s_ssize bn = t2s_build_udp(orig, sizeof(orig), &s, &d, big, sizeof(big));
    CU_ASSERT_FATAL(bn > 0);
    CU_ASSERT_EQUAL_FATAL(t2s_pkt_parse(orig, (size_t)bn, &p), T2S_DROP_NONE);
    m = t2s_build_icmp_unreach(out, sizeof(out), &gw, &p, code);
    CU_ASSERT_EQUAL(m, v6 ? 1280 : 576);
    CU_ASSERT_EQUAL_FATAL(t2s_pkt_parse(out, (size_t)m, &q), T2S_DROP_NONE);
    CU_ASSERT_EQUAL(memcmp(q.payload, orig, q.payload_len), 0);
    /* A smaller buffer cuts the quote further; below IP header + 8 quoted bytes: NOBUF. */
    m = t2s_build_icmp_unreach(out, 200, &gw, &p, code);
    CU_ASSERT_EQUAL(m, 200);
    CU_ASSERT_EQUAL(t2s_pkt_parse(out, 200, &q), T2S_DROP_NONE);
    CU_ASSERT_EQUAL(t2s_build_icmp_unreach(out, hl + 8 + hl + 8, &gw, &p, code),
                    (t2s_ssize)(hl + 8 + hl + 8));
    CU_ASSERT_EQUAL(t2s_build_icmp_unreach(out, hl + 8 + hl + 7, &gw, &p, code), T2S_ERR_NOBUF);
    CU_ASSERT_EQUAL(t2s_build_icmp_unreach(out, 0, &gw, &p, code), T2S_ERR_NOBUF);
    /* Family mismatch. */
    t2s_addr other = addr(v6 ? "10.255.0.1" : "fd00::ffff");
    CU_ASSERT_EQUAL(t2s_build_icmp_unreach(out, sizeof(out), &other, &p, code),
                    T2S_ERR_INVALID_ARGUMENT);
  }
}

static void test_builder_errors(void) {
  uint8_t buf[128];
  t2s_addr s4 = addr("10.0.0.1:1"), d4 = addr("10.0.0.2:2"), d6 = addr("[fd00::2]:2");
  t2s_addr none = {0};
  CU_ASSERT_EQUAL(
      t2s_build_tcp(buf, sizeof(buf), &s4, &d6, 0, 0, T2S_TCP_ACK, 0, NULL, NULL, 0, NULL, 0),
      T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_build_udp(buf, sizeof(buf), &none, &none, NULL, 0), T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_ip_hdrlen(T2S_AF_INET), 20);
  CU_ASSERT_EQUAL(t2s_ip_hdrlen(T2S_AF_INET6), 40);
  CU_ASSERT_EQUAL(t2s_ip_hdrlen(0), 0);
  /* Every buffer size short of the packet gives NOBUF, for TCP with options and UDP. */
  t2s_tcp_opts o = {.has_mss = true, .mss = 1400, .has_ts = true};
  t2s_ssize full = t2s_build_tcp(buf, sizeof(buf), &s4, &d4, 0, 0, T2S_TCP_SYN, 0, &o,
                                 payload_bytes, 5, payload_bytes, 4);
  CU_ASSERT_EQUAL_FATAL(full, 20 + 20 + 16 + 9);
  for (size_t b = 0; b < (size_t)full; b++) {
    CU_ASSERT_EQUAL(t2s_build_tcp(buf, b, &s4, &d4, 0, 0, T2S_TCP_SYN, 0, &o, payload_bytes, 5,
                                  payload_bytes, 4),
                    T2S_ERR_NOBUF);
  }
  for (size_t b = 0; b < 28 + 3; b++) {
    CU_ASSERT_EQUAL(t2s_build_udp(buf, b, &s4, &d4, payload_bytes, 3), T2S_ERR_NOBUF);
  }
  /* An IPv4 datagram cannot exceed 65535 bytes. */
  static uint8_t huge[70000], data[65536];
  CU_ASSERT_EQUAL(t2s_build_udp(huge, sizeof(huge), &s4, &d4, data, 65535 - 28 + 1),
                  T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_build_udp(huge, sizeof(huge), &s4, &d4, data, 65535 - 28), 65535);
  t2s_pkt p;
  CU_ASSERT_EQUAL(t2s_pkt_parse(huge, 65535, &p), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(p.payload_len, 65535 - 28);
}

/* ---- the parser: fields and every drop reason ---- */

static void test_parse_trailing_and_fields(void) {
  uint8_t buf[300];
  for (int v6 = 0; v6 <= 1; v6++) {
    size_t n = mk_tcp(buf, sizeof(buf), v6, false);
    memset(buf + n, 0xee, 7); /* link padding after the packet */
    t2s_pkt p;
    CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n + 7, &p), T2S_DROP_NONE);
    CU_ASSERT_EQUAL(p.len, n);
    CU_ASSERT_EQUAL(p.payload_len, 21);
  }
  /* IPv4 options are skipped; TOS and TTL are reported. */
  uint8_t b2[300];
  size_t n = mk_udp(buf, sizeof(buf), false, 4);
  memcpy(b2, buf, 20);
  b2[0] = 0x47;
  b2[1] = 0xb8;
  b2[8] = 3;
  t2s_put16(b2 + 2, (uint16_t)(n + 8));
  static const uint8_t ipopts[8] = {1, 1, 1, 1, 1, 1, 1, 0}; /* NOPs, EOL */
  memcpy(b2 + 20, ipopts, 8);
  memcpy(b2 + 28, buf + 20, n - 20);
  t2s_put16(b2 + 10, 0);
  t2s_put16(b2 + 10, t2s_csum_fold(t2s_csum_add(0, b2, 28)));
  t2s_pkt p;
  CU_ASSERT_EQUAL(t2s_pkt_parse(b2, n + 8, &p), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(p.l4off, 28);
  CU_ASSERT_EQUAL(p.tos, 0xb8);
  CU_ASSERT_EQUAL(p.ttl, 3);
  CU_ASSERT_EQUAL(p.payload_len, 4);
  /* IPv6 traffic class spans two bytes. */
  n = mk_udp(buf, sizeof(buf), true, 4);
  buf[0] = 0x6a;
  buf[1] = 0x50;
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(p.tos, 0xa5);
}

/* An IPv6 UDP datagram with the given extension headers (each 8 bytes; kinds 0/43/60, or 44
 * for a fragment header with frag_field) between the fixed header and UDP. */
static size_t mk_v6_ext(uint8_t *buf, const uint8_t *kinds, size_t nk, uint16_t frag_field) {
  uint8_t tmp[256];
  size_t n = mk_udp(tmp, sizeof(tmp), true, 6);
  memcpy(buf, tmp, 40);
  size_t off = 40;
  uint8_t *prev_nh = buf + 6;
  for (size_t i = 0; i < nk; i++) {
    *prev_nh = kinds[i];
    uint8_t *h = buf + off;
    memset(h, 0, 8);
    if (kinds[i] == 44) {
      t2s_put16(h + 2, frag_field);
      t2s_put32(h + 4, 0xcafef00d);
    } else if (kinds[i] == 43) {
      h[2] = 0; /* routing type 0 */
      h[3] = 0; /* segments left */
    } else {
      h[2] = 1; /* PadN covering the 6 option bytes */
      h[3] = 4;
    }
    prev_nh = h;
    off += 8;
  }
  *prev_nh = T2S_IPPROTO_UDP;
  memcpy(buf + off, tmp + 40, n - 40);
  size_t total = off + (n - 40);
  t2s_put16(buf + 4, (uint16_t)(total - 40));
  return total;
}

static void test_parse_ipv6_ext(void) {
  uint8_t buf[512];
  t2s_pkt p;
  static const uint8_t chain[] = {0, 60, 43, 60};
  size_t n = mk_v6_ext(buf, chain, 4, 0);
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(p.l4off, 40 + 32);
  CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_UDP);
  CU_ASSERT_EQUAL(p.payload_len, 6);
  /* The longest chain allowed parses; one more is too long. */
  uint8_t eight[T2S_IPV6_MAX_EXT_HEADERS + 1];
  memset(eight, 60, sizeof(eight));
  n = mk_v6_ext(buf, eight, T2S_IPV6_MAX_EXT_HEADERS, 0);
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_NONE);
  n = mk_v6_ext(buf, eight, T2S_IPV6_MAX_EXT_HEADERS + 1, 0);
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_IPV6_EXT_CHAIN_TOO_LONG);
  /* A routing header with segments left is for a router, not for us. */
  static const uint8_t rh[] = {43};
  n = mk_v6_ext(buf, rh, 1, 0);
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_NONE);
  buf[43] = 1;
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_IPV6_BAD_EXT_HEADER);
  /* Hop-by-hop not first. */
  static const uint8_t late_hbh[] = {60, 0};
  n = mk_v6_ext(buf, late_hbh, 2, 0);
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_IPV6_BAD_EXT_HEADER);
  /* Fragment headers: first fragment (M=1), a later one, and an atomic fragment. */
  static const uint8_t frag[] = {0, 44};
  n = mk_v6_ext(buf, frag, 2, 0x0001);
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_FRAGMENT);
  CU_ASSERT_TRUE(p.is_fragment);
  CU_ASSERT_TRUE(p.more_frags);
  CU_ASSERT_EQUAL(p.frag_off, 0);
  CU_ASSERT_EQUAL(p.frag_id, 0xcafef00d);
  CU_ASSERT_EQUAL(p.frag_hdroff, 48);
  CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_UDP);
  CU_ASSERT_EQUAL(p.l4off, 56);
  n = mk_v6_ext(buf, frag, 2, 185 * 8);
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_FRAGMENT);
  CU_ASSERT_FALSE(p.more_frags);
  CU_ASSERT_EQUAL(p.frag_off, 1480);
  n = mk_v6_ext(buf, frag, 2, 0);
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_NONE);
  CU_ASSERT_FALSE(p.is_fragment);
  CU_ASSERT_EQUAL(p.payload_len, 6);
  /* An extension header whose length runs past the packet. */
  static const uint8_t one[] = {60};
  n = mk_v6_ext(buf, one, 1, 0);
  buf[41] = 3; /* 32 bytes, but only 8 + 14 are there */
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, n, &p), T2S_DROP_IPV6_BAD_EXT_HEADER);
  /* ... and one whose fixed 8 bytes are not there at all. */
  n = mk_udp(buf, sizeof(buf), true, 0);
  buf[6] = 43;
  t2s_put16(buf + 4, 4);
  CU_ASSERT_EQUAL(t2s_pkt_parse(buf, 44, &p), T2S_DROP_IPV6_BAD_EXT_HEADER);
}

/* Expects reason r from parsing buf[0..len). */
#define EXPECT_DROP(buf, len, r)                                                                   \
  do {                                                                                             \
    t2s_pkt p_;                                                                                    \
    CU_ASSERT_EQUAL(parse_exact((buf), (len), &p_), (r));                                          \
  } while (0)

static void test_drop_ip_level(void) {
  uint8_t b[256] = {0};
  size_t n;
  EXPECT_DROP(b, 0, T2S_DROP_TRUNCATED);
  n = mk_udp(b, sizeof(b), false, 4);
  EXPECT_DROP(b, 19, T2S_DROP_TRUNCATED);
  n = mk_udp(b, sizeof(b), true, 4);
  EXPECT_DROP(b, 39, T2S_DROP_TRUNCATED);
  b[0] = 0x50;
  EXPECT_DROP(b, n, T2S_DROP_BAD_VERSION);
  b[0] = 0x00;
  EXPECT_DROP(b, 1, T2S_DROP_BAD_VERSION);
  /* IPv4 IHL < 5 and beyond the buffer. */
  n = mk_udp(b, sizeof(b), false, 4);
  b[0] = 0x44;
  EXPECT_DROP(b, n, T2S_DROP_IPV4_BAD_IHL);
  b[0] = 0x4f; /* 60 bytes, the packet has 32 */
  EXPECT_DROP(b, n, T2S_DROP_IPV4_BAD_IHL);
  /* Total length below IHL, beyond the buffer. */
  n = mk_udp(b, sizeof(b), false, 4);
  t2s_put16(b + 2, 19);
  fix_ip4_csum(b);
  EXPECT_DROP(b, n, T2S_DROP_IPV4_BAD_TOTAL_LEN);
  t2s_put16(b + 2, (uint16_t)(n + 1));
  fix_ip4_csum(b);
  EXPECT_DROP(b, n, T2S_DROP_IPV4_BAD_TOTAL_LEN);
  /* Header checksum. */
  n = mk_udp(b, sizeof(b), false, 4);
  b[8] ^= 1;
  EXPECT_DROP(b, n, T2S_DROP_IPV4_BAD_CHECKSUM);
  /* IPv6 payload length beyond the buffer. */
  n = mk_udp(b, sizeof(b), true, 4);
  t2s_put16(b + 4, (uint16_t)(n - 40 + 1));
  EXPECT_DROP(b, n, T2S_DROP_IPV6_BAD_PAYLOAD_LEN);
  /* Jumbogram: payload length 0 with a hop-by-hop jumbo payload option (RFC 2675). */
  n = mk_udp(b, sizeof(b), true, 4);
  memmove(b + 48, b + 40, n - 40);
  b[6] = 0;
  b[40] = T2S_IPPROTO_UDP;
  b[41] = 0;
  b[42] = 0xc2;
  b[43] = 4;
  t2s_put32(b + 44, (uint32_t)(n + 8 - 40));
  t2s_put16(b + 4, 0);
  EXPECT_DROP(b, n + 8, T2S_DROP_IPV6_JUMBOGRAM);
  /* Payload length 0 without the option is just an empty (truncated) payload. */
  b[42] = 1;
  EXPECT_DROP(b, n + 8, T2S_DROP_IPV6_BAD_EXT_HEADER);
}

static void set_v4_addr(uint8_t *b, size_t off, uint8_t a, uint8_t b1, uint8_t c, uint8_t d) {
  b[off] = a;
  b[off + 1] = b1;
  b[off + 2] = c;
  b[off + 3] = d;
}

static void test_drop_addresses(void) {
  uint8_t b[256];
  size_t n;
  static const uint8_t bad4[][4] = {
      {224, 0, 0, 1}, {239, 255, 255, 250}, {255, 255, 255, 255}, {0, 0, 0, 0}};
  for (size_t i = 0; i < T2S_ARRAY_LEN(bad4); i++) {
    n = mk_udp(b, sizeof(b), false, 4);
    set_v4_addr(b, 12, bad4[i][0], bad4[i][1], bad4[i][2], bad4[i][3]);
    fix_ip4_csum(b);
    fix_l4_csum(b, 20, n - 20, T2S_IPPROTO_UDP, 6);
    EXPECT_DROP(b, n, T2S_DROP_BAD_SRC_ADDR);
    n = mk_udp(b, sizeof(b), false, 4);
    set_v4_addr(b, 16, bad4[i][0], bad4[i][1], bad4[i][2], bad4[i][3]);
    fix_ip4_csum(b);
    fix_l4_csum(b, 20, n - 20, T2S_IPPROTO_UDP, 6);
    EXPECT_DROP(b, n, T2S_DROP_BAD_DST_ADDR);
  }
  /* A subnet broadcast looks like any unicast address here: the engine knows the prefix. */
  n = mk_udp(b, sizeof(b), false, 4);
  set_v4_addr(b, 16, 192, 0, 2, 255);
  fix_ip4_csum(b);
  fix_l4_csum(b, 20, n - 20, T2S_IPPROTO_UDP, 6);
  EXPECT_DROP(b, n, T2S_DROP_NONE);
  /* IPv6: multicast and unspecified. */
  for (int which = 0; which < 2; which++) {
    n = mk_udp(b, sizeof(b), true, 4);
    memset(b + 8, 0, 16);
    if (which == 0) {
      b[8] = 0xff;
      b[9] = 0x02;
      b[23] = 1;
    }
    fix_l4_csum(b, 40, n - 40, T2S_IPPROTO_UDP, 6);
    EXPECT_DROP(b, n, T2S_DROP_BAD_SRC_ADDR);
    n = mk_udp(b, sizeof(b), true, 4);
    memset(b + 24, 0, 16);
    if (which == 0) {
      b[24] = 0xff;
      b[25] = 0x05;
      b[39] = 3;
    }
    fix_l4_csum(b, 40, n - 40, T2S_IPPROTO_UDP, 6);
    EXPECT_DROP(b, n, T2S_DROP_BAD_DST_ADDR);
  }
}

static void test_drop_fragment_and_proto(void) {
  uint8_t b[256];
  size_t n = mk_tcp(b, sizeof(b), false, false);
  t2s_pkt p;
  /* MF set, offset 0. */
  t2s_put16(b + 4, 0x4242);
  t2s_put16(b + 6, 0x2000);
  fix_ip4_csum(b);
  CU_ASSERT_EQUAL(t2s_pkt_parse(b, n, &p), T2S_DROP_FRAGMENT);
  CU_ASSERT_TRUE(p.is_fragment && p.more_frags);
  CU_ASSERT_EQUAL(p.frag_id, 0x4242);
  CU_ASSERT_EQUAL(p.frag_off, 0);
  CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_TCP);
  CU_ASSERT_EQUAL(p.l4.tcp.seq, 0); /* the upper layer was not read */
  /* Last fragment: offset only. The TCP checksum is wrong now, which must not matter. */
  t2s_put16(b + 6, 100);
  b[30] ^= 0xff;
  fix_ip4_csum(b);
  CU_ASSERT_EQUAL(t2s_pkt_parse(b, n, &p), T2S_DROP_FRAGMENT);
  CU_ASSERT_FALSE(p.more_frags);
  CU_ASSERT_EQUAL(p.frag_off, 800);
  /* DF alone is not a fragment. */
  n = mk_tcp(b, sizeof(b), false, false);
  CU_ASSERT_EQUAL(t2s_get16(b + 6), 0x4000);
  CU_ASSERT_EQUAL(t2s_pkt_parse(b, n, &p), T2S_DROP_NONE);
  /* Unsupported protocols: GRE in v4, ICMPv6 in v4, ICMP in v6, no next header in v6. */
  b[9] = 47;
  fix_ip4_csum(b);
  EXPECT_DROP(b, n, T2S_DROP_UNSUPPORTED_PROTO);
  b[9] = T2S_IPPROTO_ICMPV6;
  fix_ip4_csum(b);
  EXPECT_DROP(b, n, T2S_DROP_UNSUPPORTED_PROTO);
  n = mk_tcp(b, sizeof(b), true, false);
  b[6] = T2S_IPPROTO_ICMP;
  EXPECT_DROP(b, n, T2S_DROP_UNSUPPORTED_PROTO);
  b[6] = 59;
  EXPECT_DROP(b, n, T2S_DROP_UNSUPPORTED_PROTO);
  static const uint8_t dst[] = {60};
  n = mk_v6_ext(b, dst, 1, 0);
  b[40] = 59;
  CU_ASSERT_EQUAL(t2s_pkt_parse(b, n, &p), T2S_DROP_UNSUPPORTED_PROTO);
  CU_ASSERT_EQUAL(p.proto, 59);
}

static void test_drop_tcp(void) {
  uint8_t b[256];
  for (int v6 = 0; v6 <= 1; v6++) {
    size_t hl = v6 ? 40 : 20;
    /* Fewer than 20 bytes of TCP. */
    size_t n = mk_tcp(b, sizeof(b), v6, false);
    size_t cut = hl + 19;
    if (v6) {
      t2s_put16(b + 4, 19);
    } else {
      t2s_put16(b + 2, (uint16_t)cut);
      fix_ip4_csum(b);
    }
    EXPECT_DROP(b, cut, T2S_DROP_TCP_TRUNCATED);
    /* Data offset 4, and beyond the segment. */
    n = mk_tcp(b, sizeof(b), v6, false);
    b[hl + 12] = 0x40;
    fix_l4_csum(b, hl, n - hl, T2S_IPPROTO_TCP, 16);
    EXPECT_DROP(b, n, T2S_DROP_TCP_BAD_DATA_OFFSET);
    n = mk_tcp(b, sizeof(b), v6, true);
    size_t small = hl + 40; /* just the header with options, data offset 15 > 10 words */
    b[hl + 12] = 0xf0;
    if (v6) {
      t2s_put16(b + 4, 40);
    } else {
      t2s_put16(b + 2, (uint16_t)small);
      fix_ip4_csum(b);
    }
    fix_l4_csum(b, hl, 40, T2S_IPPROTO_TCP, 16);
    EXPECT_DROP(b, small, T2S_DROP_TCP_BAD_DATA_OFFSET);
    /* Checksum: any flipped bit of the segment or the pseudo-header. */
    n = mk_tcp(b, sizeof(b), v6, false);
    b[n - 1] ^= 0x01;
    EXPECT_DROP(b, n, T2S_DROP_TCP_BAD_CHECKSUM);
    n = mk_tcp(b, sizeof(b), v6, false);
    b[hl - 1] ^= 0x01; /* last byte of the destination address */
    if (!v6) {
      fix_ip4_csum(b);
    }
    EXPECT_DROP(b, n, T2S_DROP_TCP_BAD_CHECKSUM);
    /* Ports. */
    for (int which = 0; which < 2; which++) {
      n = mk_tcp(b, sizeof(b), v6, false);
      t2s_put16(b + hl + 2 * which, 0);
      fix_l4_csum(b, hl, n - hl, T2S_IPPROTO_TCP, 16);
      EXPECT_DROP(b, n, T2S_DROP_TCP_BAD_PORT);
    }
    /* Flags. */
    static const uint8_t bad_flags[] = {T2S_TCP_SYN | T2S_TCP_RST, T2S_TCP_SYN | T2S_TCP_FIN,
                                        T2S_TCP_SYN | T2S_TCP_FIN | T2S_TCP_RST | T2S_TCP_ACK, 0,
                                        T2S_TCP_ECE | T2S_TCP_CWR};
    for (size_t i = 0; i < sizeof(bad_flags); i++) {
      n = mk_tcp(b, sizeof(b), v6, false);
      b[hl + 13] = bad_flags[i];
      fix_l4_csum(b, hl, n - hl, T2S_IPPROTO_TCP, 16);
      EXPECT_DROP(b, n, T2S_DROP_TCP_BAD_FLAGS);
    }
    static const uint8_t good_flags[] = {T2S_TCP_SYN,
                                         T2S_TCP_SYN | T2S_TCP_ACK,
                                         T2S_TCP_RST,
                                         T2S_TCP_RST | T2S_TCP_ACK,
                                         T2S_TCP_FIN | T2S_TCP_ACK,
                                         T2S_TCP_SYN | T2S_TCP_ECE | T2S_TCP_CWR,
                                         T2S_TCP_URG};
    for (size_t i = 0; i < sizeof(good_flags); i++) {
      n = mk_tcp(b, sizeof(b), v6, false);
      b[hl + 13] = good_flags[i];
      fix_l4_csum(b, hl, n - hl, T2S_IPPROTO_TCP, 16);
      EXPECT_DROP(b, n, T2S_DROP_NONE);
    }
    /* An option whose length runs past the header. */
    n = mk_tcp(b, sizeof(b), v6, true); /* options: MSS at +20 */
    b[hl + 20 + 1] = 60;
    fix_l4_csum(b, hl, n - hl, T2S_IPPROTO_TCP, 16);
    EXPECT_DROP(b, n, T2S_DROP_TCP_BAD_OPTION);
  }
}

static void test_drop_udp_icmp(void) {
  uint8_t b[256];
  for (int v6 = 0; v6 <= 1; v6++) {
    size_t hl = v6 ? 40 : 20;
    size_t n = mk_udp(b, sizeof(b), v6, 4);
    /* Fewer than 8 bytes. */
    if (v6) {
      t2s_put16(b + 4, 7);
    } else {
      t2s_put16(b + 2, (uint16_t)(hl + 7));
      fix_ip4_csum(b);
    }
    EXPECT_DROP(b, hl + 7, T2S_DROP_UDP_TRUNCATED);
    /* UDP length < 8, > IP payload. */
    n = mk_udp(b, sizeof(b), v6, 4);
    t2s_put16(b + hl + 4, 7);
    EXPECT_DROP(b, n, T2S_DROP_UDP_BAD_LENGTH);
    t2s_put16(b + hl + 4, (uint16_t)(n - hl + 1));
    b[n] = 0;
    EXPECT_DROP(b, n + 1, T2S_DROP_UDP_BAD_LENGTH); /* the byte after the IP packet */
    /* Checksum wrong; zero (v4: none, accepted elsewhere; v6: invalid). */
    n = mk_udp(b, sizeof(b), v6, 5);
    b[n - 1] ^= 0x40;
    EXPECT_DROP(b, n, T2S_DROP_UDP_BAD_CHECKSUM);
    if (v6) {
      t2s_put16(b + hl + 6, 0);
      EXPECT_DROP(b, n, T2S_DROP_UDP_BAD_CHECKSUM);
    }
    /* ICMP shorter than its 8-byte header; bad checksum. */
    n = mk_echo_req(b, v6, 1, 2, 0);
    if (v6) {
      t2s_put16(b + 4, 7);
    } else {
      t2s_put16(b + 2, (uint16_t)(hl + 7));
      fix_ip4_csum(b);
    }
    EXPECT_DROP(b, hl + 7, T2S_DROP_ICMP_TRUNCATED);
    n = mk_echo_req(b, v6, 1, 2, 7);
    b[n - 2] ^= 0x10;
    EXPECT_DROP(b, n, T2S_DROP_ICMP_BAD_CHECKSUM);
    if (v6) {
      /* ICMPv6 checksums cover the pseudo-header: the same message from another source. */
      n = mk_echo_req(b, v6, 1, 2, 7);
      b[23] ^= 1;
      EXPECT_DROP(b, n, T2S_DROP_ICMP_BAD_CHECKSUM);
    }
    /* Another type (time exceeded) parses, with type and code. */
    n = mk_echo_req(b, v6, 1, 2, 7);
    b[hl] = v6 ? 3 : 11;
    b[hl + 1] = 1;
    fix_l4_csum(b, hl, n - hl, v6 ? T2S_IPPROTO_ICMPV6 : T2S_IPPROTO_ICMP, 2);
    t2s_pkt p;
    CU_ASSERT_EQUAL(t2s_pkt_parse(b, n, &p), T2S_DROP_NONE);
    CU_ASSERT_EQUAL(p.l4.icmp.type, v6 ? 3 : 11);
    CU_ASSERT_EQUAL(p.l4.icmp.code, 1);
    CU_ASSERT_EQUAL(p.l4.icmp.id, 0);
  }
}

/* ---- robustness ---- */

static void test_truncation_every_length(void) {
  uint8_t pk[8][512];
  size_t len[8];
  len[0] = mk_tcp(pk[0], sizeof(pk[0]), false, true);
  len[1] = mk_tcp(pk[1], sizeof(pk[1]), true, false);
  len[2] = mk_udp(pk[2], sizeof(pk[2]), false, 9);
  len[3] = mk_udp(pk[3], sizeof(pk[3]), true, 0);
  len[4] = mk_echo_req(pk[4], false, 7, 8, 13);
  len[5] = mk_echo_req(pk[5], true, 7, 8, 13);
  static const uint8_t chain[] = {0, 43, 60, 44};
  len[6] = mk_v6_ext(pk[6], chain, 4, 0);
  len[7] = mk_v6_ext(pk[7], chain, 4, 0x0001);
  for (size_t i = 0; i < 8; i++) {
    t2s_pkt p;
    t2s_drop_reason full = parse_exact(pk[i], len[i], &p);
    CU_ASSERT_EQUAL(full, i == 7 ? T2S_DROP_FRAGMENT : T2S_DROP_NONE);
    for (size_t l = 0; l < len[i]; l++) {
      t2s_drop_reason r = parse_exact(pk[i], l, &p);
      CU_ASSERT(r > T2S_DROP_NONE && r < T2S_DROP_MAX);
    }
    /* Also with the length fields cut consistently: IPv4 total length / IPv6 payload length
     * rewritten to match, so the upper-layer checks see the short packet. */
    for (size_t l = (pk[i][0] >> 4) == 4 ? 20 : 40; l < len[i]; l++) {
      uint8_t cp[512];
      memcpy(cp, pk[i], l);
      if ((cp[0] >> 4) == 4) {
        t2s_put16(cp + 2, (uint16_t)l);
        fix_ip4_csum(cp);
      } else {
        t2s_put16(cp + 4, (uint16_t)(l - 40));
      }
      t2s_drop_reason r = parse_exact(cp, l, &p);
      CU_ASSERT(r > T2S_DROP_NONE && r < T2S_DROP_MAX);
    }
  }
}

static void test_mutation_never_crashes(void) {
  t2s_rand r;
  t2s_rand_init(&r, 0x7e57);
  uint8_t pk[6][512];
  size_t len[6];
  len[0] = mk_tcp(pk[0], sizeof(pk[0]), false, true);
  len[1] = mk_tcp(pk[1], sizeof(pk[1]), true, false);
  len[2] = mk_udp(pk[2], sizeof(pk[2]), false, 9);
  len[3] = mk_echo_req(pk[3], true, 7, 8, 13);
  static const uint8_t chain[] = {0, 43, 60};
  len[4] = mk_v6_ext(pk[4], chain, 3, 0);
  len[5] = mk_v6_ext(pk[5], chain, 3, 0x0001);
  unsigned counts[T2S_DROP_MAX] = {0};
  for (int iter = 0; iter < 20000; iter++) {
    size_t i = (size_t)t2s_rand_below(&r, 6);
    uint8_t cp[512];
    memcpy(cp, pk[i], len[i]);
    int flips = 1 + (int)t2s_rand_below(&r, 3);
    for (int f = 0; f < flips; f++) {
      /* Mostly in the headers, where the interesting fields are. */
      size_t at = (size_t)t2s_rand_below(&r, T2S_MIN(len[i], (size_t)96));
      cp[at] = (uint8_t)t2s_rand_u32(&r);
    }
    /* Keep the IPv4 header checksum right half the time, so later checks are reached. */
    if ((cp[0] >> 4) == 4 && (cp[0] & 0xf) == 5 && t2s_rand_chance(&r, 1, 2)) {
      fix_ip4_csum(cp);
    }
    size_t l = len[i] - (size_t)t2s_rand_below(&r, 4);
    t2s_pkt p;
    t2s_drop_reason d = parse_exact(cp, l, &p);
    CU_ASSERT_FATAL(d >= T2S_DROP_NONE && d < T2S_DROP_MAX);
    counts[d]++;
    if (d == T2S_DROP_NONE) {
      CU_ASSERT(p.len <= l && p.l4off <= p.len && p.payload_len <= p.len);
    }
  }
  /* The mutations reached deep checks, not only the first ones. */
  CU_ASSERT(counts[T2S_DROP_NONE] > 0);
  CU_ASSERT(counts[T2S_DROP_TCP_BAD_CHECKSUM] > 0);
  CU_ASSERT(counts[T2S_DROP_IPV6_BAD_EXT_HEADER] > 0);
}

/* A device that vouches for TCP/UDP checksums (virtio NEEDS_CSUM: the field holds only the
 * pseudo-header sum): the parser takes TCP and UDP as they are, still verifies ICMP and the
 * IPv4 header, and without the flag the same bytes are dropped. */
static void test_parse_l4_csum_valid(void) {
  for (int v6 = 0; v6 <= 1; v6++) {
    uint8_t b[256];
    size_t hl = v6 ? 40 : 20;
    t2s_pkt p;
    size_t n = mk_tcp(b, sizeof(b), v6, false);
    b[hl + 16] ^= 0x5a; /* a partial checksum is not the full one */
    CU_ASSERT_EQUAL(t2s_pkt_parse(b, n, &p), T2S_DROP_TCP_BAD_CHECKSUM);
    CU_ASSERT_EQUAL(t2s_pkt_parse_ex(b, n, T2S_PARSE_L4_CSUM_VALID, &p), T2S_DROP_NONE);
    CU_ASSERT_TRUE(p.l4_csum_valid);
    CU_ASSERT_EQUAL(p.payload_len, 21);
    n = mk_udp(b, sizeof(b), v6, 9);
    t2s_put16(b + hl + 6, 0); /* 0: "no checksum", refused over IPv6 unless vouched for */
    CU_ASSERT_EQUAL(t2s_pkt_parse(b, n, &p), v6 ? T2S_DROP_UDP_BAD_CHECKSUM : T2S_DROP_NONE);
    CU_ASSERT_EQUAL(t2s_pkt_parse_ex(b, n, T2S_PARSE_L4_CSUM_VALID, &p), T2S_DROP_NONE);
    b[hl + 6] = 0x12;
    CU_ASSERT_EQUAL(t2s_pkt_parse(b, n, &p), T2S_DROP_UDP_BAD_CHECKSUM);
    CU_ASSERT_EQUAL(t2s_pkt_parse_ex(b, n, T2S_PARSE_L4_CSUM_VALID, &p), T2S_DROP_NONE);
    CU_ASSERT_EQUAL(p.payload_len, 9);
    n = mk_echo_req(b, v6, 1, 2, 16);
    b[hl + 2] ^= 0x01; /* offloads never cover ICMP */
    CU_ASSERT_EQUAL(t2s_pkt_parse_ex(b, n, T2S_PARSE_L4_CSUM_VALID, &p),
                    T2S_DROP_ICMP_BAD_CHECKSUM);
    if (!v6) {
      n = mk_tcp(b, sizeof(b), false, true);
      b[10] ^= 0x01; /* nor the IPv4 header's own checksum */
      CU_ASSERT_EQUAL(t2s_pkt_parse_ex(b, n, T2S_PARSE_L4_CSUM_VALID, &p),
                      T2S_DROP_IPV4_BAD_CHECKSUM);
    }
  }
}

/* The gathered builder (headers only, the payload where it is) gives the same bytes as the
 * whole-packet builder, for every split of the payload into two pieces (odd first pieces
 * included: the second then starts at an odd offset of the checksummed data), v4 and v6, with
 * a full checksum and with a partial one. */
static void test_tcp_hdr_gathered(void) {
  uint8_t payload[301];
  for (size_t i = 0; i < sizeof(payload); i++) {
    payload[i] = (uint8_t)(i * 37 + 11);
  }
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  o.has_ts = true;
  o.ts_val = 0x01020304;
  o.ts_ecr = 0x0a0b0c0d;
  for (int v6 = 0; v6 <= 1; v6++) {
    t2s_addr s = addr(v6 ? "[2001:db8::1]:4000" : "192.0.2.1:4000");
    t2s_addr d = addr(v6 ? "[2001:db8::2]:80" : "198.51.100.7:80");
    for (size_t partial = 0; partial <= 1; partial++) {
      for (size_t total = 0; total <= sizeof(payload); total += 37) {
        for (size_t l1 = 0; l1 <= total; l1 += (total > 10 ? 7 : 1)) {
          uint8_t whole[512], hdr[128], joined[512];
          size_t over = partial ? 100 : 0;
          t2s_ssize n = t2s_build_tcp_ex(whole, sizeof(whole), &s, &d, 7, 9, T2S_TCP_ACK, 1000, &o,
                                         payload, l1, payload + l1, total - l1, over);
          t2s_ssize h = t2s_build_tcp_hdr(hdr, sizeof(hdr), &s, &d, 7, 9, T2S_TCP_ACK, 1000, &o,
                                          payload, l1, payload + l1, total - l1, over);
          CU_ASSERT_FATAL(n > 0 && h > 0);
          CU_ASSERT_EQUAL_FATAL((size_t)n, (size_t)h + total);
          memcpy(joined, hdr, (size_t)h);
          memcpy(joined + h, payload, total);
          CU_ASSERT_EQUAL_FATAL(memcmp(joined, whole, (size_t)n), 0);
          if (!partial || (size_t)n <= over) {
            t2s_pkt p;
            CU_ASSERT_EQUAL(t2s_pkt_parse(joined, (size_t)n, &p), T2S_DROP_NONE);
          }
        }
      }
    }
    /* Only the headers need room in the buffer. */
    uint8_t small[80];
    CU_ASSERT_TRUE(t2s_build_tcp_hdr(small, sizeof(small), &s, &d, 1, 2, T2S_TCP_ACK, 3, &o,
                                     payload, sizeof(payload), NULL, 0, 0) > 0);
  }
}

int t2s_test_register_packet(void) {
  CU_pSuite s = CU_add_suite("packet", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "csum RFC 1071 vectors", test_csum_rfc1071) ||
      !CU_add_test(s, "csum matches reference at every length/alignment",
                   test_csum_matches_reference) ||
      !CU_add_test(s, "csum pseudo-header", test_csum_pseudo) ||
      !CU_add_test(s, "csum incremental equals recompute", test_csum_incremental) ||
      !CU_add_test(s, "tcp opts write layout and 40-byte cap", test_opts_write_layout) ||
      !CU_add_test(s, "tcp opts parse", test_opts_parse) ||
      !CU_add_test(s, "tcp build/parse round trip v4/v6", test_tcp_roundtrip) ||
      !CU_add_test(s, "udp build/parse round trip v4/v6", test_udp_roundtrip) ||
      !CU_add_test(s, "icmp echo reply round trip v4/v6", test_icmp_echo_roundtrip) ||
      !CU_add_test(s, "icmp unreachable quoting limits", test_icmp_unreach) ||
      !CU_add_test(s, "builder errors", test_builder_errors) ||
      !CU_add_test(s, "tcp headers for a gathered write equal the whole packet",
                   test_tcp_hdr_gathered) ||
      !CU_add_test(s, "parse trailing bytes, options, tos", test_parse_trailing_and_fields) ||
      !CU_add_test(s, "parse ipv6 extension chain", test_parse_ipv6_ext) ||
      !CU_add_test(s, "drop: ip level", test_drop_ip_level) ||
      !CU_add_test(s, "drop: addresses", test_drop_addresses) ||
      !CU_add_test(s, "drop: fragments and protocols", test_drop_fragment_and_proto) ||
      !CU_add_test(s, "drop: tcp", test_drop_tcp) ||
      !CU_add_test(s, "drop: udp and icmp", test_drop_udp_icmp) ||
      !CU_add_test(s, "device-vouched l4 checksums", test_parse_l4_csum_valid) ||
      !CU_add_test(s, "truncation at every length", test_truncation_every_length) ||
      !CU_add_test(s, "mutations never crash", test_mutation_never_crashes)) {
    return -1;
  }
  return 0;
}
