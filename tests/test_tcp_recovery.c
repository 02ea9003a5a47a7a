/* test_tcp_recovery.c: the TCP stack under loss (issue 13, docs/tcp-recovery.md): windows that
 * keep both directions moving when the owner reads slowly, limited transmit (RFC 3042), SACK
 * recovery that keeps the scoreboard across a retransmission timeout (RFC 6675), and the tail
 * loss probe (RFC 8985). */
#include <string.h>

#include "tcp_fixture.h"

static uint8_t data[262144];

/* Established with the peer's MSS 1000, no options besides those in (ws, sack, ts). */
static void established(tfx *f, int ws, bool sack, bool ts) {
  t2s_tcp_opts o = tfx_opts(1000, ws, sack, ts);
  tcb_in_established(f, &o, NULL);
}

/* A scaled window is rounded down: filling exactly what each ACK advertises, with the owner not
 * reading, never meets a segment dropped for want of room. Rounded up, every ACK promised up
 * to 1 << wscale - 1 bytes more than the buffer held, the promises added up (the window never
 * shrinks), and the peer's in-window data was dropped as rcvbuf_full for as long as the owner
 * did not read: an echo through the engine stalled on retransmission timeouts (issue 13). */
static void test_scaled_window_within_buffer(void) {
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.rcvbuf = 131072; /* wscale 2 */
  tfx f;
  tfx_setup(&f, &cfg);
  established(&f, 7, false, false);
  CU_ASSERT_FATAL(f.c->rcv.wscale == 2);
  uint32_t edge = f.pseq + 65535; /* the SYN-ACK's window (never scaled) */
  uint32_t taken = 0;
  for (int i = 0; i < 400; i++) {
    uint32_t room = edge - f.pseq;
    if (room == 0) {
      break;
    }
    uint32_t len = T2S_MIN(room, 1001u); /* odd sizes leave the window off the scale's grid */
    CU_ASSERT_EQUAL_FATAL(feed_data(&f, data + taken, len), T2S_DROP_NONE);
    taken += len;
    tseg s;
    tfx_drain(&f); /* no delayed ACK assumed: find the last ACK sent */
    CU_ASSERT(t2s_seq_leq(f.c->rcv.adv, f.c->rcv.nxt + (cfg.rcvbuf - f.c->rbuf_ready)));
    feed_segment(&f, T2S_TCP_ACK, f.pseq - 1, f.pack, f.pwnd, NULL, NULL, 0); /* elicit an ACK */
    CU_ASSERT_FATAL(expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s));
    edge = t2s_seq_max(edge, s.ack + ((uint32_t)s.wnd << 2));
  }
  CU_ASSERT(edge == f.pseq);         /* the window closed */
  CU_ASSERT(taken <= cfg.rcvbuf);    /* never more than the buffer */
  CU_ASSERT(taken + 4 > cfg.rcvbuf); /* and all of it offered, less than one scale unit */
  tfx_teardown(&f);
}

/* An ACK that advances SND.UNA carries the window to use from there, even when its SEG.SEQ is
 * older than the last window update's (the peer retransmitted its data): the window was kept
 * and applied at the new SND.UNA, data went beyond the peer's right edge, and the pure ACKs that
 * followed, at SND.MAX beyond the peer's shut window, were not acceptable there. An ACK below
 * SND.UNA updates nothing. */
static void test_window_from_acks_that_advance(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, false, false);
  uint32_t p0 = f.pseq;
  /* The peer's first 500 bytes are lost; the next 500 arrive (SND.WL1 = p0 + 500). */
  feed_segment(&f, T2S_TCP_ACK, p0 + 500, f.pack, f.pwnd, NULL, data + 500, 500);
  tfx_drain(&f);
  CU_ASSERT_FATAL(t2s_tcp_send(f.c, data, 3000, f.now) == 3000);
  CU_ASSERT(tfx_drain(&f) == 3);
  /* The peer retransmits its first segment with an ACK of everything and a shut window. */
  CU_ASSERT(feed_segment(&f, T2S_TCP_ACK, p0, f.pack + 3000, 0, NULL, data, 500) == T2S_DROP_NONE);
  f.pseq = p0 + 1000;
  CU_ASSERT(f.c->snd.una == f.pack + 3000);
  CU_ASSERT(f.c->snd.wnd == 0);
  tfx_drain(&f);
  /* An old ACK (below SND.UNA) at a newer SEG.SEQ does not reopen it. */
  feed_segment(&f, T2S_TCP_ACK, f.pseq, f.pack + 1000, 60000, NULL, NULL, 0);
  CU_ASSERT(f.c->snd.wnd == 0);
  tfx_teardown(&f);
}

