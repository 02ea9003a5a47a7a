/* test_tcp_data.c: the TCP stack's data transfer: in-order and out-of-order receive, SACK
 * generation, fast retransmit (with and without SACK), zero windows in both directions,
 * send-buffer backpressure, PAWS, sequence-number wrap-around. */
#include <string.h>

#include "tcp_fixture.h"

static uint8_t data[65536];

/* Established with the peer's MSS 1000, no options besides those in (ws, sack, ts). */
static void established(tfx *f, int ws, bool sack, bool ts) {
  t2s_tcp_opts o = tfx_opts(1000, ws, sack, ts);
  tcb_in_established(f, &o, NULL);
}

/* Sends the peer's bytes [off, off + len) of `data` relative to base, without moving pseq. */
static t2s_drop_reason feed_at(tfx *f, uint32_t base, uint32_t off, uint32_t len) {
  return feed_segment(f, T2S_TCP_ACK, base + off, f->pack, f->pwnd, NULL, data + off, len);
}

static void test_in_order_data(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, 7, true, true);
  CU_ASSERT(feed_data(&f, data, 100) == T2S_DROP_NONE);
  tseg s;
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s);
  CU_ASSERT(s.len == 0 && s.opts.nsack == 0 && s.opts.has_ts && s.opts.ts_ecr == 5010);
  CU_ASSERT(s.wnd == (262144 - 100) >> 3 || s.wnd == ((262144 - 100) >> 3) + 1);
  CU_ASSERT(f.n_recv == 1);
  feed_data(&f, data + 100, 50);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  uint8_t buf[200];
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 150);
  CU_ASSERT(memcmp(buf, data, 150) == 0);
  /* A duplicate is acknowledged, never delivered twice. */
  feed_at(&f, f.pseq - 150, 0, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(t2s_tcp_recv_peek(f.c, &(const uint8_t *){0}, &(size_t){0}, &(const uint8_t *){0},
                              &(size_t){0}) == 0);
  /* A partial overlap delivers only the new part. */
  feed_at(&f, f.pseq - 150, 100, 80);
  f.pseq += 30;
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 30);
  CU_ASSERT(memcmp(buf, data + 150, 30) == 0);
  expect_nothing(&f);
  tfx_teardown(&f);
}

/* SACK blocks: the block holding the latest segment first, merged, and a cumulative ACK that
 * jumps over the held data when the gap fills (RFC 2018 section 4). */
static void test_ooo_sack_blocks(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, true, false);
  uint32_t r = f.pseq;
  tseg s;
  feed_at(&f, r, 100, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 1);
  CU_ASSERT(s.opts.sack[0].left == r + 100 && s.opts.sack[0].right == r + 200);
  CU_ASSERT(f.n_recv == 0);
  feed_at(&f, r, 300, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 2);
  CU_ASSERT(s.opts.sack[0].left == r + 300 && s.opts.sack[0].right == r + 400);
  CU_ASSERT(s.opts.sack[1].left == r + 100 && s.opts.sack[1].right == r + 200);
  feed_at(&f, r, 200, 100); /* bridges both */
  expect_segment(&f, T2S_TCP_ACK, f.pack, r, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 1);
  CU_ASSERT(s.opts.sack[0].left == r + 100 && s.opts.sack[0].right == r + 400);
  feed_at(&f, r, 500, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 2);
  CU_ASSERT(s.opts.sack[0].left == r + 500 && s.opts.sack[1].left == r + 100);
  feed_at(&f, r, 0, 100); /* fills the first gap */
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 400, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 1);
  CU_ASSERT(s.opts.sack[0].left == r + 500 && s.opts.sack[0].right == r + 600);
  CU_ASSERT(f.n_recv == 1);
  feed_at(&f, r, 400, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 600, &s);
  CU_ASSERT(s.opts.nsack == 0);
  uint8_t buf[1000];
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 600);
  CU_ASSERT(memcmp(buf, data, 600) == 0);
  expect_nothing(&f);
  tfx_teardown(&f);
}

/* After a gap fills, the most recently received of the remaining blocks is still first. */
static void test_sack_order_after_gap_fill(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, true, false);
  uint32_t r = f.pseq;
  tseg s;
  feed_at(&f, r, 500, 100);
  feed_at(&f, r, 200, 100);
  feed_at(&f, r, 800, 100);
  tfx_drain(&f);
  feed_at(&f, r, 0, 200);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 300, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 2);
  CU_ASSERT(s.opts.sack[0].left == r + 800 && s.opts.sack[0].right == r + 900);
  CU_ASSERT(s.opts.sack[1].left == r + 500 && s.opts.sack[1].right == r + 600);
  tfx_teardown(&f);
}

/* RFC 2018 section 4: the block holding the segment that triggered the ACK first, then the
 * others in the order they were last reported, so a sender that only sees three blocks (with
 * timestamps) still learns of the newest holes. */
