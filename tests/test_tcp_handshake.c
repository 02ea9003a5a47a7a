/* test_tcp_handshake.c: the TCP stack's opens: any-IP passive open (held SYN, accept, refuse,
 * pending cap and timeout), option negotiation, window scale edges, active open. */
#include <string.h>

#include "tcp_fixture.h"

static uint8_t data[8192];

static void test_syn_held_until_accept(void) {
  tfx f;
  tfx_setup(&f, NULL);
  t2s_tcp_conn *c = tcb_in_syn_pending(&f, NULL);
  CU_ASSERT(f.n_syn == 1);
  /* Any-IP: the local endpoint is the SYN's destination. */
  CU_ASSERT(t2s_addr_eq(t2s_tcp_conn_local(c), &f.local));
  CU_ASSERT(t2s_addr_eq(t2s_tcp_conn_remote(c), &f.peer));
  t2s_tcp_stats st;
  t2s_tcp_get_stats(f.st, &st);
  CU_ASSERT(st.conns_pending == 1);
  tick(&f, 3 * T2S_SECONDS); /* nothing is said while the owner decides */
  expect_nothing(&f);
  CU_ASSERT(t2s_tcp_conn_state(c) == T2S_TCP_SYN_PENDING);
  CU_ASSERT(t2s_tcp_accept(c, f.now) == 0);
  tseg s;
  expect_segment(&f, T2S_TCP_SYN | T2S_TCP_ACK, ANY, 1001, &s);
  CU_ASSERT(t2s_tcp_accept(c, f.now) == T2S_ERR_INVALID_ARGUMENT); /* only once */
  f.pack = s.seq + 1;
  feed_ack(&f, f.pack);
  CU_ASSERT(t2s_tcp_conn_state(c) == T2S_TCP_ESTABLISHED);
  CU_ASSERT(f.n_est == 1);
  t2s_tcp_get_stats(f.st, &st);
  CU_ASSERT(st.conns_pending == 0 && st.conns_active == 1);
  expect_nothing(&f);
  tfx_teardown(&f);
}

static void test_retransmitted_syn_absorbed(void) {
  tfx f;
  tfx_setup(&f, NULL);
  t2s_tcp_opts o = tfx_opts(1460, -1, false, false);
  tcb_in_syn_pending(&f, &o);
  tick(&f, T2S_SECONDS);
  CU_ASSERT(feed_segment(&f, T2S_TCP_SYN, 1000, 0, 65535, &o, NULL, 0) == T2S_DROP_NONE);
  expect_nothing(&f);
  CU_ASSERT(f.n_syn == 1);
  t2s_tcp_stats st;
  t2s_tcp_get_stats(f.st, &st);
  CU_ASSERT(st.conns_pending == 1);
  /* After accept, a retransmitted SYN means our SYN-ACK was lost: it is sent again. */
  CU_ASSERT(t2s_tcp_accept(f.c, f.now) == 0);
  tseg s1, s2;
  expect_segment(&f, T2S_TCP_SYN | T2S_TCP_ACK, ANY, 1001, &s1);
  tick(&f, 100 * T2S_MILLISECONDS);
  CU_ASSERT(feed_segment(&f, T2S_TCP_SYN, 1000, 0, 65535, &o, NULL, 0) == T2S_DROP_NONE);
  expect_segment(&f, T2S_TCP_SYN | T2S_TCP_ACK, s1.seq, 1001, &s2);
  CU_ASSERT(f.n_syn == 1);
  expect_nothing(&f);
  tfx_teardown(&f);
}

static void test_refuse_rst_acks_syn(void) {
  tfx f;
  tfx_setup(&f, NULL);
  f.pseq = 0x12345678;
  t2s_tcp_conn *c = tcb_in_syn_pending(&f, NULL);
  CU_ASSERT(t2s_tcp_refuse(c, f.now) == 0);
  expect_segment(&f, T2S_TCP_RST | T2S_TCP_ACK, ANY, 0x12345679, NULL);
  CU_ASSERT(f.n_closed == 1 && f.closed_err == T2S_ERR_REFUSED);
  CU_ASSERT(f.c == NULL);
  expect_nothing(&f);
  t2s_tcp_stats st;
  t2s_tcp_get_stats(f.st, &st);
  CU_ASSERT(st.conns_pending == 0 && st.conns_active == 0);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  /* on_syn refusing at once gives the same RST. */
  f.syn_verdict = T2S_ERR_REFUSED;
  f.pseq = 0xffffffff;
  t2s_tcp_opts o = tfx_opts(1460, -1, false, false);
  feed_segment(&f, T2S_TCP_SYN, f.pseq, 0, 65535, &o, NULL, 0);
  expect_segment(&f, T2S_TCP_RST | T2S_TCP_ACK, ANY, 0, NULL); /* seq + 1 wraps to 0 */
  CU_ASSERT(f.n_closed == 2 && f.closed_err == T2S_ERR_REFUSED);
  expect_nothing(&f);
  tfx_teardown(&f);
}