/* Limited transmit (RFC 3042): with the congestion window full, the first and the second
 * duplicate ACK each send one new segment; the third starts fast retransmit. */
static void test_limited_transmit(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, false, false);
  uint32_t u = f.pack;
  CU_ASSERT_FATAL(f.c->cwnd == 10000); /* IW10 at MSS 1000 */
  CU_ASSERT_FATAL(t2s_tcp_send(f.c, data, 12000, f.now) == 12000);
  CU_ASSERT(tfx_drain(&f) == 10); /* 2000 bytes wait for the window */
  tick(&f, 5 * T2S_MILLISECONDS);
  tseg s;
  feed_ack(&f, u); /* first duplicate */
  CU_ASSERT(expect_segment(&f, T2S_TCP_ACK, u + 10000, f.pseq, &s) && s.len == 1000);
  expect_nothing(&f);
  feed_ack(&f, u); /* second */
  CU_ASSERT(expect_segment(&f, T2S_TCP_ACK, u + 11000, f.pseq, &s) && s.len == 1000);
  CU_ASSERT(memcmp(s.payload, data + 11000, 1000) == 0);
  expect_nothing(&f);
  CU_ASSERT(f.c->cwnd == 10000 && !f.c->in_recovery); /* cwnd itself unchanged */
  feed_ack(&f, u); /* third: fast retransmit of the first segment */
  CU_ASSERT(expect_segment(&f, T2S_TCP_ACK, u, f.pseq, &s) && s.len == 1000);
  CU_ASSERT(f.c->in_recovery);
  tfx_teardown(&f);
}

/* A receiver holding the 1000-byte segments marked in got[]: the ACK and SACK blocks it sends
 * (at most 3, the lowest ranges first, as the test needs no other order). */
static void feed_receiver_ack(tfx *f, uint32_t u, const bool *got, int nseg) {
  int first = 0;
  while (first < nseg && got[first]) {
    first++;
  }
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  for (int i = first; i < nseg && o.nsack < 3;) {
    if (!got[i]) {
      i++;
      continue;
    }
    int j = i;
    while (j < nseg && got[j]) {
      j++;
    }
    o.sack[o.nsack].left = u + (uint32_t)i * 1000;
    o.sack[o.nsack].right = u + (uint32_t)j * 1000;
    o.nsack++;
    i = j;
  }
  feed_segment(f, T2S_TCP_ACK, f->pseq, u + (uint32_t)first * 1000, f->pwnd, &o, NULL, 0);
}

/* After a retransmission timeout the scoreboard is kept: the resend goes from snd.una through
 * the holes and never sends a SACKed range again (RFC 6675 5.1). Ten segments; the peer holds
 * 2-3 and 6-7; the fast retransmissions of the holes are lost too, so the timer fires. */
static void test_rto_resends_only_unsacked(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, true, false);
  uint32_t u = f.pack;
  CU_ASSERT_FATAL(t2s_tcp_send(f.c, data, 10000, f.now) == 10000);
  CU_ASSERT(tfx_drain(&f) == 10);
  tick(&f, 5 * T2S_MILLISECONDS);
  bool got[10] = {false, false, true, true, false, false, true, true, false, false};
  feed_receiver_ack(&f, u, got, 10); /* 4000 bytes SACKed: fast retransmit */
  CU_ASSERT(f.c->in_recovery);
  tfx_drain(&f); /* lost */
  /* Nothing more arrives: the retransmission timer fires. */
  t2s_tstamp rto_at = f.c->rto_at;
  CU_ASSERT_FATAL(rto_at != T2S_TSTAMP_MAX);
  CU_ASSERT(run_to_expiry(&f) == rto_at);
  CU_ASSERT(f.c->nsacked == 2); /* kept */
  unsigned sent[10] = {0};
  for (int round = 0; round < 20; round++) {
    tseg s;
    int n = 0;
    while (tfx_pending(&f) > 0 && expect_segment(&f, T2S_TCP_ACK, ANY, ANY, &s)) {
      if (s.len == 0) {
        continue;
      }
      uint32_t off = s.seq - u;
      CU_ASSERT(off % 1000 == 0 && s.len == 1000 && off < 10000);
      if (off % 1000 != 0 || off >= 10000) {
        break;
      }
      int k = (int)(off / 1000);
      CU_ASSERT(k != 2 && k != 3 && k != 6 && k != 7); /* never a SACKed segment */
      CU_ASSERT(memcmp(s.payload, data + off, 1000) == 0);
      sent[k]++;
      got[k] = true;
      n++;
    }
    if (f.c->snd.una == u + 10000) {
      break;
    }
    CU_ASSERT_FATAL(n > 0);
    tick(&f, 5 * T2S_MILLISECONDS);
    feed_receiver_ack(&f, u, got, 10);
  }
  CU_ASSERT(f.c->snd.una == u + 10000);
  for (int k = 0; k < 10; k++) {
    CU_ASSERT(sent[k] == ((k == 2 || k == 3 || k == 6 || k == 7) ? 0u : 1u));
  }
  tfx_teardown(&f);
}

