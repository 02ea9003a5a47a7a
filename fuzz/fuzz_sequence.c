/*
 * fuzz_sequence.c: the sequence interpreter of the fuzz_engine_sequence target (fz_run_sequence):
 * a sequence of packets, clock steps and upstream completions into one engine.
 *
 * Input layout (docs/fuzzing.md has the table):
 *   8 bytes of configuration, then operations until the input ends (at most FZ_MAX_OPS):
 *   one opcode byte (value modulo OP_COUNT), then the operation's own bytes.
 * Packets come in two shapes: raw bytes (optionally with their checksums recomputed), and
 * structured TCP segments on one of eight fixed tuples whose sequence and acknowledgment
 * numbers are relative to what the client sent and what the engine last sent, so that the
 * fuzzer reaches ESTABLISHED, data transfer, SACK, FIN and TIME-WAIT without guessing ISNs.
 * Upstream completions follow the connector's contract (no completion for a stream it does not
 * hold, no bytes beyond recv_space, no bytes while paused).
 * After every operation the engine's counters are checked against its caps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_harness.h"
#include "packet.h"

#define FZ_MAX_OPS 512

enum {
  OP_RAW = 0,      /* u16 len, bytes; len bit 15: recompute checksums */
  OP_TCP,          /* structured TCP segment (see tcp_segment) */
  OP_ADVANCE,      /* u8 unit, u16 amount: move the clock, running the timers */
  OP_OPENED,       /* u8 idx, u8 err (0 = connected, else an error) */
  OP_RECV,         /* u8 idx, u8 len, bytes */
  OP_RECV_PATTERN, /* u8 idx, u16 len: that many bytes of a pattern */
  OP_EOF,          /* u8 idx */
  OP_ERROR,        /* u8 idx, u8 err */
  OP_WRITABLE,     /* u8 idx */
  OP_SOCKS5_OK,    /* u8 idx: method, auth and CONNECT replies of a willing proxy */
  OP_WRITE_CAP,    /* u16: bytes a stream_write takes at most */
  OP_FAIL_OPEN,    /* the next stream_open fails */
  OP_NET_EVENT,    /* u8 type, u8 ifindex, u8 flags, u8 route */
  OP_RESET_ALL,    /* t2s_engine_reset_all */
  OP_DGRAM_RECV,   /* u8 idx, u8 len, bytes */
  OP_DGRAM_ERROR,  /* u8 idx, u8 err */
  OP_UDP,          /* u8 tuple, u8 len, bytes: a UDP datagram on a tuple */
  OP_WOULDBLOCK,   /* toggles dgram_send answering WOULDBLOCK */
  OP_FAIL_WRITE,   /* the next stream_write / dgram_send fails */
  OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
    "raw",          "tcp",       "advance",    "opened",     "recv",
    "recv_pattern", "eof",       "error",      "writable",   "socks5_ok",
    "write_cap",    "fail_open", "net_event",  "reset_all",  "dgram_recv",
    "dgram_error",  "udp",       "wouldblock", "fail_write",
};

typedef struct seq_state {
  fz_world w;
  t2s_engine_config cfg;
  uint32_t snd_nxt[FZ_TUPLES];  /* the client's next sequence number on each tuple */
  uint32_t last_ack[FZ_TUPLES]; /* the acknowledgment number it sent last */
  uint8_t pkt[65536];
  uint8_t pattern[65536];
} seq_state;

