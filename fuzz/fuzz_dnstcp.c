/*
 * fuzz_dnstcp.c: the dns_tcp target's interpreter (fz_run_dns_tcp): --fake-dns's DNS over TCP
 * (src/core/engine_fakedns_tcp.c) driven through one engine with the fuzz world's stubs, whose
 * oracles check the connector's contract (docs/fuzzing.md).
 *
 * Input: 4 bytes of configuration, then operations until the input ends (at most 256): one
 * opcode byte (modulo OP_COUNT) and its bytes. The eight tuples of the fuzz world go to port 53
 * here. TCP segments are in order on a tuple (the client's next sequence number, acknowledging
 * all the engine sent), so the fuzzer spends its time on the framing: raw bytes, or well-formed
 * queries (answered or forwarded types) cut at a chosen point. At the end the clients close,
 * the timers run out, and every connection must be gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "fakedns.h"
#include "fuzz_harness.h"
#include "packet.h"

#define DT_MAX_OPS 256

enum {
  OP_SYN = 0,  /* u8 tuple */
  OP_DATA,     /* u8 tuple, u8 len, bytes */
  OP_QUERY,    /* u8 tuple, u8 sel (type, name), u8 id, u8 cut: a framed query in 1 or 2 segments */
  OP_FIN,      /* u8 tuple */
  OP_RST,      /* u8 tuple */
  OP_ACK,      /* u8 tuple */
  OP_ADVANCE,  /* u16 milliseconds */
  OP_OPENED,   /* u8 idx, u8 err */
  OP_SOCKS5,   /* u8 idx */
  OP_RECV,     /* u8 idx, u8 len, bytes */
  OP_ANSWER,   /* u8 idx, u8 len: a framed answer of len bytes (ID and flags of a response) */
  OP_EOF,      /* u8 idx */
  OP_ERROR,    /* u8 idx, u8 err */
  OP_WRITABLE, /* u8 idx */
  OP_WRITE_CAP, /* u16 */
  OP_RESET_ALL,
  OP_COUNT
};

typedef struct dt_state {
  fz_world w;
  t2s_engine_config cfg;
  uint32_t snd_nxt[FZ_TUPLES];
  uint8_t pkt[2048];
} dt_state;

static void segment(dt_state *st, int t, uint8_t flags, const uint8_t *data, size_t len) {
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  uint32_t seq = st->snd_nxt[t];
  if (flags & T2S_TCP_SYN) {
    seq = 0x10000000u * (uint32_t)(t + 1);
    o.has_mss = true;
    o.mss = 1460;
  }
  t2s_ssize n =
      t2s_build_tcp(st->pkt, sizeof(st->pkt), &st->w.tuple_client[t], &st->w.tuple_server[t], seq,
                    st->w.peer[t].seq_end, flags, 65535, &o, data, len, NULL, 0);
  if (n < 0) {
    return;
  }
  st->snd_nxt[t] = seq + (uint32_t)len + ((flags & (T2S_TCP_SYN | T2S_TCP_FIN)) ? 1 : 0);
  fz_input(&st->w, st->pkt, (size_t)n);
}

/* A framed query: types A, AAAA, HTTPS, PTR (answered here) and MX, TXT (forwarded); names
 * n0..n15.example, or an excluded one (forwarded). */
static size_t framed_query(uint8_t *buf, uint8_t sel, uint8_t id) {
  static const uint16_t types[] = {1, 28, 65, 12, 15, 16, 64, 255};
  char name[40];
  if ((sel & 0xf0) == 0xf0) {
    memcpy(name, "x.corp.test", 12);
  } else {
    snprintf(name, sizeof(name), "n%u.example", sel >> 4);
  }
  uint8_t *q = buf + 2;
  memset(q, 0, 12);
  q[0] = id;
  q[1] = (uint8_t)(id * 7);
  t2s_put16(q + 2, 0x0100);
  t2s_put16(q + 4, 1);
  t2s_ssize n = t2s_dns_name_to_wire(name, q + 12, 64);
  if (n < 0) {
    return 0;
  }
  t2s_put16(q + 12 + n, types[sel & 7]);
  t2s_put16(q + 14 + n, 1);
  t2s_put16(buf, (uint16_t)(16 + n));
  return 18 + (size_t)n;
}

