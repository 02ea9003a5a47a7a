/*
 * fuzz_socks5.c: SOCKS5 server replies into the client codec, and the UDP header and address
 * decoders.
 *
 * Input: byte 0 chooses the handshake (bit 0 UDP ASSOCIATE instead of CONNECT, bit 1 offer
 * RFC 1929 credentials, bit 2 pipelined, bits 3-4 the destination: IPv4, IPv6, domain, none,
 * bit 5 report EOF at the end, bit 6 write only part of the pending output before each feed,
 * bit 7 credentials of 255 bytes); byte 1 seeds the chunk sizes; the rest is what the proxy
 * says.
 *
 * The replies are fed twice: in the chunks byte 1 chooses, and one byte at a time (with all
 * pending output written before each feed in both runs). The codec promises that any split
 * gives the same result, so both runs must end alike, unless the chunked run fed bytes before
 * the request they answer was written (UNSOLICITED) or wrote only part of its output.
 * The same bytes then go through the UDP header decoders and the address decoder, and whatever
 * decodes must encode back to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_harness.h"
#include "socks5.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct run_result {
  int rv;       /* last feed result (or the EOF result) */
  int feed_rv;  /* result of the last feed before EOF */
  size_t taken; /* handshake bytes consumed in total */
  bool done;
  int rep;
  t2s_socks5_error_reason reason;
  t2s_socks5_host bnd;
  bool have_bnd;
  bool unsolicited;
} run_result;

static char long_user[256], long_pass[256];

static void write_output(t2s_socks5_client *c, bool partial, unsigned *lcg) {
  const uint8_t *p;
  size_t n;
  t2s_socks5_client_pending_output(c, &p, &n);
  FZ_CHECK(n <= T2S_SOCKS5_CLIENT_OUT_MAX, "pending output of %zu bytes", n);
  uint32_t h = 0;
  for (size_t i = 0; i < n; i++) {
    h += p[i]; /* read it all: ASan checks the pointer and length */
  }
  (void)h;
  if (partial && n > 0) {
    *lcg = *lcg * 1103515245u + 12345u;
    n = (*lcg >> 16) % (n + 1);
  }
  t2s_socks5_client_output_consumed(c, n);
}

static int checked_feed(t2s_socks5_client *c, const uint8_t *data, size_t len, size_t *pconsumed) {
  uint8_t *exact = malloc(len ? len : 1);
  FZ_CHECK(exact != NULL, "out of memory");
  memcpy(exact, data, len);
  bool was_done = t2s_socks5_client_done(c);
  int prev_err = t2s_socks5_client_error(c);
  *pconsumed = 12345;
  int rv = t2s_socks5_client_feed(c, exact, len, pconsumed);
  free(exact);
  FZ_CHECK(*pconsumed <= len, "consumed %zu of %zu", *pconsumed, len);
  FZ_CHECK(rv == T2S_SOCKS5_NEED_MORE || rv == T2S_SOCKS5_DONE || rv < 0, "feed returned %d", rv);
  if (prev_err != 0) {
    FZ_CHECK(rv == prev_err, "a failed client returned %d after %d", rv, prev_err);
  }
  if (rv < 0) {
    FZ_CHECK(t2s_socks5_client_error(c) == rv, "error %d but feed returned %d",
             t2s_socks5_client_error(c), rv);
    t2s_socks5_error_reason r = t2s_socks5_client_reason(c);
    FZ_CHECK(r > T2S_SOCKS5_REASON_NONE && r < T2S_SOCKS5_REASON_MAX, "reason %d", (int)r);
    FZ_CHECK(!t2s_socks5_client_done(c), "failed and done");
  }
  if (rv == T2S_SOCKS5_DONE) {
    FZ_CHECK(t2s_socks5_client_done(c), "DONE but not done");
    FZ_CHECK(t2s_socks5_client_bnd(c) != NULL, "DONE without BND");
    FZ_CHECK(t2s_socks5_client_rep(c) == 0, "DONE with REP %d", t2s_socks5_client_rep(c));
    if (was_done) {
      FZ_CHECK(*pconsumed == 0, "consumed %zu bytes after DONE", *pconsumed);
    }
  }
  int rep = t2s_socks5_client_rep(c);
  FZ_CHECK(rep >= -1 && rep <= 255, "rep %d", rep);
  return rv;
}