/* A tail loss is repaired without the retransmission timer: 2 SRTT after the last ACK the
 * probe (RFC 8985 7) sends the last segment again; its SACK shows the hole before it, which a
 * reordering window later is retransmitted (RFC 8985 6.2). All before the RTO would fire. */
static void test_tail_loss_probe(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, true, false);
  uint32_t u = f.pack;
  CU_ASSERT_FATAL(f.c->srtt == 10 * T2S_MILLISECONDS);
  CU_ASSERT_FATAL(t2s_tcp_send(f.c, data, 5000, f.now) == 5000);
  CU_ASSERT(tfx_drain(&f) == 5);
  tick(&f, 10 * T2S_MILLISECONDS);
  feed_ack(&f, u + 3000); /* segments 3 and 4, the tail, are lost */
  expect_nothing(&f);
  t2s_tstamp acked_at = f.now;
  t2s_tstamp rto_at = f.c->rto_at;
  CU_ASSERT_FATAL(rto_at == acked_at + f.c->rto);
  /* The probe: the last segment again, 2 SRTT after the ACK (SRTT is about 10 ms). */
  t2s_tstamp at = run_to_expiry(&f);
  CU_ASSERT(at < rto_at);
  CU_ASSERT(at - acked_at <= 2 * f.c->srtt);
  tseg s;
  CU_ASSERT(expect_segment(&f, T2S_TCP_ACK, u + 4000, f.pseq, &s) && s.len == 1000);
  CU_ASSERT(memcmp(s.payload, data + 4000, 1000) == 0);
  expect_nothing(&f);
  t2s_tcp_stats st;
  t2s_tcp_get_stats(f.st, &st);
  CU_ASSERT(st.tlp_probes == 1);
  /* Its SACK: segment 3 is missing; a reordering window later it goes again. */
  tick(&f, 10 * T2S_MILLISECONDS);
  bool got[5] = {true, true, true, false, true};
  feed_receiver_ack(&f, u, got, 5);
  expect_nothing(&f);
  at = run_to_expiry(&f);
  CU_ASSERT(at < rto_at);
  CU_ASSERT(expect_segment(&f, T2S_TCP_ACK, u + 3000, f.pseq, &s) && s.len == 1000);
  CU_ASSERT(memcmp(s.payload, data + 3000, 1000) == 0);
  expect_nothing(&f);
  tick(&f, 10 * T2S_MILLISECONDS);
  CU_ASSERT(f.now < rto_at);
  feed_ack(&f, u + 5000);
  CU_ASSERT(f.c->snd.una == u + 5000 && t2s_tcp_send_queued(f.c) == 0);
  CU_ASSERT(f.c->retries == 0); /* the retransmission timer never fired */
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  tfx_teardown(&f);
}

/* In a transfer both ways every ACK rides on data: an ACK that SACKs new data counts as a
 * duplicate even with a payload (RFC 6675 2), so the peer's data segments start fast
 * retransmit; before, only pure ACKs did, and such a loss waited for the retransmission timer
 * (or, with SACK, for the reordering window). */
