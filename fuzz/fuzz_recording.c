/*
 * fuzz_recording.c: the flight recorder's reader and replay (src/rec, docs/recording.md) on
 * hostile files.
 *
 * Input: a recording. The strict reader must return a record, the end or one of its errors,
 * never read beyond the buffer, and stick to its error once it returned one. Whatever the
 * reader accepts, re-encoding the record gives back the bytes it was read from. The replay
 * then runs the whole file into a fresh engine and must end with one of its three verdicts;
 * a recording whose options ask for large buffers is capped first (the engine would honour
 * them, and the fuzzer's memory limit is not what is under test).
 *
 * An input that does not start with the magic drives a session instead (tests/engine_fake.c
 * around an engine, every call through the recorder): its bytes choose each step (a SYN, the
 * client's ACK with data, an upstream connect that succeeds or is refused, bytes, EOF, an
 * error or room from upstream, a datagram either way, a network event, time passing, a reset),
 * then the stop. The oracle: the recording replays identically, with no leak. A difference is
 * an input the recorder missed or a nondeterminism in the engine.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_fake.h"
#include "fuzz_harness.h"
#include "packet.h"
#include "rec.h"
#include "rec_format.h"
#include "rec_replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct membuf {
  uint8_t *data;
  size_t len, cap;
} membuf;

static int mem_write(void *arg, const uint8_t *d, size_t n) {
  membuf *m = arg;
  if (m->len + n > m->cap) {
    size_t cap = (m->len + n) * 2;
    uint8_t *p = realloc(m->data, cap);
    FZ_CHECK(p != NULL, "out of memory");
    m->data = p;
    m->cap = cap;
  }
  memcpy(m->data + m->len, d, n);
  m->len += n;
  return 0;
}

#define MS T2S_MILLISECONDS

static void session(const uint8_t *in_data, size_t in_len) {
  static engine_fake F;
  engine_fake_init(&F);
  engine_fake_set_route(&F, 2, "up1", "192.0.2.2", false);
  fz_in in;
  fz_in_init(&in, in_data, in_len);
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.seed = fz_u32(&in);
  cfg.proxy_kind = T2S_PROXY_SOCKS5;
  t2s_addr_parse("192.0.2.1:1080", &cfg.proxy);
  cfg.tcp_sndbuf = cfg.tcp_rcvbuf = 16384;
  membuf m = {0};
  t2s_rec_opts o;
  memset(&o, 0, sizeof(o));
  o.sink.write = mem_write;
  o.sink.arg = &m;
  t2s_rec *rec;
  FZ_CHECK(t2s_rec_new(&rec, &o, &cfg) == 0, "t2s_rec_new");
  t2s_device dev;
  t2s_upstream up;
  t2s_monitor mon;
  t2s_engine_hooks hooks;
  t2s_rec_wrap_device(rec, &F.dev, &dev);
  t2s_rec_wrap_upstream(rec, &F.up, &up);
  t2s_rec_wrap_monitor(rec, &F.mon, &mon);
  t2s_rec_wrap_hooks(rec, NULL, &hooks);
  t2s_engine *e;
  FZ_CHECK(t2s_engine_new(&e, &cfg, &dev, &up, &hooks) == 0, "t2s_engine_new");
  t2s_engine_set_monitor(e, &mon);
  t2s_tstamp now = MS;
  uint8_t pkt[2048];
  for (int step = 0; step < 400 && !fz_in_empty(&in); step++) {
    uint8_t op = fz_u8(&in);
    uint8_t arg = fz_u8(&in);
    t2s_addr cli, srv;
    t2s_addr_parse(arg & 1 ? "fd00:18::2" : "198.18.0.2", &cli);
    t2s_addr_parse(arg & 1 ? "[2001:db8::10]:443" : "203.0.113.10:80", &srv);
    cli.port = (uint16_t)(40000 + ((arg >> 1) & 7));
    size_t dlen = 0;
    const uint8_t *d = fz_bytes(&in, (size_t)(arg >> 4) * 16, &dlen);
    switch (op % 11) {
    case 0: { /* a SYN */
      t2s_tcp_opts to;
      memset(&to, 0, sizeof(to));
      to.has_mss = true;
      to.mss = 1400;
      t2s_ssize n = t2s_build_tcp(pkt, sizeof(pkt), &cli, &srv, fz_u32(&in), 0, T2S_TCP_SYN, 65535,
                                  &to, NULL, 0, NULL, 0);
      t2s_rec_input_ex(rec, e, pkt, (size_t)n, 0, now);
      break;
    }
    case 1: /* the client answers the newest SYN-ACK, with data */
      for (size_t i = F.npkts; i-- > 0;) {
        t2s_pkt sa;
        if (t2s_pkt_parse(F.pkts[i].data, F.pkts[i].len, &sa) == T2S_DROP_NONE &&
            sa.proto == T2S_IPPROTO_TCP &&
            (sa.l4.tcp.flags & (T2S_TCP_SYN | T2S_TCP_ACK)) == (T2S_TCP_SYN | T2S_TCP_ACK)) {
          t2s_ssize n =
              t2s_build_tcp(pkt, sizeof(pkt), &sa.dst, &sa.src, sa.l4.tcp.ack, sa.l4.tcp.seq + 1,
                            T2S_TCP_ACK | T2S_TCP_PSH, 65535, NULL, d, dlen, NULL, 0);
          t2s_rec_input_ex(rec, e, pkt, (size_t)n, 0, now);
          break;
        }
      }
      F.npkts = 0;
      break;
    case 2: /* an upstream connect completes or is refused */
      if (F.nstreams) {
        uint64_t id = F.streams[arg % F.nstreams].id;
        static const uint8_t method[] = {5, 0};
        static const uint8_t reply[] = {5, 0, 0, 1, 198, 51, 100, 200, 0x04, 0x38};
        bool ok = (op & 0x80) == 0;
        t2s_rec_stream_opened(rec, e, id, ok ? 0 : T2S_ERR_REFUSED, now);
        if (ok) {
          t2s_rec_stream_recv(rec, e, id, method, sizeof(method), now);
          t2s_rec_stream_recv(rec, e, id, reply, sizeof(reply), now);
        }
      }
      break;
    case 3: /* bytes from upstream */
      if (F.nstreams) {
        t2s_rec_stream_recv(rec, e, F.streams[arg % F.nstreams].id, d, dlen, now);
      }
      break;
    case 4: /* EOF, an error or room from upstream */
      if (F.nstreams) {
        uint64_t id = F.streams[arg % F.nstreams].id;
        if (op & 0x80) {
          t2s_rec_stream_eof(rec, e, id, now);
        } else if (op & 0x40) {
          t2s_rec_stream_error(rec, e, id, T2S_ERR_RESET, now);
        } else {
          t2s_rec_stream_writable(rec, e, id, now);
        }
      }
      break;
    case 5: { /* a datagram from a client */
      t2s_addr to = srv;
      to.port = op & 0x80 ? 53 : 5000;
      t2s_ssize n = t2s_build_udp(pkt, sizeof(pkt), &cli, &to, d, dlen);
      t2s_rec_input_ex(rec, e, pkt, (size_t)n, 0, now);
      break;
    }
    case 6: /* a datagram from the relay (the data as it comes), or its failure */
      if (F.ndgrams) {
        uint64_t id = F.dgrams[arg % F.ndgrams].id;
        if (op & 0x80) {
          t2s_rec_dgram_error(rec, e, id, T2S_ERR_UNREACHABLE, now);
        } else {
          t2s_rec_dgram_recv(rec, e, id, d, dlen, now);
        }
      }
      break;
    case 7: { /* the network changes */
      t2s_net_event ev;
      memset(&ev, 0, sizeof(ev));
      ev.type = (t2s_net_event_type)(1 + arg % T2S_NET_RESUMED);
      ev.family = T2S_AF_INET;
      ev.ifindex = 2 + (op >> 7);
      strcpy(ev.ifname, ev.ifindex == 2 ? "up1" : "up2");
      ev.slept_ns = ev.type == T2S_NET_RESUMED ? 30 * T2S_SECONDS : 0;
      engine_fake_set_route(&F, ev.ifindex, ev.ifname, "192.0.2.2", false);
      F.route_rv = op & 0x40 ? T2S_ERR_UNREACHABLE : 0;
      t2s_rec_network_event(rec, e, &ev, now);
      break;
    }
    case 8:
      if (op & 0x80) {
        t2s_rec_reset_all(rec, e, now);
      }
      break;
    default: /* time passes: the timers due run */
      now += (t2s_tstamp)arg * 10 * MS;
      for (int i = 0; i < 50 && t2s_engine_get_expiry(e) <= now; i++) {
        t2s_rec_handle_expiry(rec, e, T2S_MAX(t2s_engine_get_expiry(e), now - 1));
      }
      break;
    }
    now += MS;
  }
  t2s_rec_engine_del(rec, e, now);
  FZ_CHECK(t2s_rec_finish(rec) == 0, "t2s_rec_finish");
  t2s_rec_del(rec);
  static t2s_replay_result res;
  t2s_replay_status st = t2s_replay_run(m.data, m.len, NULL, &res);
  FZ_CHECK(st == T2S_REPLAY_IDENTICAL, "a recorded session does not replay identically: %s",
           res.msg);
  FZ_CHECK(res.engine_deleted && res.leaked_blocks == 0, "the replayed engine leaked %llu blocks",
           (unsigned long long)res.leaked_blocks);
  free(m.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < T2S_REC_MAGIC_LEN || memcmp(data, T2S_REC_MAGIC, 6) != 0) {
    session(data, size);
    return 0;
  }
  static t2s_rec_reader rd;
  int rv = t2s_rec_reader_init(&rd, data, size);
  FZ_CHECK(rv == 0 || rv == T2S_REC_ERR_TRUNCATED || rv == T2S_REC_ERR_MAGIC ||
               rv == T2S_REC_ERR_VERSION || rv == T2S_REC_ERR_CORRUPT,
           "reader_init returned %d", rv);
  if (rv != 0) {
    FZ_CHECK(t2s_rec_reader_next(&rd, &(t2s_rec_record){0}) == rv, "error not sticky");
    return 0;
  }
  t2s_rec_record r;
  static uint8_t again[T2S_REC_RECORD_HEAD + T2S_REC_MAX_BODY];
  for (;;) {
    size_t at = rd.pos;
    rv = t2s_rec_reader_next(&rd, &r);
    if (rv != 1) {
      FZ_CHECK(rv == 0 || rv == T2S_REC_ERR_TRUNCATED || rv == T2S_REC_ERR_CORRUPT,
               "reader_next returned %d", rv);
      FZ_CHECK(t2s_rec_reader_next(&rd, &r) == rv, "result not sticky");
      break;
    }
    FZ_CHECK(rd.pos <= size, "read beyond the input");
    size_t n = t2s_rec_encode_record(&r, again);
    FZ_CHECK(n == rd.pos - at && memcmp(again, data + at, n) == 0,
             "record at %zu does not re-encode to its bytes", at);
  }
  const t2s_engine_config *c = &rd.hdr.cfg;
  if (c->tcp_sndbuf > (1u << 20) || c->tcp_rcvbuf > (1u << 20) || c->max_tcp_flows > 4096 ||
      c->max_udp_sessions > 4096 || c->max_pending_syn > 4096 || c->memory_budget == 0 ||
      c->memory_budget > (256u << 20)) {
    return 0;
  }
  t2s_replay_result res;
  t2s_replay_status st = t2s_replay_run(data, size, NULL, &res);
  FZ_CHECK(st == T2S_REPLAY_IDENTICAL || st == T2S_REPLAY_DIFFERENT || st == T2S_REPLAY_BAD_FILE,
           "replay returned %d", (int)st);
  FZ_CHECK(st == T2S_REPLAY_IDENTICAL || res.msg[0] != 0, "a verdict without a message");
  return 0;
}