static void test_pending_cap_rst(void) {
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.max_pending = 2;
  tfx f;
  tfx_setup(&f, &cfg);
  t2s_tcp_opts o = tfx_opts(1460, -1, false, false);
  for (int i = 0; i < 3; i++) {
    f.peer.port = (uint16_t)(50000 + i);
    t2s_drop_reason r = feed_segment(&f, T2S_TCP_SYN, 7000 + (uint32_t)i, 0, 65535, &o, NULL, 0);
    if (i < 2) {
      CU_ASSERT(r == T2S_DROP_NONE);
      expect_nothing(&f);
    } else {
      CU_ASSERT(r == T2S_DROP_TCP_SYN_LIMIT);
      expect_segment(&f, T2S_TCP_RST | T2S_TCP_ACK, 0, 7003, NULL);
    }
  }
  CU_ASSERT(f.n_syn == 2);
  /* Accepting one frees a pending slot. */
  CU_ASSERT(t2s_tcp_accept(f.c, f.now) == 0);
  f.peer.port = 50001;
  expect_segment(&f, T2S_TCP_SYN | T2S_TCP_ACK, ANY, 7002, NULL);
  f.peer.port = 50003;
  CU_ASSERT(feed_segment(&f, T2S_TCP_SYN, 9000, 0, 65535, &o, NULL, 0) == T2S_DROP_NONE);
  expect_nothing(&f);
  CU_ASSERT(f.n_syn == 3);
  tfx_teardown(&f);
}

static void test_pending_timeout_rst(void) {
  tfx f;
  tfx_setup(&f, NULL);
  t2s_tstamp t0 = f.now;
  tcb_in_syn_pending(&f, NULL);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == t0 + f.cfg.pending_timeout);
  tick(&f, f.cfg.pending_timeout - 1);
  expect_nothing(&f);
  CU_ASSERT(f.n_closed == 0);
  tick(&f, 1);
  expect_segment(&f, T2S_TCP_RST | T2S_TCP_ACK, ANY, 1001, NULL);
  CU_ASSERT(f.n_closed == 1 && f.closed_err == T2S_ERR_TIMEOUT);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  t2s_tcp_stats st;
  t2s_tcp_get_stats(f.st, &st);
  CU_ASSERT(st.conns_pending == 0 && st.conns_active == 0);
  tfx_teardown(&f);
}

/* The SYN-ACK answers exactly the options the client offered (and the stack enables). */
static void test_options_every_combination(void) {
  for (int m = 0; m < 16; m++) {
    bool mss = m & 1, ws = m & 2, sack = m & 4, ts = m & 8;
    tfx f;
    tfx_setup(&f, NULL);
    t2s_tcp_opts o = tfx_opts(mss ? 1400 : 0, ws ? 7 : -1, sack, ts);
    tseg sa;
    tcb_in_established(&f, &o, &sa);
    CU_ASSERT(sa.opts.has_mss && sa.opts.mss == 1460); /* ours: MTU 1500 - 40 */
    CU_ASSERT(sa.opts.has_wscale == ws);
    CU_ASSERT(sa.opts.sack_permitted == sack);
    CU_ASSERT(sa.opts.has_ts == ts);
    if (ts) {
      CU_ASSERT(sa.opts.ts_ecr == 5000);
    }
    if (ws) {
      CU_ASSERT(sa.opts.wscale == 3); /* 256 KiB receive buffer */
    }
    CU_ASSERT(sa.wnd == 65535);
    /* Data segments: MSS from the peer (536 without the option), less 12 for timestamps. */
    CU_ASSERT(t2s_tcp_send(f.c, data, 4000, f.now) == 4000);
    tseg s;
    expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s);
    CU_ASSERT(s.len == (size_t)((mss ? 1400 : 536) - (ts ? 12 : 0)));
    CU_ASSERT(s.opts.has_ts == ts);
    CU_ASSERT(!s.opts.has_mss && !s.opts.has_wscale && !s.opts.sack_permitted);
    /* Our window: scaled by 3 when window scaling was agreed. */
    CU_ASSERT(s.wnd == (ws ? 262144 >> 3 : 65535));
    tfx_drain(&f);
    tfx_teardown(&f);
  }
}

