/* test_tcp_timers.c: the TCP stack's timers: RTO doubling and giving up, SYN and SYN-ACK
 * retransmission, keepalive, the stack's expiry as the minimum of its connections' deadlines,
 * and many connections through their whole lives without leaks. */
#include <string.h>

#include "tcp_fixture.h"

static uint8_t data[4096];

static void established(tfx *f) {
  t2s_tcp_opts o = tfx_opts(1000, -1, false, false);
  tcb_in_established(f, &o, NULL);
}

/* RFC 6298 5.5: each expiry doubles the RTO; after max_retries, RST and on_closed(TIMEOUT). */
static void test_rto_backoff_and_give_up(void) {
  tfx f;
  tfx_setup(&f, NULL); /* max_retries 4 */
  established(&f);
  /* One 10 ms RTT sample from the handshake: RTO is the 200 ms floor. */
  CU_ASSERT(f.c->rto == TCP_RTO_MIN);
  t2s_tstamp sent = f.now;
  CU_ASSERT(t2s_tcp_send(f.c, data, 1500, f.now) == 1500);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  expect_segment(&f, T2S_TCP_ACK, f.pack + 1000, f.pseq, NULL);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == sent + TCP_RTO_MIN);
  t2s_tstamp gap = TCP_RTO_MIN;
  for (int i = 0; i < 4; i++) {
    t2s_tstamp before = f.now;
    tick(&f, gap - 1);
    expect_nothing(&f);
    tick(&f, 1);
    CU_ASSERT(f.now - before == gap);
    tseg s;
    expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s); /* from snd.una, one segment */
    CU_ASSERT(s.len == 1000 && memcmp(s.payload, data, 1000) == 0);
    expect_nothing(&f);
    gap *= 2;
    CU_ASSERT(t2s_tcp_get_expiry(f.st) == f.now + gap);
  }
  t2s_tcp_stats st;
  t2s_tcp_get_stats(f.st, &st);
  CU_ASSERT(st.retransmits == 4);
  CU_ASSERT(f.n_closed == 0);
  run_to_expiry(&f);
  expect_segment(&f, T2S_TCP_RST | T2S_TCP_ACK, f.pack + 1500, f.pseq, NULL);
  expect_segment(&f, T2S_TCP_RST | T2S_TCP_ACK, f.pack, f.pseq, NULL); /* and at snd.una */
  CU_ASSERT(f.n_closed == 1 && f.closed_err == T2S_ERR_TIMEOUT);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  expect_nothing(&f);
  tfx_teardown(&f);
}

/* RFC 6298: the RTO doubles on each expiry up to TCP_RTO_MAX (60 s, the lowest maximum 2.5
 * allows) and stays there (docs/tcp-recovery.md); the next valid RTT sample ends the backoff. */
static void test_rto_backoff_capped(void) {
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.max_retries = 12;
  tfx f;
  tfx_setup(&f, &cfg);
  established(&f);
  CU_ASSERT(t2s_tcp_send(f.c, data, 500, f.now) == 500);
  tfx_drain(&f);
  t2s_tstamp gap = TCP_RTO_MIN, total = 0;
  for (int i = 0; i < 12; i++) {
    t2s_tstamp before = f.now;
    run_to_expiry(&f);
    CU_ASSERT(f.now - before == gap);
    total += f.now - before;
    CU_ASSERT(tfx_drain(&f) == 1);
    gap = T2S_MIN(gap * 2, TCP_RTO_MAX);
  }
  CU_ASSERT(f.c->rto == TCP_RTO_MAX);
  CU_ASSERT(total ==
            (200 + 400 + 800 + 1600 + 3200 + 6400 + 12800 + 25600 + 51200) * T2S_MILLISECONDS +
                3 * TCP_RTO_MAX);
  tick(&f, 10 * T2S_MILLISECONDS);
  feed_ack(&f, f.pack + 500);
  /* Karn: no sample from a retransmitted segment (no timestamps here), so the backed-off RTO
   * stays until one sent once is acknowledged. */
  CU_ASSERT(f.c->retries == 0 && f.c->rto == TCP_RTO_MAX);
  CU_ASSERT(t2s_tcp_send(f.c, data, 500, f.now) == 500);
  tfx_drain(&f);
  tick(&f, 10 * T2S_MILLISECONDS);
  feed_ack(&f, f.pack + 1000);
  CU_ASSERT(f.c->rto == TCP_RTO_MIN);
  CU_ASSERT(f.n_closed == 0);
  tfx_teardown(&f);
}

