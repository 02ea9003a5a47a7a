/*
 * test_recording.c: the flight recorder's format (round trips, the strict reader against
 * hostile input), the recorder around an engine, and the replay: identical, a flipped byte
 * named as the first difference, truncated and other-version files refused.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_fake.h"
#include "packet.h"
#include "rand.h"
#include "rec.h"
#include "rec_replay.h"
#include "test_util.h"

static const t2s_tstamp MS = T2S_MILLISECONDS;

/* ---------------- a memory sink ---------------- */

typedef struct membuf {
  uint8_t *data;
  size_t len, cap;
  int fail_after; /* > 0: the write that many calls later fails */
  size_t rewinds;
} membuf;

static int mem_write(void *arg, const uint8_t *d, size_t n) {
  membuf *m = arg;
  if (m->fail_after > 0 && --m->fail_after == 0) {
    return -1;
  }
  if (m->len + n > m->cap) {
    size_t cap = (m->len + n) * 2;
    uint8_t *p = realloc(m->data, cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    m->data = p;
    m->cap = cap;
  }
  memcpy(m->data + m->len, d, n);
  m->len += n;
  return 0;
}

static int mem_rewind(void *arg) {
  membuf *m = arg;
  m->len = 0;
  m->rewinds++;
  return 0;
}

/* ---------------- format round trips ---------------- */

static void test_record_roundtrip_every_kind(void) {
  for (int k = 1; k < T2S_REC_NOTE_MAX_; k++) {
    if (t2s_rec_kind_name(k) == NULL) {
      continue;
    }
    t2s_rec_record r;
    memset(&r, 0, sizeof(r));
    r.kind = (uint8_t)k;
    r.now = 123456789ull * (uint64_t)k;
    r.id = 77;
    r.rv = k == T2S_REC_RET || k == T2S_REC_STREAM_WRITE ? -5000000000ll : -304;
    r.u32a = 0xdeadbeef;
    r.u32b = 3;
    r.flag = 1;
    r.t1 = 42;
    t2s_addr_parse("[2001:db8::5]:443", &r.addr);
    r.egress.ifindex = 9;
    strcpy(r.egress.ifname, "eth9");
    t2s_addr_parse("192.0.2.9", &r.egress.src);
    r.egress.mark = 0x100;
    r.route.ifindex = 3;
    strcpy(r.route.ifname, "wlan0");
    r.route.local = true;
    r.nev.type = T2S_NET_RESUMED;
    r.nev.slept_ns = 5 * T2S_SECONDS;
    strcpy(r.nev.ifname, "up1");
    r.eev.type = T2S_EV_TCP_RESET;
    r.eev.flow_id = 12;
    r.eev.reason = T2S_ERR_RESET;
    r.eev.bytes_up = 1;
    r.eev.bytes_down = 2;
    static const uint8_t payload[] = "payload bytes";
    r.data = payload;
    r.datalen = sizeof(payload);
    r.fulllen = sizeof(payload); /* outputs: all of it is the prefix, and its hash */
    r.hash = t2s_rec_hash(payload, sizeof(payload));
    /* kinds whose body has its own layout get a valid one */
    uint8_t body[T2S_REC_PROXIES_MAX];
    if (k == T2S_REC_SET_PROXIES || k == T2S_REC_REPLACE_PROXIES) {
      t2s_engine_proxy px[2] = {{.username = "u", .password = "p"}, {.username = NULL}};
      t2s_addr_parse("192.0.2.1:1080", &px[0].addr);
      t2s_proxy_health_config hc;
      t2s_proxy_health_config_default(&hc);
      t2s_ssize bl = t2s_rec_proxies_encode(px, 2, k == T2S_REC_SET_PROXIES ? &hc : NULL, body);
      CU_ASSERT_FATAL(bl > 0);
      r.data = body;
      r.datalen = (size_t)bl;
    } else if (k == T2S_REC_SET_RUNTIME) {
      t2s_engine_config c;
      t2s_engine_config_default(&c);
      t2s_rec_runtime_encode(&c, body);
      r.data = body;
      r.datalen = T2S_REC_RUNTIME_LEN;
    } else if (k == T2S_REC_STREAM_MULTIPATH) {
      r.u32a = T2S_STREAM_MULTIPATH;
    }
    uint8_t buf[1024];
    size_t n = t2s_rec_encode_record(&r, buf);
    CU_ASSERT_EQUAL(n, t2s_rec_record_len(&r));

    /* a header, then the record */
    t2s_rec_header h;
    memset(&h, 0, sizeof(h));
    h.build = "test";
    h.options = "--x";
    t2s_engine_config_default(&h.cfg);
    uint8_t file[T2S_REC_MAX_HEADER / 8 + 1024];
    t2s_ssize hl = t2s_rec_encode_header(&h, file, sizeof(file));
    CU_ASSERT_FATAL(hl > 0);
    memcpy(file + hl, buf, n);
    static t2s_rec_reader rd;
    CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd, file, (size_t)hl + n), 0);
    t2s_rec_record o;
    CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_next(&rd, &o), 1);
    CU_ASSERT_EQUAL(o.kind, k);
    CU_ASSERT_EQUAL(o.now, r.now);
    /* re-encoding what was read gives the same bytes */
    uint8_t again[1024];
    CU_ASSERT_EQUAL_FATAL(t2s_rec_encode_record(&o, again), n);
    CU_ASSERT_EQUAL(memcmp(again, buf, n), 0);
    CU_ASSERT_EQUAL(t2s_rec_reader_next(&rd, &o), 0);
  }
}

static void test_header_roundtrip_config(void) {
  t2s_rec_header h;
  memset(&h, 0, sizeof(h));
  h.build = "tun2sock 0.1.0";
  h.options = "tun2sock --proxy socks5://u:p@192.0.2.1:1080";
  t2s_engine_config_default(&h.cfg);
  h.cfg.seed = 0x1122334455667788ull;
  h.cfg.proxy_kind = T2S_PROXY_SOCKS5;
  t2s_addr_parse("192.0.2.1:1080", &h.cfg.proxy);
  h.cfg.username = "user";
  h.cfg.password = "secret";
  h.cfg.tcp_sndbuf = 32768;
  h.cfg.on_network_change = T2S_NETCHANGE_RESET_ALL;
  t2s_addr_parse("198.51.100.53:53", &h.cfg.dns_hijack);
  h.cfg.egress_pinned = true;
  strcpy(h.cfg.egress.ifname, "up1");
  uint8_t buf[T2S_REC_MAX_HEADER];
  t2s_ssize n = t2s_rec_encode_header(&h, buf, sizeof(buf));
  CU_ASSERT_FATAL(n > 0);
  static t2s_rec_reader rd;
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd, buf, (size_t)n), 0);
  const t2s_engine_config *c = &rd.hdr.cfg;
  CU_ASSERT_EQUAL(c->seed, h.cfg.seed);
  CU_ASSERT_STRING_EQUAL(rd.hdr.build, h.build);
  CU_ASSERT_STRING_EQUAL(rd.hdr.options, h.options);
  CU_ASSERT_STRING_EQUAL(c->username, "user");
  CU_ASSERT_STRING_EQUAL(c->password, "secret");
  CU_ASSERT_EQUAL(c->tcp_sndbuf, 32768);
  CU_ASSERT_EQUAL(c->on_network_change, T2S_NETCHANGE_RESET_ALL);
  CU_ASSERT(t2s_addr_eq(&c->dns_hijack, &h.cfg.dns_hijack));
  CU_ASSERT(t2s_addr_eq(&c->proxy, &h.cfg.proxy));
  CU_ASSERT(c->egress_pinned);
  CU_ASSERT_STRING_EQUAL(c->egress.ifname, "up1");
  CU_ASSERT_EQUAL(c->memory_budget, h.cfg.memory_budget);
  CU_ASSERT_EQUAL(c->network_debounce, h.cfg.network_debounce);
  CU_ASSERT_EQUAL(t2s_rec_reader_next(&rd, &(t2s_rec_record){0}), 0);
  /* No password: NULL comes back as NULL. */
  h.cfg.username = h.cfg.password = NULL;
  n = t2s_rec_encode_header(&h, buf, sizeof(buf));
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd, buf, (size_t)n), 0);
  CU_ASSERT_PTR_NULL(rd.hdr.cfg.username);
  CU_ASSERT_PTR_NULL(rd.hdr.cfg.password);
}