/* A receive buffer below 64 KiB: the SYN-ACK offers exactly it, whatever the client's ISN
 * (the right edge started at 0, so an ISN in the upper half of the sequence space used to
 * advertise 65535 for a 32 KiB buffer). */
static void test_synack_window_is_a_small_rcvbuf(void) {
  static const uint32_t isns[] = {1000, 0x7fffffffu, 0x80000000u, 0xc0000000u, 0xfffffffeu};
  for (size_t i = 0; i < sizeof(isns) / sizeof(isns[0]); i++) {
    t2s_tcp_config cfg;
    t2s_tcp_config_default(&cfg);
    cfg.rcvbuf = 32768;
    tfx f;
    tfx_setup(&f, &cfg);
    f.pseq = isns[i];
    t2s_tcp_opts o = tfx_opts(1460, 7, true, true);
    tseg sa;
    tcb_in_established(&f, &o, &sa);
    CU_ASSERT(sa.opts.has_wscale && sa.opts.wscale == 0);
    CU_ASSERT(sa.wnd == 32768);
    tfx_teardown(&f);
  }
}

static void test_options_disabled_in_config(void) {
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.wscale = cfg.sack = cfg.timestamps = false;
  tfx f;
  tfx_setup(&f, &cfg);
  t2s_tcp_opts o = tfx_opts(1460, 7, true, true);
  tseg sa;
  tcb_in_syn_received(&f, &o, &sa);
  CU_ASSERT(sa.opts.has_mss);
  CU_ASSERT(!sa.opts.has_wscale && !sa.opts.sack_permitted && !sa.opts.has_ts);
  tfx_teardown(&f);
}

static void test_mss_clamped_to_mtu(void) {
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.mtu = 1280;
  tfx f;
  tfx_setup(&f, &cfg);
  t2s_tcp_opts o = tfx_opts(8960, -1, false, false);
  tseg sa, s;
  tcb_in_established(&f, &o, &sa);
  CU_ASSERT(sa.opts.mss == 1240);
  CU_ASSERT(t2s_tcp_send(f.c, data, 3000, f.now) == 3000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, ANY, &s);
  CU_ASSERT(s.len == 1240);
  tfx_teardown(&f);
  /* IPv6: 60 bytes of headers; with timestamps 12 more. */
  tfx_setup(&f, &cfg);
  CU_ASSERT_FATAL(t2s_addr_parse("[2001:db8::1]:40000", &f.peer) == 0);
  CU_ASSERT_FATAL(t2s_addr_parse("[2001:db8::2]:443", &f.local) == 0);
  o = tfx_opts(8960, -1, false, true);
  tcb_in_established(&f, &o, &sa);
  CU_ASSERT(sa.opts.mss == 1220);
  CU_ASSERT(t2s_tcp_send(f.c, data, 3000, f.now) == 3000);
  expect_segment(&f, T2S_TCP_ACK, f.pack, ANY, &s);
  CU_ASSERT(s.len == 1208);
  tfx_teardown(&f);
}

/* A SYN with no options at all: no window scaling, 536-byte segments, unscaled windows. */
static void test_no_options(void) {
  tfx f;
  tfx_setup(&f, NULL);
  t2s_tcp_opts none = tfx_opts(0, -1, false, false);
  tseg sa, s;
  tcb_in_established(&f, &none, &sa);
  CU_ASSERT(sa.opts.has_mss && !sa.opts.has_wscale && !sa.opts.sack_permitted && !sa.opts.has_ts);
  CU_ASSERT(f.c->rcv.wscale == 0 && f.c->snd.wscale == 0);
  CU_ASSERT(t2s_tcp_send(f.c, data, 600, f.now) == 600);
  expect_segment(&f, T2S_TCP_ACK, f.pack, f.pseq, &s);
  CU_ASSERT(s.len == 536 && s.wnd == 65535 && !s.opts.has_ts && s.opts.nsack == 0);
  expect_segment(&f, T2S_TCP_ACK, f.pack + 536, f.pseq, &s);
  CU_ASSERT(s.len == 64);
  tfx_teardown(&f);
}

