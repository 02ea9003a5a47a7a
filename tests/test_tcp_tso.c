/* test_tcp_tso.c: TCP super-segments for a device that splits them (t2s_tcp_config.tso, set by
 * the engine when the device reports T2S_DEVICE_OFFLOAD_TSO). */
#include <stdlib.h>
#include <string.h>

#include "tcp_fixture.h"

static uint8_t data[200000];

/* Pops the next captured packet: its IP length and TCP payload length (-1: none or bad). A
 * packet over the MTU (a super-segment) must carry the pseudo-header sum for the device to
 * complete (partial_csum_over), and completing it as the device does must give a valid packet;
 * every other packet carries its full checksum. */
static long pop_packet(tfx *f, size_t *piplen) {
  if (f->qhead == f->qtail) {
    return -1;
  }
  uint8_t *p = f->q[f->qhead % TFX_QMAX];
  size_t len = f->qlen[f->qhead % TFX_QMAX];
  f->qhead++;
  t2s_pkt pkt;
  bool partial = f->cfg.partial_csum_over != 0 && len > f->cfg.partial_csum_over;
  long n = -1;
  if (t2s_pkt_parse_ex(p, len, partial ? T2S_PARSE_L4_CSUM_VALID : 0, &pkt) == T2S_DROP_NONE) {
    n = (long)pkt.payload_len;
  }
  if (n >= 0 && partial) {
    uint8_t *th = p + pkt.l4off;
    size_t l4len = pkt.len - pkt.l4off;
    uint32_t psum = t2s_csum_pseudo(&pkt.src, &pkt.dst, T2S_IPPROTO_TCP, (uint32_t)l4len);
    uint16_t want = (uint16_t)~t2s_csum_fold(psum);
    CU_ASSERT(t2s_get16(th + 16) == want);
    t2s_put16(th + 16, t2s_csum_fold(t2s_csum_add(0, th, l4len))); /* what the device does */
    CU_ASSERT(t2s_pkt_parse(p, len, &pkt) == T2S_DROP_NONE);
    f->n_partial++;
  }
  free(p);
  *piplen = len;
  return n;
}

/* An established connection on a 1500-byte MTU whose peer offers mss, window scaling 7 and
 * timestamps; the peer's window is opened wide. */
static void setup(tfx *f, bool tso, uint16_t mss) {
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.tso = tso;
  cfg.partial_csum_over = tso ? cfg.mtu : 0; /* as the engine sets it for a TSO device */
  cfg.sndbuf = 1u << 20;
  tfx_setup(f, &cfg);
  t2s_tcp_opts o = tfx_opts(mss, 7, true, true);
  tcb_in_established(f, &o, NULL);
  f->pwnd = 65535; /* << 7: 8 MiB */
  feed_ack(f, f->pack);
  tfx_drain(f);
}

/* Sends 100,000 bytes, acking everything each round until all is acknowledged; checks every
 * packet against the rules and returns the largest payload seen. */
static size_t send_all(tfx *f, bool expect_super) {
  CU_ASSERT(t2s_tcp_send(f->c, data, 100000, f->now) == 100000);
  size_t total = 0, biggest = 0, tails = 0;
  for (int round = 0; round < 64 && total < 100000; round++) {
    size_t iplen;
    long n;
    uint32_t acked = f->pack;
    while ((n = pop_packet(f, &iplen)) >= 0) {
      CU_ASSERT(iplen <= 65535);
      if (!expect_super) {
        CU_ASSERT(iplen <= 1500);
      } else if (iplen > 1500) {
        /* A super-segment is whole MSS-sized segments (the device cuts it at the MTU), but for
         * the one that carries the end of what was queued: its last segment is short. */
        CU_ASSERT(n % f->c->mss == 0 || total + (size_t)n == 100000);
        tails += n % f->c->mss != 0;
        CU_ASSERT((size_t)f->c->mss + (iplen - (size_t)n) == 1500);
      }
      biggest = T2S_MAX(biggest, (size_t)n);
      total += (size_t)n;
      acked += (uint32_t)n;
    }
    f->now += T2S_MILLISECONDS;
    f->ptsval++;
    feed_ack(f, acked);
    f->pack = acked;
  }
  CU_ASSERT(total == 100000);
  CU_ASSERT(t2s_tcp_send_queued(f->c) == 0);
  CU_ASSERT(tails <= 1);
  return biggest;
}

static void test_tso_super_segments(void) {
  tfx f;
  setup(&f, true, 1460);
  CU_ASSERT(f.c->mss == 1448);
  CU_ASSERT(send_all(&f, true) > 1448); /* the initial window (10 MSS) went out as one */
  CU_ASSERT(f.n_partial > 0);
  tfx_teardown(&f);
}

/* What is queued goes out whole: 3 MSS and 100 bytes are one super-segment whose last segment
 * is short, not 3 MSS and then the 100 bytes in a packet (a TUN write) of their own. */
static void test_tso_tail_rides_along(void) {
  tfx f;
  setup(&f, true, 1460);
  size_t want = 3 * 1448 + 100;
  CU_ASSERT(t2s_tcp_send(f.c, data, want, f.now) == (t2s_ssize)want);
  size_t iplen;
  CU_ASSERT(pop_packet(&f, &iplen) == (long)want);
  CU_ASSERT(iplen > 1500 && f.n_partial == 1);
  expect_nothing(&f);
  tfx_teardown(&f);
}

/* Acknowledges everything sent until nothing is left in flight (bounded). */
static void ack_all(tfx *f) {
  for (int round = 0; round < 64 && t2s_tcp_send_queued(f->c) > 0; round++) {
    size_t iplen;
    long n;
    uint32_t acked = f->pack;
    while ((n = pop_packet(f, &iplen)) >= 0) {
      acked += (uint32_t)n;
    }
    f->now += T2S_MILLISECONDS;
    f->ptsval++;
    feed_ack(f, acked);
    f->pack = acked;
  }
  CU_ASSERT(t2s_tcp_send_queued(f->c) == 0);
}