static void config_from(fz_in *in, t2s_engine_config *cfg, size_t *pwrite_cap, uint32_t *pmtu) {
  uint8_t flags = fz_u8(in), flows = fz_u8(in), pending = fz_u8(in), mtu = fz_u8(in);
  uint8_t bufs = fz_u8(in), tcp = fz_u8(in), net = fz_u8(in), cap = fz_u8(in);
  t2s_engine_config_default(cfg);
  cfg->seed = 7;
  if (flags & 0x01) {
    cfg->proxy_kind = T2S_PROXY_SOCKS5;
    t2s_addr_parse((flags & 0x80) ? "[2001:db8::1]:1080" : "192.0.2.1:1080", &cfg->proxy);
  }
  cfg->socks5_pipelined = (flags & 0x02) != 0;
  if (flags & 0x04) {
    cfg->username = "user";
    cfg->password = "secret";
  }
  cfg->icmp_unreach_on_refuse = (flags & 0x08) != 0;
  cfg->tcp_keepalive_idle = (flags & 0x10) ? 5 * T2S_SECONDS : 0;
  if (flags & 0x20) {
    cfg->tcp_sndbuf = 512u << (bufs & 7);
    cfg->tcp_rcvbuf = 512u << ((bufs >> 3) & 7);
  }
  cfg->icmp_echo_reply = (flags & 0x40) == 0;
  cfg->max_tcp_flows = 1 + flows % 24;
  cfg->max_pending_syn = 1 + pending % 16;
  cfg->max_udp_sessions = 1 + (pending >> 4) % 8;
  *pmtu = mtu == 0 ? 1500 : 576 + (uint32_t)mtu * 36;
  cfg->mtu = (bufs & 0x40) ? *pmtu : 0;
  cfg->tcp_max_retries = 1 + tcp % 12;
  cfg->tcp_time_wait = (tcp & 0x80) ? 0 : 2 * T2S_SECONDS;
  cfg->tcp_connect_timeout = (tcp & 0x40) ? 100 * T2S_MILLISECONDS : 10 * T2S_SECONDS;
  cfg->on_network_change = (t2s_netchange_policy)(net % 3);
  cfg->network_debounce = (net & 0x08) ? 0 : 500 * T2S_MILLISECONDS;
  cfg->egress_pinned = (net & 0x10) != 0;
  if (net & 0x20) {
    cfg->egress.ifindex = 1;
    memcpy(cfg->egress.ifname, "fz1", 4);
  }
  *pwrite_cap = cap == 0 ? 65536 : (size_t)cap * 7;
}

static const t2s_tstamp units[] = {
    T2S_MICROSECONDS, T2S_MILLISECONDS, 10 * T2S_MILLISECONDS, 100 * T2S_MILLISECONDS, T2S_SECONDS,
};

/* A TCP segment from the client of tuple t:
 *   u8 sel    tuple (bits 0-2), seq mode (3-4), ack mode (5-6), payload from the pattern (7)
 *   u8 flags  the TCP flags byte as is
 *   u16 delta for the relative modes
 *   u16 wnd
 *   u8 opts   MSS (bit 0), window scale (1), SACK permitted (2), timestamps (3), number of
 *             SACK blocks (4-5)
 *   u8 oparam MSS and window scale values
 *   [u32 seq] [u32 ack] for the raw modes
 *   u8 len (or u16 with bit 7 of sel), then len bytes of payload (or the pattern)
 * Seq modes: 0 in order (advances the client's snd_nxt; a SYN starts at a fixed ISN),
 *            1 snd_nxt + delta, 2 snd_nxt - delta, 3 raw.
 * Ack modes: 0 all the engine sent, 1 that - delta (that + (delta & 0x7fff) when bit 15 is
 *            set), 2 the client's previous ack again (a duplicate ACK), 3 raw. */