/* A peer MSS smaller than the timestamp option must not wrap our segment size around. */
static void test_tiny_peer_mss(void) {
  tfx f;
  tfx_setup(&f, NULL);
  t2s_tcp_opts o = tfx_opts(8, -1, false, true);
  tcb_in_established(&f, &o, NULL);
  CU_ASSERT(t2s_tcp_send(f.c, data, 3000, f.now) == 3000);
  tseg s;
  expect_segment(&f, T2S_TCP_ACK, f.pack, ANY, &s);
  CU_ASSERT(s.len > 0 && s.len <= 1500 - 40 - 12);
  tfx_teardown(&f);
}

/* The peer's shift: 0 and 14 as sent, anything above 14 clamped to 14 (RFC 7323 2.3). */
static void test_wscale_edges(void) {
  const struct {
    int sent;
    uint8_t used;
  } cases[] = {{0, 0}, {1, 1}, {14, 14}, {15, 14}, {255, 14}};
  for (size_t i = 0; i < T2S_ARRAY_LEN(cases); i++) {
    tfx f;
    tfx_setup(&f, NULL);
    t2s_tcp_opts o = tfx_opts(1460, cases[i].sent, false, false);
    tcb_in_syn_received(&f, &o, NULL);
    /* The handshake's ACK carries a scaled window of 1: 1 << shift bytes. */
    f.pwnd = 1;
    feed_ack(&f, f.pack);
    CU_ASSERT(t2s_tcp_conn_state(f.c) == T2S_TCP_ESTABLISHED);
    CU_ASSERT(f.c->snd.wscale == cases[i].used);
    CU_ASSERT(f.c->snd.wnd == 1u << cases[i].used);
    /* With shift 0 the peer's window is one byte: that is all we send. */
    if (cases[i].used == 0) {
      CU_ASSERT(t2s_tcp_send(f.c, data, 100, f.now) == 100);
      tseg s;
      expect_segment(&f, T2S_TCP_ACK, f.pack, ANY, &s);
      CU_ASSERT(s.len == 1);
      expect_nothing(&f);
    }
    tfx_drain(&f);
    tfx_teardown(&f);
  }
  /* Our own shift follows the receive buffer: 0 for 64 KiB - 1, 14 at most. */
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.rcvbuf = 65535;
  tfx f;
  tfx_setup(&f, &cfg);
  t2s_tcp_opts o = tfx_opts(1460, 14, false, false);
  tseg sa;
  tcb_in_syn_received(&f, &o, &sa);
  CU_ASSERT(sa.opts.has_wscale && sa.opts.wscale == 0);
  tfx_teardown(&f);
}

static void test_active_open(void) {
  tfx f;
  tfx_setup(&f, NULL);
  tseg syn, s;
  t2s_tcp_conn *c = tcb_in_syn_sent(&f, &syn);
  CU_ASSERT(syn.opts.has_mss && syn.opts.mss == 1460);
  CU_ASSERT(syn.opts.has_wscale && syn.opts.wscale == 3);
  CU_ASSERT(syn.opts.sack_permitted && syn.opts.has_ts && syn.opts.ts_ecr == 0);
  CU_ASSERT(t2s_tcp_connect(f.st, &f.local, &f.peer, f.now, &c) == T2S_ERR_EXISTS);
  /* Data queued before the handshake completes leaves after it. */
  CU_ASSERT(t2s_tcp_send(c, data, 10, f.now) == 10);
  expect_nothing(&f);
  f.now += 5 * T2S_MILLISECONDS;
  f.ptsecr = syn.opts.ts_val;
  f.pts = true;
  t2s_tcp_opts o = tfx_opts(1000, 2, true, true);
  CU_ASSERT(feed_segment(&f, T2S_TCP_SYN | T2S_TCP_ACK, 77, f.pack, 100, &o, NULL, 0) ==
            T2S_DROP_NONE);
  f.pseq = 78;
  CU_ASSERT(t2s_tcp_conn_state(c) == T2S_TCP_ESTABLISHED);
  CU_ASSERT(f.n_est == 1);
  CU_ASSERT(c->snd.wscale == 2 && c->ws_ok && c->sack_ok && c->ts_ok);
  CU_ASSERT(c->snd.wnd == 100); /* the SYN-ACK's window is never scaled */
  expect_segment(&f, T2S_TCP_ACK, f.pack, 78, &s);
  CU_ASSERT(s.len == 10 && memcmp(s.payload, data, 10) == 0);
  CU_ASSERT(s.opts.has_ts && s.opts.ts_ecr == 5000);
  CU_ASSERT(s.wnd == 262144 >> 3);
  expect_nothing(&f);
  tfx_teardown(&f);
}