/*
 * The format writes each field of t2s_engine_config by name (rec_format.c w_config). A field
 * added to the struct must be added to the format too (and the version bumped), or a replay
 * would silently run with its default: this size check fails first. (fake_dns, like mem, is a
 * borrowed pointer to the host's own state: not recorded.)
 */
static void test_config_fields_all_recorded(void) {
  if (sizeof(t2s_engine_config) != 248) {
    fprintf(stderr, "\nsizeof(t2s_engine_config) = %zu\n", sizeof(t2s_engine_config));
  }
  CU_ASSERT_EQUAL(sizeof(t2s_engine_config), 248);
}

/* ---------------- a recorded session ---------------- */

static engine_fake F;
static int finish_rv; /* t2s_rec_finish's result in the last record_session */

/*
 * An engine on the fake drivers (F) with a recorder made from o and cfg: the device, the
 * upstream connector, the monitor and the hooks all go through the recorder. *r holds the
 * wrapped ops, which the engine borrows: it must outlive the engine.
 */
typedef struct recorded {
  t2s_rec *rec;
  t2s_engine *e;
  t2s_device dev;
  t2s_upstream up;
  t2s_monitor mon;
  t2s_engine_hooks hooks;
} recorded;

static void recorded_start(recorded *r, const t2s_rec_opts *o, const t2s_engine_config *cfg) {
  CU_ASSERT_EQUAL_FATAL(t2s_rec_new(&r->rec, o, cfg), 0);
  t2s_rec_wrap_device(r->rec, &F.dev, &r->dev);
  t2s_rec_wrap_upstream(r->rec, &F.up, &r->up);
  t2s_rec_wrap_monitor(r->rec, &F.mon, &r->mon);
  t2s_rec_wrap_hooks(r->rec, NULL, &r->hooks);
  CU_ASSERT_EQUAL_FATAL(t2s_engine_new(&r->e, cfg, &r->dev, &r->up, &r->hooks), 0);
  t2s_engine_set_monitor(r->e, &r->mon);
}

static void build_syn(uint8_t *buf, size_t *len, uint16_t sport) {
  t2s_addr src, dst;
  t2s_addr_parse("198.18.0.2", &src);
  t2s_addr_parse("203.0.113.10:80", &dst);
  src.port = sport;
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  o.has_mss = true;
  o.mss = 1460;
  t2s_ssize n = t2s_build_tcp(buf, 128, &src, &dst, 1000u * sport, 0, T2S_TCP_SYN, 65535, &o, NULL,
                              0, NULL, 0);
  CU_ASSERT_FATAL(n > 0);
  *len = (size_t)n;
}

/* The last packet the engine sent to the client. */
static bool last_pkt(t2s_pkt *p) {
  if (F.npkts == 0) {
    return false;
  }
  return t2s_pkt_parse(F.pkts[F.npkts - 1].data, F.pkts[F.npkts - 1].len, p) == T2S_DROP_NONE;
}

/*
 * Records a session into m (stop mode, max_bytes as given): two TCP flows through a SOCKS5
 * proxy with data both ways, a DNS query over UDP, a network change with its route query,
 * timers, a reset of every flow and the engine's deletion. Returns the recorder's stats.
 */
static t2s_rec_stats record_session(membuf *m, t2s_rec_mode mode, uint64_t max_bytes) {
  engine_fake_init(&F);
  engine_fake_set_route(&F, 2, "up1", "192.0.2.2", false);
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.seed = 4242;
  cfg.proxy_kind = T2S_PROXY_SOCKS5;
  t2s_addr_parse("192.0.2.1:1080", &cfg.proxy);
  t2s_rec_opts o;
  memset(&o, 0, sizeof(o));
  o.sink.write = mem_write;
  o.sink.rewind = mem_rewind;
  o.sink.arg = m;
  o.mode = mode;
  o.max_bytes = max_bytes;
  o.build = "test_recording";
  o.options = "record_session";
  recorded r;
  recorded_start(&r, &o, &cfg);
  t2s_rec *rec = r.rec;
  t2s_engine *e = r.e;

  t2s_tstamp now = 10 * MS;
  for (uint16_t sport = 40000; sport < 40002; sport++) {
    uint8_t pkt[2048];
    size_t len;
    build_syn(pkt, &len, sport);
    t2s_rec_input_ex(rec, e, pkt, len, 0, now);
    CU_ASSERT_FATAL(F.nstreams > 0);
    uint64_t id = F.streams[F.nstreams - 1].id;
    static const uint8_t method[] = {5, 0};
    static const uint8_t reply[] = {5, 0, 0, 1, 198, 51, 100, 200, 0x04, 0x38};
    now += MS;
    t2s_rec_stream_opened(rec, e, id, 0, now);
    t2s_rec_stream_recv(rec, e, id, method, sizeof(method), now);
    t2s_rec_stream_recv(rec, e, id, reply, sizeof(reply), now);
    t2s_pkt synack;
    CU_ASSERT_FATAL(last_pkt(&synack));
    /* the client's ACK with a request */
    static const uint8_t req[] = "GET / HTTP/1.0\r\n\r\n";
    t2s_ssize n = t2s_build_tcp(pkt, sizeof(pkt), &synack.dst, &synack.src, 1000u * sport + 1,
                                synack.l4.tcp.seq + 1, T2S_TCP_ACK | T2S_TCP_PSH, 65535, NULL, req,
                                sizeof(req) - 1, NULL, 0);
    now += MS;
    t2s_rec_input_ex(rec, e, pkt, (size_t)n, 0, now);
    /* the answer from upstream, then EOF */
    uint8_t body[3000];
    for (size_t i = 0; i < sizeof(body); i++) {
      body[i] = (uint8_t)(i * 7 + sport);
    }
    now += MS;
    t2s_rec_stream_recv(rec, e, id, body, sizeof(body), now);
    t2s_rec_stream_eof(rec, e, id, now);
    for (int i = 0; i < 20 && t2s_engine_get_expiry(e) <= now + 300 * MS; i++) {
      now = T2S_MAX(now, t2s_engine_get_expiry(e));
      t2s_rec_handle_expiry(rec, e, now);
    }
  }
  /* a DNS query over UDP (through UDP ASSOCIATE: a control stream first) */
  {
    t2s_addr s, d;
    t2s_addr_parse("198.18.0.2:5353", &s);
    t2s_addr_parse("198.51.100.53:53", &d);
    static const uint8_t q[] = {0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    uint8_t pkt[256];
    t2s_ssize n = t2s_build_udp(pkt, sizeof(pkt), &s, &d, q, sizeof(q));
    now += MS;
    t2s_rec_input_ex(rec, e, pkt, (size_t)n, 0, now);
  }
  /* a network change: link down, then the debounce ends with a route query */
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = T2S_NET_DEFAULT_ROUTE_CHANGED;
  ev.family = T2S_AF_INET;
  ev.ifindex = 3;
  strcpy(ev.ifname, "up2");
  now += MS;
  t2s_rec_network_event(rec, e, &ev, now);
  engine_fake_set_route(&F, 3, "up2", "198.51.100.2", false);
  for (int i = 0; i < 20 && t2s_engine_get_expiry(e) <= now + 2 * T2S_SECONDS; i++) {
    now = T2S_MAX(now, t2s_engine_get_expiry(e));
    t2s_rec_handle_expiry(rec, e, now);
  }
  now += MS;
  t2s_rec_reset_all(rec, e, now);
  t2s_rec_note(rec, now, "before the stop");
  t2s_rec_engine_del(rec, e, now + MS);
  finish_rv = t2s_rec_finish(rec);
  t2s_rec_stats st;
  t2s_rec_get_stats(rec, &st);
  t2s_rec_del(rec);
  return st;
}

static bool has_kind(const membuf *m, int kind) {
  static t2s_rec_reader rd;
  if (t2s_rec_reader_init(&rd, m->data, m->len) != 0) {
    return false;
  }
  t2s_rec_record r;
  while (t2s_rec_reader_next(&rd, &r) == 1) {
    if (r.kind == kind) {
      return true;
    }
  }
  return false;
}

/* Every kind in kinds[] has at least one record in the file; a missing one is named. */
static void assert_has_kinds(const membuf *m, const int *kinds, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!has_kind(m, kinds[i])) {
      fprintf(stderr, "\nmissing record kind %s\n", t2s_rec_kind_name(kinds[i]));
      CU_FAIL("a record kind is missing");
    }
  }
}