static void test_sack_most_recent_first(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, true, true);
  uint32_t r = f.pseq;
  tseg s;
  for (uint32_t i = 1; i <= 4; i++) {
    feed_at(&f, r, i * 200, 100);
  }
  tfx_drain(&f);
  feed_at(&f, r, 1000, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 3);
  CU_ASSERT(s.opts.sack[0].left == r + 1000 && s.opts.sack[0].right == r + 1100);
  CU_ASSERT(s.opts.sack[1].left == r + 800 && s.opts.sack[1].right == r + 900);
  CU_ASSERT(s.opts.sack[2].left == r + 600 && s.opts.sack[2].right == r + 700);
  /* A segment that extends an old block moves it to the front; the rest keep their order. */
  feed_at(&f, r, 300, 50);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 3);
  CU_ASSERT(s.opts.sack[0].left == r + 200 && s.opts.sack[0].right == r + 350);
  CU_ASSERT(s.opts.sack[1].left == r + 1000);
  CU_ASSERT(s.opts.sack[2].left == r + 800);
  /* Filling the first gap keeps the order of what is still held. */
  feed_at(&f, r, 0, 200);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 350, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 3);
  CU_ASSERT(s.opts.sack[0].left == r + 1000 && s.opts.sack[1].left == r + 800 &&
            s.opts.sack[2].left == r + 600);
  tfx_teardown(&f);
}

/* RFC 2883: a duplicate segment is reported in a D-SACK block first in the next ACK (once);
 * one inside a held block has that block second. */
static void test_dsack(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, true, true);
  uint32_t r = f.pseq;
  tseg s;
  feed_at(&f, r, 0, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 100, &s);
  CU_ASSERT(s.opts.nsack == 0);
  /* Entirely below rcv.nxt. */
  feed_at(&f, r, 0, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 100, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 1);
  CU_ASSERT(s.opts.sack[0].left == r && s.opts.sack[0].right == r + 100);
  /* Partly old: only the old part is a duplicate. */
  feed_at(&f, r, 50, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 150, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 1);
  CU_ASSERT(s.opts.sack[0].left == r + 50 && s.opts.sack[0].right == r + 100);
  /* Inside held out-of-order data: D-SACK, then the block holding it, then the others. */
  feed_at(&f, r, 300, 100);
  feed_at(&f, r, 600, 100);
  tfx_drain(&f);
  feed_at(&f, r, 320, 50);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 150, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 3);
  CU_ASSERT(s.opts.sack[0].left == r + 320 && s.opts.sack[0].right == r + 370);
  CU_ASSERT(s.opts.sack[1].left == r + 300 && s.opts.sack[1].right == r + 400);
  CU_ASSERT(s.opts.sack[2].left == r + 600 && s.opts.sack[2].right == r + 700);
  /* Reported once: the next ACK has only the held blocks. */
  feed_at(&f, r, 800, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 150, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 3);
  CU_ASSERT(s.opts.sack[0].left == r + 800 && s.opts.sack[1].left == r + 300 &&
            s.opts.sack[2].left == r + 600);
  /* Without SACK negotiated there is no D-SACK. */
  tfx_teardown(&f);
  tfx_setup(&f, NULL);
  established(&f, -1, false, true);
  r = f.pseq;
  feed_at(&f, r, 0, 100);
  feed_at(&f, r, 0, 100);
  tfx_drain(&f);
  feed_at(&f, r, 100, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 200, &s);
  CU_ASSERT(s.opts.nsack == 0);
  tfx_teardown(&f);
}

/* Four blocks fit without timestamps, three with them. */
static void test_sack_block_limit(void) {
  for (int ts = 0; ts < 2; ts++) {
    tfx f;
    tfx_setup(&f, NULL);
    established(&f, -1, true, ts);
    uint32_t r = f.pseq;
    for (uint32_t i = 1; i <= 5; i++) {
      feed_at(&f, r, i * 200, 100);
    }
    tfx_drain(&f);
    tseg s;
    feed_at(&f, r, 1200, 100);
    expect_segment(&f, T2S_TCP_ACK, f.pack, r, &s);
    CU_ASSERT(s.opts.nsack == (ts ? 3 : 4));
    CU_ASSERT(s.opts.sack[0].left == r + 1200);
    tfx_teardown(&f);
  }
}

/* An out-of-order FIN takes effect when the data before it arrives. */
static void test_ooo_fin(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, true, false);
  uint32_t r = f.pseq;
  feed_segment(&f, T2S_TCP_ACK | T2S_TCP_FIN, r + 100, f.pack, f.pwnd, NULL, data + 100, 100);
  tseg s;
  expect_segment(&f, T2S_TCP_ACK, f.pack, r, &s);
  CU_ASSERT(s.opts.nsack == 1);
  CU_ASSERT(f.n_fin == 0 && t2s_tcp_conn_state(f.c) == T2S_TCP_ESTABLISHED);
  feed_at(&f, r, 0, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 201, &s);
  CU_ASSERT(f.n_fin == 1 && f.n_recv == 1);
  CU_ASSERT(t2s_tcp_conn_state(f.c) == T2S_TCP_CLOSE_WAIT);
  uint8_t buf[300];
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 200);
  CU_ASSERT(memcmp(buf, data, 200) == 0);
  expect_nothing(&f);
  tfx_teardown(&f);
}