/* An ACK after a timeout: the retransmission queue restarts from cwnd = 1 segment and grows. */
static void test_rto_recovery(void) {
  tfx f;
  tfx_setup(&f, NULL);
  established(&f);
  CU_ASSERT(t2s_tcp_send(f.c, data, 4000, f.now) == 4000);
  CU_ASSERT(tfx_drain(&f) == 4);
  run_to_expiry(&f);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, NULL);
  expect_nothing(&f);
  CU_ASSERT(f.c->cwnd == 1000 && f.c->ssthresh == 2000);
  tick(&f, 10 * T2S_MILLISECONDS);
  feed_ack(&f, f.pack + 1000);
  /* Slow start: cwnd 2 segments; 2000..3999 go again (go-back-N after a timeout). */
  expect_segment(&f, T2S_TCP_ACK, f.pack + 1000, f.pseq, NULL);
  expect_segment(&f, T2S_TCP_ACK, f.pack + 2000, f.pseq, NULL);
  expect_nothing(&f);
  /* The peer had everything: one ACK for all of it ends the episode. */
  feed_ack(&f, f.pack + 4000);
  CU_ASSERT(t2s_tcp_send_queued(f.c) == 0);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  expect_nothing(&f);
  tfx_teardown(&f);
}

/* SYN-RECEIVED: the SYN-ACK is retransmitted with doubling intervals, then RST + TIMEOUT. */
static void test_synack_retransmission(void) {
  tfx f;
  tfx_setup(&f, NULL);
  tseg sa;
  tcb_in_syn_received(&f, NULL, &sa);
  t2s_tstamp gap = TCP_RTO_INITIAL;
  for (int i = 0; i < TCP_SYN_RETRIES; i++) {
    t2s_tstamp before = f.now;
    run_to_expiry(&f);
    CU_ASSERT(f.now - before == gap);
    expect_segment(&f, T2S_TCP_SYN | T2S_TCP_ACK, sa.seq, f.pseq, NULL);
    gap *= 2;
  }
  run_to_expiry(&f);
  expect_segment(&f, T2S_TCP_RST | T2S_TCP_ACK, sa.seq + 1, f.pseq, NULL);
  CU_ASSERT(f.n_closed == 1 && f.closed_err == T2S_ERR_TIMEOUT);
  CU_ASSERT(f.n_est == 0);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  tfx_teardown(&f);
}

/* SYN-SENT: the SYN is retransmitted with doubling intervals, then on_closed(TIMEOUT). */
static void test_syn_retransmission(void) {
  tfx f;
  tfx_setup(&f, NULL);
  tseg syn;
  tcb_in_syn_sent(&f, &syn);
  t2s_tstamp gap = TCP_RTO_INITIAL;
  for (int i = 0; i < TCP_SYN_RETRIES; i++) {
    t2s_tstamp before = f.now;
    run_to_expiry(&f);
    CU_ASSERT(f.now - before == gap);
    expect_segment(&f, T2S_TCP_SYN, syn.seq, 0, NULL);
    gap *= 2;
  }
  run_to_expiry(&f);
  CU_ASSERT(f.n_closed == 1 && f.closed_err == T2S_ERR_TIMEOUT);
  tfx_drain(&f); /* a RST may follow; nobody is there */
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  tfx_teardown(&f);
}