/* The file replays identically (the verdict's message printed when not). */
static void assert_replays_identical(const membuf *m, t2s_replay_result *res) {
  CU_ASSERT_EQUAL(t2s_replay_run(m->data, m->len, NULL, res), T2S_REPLAY_IDENTICAL);
  if (res->status != T2S_REPLAY_IDENTICAL) {
    fprintf(stderr, "\n%s\n", res->msg);
  }
}

/* The offset of the body of the n-th record of kind (0-based), or 0. */
static size_t find_record(const membuf *m, int kind, int nth) {
  static t2s_rec_reader rd;
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd, m->data, m->len), 0);
  t2s_rec_record r;
  size_t at = rd.pos;
  while (t2s_rec_reader_next(&rd, &r) == 1) {
    if (r.kind == kind && nth-- == 0) {
      return at + T2S_REC_RECORD_HEAD;
    }
    at = rd.pos;
  }
  return 0;
}

static void test_session_replays_identical(void) {
  membuf m = {0};
  t2s_rec_stats st = record_session(&m, T2S_REC_MODE_STOP, 0);
  CU_ASSERT_EQUAL(st.error, 0);
  CU_ASSERT_EQUAL(finish_rv, 0);
  CU_ASSERT_EQUAL(st.bytes, m.len);
  /* every kind of the session is in the file */
  int kinds[] = {T2S_REC_DEV_IN,       T2S_REC_EXPIRY,       T2S_REC_STREAM_OPENED,
                 T2S_REC_STREAM_RECV,  T2S_REC_STREAM_EOF,   T2S_REC_NET_EVENT,
                 T2S_REC_RESET_ALL,    T2S_REC_ENGINE_DEL,   T2S_REC_RET,
                 T2S_REC_TIMER,        T2S_REC_DEV_SEND,     T2S_REC_STREAM_OPEN,
                 T2S_REC_STREAM_WRITE, T2S_REC_STREAM_CLOSE, T2S_REC_ROUTE_GET,
                 T2S_REC_EVENT,        T2S_REC_NOTE,         T2S_REC_END};
  assert_has_kinds(&m, kinds, T2S_ARRAY_LEN(kinds));
  t2s_replay_result res;
  assert_replays_identical(&m, &res);
  CU_ASSERT(res.ended);
  CU_ASSERT(res.engine_deleted);
  CU_ASSERT_EQUAL(res.leaked_blocks, 0);
  CU_ASSERT_EQUAL(res.seed, 4242);
  CU_ASSERT(res.inputs > 10);
  CU_ASSERT(res.outputs > 20);
  /* twice: the same */
  t2s_replay_result res2;
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, NULL, &res2), T2S_REPLAY_IDENTICAL);
  CU_ASSERT_EQUAL(res.outputs, res2.outputs);
  /* recording again gives the same bytes: nothing outside the inputs and the seed counts */
  membuf m2 = {0};
  record_session(&m2, T2S_REC_MODE_STOP, 0);
  CU_ASSERT_EQUAL(m.len, m2.len);
  CU_ASSERT(m.len == m2.len && memcmp(m.data, m2.data, m.len) == 0);
  free(m2.data);
  free(m.data);
}

static void test_flipped_input_byte_named(void) {
  membuf m = {0};
  record_session(&m, T2S_REC_MODE_STOP, 0);
  /* the 2nd packet from the client (the request with data): flip a payload byte */
  size_t off = find_record(&m, T2S_REC_DEV_IN, 1);
  CU_ASSERT_FATAL(off != 0);
  m.data[off + 4 + 20 + 20 + 3] ^= 0x20; /* flags, IPv4, TCP, "GET" */
  t2s_replay_result res;
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, NULL, &res), T2S_REPLAY_DIFFERENT);
  /* the difference is found while replaying that packet (record #N dev_in) */
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "dev_in"));
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "first difference at t=0.012000000 s"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(res.msg, "input record #17 dev_in (TCP 198.18.0.2:40000 > 203.0.113.10:80 len 58)"));
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "replayed drop flow 0"));
  free(m.data);
}

static void test_flipped_output_byte_named(void) {
  membuf m = {0};
  record_session(&m, T2S_REC_MODE_STOP, 0);
  size_t off = find_record(&m, T2S_REC_DEV_SEND, 2);
  CU_ASSERT_FATAL(off != 0);
  m.data[off + 16 + 30] ^= 1; /* rv, length, hash, then inside the TCP header */
  t2s_replay_result res;
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, NULL, &res), T2S_REPLAY_DIFFERENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "dev_send flow 0: recorded TCP 203.0.113.10:80 > "));
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "offset 30"));
  /* a stream_write's bytes */
  free(m.data);
  m = (membuf){0};
  record_session(&m, T2S_REC_MODE_STOP, 0);
  off = find_record(&m, T2S_REC_STREAM_WRITE, 0);
  CU_ASSERT_FATAL(off != 0);
  m.data[off + 28] ^= 0xff; /* id, rv, length, hash, then the SOCKS5 greeting's version */
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, NULL, &res), T2S_REPLAY_DIFFERENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "stream_write flow"));
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "offset 0: recorded 0xfa, replayed 0x05"));
  free(m.data);
}

/* Outputs keep their first 64 bytes and a hash of all: a change past the prefix is named by
 * the hash (a long packet: the 3000-byte answer goes out in segments over 64 bytes). */