/* An out-of-order FIN at sequence number 0 (the peer's stream ends exactly at the wrap). */
static void test_ooo_fin_at_zero(void) {
  tfx f;
  tfx_setup(&f, NULL);
  f.pseq = 0xffffff37u;
  established(&f, -1, true, false);
  uint32_t r = f.pseq;
  CU_ASSERT(r + 200 == 0);
  feed_segment(&f, T2S_TCP_ACK | T2S_TCP_FIN, r + 100, f.pack, f.pwnd, NULL, data + 100, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r, NULL);
  feed_at(&f, r, 0, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, 1, NULL);
  CU_ASSERT(f.n_fin == 1 && t2s_tcp_conn_state(f.c) == T2S_TCP_CLOSE_WAIT);
  tfx_teardown(&f);
}

/* While we hold out-of-order data every segment carries SACK blocks: a full-sized one leaves
 * room for them and stays within the MTU. */
static void test_sack_blocks_within_mtu(void) {
  for (int ts = 0; ts < 2; ts++) {
    tfx f;
    tfx_setup(&f, NULL);
    t2s_tcp_opts o = tfx_opts(1460, -1, true, ts);
    tcb_in_established(&f, &o, NULL);
    uint32_t r = f.pseq;
    for (uint32_t i = 1; i <= 5; i++) {
      feed_at(&f, r, i * 200, 100);
    }
    tfx_drain(&f);
    CU_ASSERT(t2s_tcp_send(f.c, data, 3000, f.now) == 3000);
    tseg s;
    expect_segment(&f, T2S_TCP_ACK, f.pack, r, &s);
    size_t optlen = (s.opts.has_ts ? 12 : 0) + ((2 + 8 * (size_t)s.opts.nsack + 3) & ~(size_t)3);
    CU_ASSERT(s.opts.nsack == (ts ? 3 : 4));
    CU_ASSERT(20 + 20 + optlen + s.len <= 1500);
    CU_ASSERT(s.len == 1500 - 40 - optlen);
    tfx_teardown(&f);
  }
}

/* The first TCP_QUICKACKS (16) segments of a connection: each ACKed at once (quick-ack, so
 * the peer's slow start is not held back by delayed ACKs), every one delivered and read. */
static void quickacks_used_up(tfx *f) {
  uint8_t buf[1000];
  for (int i = 0; i < TCP_QUICKACKS; i++) {
    feed_data(f, data + i, 1000);
    expect_segment(f, T2S_TCP_ACK, f->pack, f->pseq, NULL);
    CU_ASSERT(tfx_read(f, buf, sizeof(buf)) == 1000);
  }
  expect_nothing(f);
}

/* Quick-ack, then a lone segment's ACK waits TCP_DELACK_TIMEOUT (40 ms), and a second
 * full-sized segment is ACKed at once (RFC 1122 4.2.3.2, RFC 5681 4.2). */
static void test_delayed_ack_timing(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, 7, true, true);
  CU_ASSERT(TCP_DELACK_TIMEOUT == 40 * T2S_MILLISECONDS);
  quickacks_used_up(&f);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  uint8_t buf[2000];
  /* A lone full-sized segment: read at once (no window update for it), ACKed 40 ms later. */
  feed_data(&f, data, 1000);
  CU_ASSERT(f.n_recv == TCP_QUICKACKS + 1);
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 1000);
  expect_nothing(&f);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == f.now + 40 * T2S_MILLISECONDS);
  tick(&f, 39 * T2S_MILLISECONDS);
  expect_nothing(&f);
  tick(&f, T2S_MILLISECONDS);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  /* Two full-sized segments: the second is ACKed at once and the timer is off. */
  feed_data(&f, data, 1000);
  expect_nothing(&f);
  tick(&f, 10 * T2S_MILLISECONDS);
  feed_data(&f, data + 1000, 1000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 2000);
  /* Small segments: ACKed once two full-sized segments' worth arrived, or by the timer. */
  for (int i = 0; i < 19; i++) {
    feed_data(&f, data, 100);
    expect_nothing(&f);
  }
  feed_data(&f, data, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  /* Data we send carries the owed ACK: the delayed ACK is not sent on its own. */
  feed_data(&f, data, 300);
  expect_nothing(&f);
  CU_ASSERT(t2s_tcp_send(f.c, data, 10, f.now) == 10);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  f.pack += 10;
  tick(&f, 40 * T2S_MILLISECONDS);
  expect_nothing(&f);
  tfx_teardown(&f);
}

/* Out-of-order data, the segment that fills the hole and a duplicate are ACKed at once even
 * after quick-ack ended (RFC 5681 4.2, RFC 9293 3.8.6.3). */