static void init_client(t2s_socks5_client *c, uint8_t sel) {
  t2s_socks5_cmd cmd = (sel & 1) ? T2S_SOCKS5_CMD_UDP_ASSOCIATE : T2S_SOCKS5_CMD_CONNECT;
  t2s_socks5_host dst;
  const t2s_socks5_host *pdst = &dst;
  t2s_addr a;
  switch ((sel >> 3) & 3) {
  case 0:
    t2s_addr_parse("203.0.113.7:443", &a);
    t2s_socks5_host_from_addr(&dst, &a);
    break;
  case 1:
    t2s_addr_parse("[2001:db8::7]:443", &a);
    t2s_socks5_host_from_addr(&dst, &a);
    break;
  case 2:
    t2s_socks5_host_from_domain(&dst, "example.test", 80);
    break;
  default:
    pdst = cmd == T2S_SOCKS5_CMD_UDP_ASSOCIATE ? NULL : &dst;
    t2s_socks5_host_from_domain(&dst, "x", 1);
    break;
  }
  const char *user = NULL, *pass = NULL;
  if (sel & 2) {
    user = (sel & 0x80) ? long_user : "user";
    pass = (sel & 0x80) ? long_pass : "";
  }
  int rv = t2s_socks5_client_init(c, cmd, pdst, user, pass, (sel & 4) != 0);
  FZ_CHECK(rv == 0, "t2s_socks5_client_init: %d", rv);
}

/* Feeds data in chunks (chunk_seed 0: one byte at a time). */
static void run(uint8_t sel, unsigned chunk_seed, bool partial, const uint8_t *data, size_t len,
                run_result *out) {
  t2s_socks5_client c;
  init_client(&c, sel);
  memset(out, 0, sizeof(*out));
  unsigned lcg = chunk_seed * 2654435761u + 1;
  size_t off = 0;
  int rv = T2S_SOCKS5_NEED_MORE;
  /* Bounded: each round either consumes a byte or ends. */
  while (off < len) {
    write_output(&c, partial, &lcg);
    size_t chunk = 1;
    if (chunk_seed != 0) {
      lcg = lcg * 1103515245u + 12345u;
      chunk = 1 + (lcg >> 16) % 24;
    }
    if (chunk > len - off) {
      chunk = len - off;
    }
    size_t used;
    rv = checked_feed(&c, data + off, chunk, &used);
    off += used;
    out->taken += used;
    if (rv < 0 || rv == T2S_SOCKS5_DONE) {
      break;
    }
    FZ_CHECK(used == chunk, "NEED_MORE after consuming %zu of %zu", used, chunk);
  }
  if (rv == T2S_SOCKS5_DONE && off < len) {
    /* After DONE: CONNECT leaves the rest to the caller; UDP ASSOCIATE fails on it. */
    size_t used;
    int again = checked_feed(&c, data + off, len - off, &used);
    if (sel & 1) {
      FZ_CHECK(again == T2S_ERR_PROTO, "bytes after a UDP ASSOCIATE reply gave %d", again);
      rv = again; /* as if they had come with the reply */
    } else {
      FZ_CHECK(again == T2S_SOCKS5_DONE && used == 0, "bytes after DONE: %d, used %zu", again,
               used);
    }
  }
  out->feed_rv = rv;
  out->done = t2s_socks5_client_done(&c);
  out->reason = t2s_socks5_client_reason(&c);
  out->unsolicited = out->reason == T2S_SOCKS5_REASON_UNSOLICITED;
  out->rep = t2s_socks5_client_rep(&c);
  const t2s_socks5_host *b = t2s_socks5_client_bnd(&c);
  if (b) {
    out->have_bnd = true;
    out->bnd = *b;
    if (sel & 1) {
      FZ_CHECK(b->atyp != T2S_SOCKS5_ATYP_DOMAIN, "UDP ASSOCIATE done with a domain relay");
      t2s_addr proxy, relay;
      t2s_addr_parse("192.0.2.1:1080", &proxy);
      (void)t2s_socks5_udp_relay(&b->addr, &proxy, &relay);
    }
  }
  out->rv = rv;
  if (sel & 0x20) {
    int erv = t2s_socks5_client_eof(&c);
    if (out->done && !(sel & 1)) {
      FZ_CHECK(erv == 0, "EOF after a CONNECT's DONE gave %d", erv);
    } else {
      FZ_CHECK(erv < 0, "EOF gave %d", erv);
    }
    out->rv = erv;
    out->reason = t2s_socks5_client_reason(&c);
  }
  (void)t2s_socks5_reason_name((int)out->reason);
  (void)t2s_socks5_rep_name(out->rep);
}