static void test_output_hash_catches_payload(void) {
  membuf m = {0};
  record_session(&m, T2S_REC_MODE_STOP, 0);
  static t2s_rec_reader rd;
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd, m.data, m.len), 0);
  t2s_rec_record r;
  size_t at = rd.pos, found = 0;
  while (t2s_rec_reader_next(&rd, &r) == 1) {
    if (r.kind == T2S_REC_DEV_SEND && r.fulllen > 1000) {
      CU_ASSERT_EQUAL(r.datalen, T2S_REC_OUTPUT_PREFIX);
      found = at + T2S_REC_RECORD_HEAD;
      break;
    }
    at = rd.pos;
  }
  CU_ASSERT_FATAL(found != 0);
  m.data[found + 8] ^= 0x10; /* rv, length, then the hash */
  t2s_replay_result res;
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, NULL, &res), T2S_REPLAY_DIFFERENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "the first 64 bytes are the same, the rest differs"));
  /* the hash: every byte counts, and the length */
  uint8_t a[100] = {0};
  uint64_t h = t2s_rec_hash(a, sizeof(a));
  a[99] = 1;
  CU_ASSERT_NOT_EQUAL(t2s_rec_hash(a, sizeof(a)), h);
  a[99] = 0;
  CU_ASSERT_NOT_EQUAL(t2s_rec_hash(a, sizeof(a) - 1), h);
  free(m.data);
}

static void test_changed_return_value_differs(void) {
  membuf m = {0};
  record_session(&m, T2S_REC_MODE_STOP, 0);
  /* the engine's expiry as recorded moved by 1 ns */
  size_t off = find_record(&m, T2S_REC_TIMER, 0);
  CU_ASSERT_FATAL(off != 0);
  m.data[off] ^= 1;
  t2s_replay_result res;
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, NULL, &res), T2S_REPLAY_DIFFERENT);
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "engine expiry"));
  free(m.data);
}

static void test_truncated_and_other_version_refused(void) {
  membuf m = {0};
  record_session(&m, T2S_REC_MODE_STOP, 0);
  t2s_replay_result res;
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len - 7, NULL, &res), T2S_REPLAY_BAD_FILE);
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "truncated"));
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, 30, NULL, &res), T2S_REPLAY_BAD_FILE);
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "truncated"));
  m.data[T2S_REC_MAGIC_LEN] = 2; /* version 2 */
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, NULL, &res), T2S_REPLAY_BAD_FILE);
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "another format version"));
  m.data[0] = 'X';
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, NULL, &res), T2S_REPLAY_BAD_FILE);
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "bad magic"));
  free(m.data);
}

static void test_until_stops_early(void) {
  membuf m = {0};
  record_session(&m, T2S_REC_MODE_STOP, 0);
  t2s_replay_opts o = {.until = 12 * MS};
  t2s_replay_result res;
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, &o, &res), T2S_REPLAY_IDENTICAL);
  CU_ASSERT(res.until_reached);
  CU_ASSERT(res.last_now <= 12 * MS);
  CU_ASSERT(!res.engine_deleted);
  free(m.data);
}

static void test_record_max_stop_and_ring(void) {
  membuf full = {0};
  record_session(&full, T2S_REC_MODE_STOP, 0);
  /* stop mode: the file ends with END(max) within the bound and replays up to there */
  membuf m = {0};
  t2s_rec_stats st = record_session(&m, T2S_REC_MODE_STOP, 4000);
  CU_ASSERT(st.stopped);
  CU_ASSERT(m.len <= 4000);
  CU_ASSERT(m.len > 1000);
  CU_ASSERT(m.len < full.len && memcmp(m.data, full.data, m.len - 17) == 0);
  t2s_replay_result res;
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, NULL, &res), T2S_REPLAY_IDENTICAL);
  CU_ASSERT(res.ended);
  CU_ASSERT_EQUAL(res.end_reason, T2S_REC_END_MAX);
  free(m.data);
  /* a ring large enough: the same bytes as the file */
  m = (membuf){0};
  st = record_session(&m, T2S_REC_MODE_RING, full.len + 100);
  CU_ASSERT_EQUAL(st.dropped, 0);
  CU_ASSERT(m.rewinds >= 1);
  CU_ASSERT(m.len == full.len && memcmp(m.data, full.data, full.len) == 0);
  free(m.data);
  /* a small ring: the oldest records dropped, the file marked and refused by the replay */
  m = (membuf){0};
  st = record_session(&m, T2S_REC_MODE_RING, 5000);
  CU_ASSERT(st.dropped > 0);
  CU_ASSERT(m.len <= 5000);
  static t2s_rec_reader rd;
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd, m.data, m.len), 0);
  CU_ASSERT(rd.hdr.flags & T2S_REC_FLAG_RING_CUT);
  t2s_rec_record r;
  int rv;
  while ((rv = t2s_rec_reader_next(&rd, &r)) == 1) {
  }
  CU_ASSERT_EQUAL(rv, 0); /* whole records only */
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, NULL, &res), T2S_REPLAY_BAD_FILE);
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "ring"));
  free(m.data);
  free(full.data);
}

/*
 * Records a session with a fake-IP DNS table that a state file had filled (one name already
 * there): an A query answered from the table, a TCP flow to the loaded name's address carried
 * by name (CONNECT ATYP 3), the engine's deletion. table_names: names resolved into the table
 * before the recording starts (the state the recording must carry).
 */