static void test_immediate_ack_ooo_and_hole(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, 7, true, true);
  quickacks_used_up(&f);
  uint32_t r = f.pseq;
  feed_at(&f, r, 1000, 1000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r, NULL);
  feed_at(&f, r, 0, 1000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 2000, NULL);
  f.pseq = r + 2000;
  feed_at(&f, r, 1000, 1000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 2000, NULL);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  tfx_teardown(&f);
}

/* Quick-ack at the start of each connection: exactly the first TCP_QUICKACKS data segments
 * get an ACK of their own, then the ACK policy delays. */
static void test_quickack_first_segments(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, 7, true, true);
  for (int i = 0; i < TCP_QUICKACKS + 4; i++) {
    feed_data(&f, data, 100);
  }
  CU_ASSERT(tfx_drain(&f) == TCP_QUICKACKS);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == f.now + TCP_DELACK_TIMEOUT);
  tfx_teardown(&f);
}

/* Quick-ack again after an idle period longer than the RTO (Linux's tcp_event_data_recv): the
 * peer restarts from a small window (RFC 5681 4.1) and must not wait for delayed ACKs. A pause
 * shorter than the RTO keeps the delayed-ACK policy. */
static void test_quickack_after_idle(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, 7, true, true);
  quickacks_used_up(&f);
  uint8_t buf[1000];
  t2s_tstamp rto = f.c->rto;
  CU_ASSERT_FATAL(rto > 2 * TCP_DELACK_TIMEOUT);
  /* Idle for less than the RTO: a lone segment's ACK is delayed. */
  tick(&f, rto - TCP_DELACK_TIMEOUT);
  feed_data(&f, data, 1000);
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 1000);
  expect_nothing(&f);
  tick(&f, TCP_DELACK_TIMEOUT);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  /* Idle for longer than the RTO: the next TCP_QUICKACKS segments are ACKed at once. */
  tick(&f, rto + T2S_MILLISECONDS);
  quickacks_used_up(&f);
  feed_data(&f, data, 1000);
  expect_nothing(&f);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == f.now + TCP_DELACK_TIMEOUT);
  tfx_teardown(&f);
}

/* After loss (a segment filling a hole) or a duplicate, the next TCP_QUICKACKS segments are
 * ACKed at once again (RFC 5681 4.2's immediate ACKs, Linux's quick-ack on both): the sender's
 * recovery and the slow start after it are not paced by the delayed ACK. */
static void test_quickack_after_hole_and_duplicate(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, 7, true, true);
  quickacks_used_up(&f);
  uint8_t buf[2000];
  /* a segment beyond a hole: a duplicate ACK at once */
  uint32_t hole = f.pseq;
  feed_segment(&f, T2S_TCP_ACK | T2S_TCP_PSH, hole + 1000, f.pack, f.pwnd, NULL, data, 1000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, hole, NULL);
  /* the hole filled: ACK at once */
  feed_data(&f, data, 1000);
  f.pseq += 1000;
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 2000);
  /* the next lone segment too (without quick-ack again it would wait TCP_DELACK_TIMEOUT) */
  feed_data(&f, data, 1000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 1000);
  for (int i = 0; i < TCP_QUICKACKS; i++) { /* the rest of the quick-acks */
    feed_data(&f, data, 1000);
    CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 1000);
  }
  tick(&f, TCP_DELACK_TIMEOUT);
  tfx_drain(&f);
  feed_data(&f, data, 1000); /* then delayed again */
  expect_nothing(&f);
  tick(&f, TCP_DELACK_TIMEOUT);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 1000);
  /* a retransmission overlapping what was received (half duplicate): ACK at once, and
   * quick-ack again */
  feed_segment(&f, T2S_TCP_ACK | T2S_TCP_PSH, f.pseq - 500, f.pack, f.pwnd, NULL, data, 1000);
  f.pseq += 500;
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 500);
  feed_data(&f, data, 1000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  tfx_teardown(&f);
}

/* A retransmission wholly below RCV.NXT (not acceptable: only its ACK, with a D-SACK block)
 * also re-enters quick-ack, as Linux's tcp_send_dupack does: the peer retransmitted because our
 * ACK was lost or its timer fired, so its window is small; the next TCP_QUICKACKS segments are
 * ACKed at once instead of after TCP_DELACK_TIMEOUT. */
static void test_quickack_after_old_duplicate(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, 7, true, true);
  quickacks_used_up(&f);
  uint8_t buf[1000];
  tseg s;
  feed_segment(&f, T2S_TCP_ACK | T2S_TCP_PSH, f.pseq - 2000, f.pack, f.pwnd, NULL, data, 1000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s);
  CU_ASSERT_FATAL(s.opts.nsack >= 1); /* D-SACK (RFC 2883) */
  CU_ASSERT(s.opts.sack[0].left == f.pseq - 2000 && s.opts.sack[0].right == f.pseq - 1000);
  CU_ASSERT(f.n_recv == TCP_QUICKACKS);
  for (int i = 0; i < TCP_QUICKACKS; i++) { /* each ACKed at once, not after 40 ms */
    feed_data(&f, data, 1000);
    expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
    CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 1000);
  }
  feed_data(&f, data, 1000); /* then delayed again */
  expect_nothing(&f);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == f.now + TCP_DELACK_TIMEOUT);
  tfx_teardown(&f);
}