/* RFC 6528: ISN = a 4 us clock + a keyed hash of the four-tuple, the key from the stack's
 * generator. One four-tuple's ISNs increase with the clock (an old duplicate of an earlier
 * incarnation falls behind the new one); another four-tuple's are unrelated; the same seed
 * gives the same ISNs (the simulator stays deterministic). */
static void test_isn_rfc6528(void) {
  tfx f;
  tfx_setup(&f, NULL);
  tseg syn;
  t2s_tcp_conn *c = tcb_in_syn_sent(&f, &syn);
  uint32_t isn1 = syn.seq;
  CU_ASSERT(isn1 == t2s_tcp_isn(f.st, &f.local, &f.peer, f.now));
  t2s_tcp_abort(c, f.now);
  tfx_drain(&f);
  f.now += T2S_MILLISECONDS;
  c = tcb_in_syn_sent(&f, &syn);
  CU_ASSERT(syn.seq == isn1 + 250); /* 1 ms = 250 ticks of 4 us */
  t2s_tcp_abort(c, f.now);
  tfx_drain(&f);
  f.now += 10 * T2S_SECONDS;
  c = tcb_in_syn_sent(&f, &syn);
  CU_ASSERT(syn.seq == isn1 + 250 + 2500000);
  t2s_tcp_abort(c, f.now);
  tfx_drain(&f);
  /* A passive open's SYN-ACK uses the same function of its four-tuple. */
  tseg sa;
  tcb_in_syn_received(&f, NULL, &sa);
  CU_ASSERT(sa.seq == t2s_tcp_isn(f.st, &f.local, &f.peer, f.now));
  /* Another port, another address: unrelated values at the same instant. */
  t2s_addr other = f.peer;
  other.port++;
  uint32_t a = t2s_tcp_isn(f.st, &f.local, &f.peer, f.now);
  uint32_t b = t2s_tcp_isn(f.st, &f.local, &other, f.now);
  CU_ASSERT((uint32_t)(a - b) > 1000000u && (uint32_t)(b - a) > 1000000u);
  /* Deterministic per seed, different across seeds. */
  t2s_rand r1, r2;
  t2s_rand_init(&r1, 42);
  t2s_rand_init(&r2, 43);
  t2s_tcp_stack *s1 = NULL, *s2 = NULL;
  t2s_tcp_callbacks cbs = {0};
  cbs.output = f.st->cbs.output;
  CU_ASSERT_FATAL(t2s_tcp_stack_new(&s1, &f.cfg, &cbs, &f, &r1) == 0);
  CU_ASSERT_FATAL(t2s_tcp_stack_new(&s2, &f.cfg, &cbs, &f, &r2) == 0);
  CU_ASSERT(t2s_tcp_isn(s1, &f.local, &f.peer, f.now) == a); /* f's stack: seed 42 too */
  CU_ASSERT(t2s_tcp_isn(s2, &f.local, &f.peer, f.now) != a);
  t2s_tcp_stack_del(s1);
  t2s_tcp_stack_del(s2);
  tfx_teardown(&f);
}

static void test_active_open_rst_refused(void) {
  tfx f;
  tfx_setup(&f, NULL);
  t2s_tcp_conn *c = tcb_in_syn_sent(&f, NULL);
  (void)c;
  /* A RST with an unacceptable ACK is ignored; a RST without ACK too. */
  feed_segment(&f, T2S_TCP_RST | T2S_TCP_ACK, 0, f.pack + 5, 0, NULL, NULL, 0);
  feed_segment(&f, T2S_TCP_RST, 0, 0, 0, NULL, NULL, 0);
  CU_ASSERT(f.n_closed == 0 && f.c != NULL);
  expect_nothing(&f);
  /* An ACK of something we never sent gets a RST (RFC 9293 3.10.7.3). */
  feed_segment(&f, T2S_TCP_ACK, 500, f.pack + 5, 0, NULL, NULL, 0);
  expect_segment(&f, T2S_TCP_RST, f.pack + 5, ANY, NULL);
  CU_ASSERT(f.c != NULL && t2s_tcp_conn_state(f.c) == T2S_TCP_SYN_SENT);
  feed_segment(&f, T2S_TCP_RST | T2S_TCP_ACK, 0, f.pack, 0, NULL, NULL, 0);
  CU_ASSERT(f.n_closed == 1 && f.closed_err == T2S_ERR_REFUSED && f.c == NULL);
  expect_nothing(&f);
  CU_ASSERT(t2s_tcp_get_expiry(f.st) == T2S_TSTAMP_MAX);
  tfx_teardown(&f);
}