static void record_fake_dns_session(membuf *m, const char *const *table_names, size_t nnames) {
  engine_fake_init(&F);
  engine_fake_set_route(&F, 2, "up1", "192.0.2.2", false);
  t2s_fakedns_config fc;
  t2s_fakedns_config_default(&fc);
  fc.size = 64;
  fc.seed = 99;
  fc.exclude[fc.nexclude++] = "lan.example";
  t2s_fakedns *table;
  CU_ASSERT_FATAL(t2s_fakedns_new(&table, &fc) == 0);
  for (size_t i = 0; i < nnames; i++) {
    t2s_addr a;
    CU_ASSERT_FATAL(t2s_fakedns_resolve(table, table_names[i], T2S_AF_INET, &a) == 0);
  }
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.seed = 77;
  cfg.proxy_kind = T2S_PROXY_SOCKS5;
  t2s_addr_parse("192.0.2.1:1080", &cfg.proxy);
  cfg.fake_dns = table;
  t2s_rec_opts o;
  memset(&o, 0, sizeof(o));
  o.sink.write = mem_write;
  o.sink.arg = m;
  o.build = "test_recording";
  o.options = "fake_dns_session";
  recorded r;
  recorded_start(&r, &o, &cfg);
  t2s_rec *rec = r.rec;
  t2s_engine *e = r.e;
  t2s_tstamp now = 5 * MS;
  /* an A query for a new name: answered at once from the table */
  uint8_t q[64] = {0x07, 0x07, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  static const uint8_t qname[] = "\x03new\x07"
                                 "example\x00\x00\x01\x00\x01";
  memcpy(q + 12, qname, sizeof(qname) - 1);
  t2s_addr s, d;
  t2s_addr_parse("198.18.0.2:5353", &s);
  t2s_addr_parse("198.18.0.53:53", &d);
  uint8_t pkt[256];
  t2s_ssize n = t2s_build_udp(pkt, sizeof(pkt), &s, &d, q, 12 + sizeof(qname) - 1);
  CU_ASSERT_FATAL(n > 0);
  t2s_rec_input_ex(rec, e, pkt, (size_t)n, 0, now);
  /* a flow to the first pool address: the name loaded before the recording */
  t2s_addr src, dst;
  t2s_addr_parse("198.18.0.2:40000", &src);
  t2s_addr_parse("198.19.0.1:443", &dst);
  t2s_tcp_opts to;
  memset(&to, 0, sizeof(to));
  n = t2s_build_tcp(pkt, sizeof(pkt), &src, &dst, 1000, 0, T2S_TCP_SYN, 65535, &to, NULL, 0, NULL,
                    0);
  now += MS;
  t2s_rec_input_ex(rec, e, pkt, (size_t)n, 0, now);
  if (F.nstreams > 0) {
    static const uint8_t method[] = {5, 0};
    now += MS;
    t2s_rec_stream_opened(rec, e, F.streams[0].id, 0, now);
    t2s_rec_stream_recv(rec, e, F.streams[0].id, method, sizeof(method), now);
  }
  t2s_rec_engine_del(rec, e, now + MS);
  CU_ASSERT_EQUAL(t2s_rec_finish(rec), 0);
  t2s_rec_del(rec);
  t2s_fakedns_del(table);
}

/* A recording made with a fake-IP table carries the table's configuration and its entries at
 * the start, and replays identically: the same pool address for a new name, the same name in
 * the CONNECT for an address the state held. A replay whose table lacked that entry would
 * differ (checked by recording without it and splicing its header onto the other's records). */
static void test_fake_dns_session_replays_identical(void) {
  static const char *const names[] = {"loaded.example", "other.example"};
  membuf m = {0};
  record_fake_dns_session(&m, names, 2);
  static t2s_rec_reader rd;
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd, m.data, m.len), 0);
  CU_ASSERT(rd.hdr.flags & T2S_REC_FLAG_FAKE_DNS);
  CU_ASSERT(rd.hdr.flags & T2S_REC_FLAG_FAKE_DNS_TABLE);
  CU_ASSERT_PTR_NULL(rd.hdr.cfg.fake_dns);
  CU_ASSERT_PTR_NOT_NULL_FATAL(rd.hdr.fakedns);
  CU_ASSERT_EQUAL(rd.hdr.fakedns->size, 64);
  CU_ASSERT_EQUAL(rd.hdr.fakedns->seed, 99);
  CU_ASSERT_EQUAL_FATAL(rd.hdr.fakedns->nexclude, 1);
  CU_ASSERT_STRING_EQUAL(rd.hdr.fakedns->exclude[0], "lan.example");
  CU_ASSERT_EQUAL(rd.hdr.fakedns->pool4_prefix, 16);
  t2s_rec_record r;
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_next(&rd, &r), 1);
  CU_ASSERT_EQUAL(r.kind, T2S_REC_FAKEDNS_STATE);
  CU_ASSERT_PTR_NOT_NULL(memmem(r.data, r.datalen, "loaded.example", 14));
  CU_ASSERT(has_kind(&m, T2S_REC_STREAM_WRITE));
  t2s_replay_result res;
  assert_replays_identical(&m, &res);
  CU_ASSERT(res.engine_deleted);
  CU_ASSERT_EQUAL(res.leaked_blocks, 0);

  /* The same session's state without the loaded names: the replay gives the pool addresses
   * to other names, so the answer and the CONNECT differ. */
  membuf m2 = {0};
  record_fake_dns_session(&m2, NULL, 0);
  static t2s_rec_reader rd2;
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd2, m2.data, m2.len), 0);
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_next(&rd2, &r), 1);
  size_t head2 = rd2.pos; /* m2's header and state records */
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd, m.data, m.len), 0);
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_next(&rd, &r), 1);
  size_t head = rd.pos;
  membuf sp = {0};
  mem_write(&sp, m2.data, head2);
  mem_write(&sp, m.data + head, m.len - head);
  CU_ASSERT_EQUAL(t2s_replay_run(sp.data, sp.len, NULL, &res), T2S_REPLAY_DIFFERENT);

  /* A file marked FAKE_DNS without the table (an older build's) is refused, exit 2. */
  t2s_rec_header h;
  memset(&h, 0, sizeof(h));
  h.version = T2S_REC_VERSION;
  h.flags = T2S_REC_FLAG_FAKE_DNS;
  h.build = "old";
  h.options = "";
  t2s_engine_config_default(&h.cfg);
  uint8_t hdr[T2S_REC_MAX_HEADER];
  t2s_ssize hl = t2s_rec_encode_header(&h, hdr, sizeof(hdr));
  CU_ASSERT_FATAL(hl > 0);
  CU_ASSERT_EQUAL(t2s_replay_run(hdr, (size_t)hl, NULL, &res), T2S_REPLAY_BAD_FILE);
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "--fake-dns"));
  /* The table flag without its header field, and the field without the flag: corrupt. */
  h.flags = T2S_REC_FLAG_FAKE_DNS | T2S_REC_FLAG_FAKE_DNS_TABLE;
  hl = t2s_rec_encode_header(&h, hdr, sizeof(hdr));
  CU_ASSERT_EQUAL(t2s_rec_reader_init(&rd, hdr, (size_t)hl), T2S_REC_ERR_CORRUPT);
  t2s_fakedns_config fc;
  t2s_fakedns_config_default(&fc);
  h.flags = 0;
  h.fakedns = &fc;
  hl = t2s_rec_encode_header(&h, hdr, sizeof(hdr));
  CU_ASSERT_EQUAL(t2s_rec_reader_init(&rd, hdr, (size_t)hl), T2S_REC_ERR_CORRUPT);
  /* The table's header field but no state record after it: refused, not crashed. */
  h.flags = T2S_REC_FLAG_FAKE_DNS | T2S_REC_FLAG_FAKE_DNS_TABLE;
  hl = t2s_rec_encode_header(&h, hdr, sizeof(hdr));
  CU_ASSERT_EQUAL(t2s_replay_run(hdr, (size_t)hl, NULL, &res), T2S_REPLAY_BAD_FILE);
  CU_ASSERT_PTR_NOT_NULL(strstr(res.msg, "fake-IP table"));
  free(sp.data);
  free(m2.data);
  free(m.data);
}

/*
 * The entry points beyond packets and completions: several proxies (with a probe result and a
 * new address for one of them), a reload (new proxies, new runtime settings) and a multipath
 * report. Recorded and replayed identically; the same file without its set_proxies record
 * replays differently (the engine then has one proxy without health).
 */