static void tcp_segment(seq_state *st, fz_in *in) {
  uint8_t sel = fz_u8(in), flags = fz_u8(in);
  uint16_t delta = fz_u16(in), wnd = fz_u16(in);
  uint8_t optsel = fz_u8(in), oparam = fz_u8(in);
  int t = sel & 7, seqmode = (sel >> 3) & 3, ackmode = (sel >> 5) & 3;
  fz_peer *peer = &st->w.peer[t];
  uint32_t isn = 0x10000000u * (uint32_t)(t + 1);
  uint32_t seq;
  switch (seqmode) {
  case 0:
    seq = (flags & T2S_TCP_SYN) ? isn : st->snd_nxt[t];
    break;
  case 1:
    seq = st->snd_nxt[t] + delta;
    break;
  case 2:
    seq = st->snd_nxt[t] - delta;
    break;
  default:
    seq = fz_u32(in);
    break;
  }
  uint32_t ack;
  switch (ackmode) {
  case 0:
    ack = peer->seq_end;
    break;
  case 1:
    ack = (delta & 0x8000) ? peer->seq_end + (delta & 0x7fffu) : peer->seq_end - delta;
    break;
  case 2:
    ack = st->last_ack[t];
    break;
  default:
    ack = fz_u32(in);
    break;
  }
  t2s_tcp_opts opts;
  memset(&opts, 0, sizeof(opts));
  opts.has_mss = (optsel & 0x01) != 0;
  opts.mss = (uint16_t)(oparam < 8 ? oparam : 88 + oparam * 8); /* 0..7, and 96..2128 */
  opts.has_wscale = (optsel & 0x02) != 0;
  opts.wscale = oparam % 16;
  opts.sack_permitted = (optsel & 0x04) != 0;
  opts.has_ts = (optsel & 0x08) != 0;
  opts.ts_val = (uint32_t)(st->w.now / T2S_MILLISECONDS);
  opts.ts_ecr = (optsel & 0x40) ? fz_u32(in) : 0;
  opts.nsack = (uint8_t)((optsel >> 4) & 3);
  for (int i = 0; i < opts.nsack; i++) {
    /* Blocks just below what the engine sent, delta bytes wide, one below the other. */
    opts.sack[i].right = peer->seq_end - (uint32_t)i * 2u * delta;
    opts.sack[i].left = opts.sack[i].right - delta;
  }
  const uint8_t *payload;
  size_t len;
  if (sel & 0x80) {
    len = fz_u16(in) % 9000;
    payload = st->pattern;
  } else {
    payload = fz_bytes(in, fz_u8(in), &len);
  }
  t2s_ssize n =
      t2s_build_tcp(st->pkt, sizeof(st->pkt), &st->w.tuple_client[t], &st->w.tuple_server[t], seq,
                    ack, flags, wnd, &opts, payload, len, NULL, 0);
  if (n < 0) {
    return;
  }
  if (flags & T2S_TCP_ACK) {
    st->last_ack[t] = ack;
  }
  if (seqmode == 0) {
    st->snd_nxt[t] =
        seq + (uint32_t)len + ((flags & T2S_TCP_SYN) ? 1 : 0) + ((flags & T2S_TCP_FIN) ? 1 : 0);
  }
  fz_input(&st->w, st->pkt, (size_t)n);
}

static void net_event(seq_state *st, fz_in *in) {
  uint8_t type = fz_u8(in), ifindex = fz_u8(in), fl = fz_u8(in), route = fz_u8(in);
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = (t2s_net_event_type)(1 + type % 8);
  ev.ifindex = ifindex % 4;
  if (ev.ifindex) {
    ev.ifname[0] = 'f';
    ev.ifname[1] = 'z';
    ev.ifname[2] = (char)('0' + ev.ifindex);
  }
  ev.family = (fl & 1) ? T2S_AF_INET6 : T2S_AF_INET;
  ev.addr.family = ev.family;
  ev.addr.ip[0] = (fl & 1) ? 0x20 : 192;
  ev.addr.ip[3] = (uint8_t)(fl >> 4);
  ev.prefixlen = (uint8_t)((fl & 1) ? 64 : 24);
  ev.removed = (fl & 2) != 0;
  ev.slept_ns = (fl & 4) ? (t2s_tstamp)(fl >> 3) * T2S_SECONDS : 0;
  /* What route_get answers from now on. */
  st->w.route_err = (route & 0x80) ? T2S_ERR_UNREACHABLE : 0;
  st->w.route_ifindex = route % 4;
  st->w.in_engine = true;
  t2s_engine_network_event(st->w.engine, &ev, st->w.now);
  st->w.in_engine = false;
}