static void check_same(const run_result *a, const run_result *b) {
  FZ_CHECK(a->rv == b->rv && a->feed_rv == b->feed_rv,
           "chunked run ended with %d/%d (%s), byte run with %d/%d (%s)", a->feed_rv, a->rv,
           t2s_socks5_reason_name((int)a->reason), b->feed_rv, b->rv,
           t2s_socks5_reason_name((int)b->reason));
  FZ_CHECK(a->reason == b->reason, "reasons differ: %s vs %s",
           t2s_socks5_reason_name((int)a->reason), t2s_socks5_reason_name((int)b->reason));
  FZ_CHECK(a->taken == b->taken, "consumed %zu vs %zu", a->taken, b->taken);
  FZ_CHECK(a->done == b->done && a->rep == b->rep, "done/rep differ");
  FZ_CHECK(a->have_bnd == b->have_bnd, "BND differs");
  if (a->have_bnd) {
    FZ_CHECK(a->bnd.atyp == b->bnd.atyp && t2s_addr_eq(&a->bnd.addr, &b->bnd.addr) &&
                 a->bnd.domainlen == b->bnd.domainlen &&
                 memcmp(a->bnd.domain, b->bnd.domain, a->bnd.domainlen) == 0,
             "BND differs");
  }
}

static void fuzz_udp(const uint8_t *data, size_t len) {
  uint8_t *exact = malloc(len ? len : 1);
  FZ_CHECK(exact != NULL, "out of memory");
  memcpy(exact, data, len);
  t2s_addr src;
  const uint8_t *payload;
  size_t plen;
  t2s_socks5_error_reason reason = T2S_SOCKS5_REASON_NONE;
  int rv = t2s_socks5_udp_decode(exact, len, &src, &payload, &plen, &reason);
  if (rv == 0) {
    FZ_CHECK(payload >= exact && payload + plen == exact + len, "payload outside the datagram");
    size_t hl = (size_t)(payload - exact);
    FZ_CHECK(hl == t2s_socks5_udp_header_len(&src), "header of %zu bytes for its address", hl);
    uint8_t *buf = malloc(len ? len : 1);
    FZ_CHECK(buf != NULL, "out of memory");
    t2s_ssize n = t2s_socks5_udp_encode(buf, len, &src, payload, plen);
    FZ_CHECK(n == (t2s_ssize)len && memcmp(buf, exact, len) == 0,
             "decoded datagram does not encode back (%zd of %zu bytes)", (ssize_t)n, len);
    free(buf);
  } else {
    FZ_CHECK(rv == T2S_ERR_MALFORMED || rv == T2S_ERR_PROTO || rv == T2S_ERR_UNSUPPORTED,
             "udp_decode returned %d", rv);
    FZ_CHECK(reason != T2S_SOCKS5_REASON_NONE, "udp_decode failed without a reason");
  }
  t2s_socks5_host h;
  reason = T2S_SOCKS5_REASON_NONE;
  int rv2 = t2s_socks5_udp_decode_host(exact, len, &h, &payload, &plen, &reason);
  if (rv2 == 0) {
    FZ_CHECK(payload >= exact && payload + plen == exact + len, "payload outside the datagram");
    if (h.atyp != T2S_SOCKS5_ATYP_DOMAIN) {
      FZ_CHECK(rv == 0 && t2s_addr_eq(&h.addr, &src), "decode and decode_host disagree");
    }
  } else {
    FZ_CHECK(rv != 0, "decode_host failed (%d) where decode succeeded", rv2);
  }
  /* The address alone: ATYP + address + port from the start. */
  reason = T2S_SOCKS5_REASON_NONE;
  t2s_ssize hn = t2s_socks5_host_decode(exact, len, &h, &reason);
  if (hn > 0) {
    FZ_CHECK((size_t)hn <= len, "host_decode used %zd of %zu", (ssize_t)hn, len);
    FZ_CHECK(t2s_socks5_host_len(&h) == (size_t)hn, "host_len %zu vs %zd", t2s_socks5_host_len(&h),
             (ssize_t)hn);
    uint8_t buf[300];
    t2s_ssize en = t2s_socks5_host_encode(buf, sizeof(buf), &h);
    FZ_CHECK(en == hn && memcmp(buf, exact, (size_t)hn) == 0, "address does not encode back");
  } else if (hn < 0) {
    FZ_CHECK(hn == T2S_ERR_MALFORMED && reason != T2S_SOCKS5_REASON_NONE, "host_decode %zd",
             (ssize_t)hn);
  }
  free(exact);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (long_user[0] == 0) {
    memset(long_user, 'u', 255);
    memset(long_pass, 'p', 255);
  }
  if (size < 2 || size > 4096) {
    return 0;
  }
  uint8_t sel = data[0];
  unsigned chunk_seed = data[1] ? data[1] : 1;
  bool partial = (sel & 0x40) != 0;
  const uint8_t *replies = data + 2;
  size_t len = size - 2;

  run_result a, b;
  run(sel, chunk_seed, partial, replies, len, &a);
  run(sel, 0, false, replies, len, &b);
  if (!a.unsolicited && !partial) {
    check_same(&a, &b);
  }
  FZ_CHECK(!b.unsolicited, "UNSOLICITED with all output written before each byte");
  fuzz_udp(replies, len);
  return 0;
}
