/*
 * tcp_fixture.h: a TCP stack under test and a scripted peer, shared by tests/test_tcp_*.c.
 *
 * The stack's local endpoint is f->local (for passive opens: the SYN's destination), the peer
 * is f->peer. feed_*() build a segment from the peer with t2s_build_tcp, parse it with
 * t2s_pkt_parse and pass it to t2s_tcp_input at f->now. Every packet the stack sends is
 * captured; expect_segment() pops and checks the next one, expect_nothing() checks there is
 * none. The clock only moves when a test calls tick() or run_to_expiry().
 *
 * The fixtures tcb_in_*() build a connection in a state through the public API and leave the
 * peer's view (pseq: the peer's next sequence number, pack: the next sequence number it
 * expects from us) ready for the test.
 */
#ifndef T2S_TCP_FIXTURE_H
#define T2S_TCP_FIXTURE_H

#include "tcp_internal.h"
#include "test_util.h"

#define TFX_QMAX 512
#define ANY (-1) /* expect_segment: any seq / ack */

/* A captured segment, parsed. */
typedef struct tseg {
  uint8_t flags;
  uint32_t seq, ack;
  uint16_t wnd;
  t2s_tcp_opts opts;
  t2s_addr src, dst;
  size_t len; /* payload bytes */
  uint8_t payload[9000];
} tseg;

typedef struct tfx {
  t2s_tcp_config cfg;
  t2s_tcp_stack *st;
  t2s_rand rand;
  t2s_tstamp now;
  t2s_addr local, peer;
  /* Captured output. */
  uint8_t *q[TFX_QMAX];
  size_t qlen[TFX_QMAX];
  size_t qhead, qtail;
  /* What the callbacks saw. on_syn returns syn_verdict (0: hold). */
  int syn_verdict;
  t2s_tcp_conn *c; /* the connection under test; NULL after on_closed */
  unsigned n_syn, n_est, n_recv, n_sendable, n_fin, n_closed;
  unsigned n_partial; /* super-segments seen with a partial checksum (test_tcp_tso) */
  int closed_err;
  /* The peer's view. */
  uint32_t pseq;   /* next sequence number the peer sends */
  uint32_t pack;   /* next sequence number the peer expects from us */
  uint16_t pwnd;   /* window field the peer sends (raw) */
  bool pts;        /* the peer sends timestamps */
  uint32_t ptsval; /* the peer's next TSval */
  uint32_t ptsecr; /* the last TSval seen from us */
} tfx;

/* Creates the stack (cfg NULL: defaults with max_retries 4). Clock starts at 1000 s. */
void tfx_setup(tfx *f, const t2s_tcp_config *cfg);
/* Frees the stack and the captured packets. */
void tfx_teardown(tfx *f);
/* The options a client offers: mss 0 = none, ws < 0 = none. */
t2s_tcp_opts tfx_opts(uint16_t mss, int ws, bool sack, bool ts);
/* Moves the clock forward (by less than 4.8 hours) to where the stack's ISN for a connection
 * between f->local and f->peer is isn (RFC 6528: the ISN follows a 4 us clock). */
void tfx_clock_for_isn(tfx *f, uint32_t isn);

/* Sends a segment from the peer. opts NULL: timestamps when f->pts. */
t2s_drop_reason feed_segment(tfx *f, uint8_t flags, uint32_t seq, uint32_t ack, uint16_t wnd,
                             const t2s_tcp_opts *opts, const void *data, size_t len);
/* In-sequence data from the peer (ACK|PSH at pseq/pack); pseq advances. */
t2s_drop_reason feed_data(tfx *f, const void *data, size_t len);
/* A pure ACK of ack from the peer at pseq. */
t2s_drop_reason feed_ack(tfx *f, uint32_t ack);
/* FIN|ACK from the peer at pseq; pseq advances by one. */
t2s_drop_reason feed_fin(tfx *f);
/* RST from the peer at seq. */
t2s_drop_reason feed_rst(tfx *f, uint32_t seq);

/* Pops the next captured packet into *out (may be NULL) and checks its flags (PSH ignored),
 * seq and ack (ANY: not checked). Returns false (and records a failure) when there is none or
 * it does not match. */
bool expect_segment_at(tfx *f, int flags, int64_t seq, int64_t ack, tseg *out, const char *file,
                       unsigned line);
#define expect_segment(f, flags, seq, ack, out)                                                    \
  expect_segment_at((f), (flags), (seq), (ack), (out), __FILE__, __LINE__)
/* Checks that nothing was sent. */
void expect_nothing_at(tfx *f, const char *file, unsigned line);
#define expect_nothing(f) expect_nothing_at((f), __FILE__, __LINE__)
/* True when the connection between f->local and f->peer is in TIME-WAIT (its control block
 * is freed then: a compact record holds the state, tcp_tw.c). */
bool tfx_in_time_wait(const tfx *f);
/* Discards captured packets; returns how many. */
size_t tfx_drain(tfx *f);
/* Captured packets not yet popped. */
size_t tfx_pending(const tfx *f);

/* Advances the clock by dt and runs the stack's timers. */
void tick(tfx *f, t2s_tstamp dt);
/* Moves the clock to the stack's expiry and runs the timers; returns the new time. */
t2s_tstamp run_to_expiry(tfx *f);
/* Reads and consumes every readable byte into buf (at most cap); returns the count. */
size_t tfx_read(tfx *f, uint8_t *buf, size_t cap);

/* Fixtures. Each checks the state it reaches (fatal on failure) and returns f->c. */
/* A SYN (ISN f->pseq, options *syn) held in SYN-PENDING; nothing sent. */
t2s_tcp_conn *tcb_in_syn_pending(tfx *f, const t2s_tcp_opts *syn);
/* ...accepted: the SYN-ACK was popped into *synack (may be NULL); pack = ISS + 1. */
t2s_tcp_conn *tcb_in_syn_received(tfx *f, const t2s_tcp_opts *syn, tseg *synack);
/* ...completed 10 ms later by the peer's ACK. */
t2s_tcp_conn *tcb_in_established(tfx *f, const t2s_tcp_opts *syn, tseg *synack);
/* An active open from local to peer: the SYN was popped into *syn (may be NULL). */
t2s_tcp_conn *tcb_in_syn_sent(tfx *f, tseg *syn);

#endif
