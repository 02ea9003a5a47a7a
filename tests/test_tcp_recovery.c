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

int t2s_test_register_tcp_recovery(void) {
  for (size_t i = 0; i < sizeof(data); i++) {
    data[i] = (uint8_t)(i * 131 + (i >> 8));
  }
  CU_pSuite s = CU_add_suite("tcp_recovery", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "scaled window rounded down, within the buffer",
                   test_scaled_window_within_buffer) ||
      !CU_add_test(s, "window update from an ACK that advances SND.UNA",
                   test_window_from_acks_that_advance)) {
    return -1;
  }
  return 0;
}