/* Keepalive: after keepalive_idle of silence a probe (seq snd.una - 1); an answer keeps the
 * connection; no answer to 9 probes ends it with TIMEOUT. */
static void test_keepalive(void) {
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.keepalive_idle = 60 * T2S_SECONDS;
  tfx f;
  tfx_setup(&f, &cfg);
  established(&f);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == f.now + cfg.keepalive_idle);
  tick(&f, cfg.keepalive_idle);
  expect_segment(&f, T2S_TCP_ACK, f.pack - 1, f.pseq, NULL);
  feed_ack(&f, f.pack); /* the peer answers */
  expect_nothing(&f);
  tick(&f, cfg.keepalive_idle - T2S_SECONDS);
  expect_nothing(&f);
  unsigned probes = 0;
  for (int i = 0; i < 20 && f.n_closed == 0; i++) {
    run_to_expiry(&f);
    probes += (unsigned)tfx_pending(&f);
    if (f.n_closed == 0) {
      expect_segment(&f, T2S_TCP_ACK, f.pack - 1, f.pseq, NULL);
    }
  }
  CU_ASSERT(f.n_closed == 1 && f.closed_err == T2S_ERR_TIMEOUT);
  CU_ASSERT(probes >= 9 && probes <= 11);
  tfx_drain(&f);
  tfx_teardown(&f);
}

/* The stack's expiry is the minimum of its connections' deadlines, updated as they change. */
static void test_expiry_is_minimum(void) {
  tfx f;
  tfx_setup(&f, NULL);
  t2s_tstamp t0 = f.now;
  t2s_tcp_opts o = tfx_opts(1000, -1, false, false);
  t2s_tcp_conn *held[3];
  for (int i = 0; i < 3; i++) {
    f.peer.port = (uint16_t)(41000 + i);
    feed_segment(&f, T2S_TCP_SYN, 100, 0, 65535, &o, NULL, 0);
    held[i] = f.c;
    f.now += T2S_SECONDS;
  }
  /* Pending timers at t0 + 10 s, + 11 s, + 12 s. */
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == t0 + f.cfg.pending_timeout);
  /* Accepting the first arms its SYN-ACK timer at now + 1 s: earlier than the others. */
  f.peer.port = 41000;
  CU_ASSERT(t2s_tcp_accept(held[0], f.now) == 0);
  tfx_drain(&f);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == f.now + TCP_RTO_INITIAL);
  /* Completing its handshake clears that timer: the minimum is the second held SYN. */
  f.pseq = 101;
  f.pack = held[0]->snd.iss + 1;
  f.c = held[0];
  feed_ack(&f, f.pack);
  CU_ASSERT(t2s_tcp_conn_state(held[0]) == T2S_TCP_ESTABLISHED);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == t0 + T2S_SECONDS + f.cfg.pending_timeout);
  /* Refusing the second moves it to the third. */
  f.peer.port = 41001;
  CU_ASSERT(t2s_tcp_refuse(held[1], f.now) == 0);
  tfx_drain(&f);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == t0 + 2 * T2S_SECONDS + f.cfg.pending_timeout);
  /* Data on the first: its RTO is now the earliest. */
  f.peer.port = 41000;
  CU_ASSERT(t2s_tcp_send(held[0], data, 100, f.now) == 100);
  tfx_drain(&f);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == f.now + held[0]->rto);
  feed_ack(&f, f.pack + 100);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == t0 + 2 * T2S_SECONDS + f.cfg.pending_timeout);
  /* Handling expiry early does nothing; at the deadline the third SYN times out. */
  tick(&f, 0);
  CU_ASSERT(f.n_closed == 1);
  f.now = t0 + 2 * T2S_SECONDS + f.cfg.pending_timeout;
  f.peer.port = 41002;
  t2s_tcp_handle_expiry(f.st, f.now);
  expect_segment(&f, T2S_TCP_RST | T2S_TCP_ACK, ANY, 101, NULL);
  CU_ASSERT(f.n_closed == 2 && f.closed_err == T2S_ERR_TIMEOUT);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX); /* the established one is idle */
  tfx_teardown(&f);
}