/* Five 1000-byte segments in flight; the first is lost. */
static uint32_t five_in_flight(tfx *f) {
  uint32_t una = f->pack;
  CU_ASSERT_FATAL(t2s_tcp_send(f->c, data, 5000, f->now) == 5000);
  for (uint32_t i = 0; i < 5; i++) {
    expect_segment(f, T2S_TCP_ACK, una + i * 1000, f->pseq, NULL);
  }
  expect_nothing(f);
  return una;
}

static void test_fast_retransmit_newreno(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, false, false);
  uint32_t una = five_in_flight(&f);
  tick(&f, 20 * T2S_MILLISECONDS);
  feed_ack(&f, una);
  feed_ack(&f, una);
  expect_nothing(&f);
  feed_ack(&f, una); /* third duplicate */
  tseg s;
  expect_segment(&f, T2S_TCP_ACK, una, f.pseq, &s);
  CU_ASSERT(s.len == 1000 && memcmp(s.payload, data, 1000) == 0);
  expect_nothing(&f);
  CU_ASSERT(f.c->in_recovery);
  CU_ASSERT(f.c->ssthresh == 2500);
  /* A partial ACK: the next hole is retransmitted at once (RFC 6582). */
  feed_ack(&f, una + 2000);
  expect_segment(&f, T2S_TCP_ACK, una + 2000, f.pseq, &s);
  CU_ASSERT(s.len == 1000 && memcmp(s.payload, data + 2000, 1000) == 0);
  expect_nothing(&f);
  feed_ack(&f, una + 5000); /* full ACK ends recovery */
  CU_ASSERT(!f.c->in_recovery && f.c->cwnd == f.c->ssthresh);
  CU_ASSERT(t2s_tcp_send_queued(f.c) == 0);
  expect_nothing(&f);
  t2s_tcp_stats st;
  t2s_tcp_get_stats(f.st, &st);
  CU_ASSERT(st.retransmits == 2);
  /* Nothing in flight: no timer left. */
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  tfx_teardown(&f);
}

static t2s_drop_reason feed_sack(tfx *f, uint32_t ack, uint32_t l1, uint32_t r1, uint32_t l2,
                                 uint32_t r2) {
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  o.nsack = l2 == r2 ? 1 : 2;
  o.sack[0].left = l1;
  o.sack[0].right = r1;
  o.sack[1].left = l2;
  o.sack[1].right = r2;
  return feed_segment(f, T2S_TCP_ACK, f->pseq, ack, f->pwnd, &o, NULL, 0);
}

/* With SACK: segments 0 and 2 lost; the retransmissions fill exactly the holes. */
static void test_fast_retransmit_sack(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, true, false);
  uint32_t u = five_in_flight(&f);
  tick(&f, 15 * T2S_MILLISECONDS); /* within the tail loss probe's 2 SRTT */
  feed_sack(&f, u, u + 1000, u + 2000, 0, 0);
  feed_sack(&f, u, u + 3000, u + 4000, u + 1000, u + 2000);
  expect_nothing(&f);
  feed_sack(&f, u, u + 3000, u + 5000, u + 1000, u + 2000);
  tseg s;
  expect_segment(&f, T2S_TCP_ACK, u, f.pseq, &s);
  CU_ASSERT(s.len == 1000);
  /* The pipe (RFC 6675: 3000 SACKed, the holes out) leaves room for the next hole at once,
   * skipping the SACKed segment 1. */
  expect_segment(&f, T2S_TCP_ACK, u + 2000, f.pseq, &s);
  CU_ASSERT(s.len == 1000 && memcmp(s.payload, data + 2000, 1000) == 0);
  expect_nothing(&f);
  feed_sack(&f, u, u + 3000, u + 5000, u + 1000, u + 2000);
  expect_nothing(&f); /* no hole left below the highest SACKed byte */
  feed_ack(&f, u + 5000);
  CU_ASSERT(!f.c->in_recovery && f.c->nsacked == 0);
  CU_ASSERT(t2s_tcp_send_queued(f.c) == 0);
  expect_nothing(&f);
  tfx_teardown(&f);
}