/* The room offered for an in-place read (t2s_tcp_send_buf) ends on a super-segment boundary
 * with TSO: 64 KiB read there go out as one TUN write of 45 MSS, not that and 376 bytes in a
 * second one. Without TSO the room is what the ring has. */
static void test_tso_in_place_room_whole_super_segments(void) {
  for (int tso = 1; tso >= 0; tso--) {
    tfx f;
    setup(&f, tso, 1460);
    CU_ASSERT(t2s_tcp_send(f.c, data, 131072, f.now) == 131072); /* the ring grows to 128 KiB */
    ack_all(&f);
    uint8_t *p;
    size_t room = t2s_tcp_send_buf(f.c, 65536, &p);
    CU_ASSERT_FATAL(p != NULL);
    CU_ASSERT_EQUAL(room, tso ? 45u * 1448 : 65536u);
    memcpy(p, data, room);
    f.c->cwnd = 1u << 20; /* past slow start: the window does not cut the segment */
    CU_ASSERT(t2s_tcp_send(f.c, p, room, f.now) == (t2s_ssize)room);
    size_t iplen;
    if (tso) {
      CU_ASSERT(pop_packet(&f, &iplen) == 45 * 1448);
      expect_nothing(&f); /* one TUN write */
    }
    tfx_teardown(&f);
  }
}

static void test_tso_off(void) {
  tfx f;
  setup(&f, false, 1460);
  CU_ASSERT(send_all(&f, false) == 1448);
  tfx_teardown(&f);
}

/* A peer whose MSS is below what the MTU allows: the device's cut (at the MTU) would not be
 * its MSS, so no super-segments. */
static void test_tso_small_peer_mss(void) {
  tfx f;
  setup(&f, true, 1200);
  CU_ASSERT(f.c->mss == 1188);
  CU_ASSERT(send_all(&f, false) == 1188);
  tfx_teardown(&f);
}

/* Feeds the peer's next in-order data segment of len bytes, up to a GRO super-packet (64 KiB:
 * larger than feed_data's buffer). */
static void feed_super(tfx *f, size_t len) {
  static uint8_t buf[70000];
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  o.has_ts = f->pts;
  o.ts_val = f->ptsval;
  o.ts_ecr = f->ptsecr;
  t2s_ssize n = t2s_build_tcp(buf, sizeof(buf), &f->peer, &f->local, f->pseq, f->pack,
                              T2S_TCP_ACK | T2S_TCP_PSH, f->pwnd, &o, data, len, NULL, 0);
  t2s_pkt pkt;
  CU_ASSERT_FATAL(n > 0 && t2s_pkt_parse(buf, (size_t)n, &pkt) == T2S_DROP_NONE);
  CU_ASSERT(t2s_tcp_input(f->st, &pkt, f->now) == T2S_DROP_NONE);
  f->pseq += (uint32_t)len;
}

/* With offloads the client's data comes as GRO super-packets of 44 segments; inside a burst
 * the stack ACKs every second one (each ACK written to the TUN costs the client's ACK
 * processing in our context), and the burst's end ACKs the rest. Without offloads the same
 * super-packets are each ACKed (the bound is 16 segments). */
static void test_tso_burst_acks_every_second_super_packet(void) {
  for (int tso = 1; tso >= 0; tso--) {
    tfx f;
    setup(&f, tso, 1460);
    uint8_t sink[2048];
    for (int i = 0; i < 20; i++) { /* past quick-ack: the first segments are ACKed at once */
      feed_data(&f, data, 1448);
      tfx_read(&f, sink, sizeof(sink));
    }
    tfx_drain(&f);
    size_t super = 44 * 1448;
    t2s_tcp_batch_begin(f.st);
    feed_super(&f, super);
    if (tso) {
      expect_nothing(&f);
    } else {
      expect_segment(&f, T2S_TCP_ACK, ANY, f.pseq, NULL);
    }
    feed_super(&f, super);
    expect_segment(&f, T2S_TCP_ACK, ANY, f.pseq, NULL);
    feed_super(&f, super);
    if (tso) {
      expect_nothing(&f);
    } else {
      expect_segment(&f, T2S_TCP_ACK, ANY, f.pseq, NULL);
    }
    t2s_tcp_flush(f.st, f.now);
    if (tso) {
      expect_segment(&f, T2S_TCP_ACK, ANY, f.pseq, NULL); /* the burst's end */
    }
    expect_nothing(&f);
    tfx_teardown(&f);
  }
}

int t2s_test_register_tcp_tso(void) {
  for (size_t i = 0; i < sizeof(data); i++) {
    data[i] = (uint8_t)(i * 7 + 3);
  }
  CU_pSuite s = CU_add_suite("tcp_tso", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "TSO: whole-MSS super-segments", test_tso_super_segments) ||
      !CU_add_test(s, "TSO off: one MSS per segment", test_tso_off) ||
      !CU_add_test(s, "TSO: in-place room ends on a super-segment boundary",
                   test_tso_in_place_room_whole_super_segments) ||
      !CU_add_test(s, "TSO: the queue's short tail rides in the last super-segment",
                   test_tso_tail_rides_along) ||
      !CU_add_test(s, "TSO: no super-segments below a full MSS", test_tso_small_peer_mss) ||
      !CU_add_test(s, "TSO: a burst's GRO super-packets ACKed every second one",
                   test_tso_burst_acks_every_second_super_packet)) {
    return -1;
  }
  return 0;
}