static void test_syn_received_bad_ack_rst(void) {
  tfx f;
  tfx_setup(&f, NULL);
  tcb_in_syn_received(&f, NULL, NULL);
  feed_ack(&f, f.pack + 100);
  expect_segment(&f, T2S_TCP_RST, f.pack + 100, ANY, NULL);
  CU_ASSERT(t2s_tcp_conn_state(f.c) == T2S_TCP_SYN_RECEIVED);
  feed_ack(&f, f.pack);
  CU_ASSERT(t2s_tcp_conn_state(f.c) == T2S_TCP_ESTABLISHED);
  expect_nothing(&f);
  tfx_teardown(&f);
}

static void test_no_connection_rst(void) {
  tfx f;
  tfx_setup(&f, NULL);
  CU_ASSERT(feed_segment(&f, T2S_TCP_ACK, 10, 12345, 100, NULL, NULL, 0) ==
            T2S_DROP_TCP_NO_CONNECTION);
  expect_segment(&f, T2S_TCP_RST, 12345, ANY, NULL);
  CU_ASSERT(feed_segment(&f, T2S_TCP_FIN, 10, 0, 100, NULL, data, 5) == T2S_DROP_TCP_NO_CONNECTION);
  expect_segment(&f, T2S_TCP_RST | T2S_TCP_ACK, 0, 16, NULL);
  CU_ASSERT(feed_segment(&f, T2S_TCP_RST, 10, 0, 100, NULL, NULL, 0) == T2S_DROP_TCP_NO_CONNECTION);
  expect_nothing(&f); /* never a RST for a RST */
  CU_ASSERT(f.n_syn == 0);
  tfx_teardown(&f);
}

int t2s_test_register_tcp_handshake(void) {
  for (size_t i = 0; i < sizeof(data); i++) {
    data[i] = (uint8_t)(i * 7 + 3);
  }
  CU_pSuite s = CU_add_suite("tcp_handshake", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "SYN held until accept", test_syn_held_until_accept) ||
      !CU_add_test(s, "retransmitted SYN absorbed", test_retransmitted_syn_absorbed) ||
      !CU_add_test(s, "refuse: RST with ack = seq + 1", test_refuse_rst_acks_syn) ||
      !CU_add_test(s, "pending cap: RST", test_pending_cap_rst) ||
      !CU_add_test(s, "pending timeout: RST and TIMEOUT", test_pending_timeout_rst) ||
      !CU_add_test(s, "options: every combination", test_options_every_combination) ||
      !CU_add_test(s, "options: disabled in config", test_options_disabled_in_config) ||
      !CU_add_test(s, "MSS clamped to MTU (v4, v6)", test_mss_clamped_to_mtu) ||
      !CU_add_test(s, "no options at all", test_no_options) ||
      !CU_add_test(s, "tiny peer MSS with timestamps", test_tiny_peer_mss) ||
      !CU_add_test(s, "window scale 0, 14, >14 clamped", test_wscale_edges) ||
      !CU_add_test(s, "active open", test_active_open) ||
      !CU_add_test(s, "active open: RST -> REFUSED", test_active_open_rst_refused) ||
      !CU_add_test(s, "ISN per RFC 6528: monotonic per four-tuple", test_isn_rfc6528) ||
      !CU_add_test(s, "SYN-RECEIVED: bad ACK -> RST", test_syn_received_bad_ack_rst) ||
      !CU_add_test(s, "no connection: RST", test_no_connection_rst) ||
      !CU_add_test(s, "SYN-ACK window: a small buffer, any ISN",
                   test_synack_window_is_a_small_rcvbuf)) {
    return -1;
  }
  return 0;
}