static void record_proxies_session(membuf *m, bool with_set_proxies) {
  engine_fake_init(&F);
  engine_fake_set_route(&F, 2, "up1", "192.0.2.2", false);
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.seed = 5;
  cfg.proxy_kind = T2S_PROXY_SOCKS5;
  t2s_addr_parse("192.0.2.1:1080", &cfg.proxy);
  t2s_rec_opts o;
  memset(&o, 0, sizeof(o));
  o.sink.write = mem_write;
  o.sink.arg = m;
  recorded r;
  recorded_start(&r, &o, &cfg);
  t2s_rec *rec = r.rec;
  t2s_engine *e = r.e;
  t2s_engine_proxy px[2] = {{.username = "alice", .password = "secret"}, {.username = NULL}};
  t2s_addr_parse("192.0.2.1:1080", &px[0].addr);
  /* proxy 1 is a name not resolved yet: family 0 until proxy_set_addr */
  t2s_tstamp now = MS;
  if (with_set_proxies) {
    CU_ASSERT_EQUAL(t2s_rec_set_proxies(rec, e, px, 2, NULL, now), 0);
  }
  t2s_addr a1;
  t2s_addr_parse("198.51.100.7:1080", &a1);
  now += MS;
  t2s_rec_proxy_set_addr(rec, e, 1, &a1, now);
  /* three flows whose connects fail: proxy 0 goes suspect, then down; probes are asked */
  for (uint16_t sport = 41000; sport < 41004; sport++) {
    uint8_t pkt[256];
    size_t len;
    build_syn(pkt, &len, sport);
    now += MS;
    t2s_rec_input_ex(rec, e, pkt, len, 0, now);
    if (F.nstreams > 0) {
      now += MS;
      t2s_rec_stream_opened(rec, e, F.streams[F.nstreams - 1].id, T2S_ERR_REFUSED, now);
    }
  }
  for (int i = 0; i < 20 && t2s_engine_get_expiry(e) <= now + 3 * T2S_SECONDS; i++) {
    now = T2S_MAX(now, t2s_engine_get_expiry(e));
    t2s_rec_handle_expiry(rec, e, now);
  }
  now += MS;
  t2s_rec_proxy_probe_result(rec, e, 0, 0, now); /* proxy 0 answers its probe: up again */
  /* a stream that reports itself multipath */
  uint8_t pkt[256];
  size_t len;
  build_syn(pkt, &len, 41010);
  now += MS;
  t2s_rec_input_ex(rec, e, pkt, len, 0, now);
  if (F.nstreams > 0) {
    t2s_rec_stream_multipath(rec, e, F.streams[F.nstreams - 1].id, T2S_STREAM_MULTIPATH, 2, now);
  }
  /* a reload: one proxy left with new credentials, shorter timeouts */
  t2s_engine_proxy px2[1] = {{.username = "alice", .password = "new"}};
  px2[0].addr = px[0].addr;
  now += MS;
  t2s_rec_replace_proxies(rec, e, px2, 1, NULL, now);
  t2s_engine_config rt = cfg;
  rt.tcp_connect_timeout = 2 * T2S_SECONDS;
  rt.on_network_change = T2S_NETCHANGE_NONE;
  t2s_rec_set_runtime(rec, e, &rt, now);
  t2s_rec_engine_del(rec, e, now + MS);
  CU_ASSERT_EQUAL(t2s_rec_finish(rec), 0);
  t2s_rec_del(rec);
}

