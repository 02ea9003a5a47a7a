/* test_engine_batch.c: batching in the sans-I/O API (issue 13). Packets handed to the engine
 * with T2S_INPUT_MORE form a burst that ends with an input without it (or t2s_engine_flush):
 * within it each TCP flow that received data is written upstream once and answered with one
 * ACK, as GRO gives a kernel. Driven with the fake device and upstream (tests/engine_fake.h);
 * the upstream's stream_write is wrapped to count calls per stream. */
#include <string.h>

#include "engine.h"
#include "engine_fake.h"
#include "packet.h"
#include "tcp_internal.h"
#include "test_util.h"

#define NFLOWS 3
#define NSEGS 2 /* an ACK is still sent every second full-sized segment */
#define SEGLEN 1000

static engine_fake F;
static t2s_engine *E;
static const t2s_upstream_ops *fake_ops; /* F's own */
static t2s_upstream_ops up_ops;          /* F's ops with stream_write counted */
static t2s_upstream up;
static size_t writes[ENGINE_FAKE_MAX_STREAMS]; /* stream_write calls per stream index */

static t2s_ssize counted_write(void *self, uint64_t id, const uint8_t *data, size_t len) {
  for (size_t i = 0; i < F.nstreams; i++) {
    if (F.streams[i].id == id) {
      writes[i]++;
    }
  }
  return fake_ops->stream_write(self, id, data, len);
}

/* One client flow: its addresses and the next sequence numbers both ways. */
typedef struct flow {
  t2s_addr client, server;
  uint32_t seq, ack;
  size_t stream; /* index in F.streams */
} flow;

static flow flows[NFLOWS];

static void setup(void) {
  engine_fake_init(&F);
  engine_fake_set_route(&F, 2, "eth0", "192.0.2.10", false);
  fake_ops = F.up.ops;
  up_ops = *fake_ops;
  up_ops.stream_write = counted_write;
  up.ops = &up_ops;
  up.self = &F;
  memset(writes, 0, sizeof(writes));
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.proxy_kind = T2S_PROXY_SOCKS5;
  t2s_addr_parse("198.51.100.200:1080", &cfg.proxy);
  CU_ASSERT_EQUAL_FATAL(t2s_engine_new(&E, &cfg, &F.dev, &up, NULL), 0);
  t2s_engine_set_monitor(E, &F.mon);
}

static void teardown(void) {
  t2s_engine_del(E);
  E = NULL;
}

static void input(const flow *f, uint32_t seq, uint8_t flags, const uint8_t *data, size_t len,
                  unsigned inflags) {
  uint8_t buf[1600];
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  if (flags & T2S_TCP_SYN) {
    o.has_mss = true;
    o.mss = 1460;
  }
  t2s_ssize n = t2s_build_tcp(buf, sizeof(buf), &f->client, &f->server, seq, f->ack, flags, 65535,
                              &o, data, len, NULL, 0);
  CU_ASSERT_FATAL(n > 0);
  CU_ASSERT_EQUAL(t2s_engine_input_ex(E, buf, (size_t)n, inflags, 0), 0);
}

/* The last packet sent to the client of f since from (a TCP header), or false. */
static bool last_to(const flow *f, size_t from, t2s_pkt *p) {
  bool found = false;
  for (size_t i = from; i < F.npkts; i++) {
    t2s_pkt q;
    if (t2s_pkt_parse(F.pkts[i].data, F.pkts[i].len, &q) == T2S_DROP_NONE &&
        q.proto == T2S_IPPROTO_TCP && t2s_addr_eq(&q.dst, &f->client)) {
      *p = q;
      found = true;
    }
  }
  return found;
}

/* Packets sent to the client of f since from. */
static size_t count_to(const flow *f, size_t from) {
  size_t n = 0;
  for (size_t i = from; i < F.npkts; i++) {
    t2s_pkt q;
    if (t2s_pkt_parse(F.pkts[i].data, F.pkts[i].len, &q) == T2S_DROP_NONE &&
        q.proto == T2S_IPPROTO_TCP && t2s_addr_eq(&q.dst, &f->client)) {
      n++;
    }
  }
  return n;
}