/* The peer advertises 0: persist probes with backoff; the window reopens and data flows. */
static void test_zero_window_peer(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, false, false);
  f.pwnd = 0;
  feed_ack(&f, f.pack);
  CU_ASSERT(f.c->snd.wnd == 0);
  CU_ASSERT(t2s_tcp_send(f.c, data, 3000, f.now) == 3000);
  expect_nothing(&f);
  t2s_tstamp t0 = f.now;
  t2s_tstamp due = t2s_tcp_get_expiry(f.st);
  CU_ASSERT(due == t0 + 200 * T2S_MILLISECONDS);
  t2s_tstamp gap = due - t0;
  for (int i = 0; i < 4; i++) {
    t2s_tstamp before = f.now;
    run_to_expiry(&f);
    CU_ASSERT(f.now - before == gap);
    expect_segment(&f, T2S_TCP_ACK, f.pack - 1, f.pseq, NULL); /* probe: elicits an ACK */
    feed_ack(&f, f.pack);                                      /* still zero */
    expect_nothing(&f);
    gap *= 2;
  }
  CU_ASSERT(f.n_closed == 0); /* a persisting sender never gives up on its own */
  f.pwnd = 2000;
  feed_ack(&f, f.pack);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  expect_segment(&f, T2S_TCP_ACK, f.pack + 1000, f.pseq, NULL);
  expect_nothing(&f);
  CU_ASSERT(f.c->persist_at == T2S_TSTAMP_MAX);
  feed_ack(&f, f.pack + 2000);
  tseg s;
  expect_segment(&f, T2S_TCP_ACK, f.pack + 2000, f.pseq, &s);
  CU_ASSERT(s.len == 1000 && memcmp(s.payload, data + 2000, 1000) == 0);
  tfx_teardown(&f);
}

/* Our receive buffer fills: we advertise 0, drop what does not fit, and send a window update
 * once the owner has consumed enough (receiver SWS avoidance). */
static void test_zero_window_ours(void) {
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.rcvbuf = 4096;
  tfx f;
  tfx_setup(&f, &cfg);
  established(&f, 7, false, false);
  CU_ASSERT(f.c->rcv.wscale == 0);
  tseg s;
  for (int i = 0; i < 4; i++) {
    feed_data(&f, data + i * 1000, 1000);
    expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s);
    CU_ASSERT(s.wnd == 4096 - (i + 1) * 1000);
  }
  feed_data(&f, data + 4000, 96);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s);
  CU_ASSERT(s.wnd == 0);
  /* Data beyond the window: dropped, acknowledged with the zero window. */
  CU_ASSERT(feed_segment(&f, T2S_TCP_ACK, f.pseq, f.pack, f.pwnd, NULL, data, 100) ==
            T2S_DROP_TCP_RCVBUF_FULL);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s);
  CU_ASSERT(s.wnd == 0);
  /* A peer's zero-window probe (one byte below rcv.nxt) gets the same ACK. */
  feed_segment(&f, T2S_TCP_ACK, f.pseq - 1, f.pack, f.pwnd, NULL, NULL, 0);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s);
  CU_ASSERT(s.wnd == 0);
  /* Consuming a little is not worth an update; a quarter of the buffer is. */
  uint8_t buf[4096];
  CU_ASSERT(tfx_read(&f, buf, 100) == 100);
  expect_nothing(&f);
  CU_ASSERT(tfx_read(&f, buf + 100, 1000) == 1000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s);
  CU_ASSERT(s.wnd == 1100);
  CU_ASSERT(tfx_read(&f, buf + 1100, sizeof(buf) - 1100) == 2996);
  CU_ASSERT(memcmp(buf, data, 4096) == 0);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s);
  CU_ASSERT(s.wnd == 4096);
  feed_data(&f, data, 1000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s);
  CU_ASSERT(s.wnd == 3096);
  tfx_teardown(&f);
}

/* A full send buffer: t2s_tcp_send takes what fits, on_sendable follows the ACK. */
static void test_send_buffer_backpressure(void) {
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.sndbuf = 4096;
  tfx f;
  tfx_setup(&f, &cfg);
  established(&f, -1, false, false);
  CU_ASSERT(t2s_tcp_send(f.c, data, 5000, f.now) == 4096);
  CU_ASSERT(t2s_tcp_send_space(f.c) == 0);
  CU_ASSERT(t2s_tcp_send(f.c, data, 10, f.now) == 0);
  CU_ASSERT(t2s_tcp_send_queued(f.c) == 4096);
  CU_ASSERT(tfx_drain(&f) == 5);
  CU_ASSERT(f.n_sendable == 0);
  feed_ack(&f, f.pack + 1000);
  CU_ASSERT(f.n_sendable == 1);
  CU_ASSERT(t2s_tcp_send_space(f.c) == 1000);
  feed_ack(&f, f.pack + 2000);
  CU_ASSERT(f.n_sendable == 1); /* once per full buffer */
  expect_nothing(&f);
  tfx_teardown(&f);
}