static void test_proxies_and_reload_replay_identical(void) {
  membuf m = {0};
  record_proxies_session(&m, true);
  int kinds[] = {T2S_REC_SET_PROXIES,     T2S_REC_PROXY_SET_ADDR,   T2S_REC_PROXY_PROBE,
                 T2S_REC_REPLACE_PROXIES, T2S_REC_STREAM_MULTIPATH, T2S_REC_SET_RUNTIME};
  assert_has_kinds(&m, kinds, T2S_ARRAY_LEN(kinds));
  t2s_replay_result res;
  assert_replays_identical(&m, &res);
  CU_ASSERT(res.engine_deleted);
  CU_ASSERT_EQUAL(res.leaked_blocks, 0);
  /* the set_proxies record matters: cut it out and the replay differs */
  size_t at = find_record(&m, T2S_REC_SET_PROXIES, 0);
  CU_ASSERT_FATAL(at > 0);
  size_t start = at - T2S_REC_RECORD_HEAD;
  size_t blen = (size_t)m.data[start + 1] | (size_t)m.data[start + 2] << 8;
  /* the record and the RET after it */
  size_t cut = T2S_REC_RECORD_HEAD + blen;
  CU_ASSERT_EQUAL_FATAL(m.data[start + cut], T2S_REC_RET);
  cut += T2S_REC_RECORD_HEAD + 8;
  if (m.data[start + cut] == T2S_REC_TIMER) {
    cut += T2S_REC_RECORD_HEAD + 8;
  }
  memmove(m.data + start, m.data + start + cut, m.len - start - cut);
  m.len -= cut;
  CU_ASSERT_EQUAL(t2s_replay_run(m.data, m.len, NULL, &res), T2S_REPLAY_DIFFERENT);
  free(m.data);

  /* hostile proxy lists and runtime bodies are refused by the decoders */
  t2s_rec_proxies px;
  static const uint8_t none[] = {0, 0};
  CU_ASSERT_EQUAL(t2s_rec_proxies_decode(none, sizeof(none), &px), T2S_REC_ERR_CORRUPT);
  static const uint8_t nine[] = {9};
  CU_ASSERT_EQUAL(t2s_rec_proxies_decode(nine, sizeof(nine), &px), T2S_REC_ERR_CORRUPT);
  uint8_t body[T2S_REC_PROXIES_MAX];
  t2s_engine_proxy one = {.username = "u"};
  t2s_addr_parse("192.0.2.1:1080", &one.addr);
  t2s_ssize bl = t2s_rec_proxies_encode(&one, 1, NULL, body);
  CU_ASSERT_FATAL(bl > 0);
  CU_ASSERT_EQUAL(t2s_rec_proxies_decode(body, (size_t)bl, &px), 0);
  CU_ASSERT_STRING_EQUAL(px.list[0].username, "u");
  CU_ASSERT_PTR_NULL(px.list[0].password);
  body[bl - 1] = 2; /* has_health not a boolean */
  CU_ASSERT_EQUAL(t2s_rec_proxies_decode(body, (size_t)bl, &px), T2S_REC_ERR_CORRUPT);
  CU_ASSERT_EQUAL(t2s_rec_proxies_decode(body, (size_t)bl - 1, &px), T2S_REC_ERR_CORRUPT);
  char longname[300];
  memset(longname, 'x', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = 0;
  one.password = longname;
  CU_ASSERT_EQUAL(t2s_rec_proxies_encode(&one, 1, NULL, body), T2S_REC_ERR_CORRUPT);
  uint8_t rtb[T2S_REC_RUNTIME_LEN];
  t2s_engine_config c;
  t2s_engine_config_default(&c);
  t2s_rec_runtime_encode(&c, rtb);
  CU_ASSERT_EQUAL(t2s_rec_runtime_decode(rtb, sizeof(rtb), &c), 0);
  rtb[24] = 7; /* on_network_change out of range */
  CU_ASSERT_EQUAL(t2s_rec_runtime_decode(rtb, sizeof(rtb), &c), T2S_REC_ERR_CORRUPT);
}

static void test_sink_failure_stops_recording(void) {
  membuf m = {0};
  m.fail_after = 1;
  t2s_rec_stats st = record_session(&m, T2S_REC_MODE_STOP, 0);
  CU_ASSERT(st.stopped);
  CU_ASSERT_EQUAL(st.error, T2S_REC_ERR_IO);
  CU_ASSERT_EQUAL(finish_rv, T2S_REC_ERR_IO);
  free(m.data);
}

/*
 * A property: whatever a session does, its recording replays identically. Random sessions
 * (seeded) over TCP and UDP, IPv4 and IPv6: SYNs, the client's ACKs with data, upstream
 * connects that succeed or fail, bytes, EOFs and errors from upstream, datagrams both ways,
 * network events, timers run for up to seconds at a time, resets, then the stop.
 */
static void random_session(membuf *m, uint64_t seed, int steps) {
  engine_fake_init(&F);
  engine_fake_set_route(&F, 2, "up1", "192.0.2.2", false);
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.seed = seed;
  cfg.proxy_kind = T2S_PROXY_SOCKS5;
  t2s_addr_parse("192.0.2.1:1080", &cfg.proxy);
  cfg.tcp_sndbuf = cfg.tcp_rcvbuf = 16384;
  t2s_rec_opts o;
  memset(&o, 0, sizeof(o));
  o.sink.write = mem_write;
  o.sink.arg = m;
  recorded r;
  recorded_start(&r, &o, &cfg);
  t2s_rec *rec = r.rec;
  t2s_engine *e = r.e;
  t2s_rand rnd;
  t2s_rand_init(&rnd, seed * 7919 + 1);
  t2s_tstamp now = MS;
  uint8_t pkt[4096], data[3000];
  for (int step = 0; step < steps; step++) {
    uint64_t pick = t2s_rand_below(&rnd, 100);
    bool v6 = t2s_rand_below(&rnd, 2);
    t2s_addr cli, srv;
    t2s_addr_parse(v6 ? "fd00:18::2" : "198.18.0.2", &cli);
    t2s_addr_parse(v6 ? "[2001:db8::10]:443" : "203.0.113.10:80", &srv);
    cli.port = (uint16_t)(40000 + t2s_rand_below(&rnd, 16));
    for (size_t i = 0; i < sizeof(data); i++) {
      data[i] = (uint8_t)t2s_rand_u32(&rnd);
    }
    size_t dlen = 1 + (size_t)t2s_rand_below(&rnd, sizeof(data));
    if (pick < 15) { /* a SYN */
      t2s_tcp_opts to;
      memset(&to, 0, sizeof(to));
      to.has_mss = true;
      to.mss = 1400;
      t2s_ssize n = t2s_build_tcp(pkt, sizeof(pkt), &cli, &srv, t2s_rand_u32(&rnd), 0, T2S_TCP_SYN,
                                  65535, &to, NULL, 0, NULL, 0);
      t2s_rec_input_ex(rec, e, pkt, (size_t)n, 0, now);
    } else if (pick < 30) { /* the client answers the newest SYN-ACK, with data */
      for (size_t i = F.npkts; i-- > 0;) {
        t2s_pkt sa;
        if (t2s_pkt_parse(F.pkts[i].data, F.pkts[i].len, &sa) == T2S_DROP_NONE &&
            sa.proto == T2S_IPPROTO_TCP &&
            (sa.l4.tcp.flags & (T2S_TCP_SYN | T2S_TCP_ACK)) == (T2S_TCP_SYN | T2S_TCP_ACK)) {
          size_t plen = T2S_MIN(dlen, (size_t)1200);
          t2s_ssize n =
              t2s_build_tcp(pkt, sizeof(pkt), &sa.dst, &sa.src, sa.l4.tcp.ack, sa.l4.tcp.seq + 1,
                            T2S_TCP_ACK | T2S_TCP_PSH, 65535, NULL, data, plen, NULL, 0);
          t2s_rec_input_ex(rec, e, pkt, (size_t)n, 0, now);
          break;
        }
      }
      F.npkts = 0;
    } else if (pick < 42 && F.nstreams) { /* upstream connects: success or refusal */
      engine_fake_stream *st = &F.streams[t2s_rand_below(&rnd, F.nstreams)];
      static const uint8_t method[] = {5, 0};
      static const uint8_t reply[] = {5, 0, 0, 1, 198, 51, 100, 200, 0x04, 0x38};
      bool ok = t2s_rand_below(&rnd, 4) != 0;
      t2s_rec_stream_opened(rec, e, st->id, ok ? 0 : T2S_ERR_REFUSED, now);
      if (ok) {
        t2s_rec_stream_recv(rec, e, st->id, method, sizeof(method), now);
        t2s_rec_stream_recv(rec, e, st->id, reply, sizeof(reply), now);
      }
    } else if (pick < 55 && F.nstreams) { /* bytes, EOF, an error or room from upstream */
      uint64_t id = F.streams[t2s_rand_below(&rnd, F.nstreams)].id;
      uint64_t what = t2s_rand_below(&rnd, 10);
      if (what < 6) {
        t2s_rec_stream_recv(rec, e, id, data, dlen, now);
      } else if (what < 8) {
        t2s_rec_stream_eof(rec, e, id, now);
      } else if (what < 9) {
        t2s_rec_stream_writable(rec, e, id, now);
      } else {
        t2s_rec_stream_error(rec, e, id, T2S_ERR_RESET, now);
      }
    } else if (pick < 65) { /* a datagram from a client (DNS or other) */
      t2s_addr d = srv;
      d.port = t2s_rand_below(&rnd, 2) ? 53 : 5000;
      t2s_ssize n = t2s_build_udp(pkt, sizeof(pkt), &cli, &d, data, T2S_MIN(dlen, (size_t)512));
      t2s_rec_input_ex(rec, e, pkt, (size_t)n, 0, now);
    } else if (pick < 72 && F.ndgrams) { /* a datagram from the relay, or its failure */
      uint64_t id = F.dgrams[t2s_rand_below(&rnd, F.ndgrams)].id;
      if (t2s_rand_below(&rnd, 8) == 0) {
        t2s_rec_dgram_error(rec, e, id, T2S_ERR_UNREACHABLE, now);
      } else {
        uint8_t dg[600] = {0, 0, 0, 1, 203, 0, 113, 10, 0, 53};
        size_t n = 10 + T2S_MIN(dlen, sizeof(dg) - 10);
        memcpy(dg + 10, data, n - 10);
        t2s_rec_dgram_recv(rec, e, id, dg, n, now);
      }
    } else if (pick < 77) { /* the network changes */
      t2s_net_event ev;
      memset(&ev, 0, sizeof(ev));
      ev.type = (t2s_net_event_type)(1 + t2s_rand_below(&rnd, T2S_NET_RESUMED));
      ev.family = T2S_AF_INET;
      ev.ifindex = 2 + (uint32_t)t2s_rand_below(&rnd, 2);
      strcpy(ev.ifname, ev.ifindex == 2 ? "up1" : "up2");
      ev.slept_ns = ev.type == T2S_NET_RESUMED ? 30 * T2S_SECONDS : 0;
      engine_fake_set_route(&F, ev.ifindex, ev.ifname, "192.0.2.2", false);
      t2s_rec_network_event(rec, e, &ev, now);
    } else if (pick < 78) {
      t2s_rec_reset_all(rec, e, now);
    } else { /* time passes: the timers due run */
      now += t2s_rand_below(&rnd, 2000) * MS;
      for (int i = 0; i < 50 && t2s_engine_get_expiry(e) <= now; i++) {
        t2s_rec_handle_expiry(rec, e, T2S_MAX(t2s_engine_get_expiry(e), now - 1));
      }
    }
    now += MS;
  }
  t2s_rec_engine_del(rec, e, now);
  CU_ASSERT_EQUAL(t2s_rec_finish(rec), 0);
  t2s_rec_del(rec);
}

static void test_random_sessions_replay_identical(void) {
  uint64_t inputs = 0, established = 0, dgrams = 0, routes = 0;
  for (uint64_t seed = 1; seed <= 6; seed++) {
    membuf m = {0};
    random_session(&m, seed, 600);
    t2s_replay_result res;
    t2s_replay_status st = t2s_replay_run(m.data, m.len, NULL, &res);
    if (st != T2S_REPLAY_IDENTICAL) {
      fprintf(stderr, "\nseed %llu: %s\n", (unsigned long long)seed, res.msg);
    }
    CU_ASSERT_EQUAL(st, T2S_REPLAY_IDENTICAL);
    CU_ASSERT(res.engine_deleted);
    CU_ASSERT_EQUAL(res.leaked_blocks, 0);
    inputs += res.inputs;
    static t2s_rec_reader rd;
    CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd, m.data, m.len), 0);
    t2s_rec_record r;
    while (t2s_rec_reader_next(&rd, &r) == 1) {
      if (r.kind == T2S_REC_EVENT && r.eev.type == T2S_EV_TCP_ESTABLISHED) {
        established++;
      } else if (r.kind == T2S_REC_DGRAM_SEND) {
        dgrams++;
      } else if (r.kind == T2S_REC_ROUTE_GET) {
        routes++;
      }
    }
    free(m.data);
  }
  CU_ASSERT(inputs > 2500);
  /* the sessions reach the paths that matter: flows up, datagrams relayed, routes asked */
  CU_ASSERT(established > 10);
  CU_ASSERT(dgrams > 10);
  CU_ASSERT(routes > 3);
}