static void test_data_bearing_sack_acks_are_duplicates(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, true, false);
  uint32_t u = f.pack;
  CU_ASSERT_FATAL(t2s_tcp_send(f.c, data, 5000, f.now) == 5000);
  CU_ASSERT(tfx_drain(&f) == 5);
  tick(&f, 5 * T2S_MILLISECONDS);
  /* Segment 0 lost; each of the peer's data segments SACKs one more of ours. */
  for (uint32_t k = 1; k <= 3; k++) {
    t2s_tcp_opts o;
    memset(&o, 0, sizeof(o));
    o.nsack = 1;
    o.sack[0].left = u + 1000;
    o.sack[0].right = u + 1000 + k * 1000;
    CU_ASSERT(feed_segment(&f, T2S_TCP_ACK, f.pseq, u, f.pwnd, &o, data, 100) == T2S_DROP_NONE);
    f.pseq += 100;
    CU_ASSERT(f.c->dupacks == k);
  }
  CU_ASSERT(f.c->in_recovery);
  tseg s;
  bool found = false;
  while (tfx_pending(&f) > 0 && expect_segment(&f, T2S_TCP_ACK, ANY, ANY, &s)) {
    found = found || (s.seq == u && s.len == 1000);
  }
  CU_ASSERT(found); /* the fast retransmission of segment 0 */
  tfx_teardown(&f);
}

/* A lost retransmission is sent again without the RTO: in SACK recovery, data sent after the
 * hole was retransmitted is SACKed more than an RTT and a reordering window later while the
 * hole is still missing (RFC 8985 6.2 on sequence ranges). */
static void test_lost_retransmission_resent(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f, -1, true, false);
  uint32_t u = f.pack;
  CU_ASSERT_FATAL(t2s_tcp_send(f.c, data, 20000, f.now) == 20000);
  CU_ASSERT(tfx_drain(&f) == 10);
  tick(&f, 5 * T2S_MILLISECONDS);
  bool got[20] = {false};
  tseg s;
  for (int k = 1; k <= 9; k++) { /* segment 0 lost; 1..9 SACKed one by one */
    got[k] = true;
    feed_receiver_ack(&f, u, got, 20);
  }
  CU_ASSERT_FATAL(f.c->in_recovery);
  unsigned rtx0 = 0, fresh = 0;
  while (tfx_pending(&f) > 0 && expect_segment(&f, T2S_TCP_ACK, ANY, ANY, &s)) {
    rtx0 += s.seq == u && s.len > 0;
    fresh += t2s_seq_geq(s.seq, u + 12000) && s.len > 0;
  }
  /* The hole once (then lost), and new data after it (10 and 11 went by limited transmit). */
  CU_ASSERT(rtx0 == 1 && fresh >= 1);
  /* An RTT later the SACK of the data sent after the retransmission arrives; segment 0 is
   * still missing. */
  tick(&f, 20 * T2S_MILLISECONDS);
  CU_ASSERT(f.now < f.c->rto_at);
  got[10] = got[11] = got[12] = true;
  feed_receiver_ack(&f, u, got, 20);
  bool again = false;
  while (tfx_pending(&f) > 0 && expect_segment(&f, T2S_TCP_ACK, ANY, ANY, &s)) {
    again = again || (s.seq == u && s.len == 1000);
  }
  CU_ASSERT(again);
  CU_ASSERT(f.c->retries == 0);
  tfx_teardown(&f);
}

int t2s_test_register_tcp_recovery(void) {
  for (size_t i = 0; i < sizeof(data); i++) {
    data[i] = (uint8_t)(i * 131 + (i >> 8));
  }
  CU_pSuite s = CU_add_suite("tcp_recovery", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "scaled window rounded down, within the buffer",
                   test_scaled_window_within_buffer) ||
      !CU_add_test(s, "window update from an ACK that advances SND.UNA",
                   test_window_from_acks_that_advance) ||
      !CU_add_test(s, "limited transmit: new data on the 1st and 2nd dupack (RFC 3042)",
                   test_limited_transmit) ||
      !CU_add_test(s, "after an RTO only un-SACKed ranges are resent (RFC 6675 5.1)",
                   test_rto_resends_only_unsacked) ||
      !CU_add_test(s, "tail loss repaired by a probe before the RTO (RFC 8985)",
                   test_tail_loss_probe) ||
      !CU_add_test(s, "data-bearing ACKs with new SACK info are duplicates (RFC 6675 2)",
                   test_data_bearing_sack_acks_are_duplicates) ||
      !CU_add_test(s, "a lost retransmission is resent before the RTO (RFC 8985 6.2)",
                   test_lost_retransmission_resent)) {
    return -1;
  }
  return 0;
}