/* PAWS (RFC 7323 5.3): a segment with an older timestamp is dropped and acknowledged. */
static void test_paws(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, false, true);
  f.ptsval = 6000;
  feed_data(&f, data, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(f.c->ts_recent == 6000);
  f.ptsval = 5999; /* older */
  CU_ASSERT(feed_segment(&f, T2S_TCP_ACK, f.pseq, f.pack, f.pwnd, NULL, data + 100, 100) ==
            T2S_DROP_TCP_PAWS);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(f.n_recv == 1 && f.c->rbuf_ready == 100);
  f.ptsval = 6001;
  feed_data(&f, data + 100, 100);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(f.c->rbuf_ready == 200);
  /* Timestamps compare in sequence arithmetic: 6001 + 2^31 - 1 is newer than 6001. */
  f.ptsval = 6001 + 0x7fffffffu;
  CU_ASSERT(feed_data(&f, data + 200, 10) == T2S_DROP_NONE);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  f.ptsval = 6001; /* now older than TS.Recent */
  CU_ASSERT(feed_data(&f, data + 210, 10) == T2S_DROP_TCP_PAWS);
  f.pseq -= 10;
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  CU_ASSERT(f.c->rbuf_ready == 210);
  /* A RST is not subject to PAWS (RFC 7323 5.3 R1). */
  feed_segment(&f, T2S_TCP_RST, f.pseq, 0, 0, NULL, NULL, 0);
  expect_nothing(&f);
  CU_ASSERT(f.n_closed == 1 && f.closed_err == T2S_ERR_RESET);
  tfx_teardown(&f);
}

/* RFC 5961 section 5.2: a segment whose ACK lies outside [SND.UNA - MAX.SND.WND, SND.NXT] is
 * dropped with an ACK before it touches TS.Recent or anything else; a blind in-window segment
 * acknowledging data never sent can no longer make PAWS drop every later segment. */
static void test_bad_ack_before_timestamps(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, false, true);
  CU_ASSERT_FATAL(t2s_tcp_send(f.c, data, 500, f.now) == 500);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  uint32_t una = f.pack, max = f.pack + 500;
  f.ptsval = 6000;
  feed_data(&f, data, 100);
  expect_segment(&f, T2S_TCP_ACK, max, f.pseq, NULL);
  CU_ASSERT_FATAL(f.c->ts_recent == 6000);
  /* Acknowledges data never sent, with a timestamp far ahead. */
  f.ptsval = 900000;
  CU_ASSERT(feed_segment(&f, T2S_TCP_ACK, f.pseq, max + 1000, f.pwnd, NULL, data + 100, 100) ==
            T2S_DROP_TCP_OUT_OF_WINDOW);
  expect_segment(&f, T2S_TCP_ACK, max, f.pseq, NULL);
  CU_ASSERT(f.c->ts_recent == 6000);
  CU_ASSERT(f.c->snd.una == una && f.c->rbuf_ready == 100 && f.n_recv == 1);
  /* Too old: more than the largest window the peer ever advertised (65535) below SND.UNA. */
  CU_ASSERT(feed_segment(&f, T2S_TCP_ACK, f.pseq, una - 70000, f.pwnd, NULL, data + 100, 100) ==
            T2S_DROP_TCP_OUT_OF_WINDOW);
  expect_segment(&f, T2S_TCP_ACK, max, f.pseq, NULL);
  CU_ASSERT(f.c->ts_recent == 6000 && f.c->rbuf_ready == 100);
  /* The legitimate next segment is not dropped by PAWS; an old but acceptable ACK is fine. */
  f.ptsval = 6001;
  CU_ASSERT(feed_segment(&f, T2S_TCP_ACK, f.pseq, una - 1000, f.pwnd, NULL, data + 100, 100) ==
            T2S_DROP_NONE);
  f.pseq += 100;
  expect_segment(&f, T2S_TCP_ACK, max, f.pseq, NULL);
  CU_ASSERT(f.c->ts_recent == 6001 && f.c->rbuf_ready == 200 && f.n_recv == 2);
  CU_ASSERT(feed_ack(&f, max) == T2S_DROP_NONE);
  CU_ASSERT(f.c->snd.una == max);
  tfx_teardown(&f);
}

/* The peer's ISN just below 2^32: data and SACK blocks cross the wrap. */
static void test_wrap_receive(void) {
  tfx f;
  tfx_setup(&f, NULL);
  f.pseq = 0xfffffdffu;
  established(&f, -1, true, false);
  uint32_t r = f.pseq;
  CU_ASSERT(r == 0xfffffe00u);
  tseg s;
  feed_at(&f, r, 1000, 1000); /* [0x3e9 wrapped...] beyond the wrap, out of order */
  expect_segment(&f, T2S_TCP_ACK, f.pack, r, &s);
  CU_ASSERT_FATAL(s.opts.nsack == 1);
  CU_ASSERT(s.opts.sack[0].left == r + 1000 && s.opts.sack[0].right == r + 2000);
  CU_ASSERT(s.opts.sack[0].left < 0x1000); /* wrapped */
  feed_at(&f, r, 0, 1000);                 /* crosses 2^32 */
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 2000, &s);
  CU_ASSERT(s.opts.nsack == 0);
  uint8_t buf[3000];
  CU_ASSERT(tfx_read(&f, buf, sizeof(buf)) == 2000);
  CU_ASSERT(memcmp(buf, data, 2000) == 0);
  f.pseq = r + 2000;
  feed_fin(&f);
  expect_segment(&f, T2S_TCP_ACK, f.pack, r + 2001, NULL);
  CU_ASSERT(t2s_tcp_conn_state(f.c) == T2S_TCP_CLOSE_WAIT);
  tfx_teardown(&f);
}