/* ---------------- the reader against hostile input ---------------- */

static int read_all(const uint8_t *buf, size_t len) {
  static t2s_rec_reader rd;
  int rv = t2s_rec_reader_init(&rd, buf, len);
  if (rv != 0) {
    return rv;
  }
  t2s_rec_record r;
  for (int i = 0; i < 1000000; i++) {
    rv = t2s_rec_reader_next(&rd, &r);
    if (rv != 1) {
      return rv;
    }
  }
  return -100;
}

static void test_reader_every_prefix(void) {
  membuf m = {0};
  record_session(&m, T2S_REC_MODE_STOP, 0);
  /* the record boundaries */
  static t2s_rec_reader rd;
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd, m.data, m.len), 0);
  uint8_t *boundary = calloc(m.len + 1, 1);
  boundary[rd.pos] = 1;
  t2s_rec_record r;
  while (t2s_rec_reader_next(&rd, &r) == 1) {
    boundary[rd.pos] = 1;
  }
  for (size_t n = 0; n <= m.len; n++) {
    uint8_t *copy = malloc(n ? n : 1); /* exact size: ASan sees any read beyond */
    memcpy(copy, m.data, n);
    int rv = read_all(copy, n);
    if (boundary[n]) {
      CU_ASSERT_EQUAL(rv, 0);
    } else if (rv != T2S_REC_ERR_TRUNCATED) {
      fprintf(stderr, "\nprefix %zu of %zu: %d\n", n, m.len, rv);
      CU_FAIL("a prefix that is not at a record boundary must read as truncated");
    }
    free(copy);
  }
  free(boundary);
  free(m.data);
}

static void test_reader_hostile_fields(void) {
  membuf m = {0};
  record_session(&m, T2S_REC_MODE_STOP, 0);
  static t2s_rec_reader rd;
  CU_ASSERT_EQUAL_FATAL(t2s_rec_reader_init(&rd, m.data, m.len), 0);
  size_t first = rd.pos;
  uint8_t *c = malloc(m.len);
  /* an unknown kind */
  memcpy(c, m.data, m.len);
  c[first] = 200;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  c[first] = 0;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  /* a body length past the bound */
  memcpy(c, m.data, m.len);
  c[first + 4] = 0x7f;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  /* a fixed-size record one byte longer than its layout */
  size_t off = find_record(&m, T2S_REC_TIMER, 0) - T2S_REC_RECORD_HEAD;
  memcpy(c, m.data, m.len);
  c[off + 1] = 9;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  /* a boolean that is 2 */
  off = find_record(&m, T2S_REC_STREAM_CLOSE, 0);
  memcpy(c, m.data, m.len);
  c[off + 8] = 2;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  /* a net event type out of range */
  off = find_record(&m, T2S_REC_NET_EVENT, 0);
  memcpy(c, m.data, m.len);
  c[off] = 99;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  /* an address family that is not 0, 4 or 6 */
  off = find_record(&m, T2S_REC_STREAM_OPEN, 0);
  memcpy(c, m.data, m.len);
  c[off + 8] = 5;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  /* an output whose kept prefix is not min(length, 64) */
  off = find_record(&m, T2S_REC_DEV_SEND, 0);
  memcpy(c, m.data, m.len);
  c[off + 4] ^= 1;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  /* header: unknown flags, an unknown tag, a header length past the file */
  memcpy(c, m.data, m.len);
  c[T2S_REC_MAGIC_LEN + 4] = 0x80;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  memcpy(c, m.data, m.len);
  c[T2S_REC_MAGIC_LEN + 12] = 9;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  memcpy(c, m.data, m.len);
  c[T2S_REC_MAGIC_LEN + 10] = 0x7f;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  /* the build string's length one past its field */
  memcpy(c, m.data, m.len);
  c[T2S_REC_MAGIC_LEN + 12 + 6] += 1;
  CU_ASSERT_EQUAL(read_all(c, m.len), T2S_REC_ERR_CORRUPT);
  free(c);
  /* random byte flips: never a crash, a read past the buffer (ASan) or an endless loop; the
   * replay of each either matches, differs or refuses the file */
  t2s_rand rnd;
  t2s_rand_init(&rnd, 7);
  uint8_t *x = malloc(m.len);
  for (int i = 0; i < 300; i++) {
    memcpy(x, m.data, m.len);
    int flips = 1 + (int)t2s_rand_below(&rnd, 4);
    for (int j = 0; j < flips; j++) {
      x[t2s_rand_below(&rnd, m.len)] ^= (uint8_t)(1 + t2s_rand_below(&rnd, 255));
    }
    int rv = read_all(x, m.len);
    CU_ASSERT(rv == 0 || rv == T2S_REC_ERR_TRUNCATED || rv == T2S_REC_ERR_CORRUPT ||
              rv == T2S_REC_ERR_MAGIC || rv == T2S_REC_ERR_VERSION);
    t2s_replay_result res;
    t2s_replay_status st = t2s_replay_run(x, m.len, NULL, &res);
    CU_ASSERT(st == T2S_REPLAY_IDENTICAL || st == T2S_REPLAY_DIFFERENT ||
              st == T2S_REPLAY_BAD_FILE);
  }
  free(x);
  free(m.data);
}

int t2s_test_register_recording(void) {
  CU_pSuite s = CU_add_suite("recording", NULL, NULL);
  if (s == NULL) {
    return -1;
  }
  CU_add_test(s, "record_roundtrip_every_kind", test_record_roundtrip_every_kind);
  CU_add_test(s, "header_roundtrip_config", test_header_roundtrip_config);
  CU_add_test(s, "config_fields_all_recorded", test_config_fields_all_recorded);
  CU_add_test(s, "session_replays_identical", test_session_replays_identical);
  CU_add_test(s, "flipped_input_byte_named", test_flipped_input_byte_named);
  CU_add_test(s, "flipped_output_byte_named", test_flipped_output_byte_named);
  CU_add_test(s, "changed_return_value_differs", test_changed_return_value_differs);
  CU_add_test(s, "output_hash_catches_payload", test_output_hash_catches_payload);
  CU_add_test(s, "truncated_and_other_version_refused", test_truncated_and_other_version_refused);
  CU_add_test(s, "until_stops_early", test_until_stops_early);
  CU_add_test(s, "record_max_stop_and_ring", test_record_max_stop_and_ring);
  CU_add_test(s, "sink_failure_stops_recording", test_sink_failure_stops_recording);
  CU_add_test(s, "proxies_and_reload_replay_identical", test_proxies_and_reload_replay_identical);
  CU_add_test(s, "fake_dns_session_replays_identical", test_fake_dns_session_replays_identical);
  CU_add_test(s, "random_sessions_replay_identical", test_random_sessions_replay_identical);
  CU_add_test(s, "reader_every_prefix", test_reader_every_prefix);
  CU_add_test(s, "reader_hostile_fields", test_reader_hostile_fields);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