/* Many connections with interleaved deadlines: timers fire in order, every connection ends,
 * nothing is left (ASan checks the frees). */
static void test_many_connections_reaped(void) {
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.max_retries = 2;
  cfg.sndbuf = cfg.rcvbuf = 8192;
  tfx f;
  tfx_setup(&f, &cfg);
  t2s_tcp_opts o = tfx_opts(1000, -1, false, false);
  enum { N = 200 };
  for (int i = 0; i < N; i++) {
    f.peer.port = (uint16_t)(20000 + i);
    f.now += T2S_MILLISECONDS;
    feed_segment(&f, T2S_TCP_SYN, 100, 0, 65535, &o, NULL, 0);
    t2s_tcp_conn *c = f.c;
    switch (i % 4) {
    case 0: /* held until the pending timeout */
      break;
    case 1: /* accepted, the client vanishes: SYN-ACK retries run out */
      t2s_tcp_accept(c, f.now);
      break;
    case 2: /* established with data nobody acknowledges */
      t2s_tcp_accept(c, f.now);
      feed_segment(&f, T2S_TCP_ACK, 101, c->snd.iss + 1, 65535, NULL, NULL, 0);
      t2s_tcp_send(c, data, 2000, f.now);
      break;
    case 3: /* closed by us, the peer finishes: TIME-WAIT */
      t2s_tcp_accept(c, f.now);
      feed_segment(&f, T2S_TCP_ACK, 101, c->snd.iss + 1, 65535, NULL, NULL, 0);
      t2s_tcp_shutdown(c, f.now);
      feed_segment(&f, T2S_TCP_FIN | T2S_TCP_ACK, 101, c->snd.iss + 2, 65535, NULL, NULL, 0);
      CU_ASSERT(tfx_in_time_wait(&f)); /* c is freed: TIME-WAIT is a compact record */
      break;
    }
    tfx_drain(&f);
  }
  t2s_tstamp last = 0;
  int rounds = 0;
  while (t2s_tcp_get_expiry(f.st) != T2S_TSTAMP_MAX && rounds < 100000) {
    t2s_tstamp e = t2s_tcp_get_expiry(f.st);
    CU_ASSERT_FATAL(e >= last);
    last = e;
    f.now = e;
    t2s_tcp_handle_expiry(f.st, f.now);
    tfx_drain(&f);
    rounds++;
  }
  CU_ASSERT(f.n_closed == N);
  t2s_tcp_stats st;
  t2s_tcp_get_stats(f.st, &st);
  CU_ASSERT(st.conns_active == 0 && st.conns_pending == 0);
  tfx_teardown(&f);
}

int t2s_test_register_tcp_timers(void) {
  for (size_t i = 0; i < sizeof(data); i++) {
    data[i] = (uint8_t)(i * 29 + 5);
  }
  CU_pSuite s = CU_add_suite("tcp_timers", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "RTO doubling, give up: RST + TIMEOUT", test_rto_backoff_and_give_up) ||
      !CU_add_test(s, "RTO recovery: slow start from one segment", test_rto_recovery) ||
      !CU_add_test(s, "RTO backoff capped at 60 s, reset by a sample", test_rto_backoff_capped) ||
      !CU_add_test(s, "SYN-ACK retransmission and give up", test_synack_retransmission) ||
      !CU_add_test(s, "SYN retransmission and give up", test_syn_retransmission) ||
      !CU_add_test(s, "keepalive probes and timeout", test_keepalive) ||
      !CU_add_test(s, "stack expiry is the minimum deadline", test_expiry_is_minimum) ||
      !CU_add_test(s, "many connections reaped", test_many_connections_reaped)) {
    return -1;
  }
  return 0;
}