static void udp_datagram(seq_state *st, fz_in *in) {
  uint8_t sel = fz_u8(in);
  size_t len;
  const uint8_t *payload = fz_bytes(in, fz_u8(in), &len);
  int t = sel & 7;
  t2s_addr dst = st->w.tuple_server[t];
  if (sel & 0x08) {
    dst.port = 53;
  }
  t2s_ssize n = t2s_build_udp(st->pkt, sizeof(st->pkt), &st->w.tuple_client[t], &dst, payload, len);
  if (n > 0) {
    fz_input(&st->w, st->pkt, (size_t)n);
  }
}

static void check_caps(seq_state *st) {
  t2s_engine_stats s;
  t2s_engine_get_stats(st->w.engine, &s);
  FZ_CHECK(s.tcp_pending_syn <= st->cfg.max_pending_syn, "%llu pending SYNs over the cap %u",
           (unsigned long long)s.tcp_pending_syn, st->cfg.max_pending_syn);
  FZ_CHECK(s.tcp_flows_active + s.tcp_pending_syn <= st->cfg.max_tcp_flows,
           "%llu flows + %llu pending over the cap %u", (unsigned long long)s.tcp_flows_active,
           (unsigned long long)s.tcp_pending_syn, st->cfg.max_tcp_flows);
  FZ_CHECK(s.udp_sessions_active <= st->cfg.max_udp_sessions, "%llu UDP sessions over the cap %u",
           (unsigned long long)s.udp_sessions_active, st->cfg.max_udp_sessions);
  /* One stream per TCP flow, and at most one (the UDP ASSOCIATE control connection) per UDP
   * session. */
  uint64_t open = fz_streams_open(&st->w);
  FZ_CHECK(open <= (uint64_t)st->cfg.max_tcp_flows + st->cfg.max_udp_sessions,
           "%llu upstream streams open over the caps (%u flows, %u UDP sessions)",
           (unsigned long long)open, st->cfg.max_tcp_flows, st->cfg.max_udp_sessions);
}

