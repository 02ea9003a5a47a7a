/* tcp_fixture.c: the shared TCP test fixture (see tcp_fixture.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcp_fixture.h"

static void fail_at(const char *msg, const char *file, unsigned line) {
  CU_assertImplementation(CU_FALSE, line, msg, file, "", CU_FALSE);
}

static int cb_output(void *arg, const uint8_t *pkt, size_t len) {
  tfx *f = arg;
  if (f->qtail - f->qhead >= TFX_QMAX) {
    fail_at("tcp fixture: output queue overflow", __FILE__, __LINE__);
    return 0;
  }
  uint8_t *copy = malloc(len);
  CU_ASSERT_FATAL(copy != NULL);
  memcpy(copy, pkt, len);
  f->q[f->qtail % TFX_QMAX] = copy;
  f->qlen[f->qtail % TFX_QMAX] = len;
  f->qtail++;
  return 0;
}

static int cb_on_syn(void *arg, t2s_tcp_conn *c) {
  tfx *f = arg;
  f->n_syn++;
  f->c = c;
  return f->syn_verdict;
}

static void cb_on_established(void *arg, t2s_tcp_conn *c) {
  tfx *f = arg;
  CU_ASSERT(c == f->c);
  f->n_est++;
}

static void cb_on_recv(void *arg, t2s_tcp_conn *c) {
  tfx *f = arg;
  CU_ASSERT(c == f->c);
  f->n_recv++;
}

static void cb_on_sendable(void *arg, t2s_tcp_conn *c) {
  tfx *f = arg;
  CU_ASSERT(c == f->c);
  f->n_sendable++;
}

static void cb_on_fin(void *arg, t2s_tcp_conn *c) {
  tfx *f = arg;
  CU_ASSERT(c == f->c);
  f->n_fin++;
}

static void cb_on_closed(void *arg, t2s_tcp_conn *c, int err) {
  tfx *f = arg;
  f->n_closed++;
  f->closed_err = err;
  if (c == f->c) {
    f->c = NULL;
  }
}

static const t2s_tcp_callbacks fixture_cbs = {
    .output = cb_output,
    .on_syn = cb_on_syn,
    .on_established = cb_on_established,
    .on_recv = cb_on_recv,
    .on_sendable = cb_on_sendable,
    .on_fin = cb_on_fin,
    .on_closed = cb_on_closed,
};

void tfx_setup(tfx *f, const t2s_tcp_config *cfg) {
  memset(f, 0, sizeof(*f));
  if (cfg) {
    f->cfg = *cfg;
  } else {
    t2s_tcp_config_default(&f->cfg);
    f->cfg.max_retries = 4;
  }
  t2s_rand_init(&f->rand, 42);
  CU_ASSERT_FATAL(t2s_addr_parse("198.18.0.1:40000", &f->peer) == 0);
  CU_ASSERT_FATAL(t2s_addr_parse("203.0.113.7:443", &f->local) == 0);
  CU_ASSERT_FATAL(t2s_tcp_stack_new(&f->st, &f->cfg, &fixture_cbs, f, &f->rand) == 0);
  f->now = 1000 * T2S_SECONDS;
  f->pseq = 1000;
  f->pwnd = 65535;
  f->ptsval = 5000;
}

void tfx_teardown(tfx *f) {
  tfx_drain(f);
  t2s_tcp_stack_del(f->st);
  f->st = NULL;
}

t2s_tcp_opts tfx_opts(uint16_t mss, int ws, bool sack, bool ts) {
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  if (mss) {
    o.has_mss = true;
    o.mss = mss;
  }
  if (ws >= 0) {
    o.has_wscale = true;
    o.wscale = (uint8_t)ws;
  }
  o.sack_permitted = sack;
  if (ts) {
    o.has_ts = true;
  }
  return o;
}

void tfx_clock_for_isn(tfx *f, uint32_t isn) {
  const t2s_tstamp tick = 4 * T2S_MICROSECONDS;
  uint32_t now_isn = t2s_tcp_isn(f->st, &f->local, &f->peer, f->now - f->now % tick);
  f->now = f->now - f->now % tick + (t2s_tstamp)(uint32_t)(isn - now_isn) * tick;
  CU_ASSERT_FATAL(t2s_tcp_isn(f->st, &f->local, &f->peer, f->now) == isn);
}

t2s_drop_reason feed_segment(tfx *f, uint8_t flags, uint32_t seq, uint32_t ack, uint16_t wnd,
                             const t2s_tcp_opts *opts, const void *data, size_t len) {
  t2s_tcp_opts o;
  if (opts) {
    o = *opts;
  } else {
    memset(&o, 0, sizeof(o));
    o.has_ts = f->pts;
  }
  if (o.has_ts && !opts) {
    o.ts_val = f->ptsval;
    o.ts_ecr = (flags & T2S_TCP_ACK) ? f->ptsecr : 0;
  } else if (o.has_ts && opts->ts_val == 0 && opts->ts_ecr == 0) {
    o.ts_val = f->ptsval;
    o.ts_ecr = (flags & T2S_TCP_ACK) ? f->ptsecr : 0;
  }
  uint8_t buf[10000];
  t2s_ssize n = t2s_build_tcp(buf, sizeof(buf), &f->peer, &f->local, seq, ack, flags, wnd, &o, data,
                              len, NULL, 0);
  CU_ASSERT_FATAL(n > 0);
  t2s_pkt pkt;
  CU_ASSERT_FATAL(t2s_pkt_parse(buf, (size_t)n, &pkt) == T2S_DROP_NONE);
  return t2s_tcp_input(f->st, &pkt, f->now);
}

t2s_drop_reason feed_data(tfx *f, const void *data, size_t len) {
  t2s_drop_reason r =
      feed_segment(f, T2S_TCP_ACK | T2S_TCP_PSH, f->pseq, f->pack, f->pwnd, NULL, data, len);
  f->pseq += (uint32_t)len;
  return r;
}

t2s_drop_reason feed_ack(tfx *f, uint32_t ack) {
  return feed_segment(f, T2S_TCP_ACK, f->pseq, ack, f->pwnd, NULL, NULL, 0);
}

t2s_drop_reason feed_fin(tfx *f) {
  t2s_drop_reason r =
      feed_segment(f, T2S_TCP_FIN | T2S_TCP_ACK, f->pseq, f->pack, f->pwnd, NULL, NULL, 0);
  f->pseq++;
  return r;
}

t2s_drop_reason feed_rst(tfx *f, uint32_t seq) {
  return feed_segment(f, T2S_TCP_RST, seq, 0, 0, NULL, NULL, 0);
}

bool expect_segment_at(tfx *f, int flags, int64_t seq, int64_t ack, tseg *out, const char *file,
                       unsigned line) {
  char msg[200];
  if (f->qhead == f->qtail) {
    snprintf(msg, sizeof(msg), "expected a segment with flags 0x%02x, got nothing", flags);
    fail_at(msg, file, line);
    return false;
  }
  uint8_t *p = f->q[f->qhead % TFX_QMAX];
  size_t len = f->qlen[f->qhead % TFX_QMAX];
  f->qhead++;
  t2s_pkt pkt;
  t2s_drop_reason r = t2s_pkt_parse(p, len, &pkt);
  tseg s;
  memset(&s, 0, offsetof(tseg, payload));
  bool ok = r == T2S_DROP_NONE && pkt.proto == T2S_IPPROTO_TCP;
  if (ok) {
    const t2s_tcp_hdr *th = &pkt.l4.tcp;
    s.flags = th->flags;
    s.seq = th->seq;
    s.ack = th->ack;
    s.wnd = th->wnd;
    s.opts = th->opts;
    s.src = pkt.src;
    s.dst = pkt.dst;
    s.len = T2S_MIN(pkt.payload_len, sizeof(s.payload));
    memcpy(s.payload, pkt.payload, s.len);
    ok = t2s_addr_eq(&s.src, &f->local) && t2s_addr_eq(&s.dst, &f->peer);
    if (!ok) {
      fail_at("segment with the wrong addresses", file, line);
    }
  } else {
    fail_at("captured packet does not parse as TCP", file, line);
  }
  free(p);
  if (!ok) {
    return false;
  }
  if (s.opts.has_ts) {
    f->ptsecr = s.opts.ts_val;
  }
  if ((s.flags & ~T2S_TCP_PSH) != (flags & ~T2S_TCP_PSH)) {
    snprintf(msg, sizeof(msg), "flags 0x%02x, expected 0x%02x (seq %u ack %u len %zu)", s.flags,
             flags, s.seq, s.ack, s.len);
    fail_at(msg, file, line);
    ok = false;
  }
  if (seq != ANY && s.seq != (uint32_t)seq) {
    snprintf(msg, sizeof(msg), "seq %u, expected %u", s.seq, (uint32_t)seq);
    fail_at(msg, file, line);
    ok = false;
  }
  if (ack != ANY && s.ack != (uint32_t)ack) {
    snprintf(msg, sizeof(msg), "ack %u, expected %u", s.ack, (uint32_t)ack);
    fail_at(msg, file, line);
    ok = false;
  }
  if (ok) {
    CU_assertImplementation(CU_TRUE, line, "expect_segment", file, "", CU_FALSE);
  }
  if (out) {
    memcpy(out, &s, offsetof(tseg, payload) + s.len);
  }
  return ok;
}

void expect_nothing_at(tfx *f, const char *file, unsigned line) {
  if (f->qhead != f->qtail) {
    char msg[160];
    t2s_pkt pkt;
    const uint8_t *p = f->q[f->qhead % TFX_QMAX];
    if (t2s_pkt_parse(p, f->qlen[f->qhead % TFX_QMAX], &pkt) == T2S_DROP_NONE) {
      snprintf(msg, sizeof(msg), "expected nothing, got flags 0x%02x seq %u ack %u len %zu",
               pkt.l4.tcp.flags, pkt.l4.tcp.seq, pkt.l4.tcp.ack, pkt.payload_len);
    } else {
      snprintf(msg, sizeof(msg), "expected nothing, got an unparsable packet");
    }
    fail_at(msg, file, line);
    tfx_drain(f);
    return;
  }
  CU_assertImplementation(CU_TRUE, line, "expect_nothing", file, "", CU_FALSE);
}

bool tfx_in_time_wait(const tfx *f) {
  return t2s_tcp_tw_lookup(f->st, &f->local, &f->peer) != NULL;
}

size_t tfx_drain(tfx *f) {
  size_t n = 0;
  while (f->qhead != f->qtail) {
    free(f->q[f->qhead % TFX_QMAX]);
    f->qhead++;
    n++;
  }
  return n;
}

size_t tfx_pending(const tfx *f) {
  return f->qtail - f->qhead;
}

void tick(tfx *f, t2s_tstamp dt) {
  f->now += dt;
  t2s_tcp_handle_expiry(f->st, f->now);
}

t2s_tstamp run_to_expiry(tfx *f) {
  t2s_tstamp e = t2s_tcp_get_expiry(f->st);
  CU_ASSERT_FATAL(e != T2S_TSTAMP_MAX);
  CU_ASSERT_FATAL(e >= f->now);
  f->now = e;
  t2s_tcp_handle_expiry(f->st, f->now);
  return f->now;
}

size_t tfx_read(tfx *f, uint8_t *buf, size_t cap) {
  const uint8_t *p1, *p2;
  size_t l1, l2;
  size_t n = t2s_tcp_recv_peek(f->c, &p1, &l1, &p2, &l2);
  n = T2S_MIN(n, cap);
  size_t a = T2S_MIN(l1, n);
  memcpy(buf, p1, a);
  memcpy(buf + a, p2, n - a);
  t2s_tcp_consume(f->c, n, f->now);
  return n;
}

t2s_tcp_conn *tcb_in_syn_pending(tfx *f, const t2s_tcp_opts *syn) {
  t2s_tcp_opts o = syn ? *syn : tfx_opts(1460, -1, false, false);
  if (o.has_ts) {
    f->pts = true;
    o.ts_val = f->ptsval;
    o.ts_ecr = 0;
  }
  CU_ASSERT_FATAL(feed_segment(f, T2S_TCP_SYN, f->pseq, 0, f->pwnd, &o, NULL, 0) == T2S_DROP_NONE);
  f->pseq++;
  CU_ASSERT_FATAL(f->c != NULL);
  CU_ASSERT_FATAL(t2s_tcp_conn_state(f->c) == T2S_TCP_SYN_PENDING);
  expect_nothing(f);
  return f->c;
}

t2s_tcp_conn *tcb_in_syn_received(tfx *f, const t2s_tcp_opts *syn, tseg *synack) {
  tcb_in_syn_pending(f, syn);
  CU_ASSERT_FATAL(t2s_tcp_accept(f->c, f->now) == 0);
  tseg s;
  CU_ASSERT_FATAL(expect_segment(f, T2S_TCP_SYN | T2S_TCP_ACK, ANY, f->pseq, &s));
  f->pack = s.seq + 1;
  if (synack) {
    memcpy(synack, &s, offsetof(tseg, payload));
  }
  CU_ASSERT_FATAL(t2s_tcp_conn_state(f->c) == T2S_TCP_SYN_RECEIVED);
  return f->c;
}

t2s_tcp_conn *tcb_in_established(tfx *f, const t2s_tcp_opts *syn, tseg *synack) {
  tcb_in_syn_received(f, syn, synack);
  f->now += 10 * T2S_MILLISECONDS;
  f->ptsval += 10;
  CU_ASSERT_FATAL(feed_ack(f, f->pack) == T2S_DROP_NONE);
  CU_ASSERT_FATAL(f->c != NULL);
  CU_ASSERT_FATAL(t2s_tcp_conn_state(f->c) == T2S_TCP_ESTABLISHED);
  CU_ASSERT_FATAL(f->n_est == 1);
  expect_nothing(f);
  return f->c;
}

t2s_tcp_conn *tcb_in_syn_sent(tfx *f, tseg *syn) {
  t2s_tcp_conn *c = NULL;
  CU_ASSERT_FATAL(t2s_tcp_connect(f->st, &f->local, &f->peer, f->now, &c) == 0);
  f->c = c;
  tseg s;
  CU_ASSERT_FATAL(expect_segment(f, T2S_TCP_SYN, ANY, 0, &s));
  f->pack = s.seq + 1;
  if (syn) {
    memcpy(syn, &s, offsetof(tseg, payload));
  }
  CU_ASSERT_FATAL(t2s_tcp_conn_state(c) == T2S_TCP_SYN_SENT);
  return c;
}