/* Opens flow i through the SOCKS5 handshake and completes the client's side. */
static void open_flow(int i) {
  flow *f = &flows[i];
  memset(f, 0, sizeof(*f));
  t2s_addr_parse("198.18.0.2", &f->client);
  f->client.port = (uint16_t)(40000 + i);
  t2s_addr_parse("203.0.113.10:80", &f->server);
  f->seq = 1000u * (uint32_t)(i + 1);
  size_t mark = F.npkts;
  input(f, f->seq, T2S_TCP_SYN, NULL, 0, 0);
  f->seq++;
  CU_ASSERT_FATAL(F.nstreams > 0);
  f->stream = F.nstreams - 1;
  uint64_t id = F.streams[f->stream].id;
  static const uint8_t method[] = {5, 0};
  static const uint8_t reply[] = {5, 0, 0, 1, 198, 51, 100, 200, 0x04, 0x38};
  t2s_engine_stream_opened(E, id, 0, 0);
  t2s_engine_stream_recv(E, id, method, sizeof(method), 0);
  t2s_engine_stream_recv(E, id, reply, sizeof(reply), 0);
  t2s_pkt synack;
  memset(&synack, 0, sizeof(synack));
  CU_ASSERT_FATAL(last_to(f, mark, &synack));
  CU_ASSERT_EQUAL_FATAL(synack.l4.tcp.flags & (T2S_TCP_SYN | T2S_TCP_ACK),
                        T2S_TCP_SYN | T2S_TCP_ACK);
  f->ack = synack.l4.tcp.seq + 1;
  input(f, f->seq, T2S_TCP_ACK, NULL, 0, 0);
  writes[f->stream] = 0; /* the SOCKS5 request does not count */
}

/* NSEGS segments of every flow, interleaved as they would arrive, in one burst: each input but
 * the last carries T2S_INPUT_MORE. */
static void burst(void) {
  uint8_t data[SEGLEN];
  memset(data, 'x', sizeof(data));
  for (int k = 0; k < NSEGS; k++) {
    for (int i = 0; i < NFLOWS; i++) {
      bool last = k == NSEGS - 1 && i == NFLOWS - 1;
      input(&flows[i], flows[i].seq, T2S_TCP_ACK | T2S_TCP_PSH, data, sizeof(data),
            last ? 0 : T2S_INPUT_MORE);
      flows[i].seq += SEGLEN;
    }
  }
}

/* Each flow that received data in the burst gets one ACK, for everything it sent. Without
 * batching the first segments of a connection are each ACKed at once (quick-ack): NSEGS ACKs
 * per flow. (Within a burst an ACK still goes out every second full-sized segment.) */
static void test_one_ack_per_flow_per_burst(void) {
  setup();
  for (int i = 0; i < NFLOWS; i++) {
    open_flow(i);
  }
  size_t mark = F.npkts;
  burst();
  for (int i = 0; i < NFLOWS; i++) {
    CU_ASSERT_EQUAL(count_to(&flows[i], mark), 1);
    t2s_pkt ack;
    memset(&ack, 0, sizeof(ack));
    CU_ASSERT_FATAL(last_to(&flows[i], mark, &ack));
    CU_ASSERT_EQUAL(ack.l4.tcp.ack, flows[i].seq);
    CU_ASSERT_EQUAL(ack.payload_len, 0);
  }
  /* Inputs without the flag are bursts of one: each is answered on its own again. */
  mark = F.npkts;
  uint8_t data[SEGLEN];
  memset(data, 'y', sizeof(data));
  for (int k = 0; k < 2; k++) {
    input(&flows[0], flows[0].seq, T2S_TCP_ACK | T2S_TCP_PSH, data, sizeof(data), 0);
    flows[0].seq += SEGLEN;
  }
  CU_ASSERT_EQUAL(count_to(&flows[0], mark), 2);
  teardown();
}

/* Once quick-ack has ended, a flow inside a burst is ACKed every TCP_BATCH_ACK_SEGS full-sized
 * segments and at the burst's end: a burst of that many gets one ACK, two more segments a second
 * (a lone one waits for the delayed-ACK timer). During quick-ack (the first 16 segments) the bound
 * is 2 whatever TCP_BATCH_ACK_SEGS is, so a sender's slow start at the start is not slowed: a
 * burst of 4 gets 2 ACKs. The constant is 2 (docs/tcp.md); build with
 * -DTCP_BATCH_ACK_SEGS=16u to check the rule with a larger one (docs/benchmarks.md). */