void fz_run_sequence(const uint8_t *data, size_t size) {
  static seq_state *st;
  if (st == NULL) {
    st = calloc(1, sizeof(*st));
    FZ_CHECK(st != NULL, "out of memory");
  }
  for (size_t i = 0; i < sizeof(st->pattern); i++) {
    st->pattern[i] = (uint8_t)(i * 7 + (i >> 8));
  }
  memset(st->snd_nxt, 0, sizeof(st->snd_nxt));
  memset(st->last_ack, 0, sizeof(st->last_ack));

  fz_in in;
  fz_in_init(&in, data, size);
  uint32_t mtu;
  size_t write_cap;
  config_from(&in, &st->cfg, &write_cap, &mtu);
  FZ_CHECK(fz_world_init(&st->w, &st->cfg, mtu) == 0, "t2s_engine_new failed");
  st->w.write_cap = write_cap;
  bool userpass = st->cfg.username != NULL;

  bool verbose = getenv("T2S_FUZZ_VERBOSE") != NULL;
  for (int ops = 0; ops < FZ_MAX_OPS && !fz_in_empty(&in); ops++) {
    uint8_t op = fz_u8(&in) % OP_COUNT;
    switch (op) {
    case OP_RAW: {
      uint16_t l = fz_u16(&in);
      size_t len;
      const uint8_t *p = fz_bytes(&in, l & 0x7fff, &len);
      memcpy(st->pkt, p, len);
      if (l & 0x8000) {
        fz_fix_checksums(st->pkt, len);
      }
      /* An exact-size copy so that ASan sees reads past the packet. */
      uint8_t *exact = malloc(len ? len : 1);
      FZ_CHECK(exact != NULL, "out of memory");
      memcpy(exact, st->pkt, len);
      fz_input(&st->w, exact, len);
      free(exact);
      break;
    }
    case OP_TCP:
      tcp_segment(st, &in);
      break;
    case OP_ADVANCE: {
      uint8_t unit = fz_u8(&in);
      uint16_t amount = fz_u16(&in);
      t2s_tstamp step = units[unit % T2S_ARRAY_LEN(units)] * amount;
      fz_advance(&st->w, st->w.now + step, 20000);
      break;
    }
    case OP_OPENED: {
      uint8_t idx = fz_u8(&in), e = fz_u8(&in);
      fz_complete_open(&st->w, idx, e < 0x80 ? 0 : fz_pick_error(e));
      break;
    }
    case OP_RECV: {
      uint8_t idx = fz_u8(&in);
      size_t len;
      const uint8_t *p = fz_bytes(&in, fz_u8(&in), &len);
      fz_deliver(&st->w, idx, p, len);
      break;
    }
    case OP_RECV_PATTERN: {
      uint8_t idx = fz_u8(&in);
      uint16_t len = fz_u16(&in);
      fz_deliver(&st->w, idx, st->pattern, len);
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
    case OP_SOCKS5_OK:
      fz_socks5_accept(&st->w, fz_u8(&in), userpass);
      break;
    case OP_WRITE_CAP:
      st->w.write_cap = fz_u16(&in);
      break;
    case OP_FAIL_OPEN:
      st->w.fail_next_open = true;
      break;
    case OP_NET_EVENT:
      net_event(st, &in);
      break;
    case OP_RESET_ALL:
      st->w.in_engine = true;
      t2s_engine_reset_all(st->w.engine, st->w.now);
      st->w.in_engine = false;
      break;
    case OP_DGRAM_RECV: {
      uint8_t idx = fz_u8(&in);
      size_t len;
      const uint8_t *p = fz_bytes(&in, fz_u8(&in), &len);
      fz_dgram_deliver(&st->w, idx, p, len);
      break;
    }
    case OP_DGRAM_ERROR: {
      uint8_t idx = fz_u8(&in);
      fz_dgram_fail(&st->w, idx, fz_pick_error(fz_u8(&in)));
      break;
    }
    case OP_UDP:
      udp_datagram(st, &in);
      break;
    case OP_WOULDBLOCK:
      st->w.dgram_wouldblock = !st->w.dgram_wouldblock;
      break;
    case OP_FAIL_WRITE:
      st->w.fail_next_write = true;
      break;
    default:
      break;
    }
    if (verbose) {
      t2s_engine_stats vs;
      t2s_engine_get_stats(st->w.engine, &vs);
      fprintf(stderr, "op %d %s: t=%.3fs flows %llu pending %llu streams %llu\n", ops, op_names[op],
              (double)st->w.now / 1e9, (unsigned long long)vs.tcp_flows_active,
              (unsigned long long)vs.tcp_pending_syn, (unsigned long long)fz_streams_open(&st->w));
    }
    check_caps(st);
  }
  /* Let the timers run out (retransmissions give up, TIME-WAIT ends), then delete. */
  fz_advance(&st->w, st->w.now + 10 * 60 * T2S_SECONDS, 20000);
  check_caps(st);
  if (getenv("T2S_FUZZ_VERBOSE")) {
    t2s_engine_stats s;
    t2s_engine_get_stats(st->w.engine, &s);
    fprintf(stderr,
            "in %llu out %llu up %llu down %llu flows %llu resets %llu rexmit %llu streams %llu "
            "udp %llu drops:",
            (unsigned long long)s.packets_in, (unsigned long long)s.packets_out,
            (unsigned long long)s.bytes_up, (unsigned long long)s.bytes_down,
            (unsigned long long)s.tcp_flows_total, (unsigned long long)s.tcp_resets_sent,
            (unsigned long long)s.tcp_retransmits, (unsigned long long)st->w.opens,
            (unsigned long long)s.udp_sessions_active);
    for (int i = 1; i < T2S_DROP_MAX; i++) {
      if (s.drops[i]) {
        fprintf(stderr, " %s=%llu", t2s_drop_name((t2s_drop_reason)i),
                (unsigned long long)s.drops[i]);
      }
    }
    fputc('\n', stderr);
  }
  fz_world_free(&st->w);
}