/* Our ISN just below 2^32: segments, ACKs, fast retransmit and FIN across the wrap. */
static void test_wrap_send(void) {
  tfx f;
  tfx_setup(&f, NULL);
  t2s_tcp_opts o = tfx_opts(1000, -1, true, false);
  tfx_clock_for_isn(&f, 0xfffff000u);
  tcb_in_syn_pending(&f, &o);
  tseg s;
  CU_ASSERT(t2s_tcp_accept(f.c, f.now) == 0);
  expect_segment(&f, T2S_TCP_SYN | T2S_TCP_ACK, 0xfffff000u, f.pseq, &s);
  f.pack = 0xfffff001u;
  feed_ack(&f, f.pack);
  CU_ASSERT_FATAL(t2s_tcp_conn_state(f.c) == T2S_TCP_ESTABLISHED);
  uint32_t u = five_in_flight(&f); /* 0xfffff001 .. 0x00000389 */
  CU_ASSERT(u + 5000 == 0x389u);
  feed_ack(&f, u + 1000);
  feed_sack(&f, u + 1000, u + 2000, u + 5000, 0, 0);
  feed_sack(&f, u + 1000, u + 2000, u + 5000, 0, 0);
  feed_sack(&f, u + 1000, u + 2000, u + 5000, 0, 0);
  expect_segment(&f, T2S_TCP_ACK, u + 1000, f.pseq, &s);
  CU_ASSERT(s.len == 1000 && memcmp(s.payload, data + 1000, 1000) == 0);
  expect_nothing(&f);
  feed_ack(&f, u + 5000);
  CU_ASSERT(t2s_tcp_send_queued(f.c) == 0);
  CU_ASSERT(f.c->snd.una == 0x389u);
  CU_ASSERT(t2s_tcp_shutdown(f.c, f.now) == 0);
  expect_segment(&f, T2S_TCP_FIN | T2S_TCP_ACK, 0x389u, f.pseq, NULL);
  feed_ack(&f, 0x38au);
  CU_ASSERT(t2s_tcp_conn_state(f.c) == T2S_TCP_FIN_WAIT_2);
  tfx_teardown(&f);
}

int t2s_test_register_tcp_data(void) {
  for (size_t i = 0; i < sizeof(data); i++) {
    data[i] = (uint8_t)(i * 131 + (i >> 8));
  }
  CU_pSuite s = CU_add_suite("tcp_data", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "in-order data, duplicates, overlap", test_in_order_data) ||
      !CU_add_test(s, "OOO: SACK blocks, merge, cumulative jump", test_ooo_sack_blocks) ||
      !CU_add_test(s, "SACK order after a gap fills", test_sack_order_after_gap_fill) ||
      !CU_add_test(s, "SACK: 4 blocks, 3 with timestamps", test_sack_block_limit) ||
      !CU_add_test(s, "SACK: most recent block first (RFC 2018 4)", test_sack_most_recent_first) ||
      !CU_add_test(s, "D-SACK for duplicates (RFC 2883)", test_dsack) ||
      !CU_add_test(s, "delayed ACK: 40 ms, every second full segment", test_delayed_ack_timing) ||
      !CU_add_test(s, "immediate ACK: out-of-order, hole filled, duplicate",
                   test_immediate_ack_ooo_and_hole) ||
      !CU_add_test(s, "quick-ack for the first 16 segments", test_quickack_first_segments) ||
      !CU_add_test(s, "quick-ack again after idle > RTO", test_quickack_after_idle) ||
      !CU_add_test(s, "quick-ack again after a hole or a duplicate",
                   test_quickack_after_hole_and_duplicate) ||
      !CU_add_test(s, "quick-ack again after a segment wholly below rcv.nxt",
                   test_quickack_after_old_duplicate) ||
      !CU_add_test(s, "OOO FIN", test_ooo_fin) ||
      !CU_add_test(s, "OOO FIN at sequence 0", test_ooo_fin_at_zero) ||
      !CU_add_test(s, "SACK blocks fit in the MTU", test_sack_blocks_within_mtu) ||
      !CU_add_test(s, "fast retransmit: 3 dupacks, NewReno", test_fast_retransmit_newreno) ||
      !CU_add_test(s, "fast retransmit with SACK holes", test_fast_retransmit_sack) ||
      !CU_add_test(s, "zero window from the peer: persist", test_zero_window_peer) ||
      !CU_add_test(s, "zero window ours: update on consume", test_zero_window_ours) ||
      !CU_add_test(s, "send buffer backpressure", test_send_buffer_backpressure) ||
      !CU_add_test(s, "PAWS", test_paws) ||
      !CU_add_test(s, "RFC 5961 5.2: bad ACK dropped before TS.Recent",
                   test_bad_ack_before_timestamps) ||
      !CU_add_test(s, "wrap: peer ISN near 2^32", test_wrap_receive) ||
      !CU_add_test(s, "wrap: our ISN near 2^32", test_wrap_send)) {
    return -1;
  }
  return 0;
}