#define BURST_ACK_SEGS ((int)TCP_BATCH_ACK_SEGS)
static void burst_of(flow *f, int n, char fill) {
  uint8_t data[SEGLEN];
  memset(data, fill, sizeof(data));
  for (int k = 0; k < n; k++) {
    input(f, f->seq, T2S_TCP_ACK | T2S_TCP_PSH, data, sizeof(data),
          k == n - 1 ? 0 : T2S_INPUT_MORE);
    f->seq += SEGLEN;
  }
}

static void test_ack_every_n_segments_after_quickack(void) {
  setup();
  open_flow(0);
  flow *f = &flows[0];
  size_t mark = F.npkts;
  burst_of(f, 4, 'q'); /* quick-ack: every second segment */
  CU_ASSERT_EQUAL(count_to(f, mark), 2);
  for (int k = 0; k < 12; k++) { /* the rest of the 16 quick-acks, one burst each */
    burst_of(f, 1, 'r');
  }
  mark = F.npkts;
  burst_of(f, BURST_ACK_SEGS, 's');
  CU_ASSERT_EQUAL(count_to(f, mark), 1);
  t2s_pkt ack;
  memset(&ack, 0, sizeof(ack));
  CU_ASSERT_FATAL(last_to(f, mark, &ack));
  CU_ASSERT_EQUAL(ack.l4.tcp.ack, f->seq);
  mark = F.npkts;
  burst_of(f, BURST_ACK_SEGS + 2, 't');
  CU_ASSERT_EQUAL(count_to(f, mark), 2);
  CU_ASSERT_FATAL(last_to(f, mark, &ack));
  CU_ASSERT_EQUAL(ack.l4.tcp.ack, f->seq);
  teardown();
}

/* Each flow writes everything the burst delivered upstream in one stream_write. */
static void test_one_upstream_write_per_flow_per_burst(void) {
  setup();
  for (int i = 0; i < NFLOWS; i++) {
    open_flow(i);
  }
  uint64_t before[NFLOWS];
  for (int i = 0; i < NFLOWS; i++) {
    before[i] = F.streams[flows[i].stream].wtotal;
  }
  burst();
  for (int i = 0; i < NFLOWS; i++) {
    CU_ASSERT_EQUAL(writes[flows[i].stream], 1);
    CU_ASSERT_EQUAL(F.streams[flows[i].stream].wtotal - before[i], (uint64_t)NSEGS * SEGLEN);
  }
  teardown();
}

/* An out-of-order segment inside a burst is answered at once (the sender counts duplicate
 * ACKs), and t2s_engine_flush ends a burst whose last input still said "more". */
static void test_out_of_order_at_once_and_flush(void) {
  setup();
  open_flow(0);
  flow *f = &flows[0];
  uint8_t data[SEGLEN];
  memset(data, 'z', sizeof(data));
  size_t mark = F.npkts;
  input(f, f->seq + SEGLEN, T2S_TCP_ACK, data, sizeof(data), T2S_INPUT_MORE);
  CU_ASSERT_EQUAL(count_to(f, mark), 1); /* the duplicate ACK went out inside the burst */
  input(f, f->seq, T2S_TCP_ACK, data, sizeof(data), T2S_INPUT_MORE);
  f->seq += 2 * SEGLEN;
  input(f, f->seq, T2S_TCP_ACK, data, sizeof(data), T2S_INPUT_MORE);
  f->seq += SEGLEN;
  size_t mid = F.npkts;
  CU_ASSERT_EQUAL(writes[f->stream], 0); /* held for the burst's end */
  t2s_engine_flush(E, 0);
  CU_ASSERT_EQUAL(writes[f->stream], 1);
  t2s_pkt ack;
  memset(&ack, 0, sizeof(ack));
  CU_ASSERT_FATAL(last_to(f, mark, &ack));
  CU_ASSERT_EQUAL(ack.l4.tcp.ack, f->seq);
  CU_ASSERT(count_to(f, mid) <= 1);
  teardown();
}

int t2s_test_register_engine_batch(void) {
  CU_pSuite s = CU_add_suite("engine_batch", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "one ACK per flow per burst", test_one_ack_per_flow_per_burst) ||
      !CU_add_test(s, "one upstream write per flow per burst",
                   test_one_upstream_write_per_flow_per_burst) ||
      !CU_add_test(s, "out-of-order ACKed at once; flush ends a burst",
                   test_out_of_order_at_once_and_flush) ||
      !CU_add_test(s, "after quick-ack, one ACK per TCP_BATCH_ACK_SEGS in a burst",
                   test_ack_every_n_segments_after_quickack)) {
    return -1;
  }
  return 0;
}