void fz_run_dns_tcp(const uint8_t *data, size_t size) {
  static dt_state *st;
  if (st == NULL) {
    st = calloc(1, sizeof(*st));
    FZ_CHECK(st != NULL, "out of memory");
  }
  memset(st->snd_nxt, 0, sizeof(st->snd_nxt));
  fz_in in;
  fz_in_init(&in, data, size);
  uint8_t flags = fz_u8(&in), size_sel = fz_u8(&in), bufs = fz_u8(&in), timeout = fz_u8(&in);

  t2s_fakedns_config fc;
  t2s_fakedns_config_default(&fc);
  fc.size = 1 + size_sel % 32;
  fc.exclude[0] = "corp.test";
  fc.nexclude = 1;
  t2s_fakedns *table = NULL;
  FZ_CHECK(t2s_fakedns_new(&table, &fc) == 0, "table");

  t2s_engine_config *cfg = &st->cfg;
  t2s_engine_config_default(cfg);
  cfg->seed = 9;
  cfg->fake_dns = table;
  if (flags & 0x01) {
    cfg->proxy_kind = T2S_PROXY_SOCKS5;
    t2s_addr_parse("192.0.2.1:1080", &cfg->proxy);
  }
  if (flags & 0x02) {
    t2s_addr_parse("198.51.100.53:53", &cfg->dns_hijack);
  }
  cfg->socks5_pipelined = (flags & 0x04) != 0;
  if (flags & 0x08) {
    cfg->tcp_sndbuf = 512u << (bufs & 7);
    cfg->tcp_rcvbuf = 512u << ((bufs >> 3) & 7);
  }
  cfg->max_tcp_flows = 1 + (flags >> 4) % 8;
  cfg->dns_timeout = (1 + timeout % 20) * T2S_SECONDS;
  FZ_CHECK(fz_world_init(&st->w, cfg, 1500) == 0, "t2s_engine_new failed");
  for (int t = 0; t < FZ_TUPLES; t++) {
    st->w.tuple_server[t].port = 53; /* the device stub follows the tuples by address */
  }

  for (int ops = 0; ops < DT_MAX_OPS && !fz_in_empty(&in); ops++) {
    uint8_t op = fz_u8(&in) % OP_COUNT;
    switch (op) {
    case OP_SYN:
      segment(st, fz_u8(&in) % FZ_TUPLES, T2S_TCP_SYN, NULL, 0);
      break;
    case OP_DATA: {
      int t = fz_u8(&in) % FZ_TUPLES;
      size_t len;
      const uint8_t *p = fz_bytes(&in, fz_u8(&in), &len);
      segment(st, t, T2S_TCP_ACK | T2S_TCP_PSH, p, len);
      break;
    }
    case OP_QUERY: {
      int t = fz_u8(&in) % FZ_TUPLES;
      uint8_t sel = fz_u8(&in), id = fz_u8(&in), cut = fz_u8(&in);
      uint8_t q[128];
      size_t n = framed_query(q, sel, id);
      size_t c = cut % (n + 1);
      if (c > 0) {
        segment(st, t, T2S_TCP_ACK | T2S_TCP_PSH, q, c);
      }
      if (c < n) {
        segment(st, t, T2S_TCP_ACK | T2S_TCP_PSH, q + c, n - c);
      }
      break;
    }
    case OP_FIN:
      segment(st, fz_u8(&in) % FZ_TUPLES, T2S_TCP_ACK | T2S_TCP_FIN, NULL, 0);
      break;
    case OP_RST:
      segment(st, fz_u8(&in) % FZ_TUPLES, T2S_TCP_RST | T2S_TCP_ACK, NULL, 0);
      break;
    case OP_ACK:
      segment(st, fz_u8(&in) % FZ_TUPLES, T2S_TCP_ACK, NULL, 0);
      break;
    case OP_ADVANCE:
      fz_advance(&st->w, st->w.now + (t2s_tstamp)fz_u16(&in) * T2S_MILLISECONDS, 2000);
      break;
    case OP_OPENED: {
      uint8_t idx = fz_u8(&in), e = fz_u8(&in);
      fz_complete_open(&st->w, idx, (e & 1) ? fz_pick_error(e) : 0);
      break;
    }
    case OP_SOCKS5:
      fz_socks5_accept(&st->w, fz_u8(&in), false);
      break;
    case OP_RECV: {
      uint8_t idx = fz_u8(&in);
      size_t len;
      const uint8_t *p = fz_bytes(&in, fz_u8(&in), &len);
      fz_deliver(&st->w, idx, p, len);
      break;
    }
    case OP_ANSWER: {
      uint8_t idx = fz_u8(&in), len = fz_u8(&in);
      uint8_t a[2 + 255 + 12];
      size_t m = 12 + len;
      memset(a, 0, sizeof(a));
      t2s_put16(a, (uint16_t)m);
      t2s_put16(a + 4, 0x8180);
      fz_deliver(&st->w, idx, a, 2 + m);
      break;
    }
    case OP_EOF:
      fz_deliver_eof(&st->w, fz_u8(&in));
      break;
    case OP_ERROR: {
      uint8_t idx = fz_u8(&in);
      fz_deliver_error(&st->w, idx, fz_pick_error(fz_u8(&in)));
      break;
    }
    case OP_WRITABLE:
      fz_deliver_writable(&st->w, fz_u8(&in));
      break;
    case OP_WRITE_CAP:
      st->w.write_cap = fz_u16(&in);
      break;
    case OP_RESET_ALL:
      st->w.in_engine = true;
      t2s_engine_reset_all(st->w.engine, st->w.now);
      st->w.in_engine = false;
      break;
    default:
      break;
    }
  }
  /* The clients close, the timers run out: no connection may be left. */
  for (int t = 0; t < FZ_TUPLES; t++) {
    if (st->w.peer[t].seen) {
      segment(st, t, T2S_TCP_ACK | T2S_TCP_FIN, NULL, 0);
    }
  }
  fz_advance(&st->w, st->w.now + 10 * 60 * T2S_SECONDS, 20000);
  t2s_engine_stats s;
  t2s_engine_get_stats(st->w.engine, &s);
  FZ_CHECK(s.tcp_flows_active == 0, "%llu connections left after the clients closed",
           (unsigned long long)s.tcp_flows_active);
  fz_world_free(&st->w);
  t2s_fakedns_stats fs;
  t2s_fakedns_get_stats(table, &fs);
  FZ_CHECK(fs.pinned == 0, "%llu entries still pinned", (unsigned long long)fs.pinned);
  if (getenv("T2S_FUZZ_VERBOSE")) {
    fprintf(stderr, "answered %llu forwarded %llu refused %llu dropped %llu; flows %llu, %s %llu\n",
            (unsigned long long)fs.answered, (unsigned long long)fs.forwarded,
            (unsigned long long)fs.refused, (unsigned long long)fs.dropped,
            (unsigned long long)s.tcp_flows_total, t2s_drop_name(T2S_DROP_DNS_TCP_BAD),
            (unsigned long long)s.drops[T2S_DROP_DNS_TCP_BAD]);
  }
  t2s_fakedns_del(table);
}
