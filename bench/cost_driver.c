/*
 * cost_driver.c: the deterministic cost figure of the engine's TCP path (docs/benchmarks.md).
 *
 *   t2s_cost_driver up   [MB]   a client sends MB (default 100) MiB of segments at MTU 1500
 *                               toward a sink upstream
 *   t2s_cost_driver down [MB]   a source upstream sends MB MiB toward the client, which acks
 *                               every second segment as a client does
 *
 * It links only t2s_core and tests/engine_fake.c (no CUnit). The fake's device, recording
 * off, hands each packet to the client, which reads it at fixed offsets (never parsed or
 * checksummed); the fake's upstream stream is the sink (it takes every byte) and the source
 * (the loop hands over what t2s_engine_stream_recv_space() allows). The client is hand-rolled
 * (one SYN with MSS 1460 and window scaling, then segments built once and patched with an
 * incremental checksum update), so that nearly every instruction counted is the engine's.
 * Virtual time advances 1 us per packet; no clock, no I/O besides the final line on stdout.
 * scripts/bench --sim runs it under callgrind and divides instructions by payload bytes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "engine_fake.h"
#include "packet.h"

#define MSS 1460
#define MTU 1500
#define CLIENT_WSCALE 7
#define CLIENT_WINDOW (1u << 20) /* the client's receive window, bytes */
#define CHUNK 65536              /* largest hand-over of the source */

typedef struct driver {
  t2s_engine *engine;
  t2s_tstamp now;
  engine_fake *fake; /* device and upstream; streams[0] is the sink / source */
  /* client */
  t2s_addr caddr, saddr;
  uint32_t c_iss, c_nxt, c_una; /* client's send sequence */
  uint32_t s_irs, s_nxt;        /* engine's sequence as the client sees it (next expected) */
  uint32_t s_wnd;               /* engine's advertised window (bytes) */
  uint8_t s_wscale;
  bool synack_seen;
  uint64_t rx_bytes; /* payload bytes the client received in order */
  uint32_t unacked_segs;
  uint64_t pkts_out;
} driver;

/* ---- the client's receive side: the engine's packets at fixed offsets (IPv4, 20-byte
 * header), handed over by the fake device ---- */

static void client_recv(void *arg, const uint8_t *pkt, size_t len) {
  driver *d = arg;
  d->pkts_out++;
  if (len < 40 || pkt[9] != T2S_IPPROTO_TCP) {
    return;
  }
  const uint8_t *th = pkt + 20;
  uint32_t seq = t2s_get32(th + 4), ack = t2s_get32(th + 8);
  uint8_t flags = th[13];
  size_t doff = (size_t)(th[12] >> 4) * 4;
  size_t plen = len - 20 - doff;
  if (flags & T2S_TCP_SYN) {
    d->synack_seen = true;
    d->s_irs = seq;
    d->s_nxt = seq + 1;
    d->s_wscale = 0;
    /* The options of our SYN-ACK: find the window scale (kind 3). */
    for (size_t i = 20; i + 2 < doff;) {
      uint8_t kind = th[i];
      if (kind == 0) {
        break;
      }
      if (kind == 1) {
        i++;
        continue;
      }
      if (kind == 3) {
        d->s_wscale = th[i + 2];
      }
      i += th[i + 1] ? th[i + 1] : 1;
    }
  }
  if (flags & T2S_TCP_ACK) {
    if ((int32_t)(ack - d->c_una) > 0) {
      d->c_una = ack;
    }
    uint32_t wnd = (uint32_t)t2s_get16(th + 14);
    d->s_wnd = (flags & T2S_TCP_SYN) ? wnd : wnd << d->s_wscale;
  }
  if (plen > 0 && seq == d->s_nxt) {
    d->s_nxt += (uint32_t)plen;
    d->rx_bytes += plen;
    d->unacked_segs++;
  }
}

/* ---- the client ---- */

static void input_ex(driver *d, const uint8_t *pkt, size_t len, unsigned flags) {
  d->now += T2S_MICROSECONDS;
  if (t2s_engine_input_ex(d->engine, pkt, len, flags, d->now) != 0) {
    fprintf(stderr, "t2s_cost_driver: fatal engine error\n");
    exit(1);
  }
  if (t2s_engine_get_expiry(d->engine) <= d->now) {
    t2s_engine_handle_expiry(d->engine, d->now);
  }
}

static void input(driver *d, const uint8_t *pkt, size_t len) {
  input_ex(d, pkt, len, 0);
}

/* Sets a 32-bit field of a built IPv4/TCP packet and patches the TCP checksum (RFC 1624). */
static void patch32(uint8_t *pkt, size_t off, uint32_t v) {
  uint32_t old = t2s_get32(pkt + off);
  uint16_t csum = t2s_get16(pkt + 36);
  t2s_put16(pkt + 36, t2s_csum_update32(csum, old, v));
  t2s_put32(pkt + off, v);
}

static void handshake(driver *d) {
  uint8_t pkt[128];
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  o.has_mss = true;
  o.mss = MSS;
  o.has_wscale = true;
  o.wscale = CLIENT_WSCALE;
  t2s_ssize n = t2s_build_tcp(pkt, sizeof(pkt), &d->caddr, &d->saddr, d->c_iss, 0, T2S_TCP_SYN,
                              65535, &o, NULL, 0, NULL, 0);
  input(d, pkt, (size_t)n);
  if (d->fake->nstreams != 1) {
    fprintf(stderr, "t2s_cost_driver: the engine opened no upstream stream\n");
    exit(1);
  }
  d->now += T2S_MICROSECONDS;
  t2s_engine_stream_opened(d->engine, d->fake->streams[0].id, 0, d->now);
  if (!d->synack_seen) {
    fprintf(stderr, "t2s_cost_driver: no SYN-ACK\n");
    exit(1);
  }
  d->c_nxt = d->c_una = d->c_iss + 1;
  n = t2s_build_tcp(pkt, sizeof(pkt), &d->caddr, &d->saddr, d->c_nxt, d->s_nxt, T2S_TCP_ACK,
                    (uint16_t)(CLIENT_WINDOW >> CLIENT_WSCALE), NULL, NULL, 0, NULL, 0);
  input(d, pkt, (size_t)n);
}

/* Upload: full-sized segments within the engine's window; the sink takes everything. */
/* burst: client segments handed to the engine per burst (T2S_INPUT_MORE on all but the last,
 * as the runner's read loop does); 1: each on its own. */
static void run_up(driver *d, uint64_t total, unsigned burst) {
  unsigned k = 0;
  static uint8_t payload[MSS];
  for (size_t i = 0; i < sizeof(payload); i++) {
    payload[i] = (uint8_t)(i * 7 + 1);
  }
  uint8_t seg[MTU];
  t2s_ssize n =
      t2s_build_tcp(seg, sizeof(seg), &d->caddr, &d->saddr, d->c_nxt, d->s_nxt, T2S_TCP_ACK,
                    (uint16_t)(CLIENT_WINDOW >> CLIENT_WSCALE), NULL, payload, MSS, NULL, 0);
  uint32_t end = d->c_iss + 1 + (uint32_t)total;
  uint64_t guard = 0;
  while (d->c_una != end) {
    if (++guard > 100 * total / MSS + 1000000) {
      fprintf(stderr, "t2s_cost_driver: no progress (una %u of %u)\n", d->c_una, end);
      exit(1);
    }
    uint32_t inflight = d->c_nxt - d->c_una;
    uint32_t left = end - d->c_nxt;
    if (left > 0 && inflight + MSS <= d->s_wnd) {
      uint32_t len = left < MSS ? left : MSS;
      patch32(seg, 24, d->c_nxt);
      if (len < MSS) {
        n = t2s_build_tcp(seg, sizeof(seg), &d->caddr, &d->saddr, d->c_nxt, d->s_nxt,
                          T2S_TCP_ACK | T2S_TCP_PSH, (uint16_t)(CLIENT_WINDOW >> CLIENT_WSCALE),
                          NULL, payload, len, NULL, 0);
      }
      /* More follows in this burst when the burst is not full and the next segment is
       * already allowed (otherwise the burst ends here, as a read that would block). */
      bool more = ++k % burst != 0 && left > len && inflight + len + MSS <= d->s_wnd;
      input_ex(d, seg, (size_t)n, more ? T2S_INPUT_MORE : 0);
      d->c_nxt += len;
    } else {
      /* Window full: let time pass so a delayed ACK (if any) goes out. */
      d->now += 50 * T2S_MILLISECONDS;
      t2s_engine_handle_expiry(d->engine, d->now);
    }
  }
  uint64_t sunk = d->fake->streams[0].wtotal;
  if (sunk != total) {
    fprintf(stderr, "t2s_cost_driver: the sink got %" PRIu64 " of %" PRIu64 " bytes\n", sunk,
            total);
    exit(1);
  }
}

/* Download: the source hands over what the engine can take; the client acks every second
 * segment (and whatever is left when the engine goes quiet). */
static void run_down(driver *d, uint64_t total) {
  static uint8_t chunk[CHUNK];
  for (size_t i = 0; i < sizeof(chunk); i++) {
    chunk[i] = (uint8_t)(i * 13 + 5);
  }
  uint8_t ackpkt[64];
  t2s_ssize n =
      t2s_build_tcp(ackpkt, sizeof(ackpkt), &d->caddr, &d->saddr, d->c_nxt, d->s_nxt, T2S_TCP_ACK,
                    (uint16_t)(CLIENT_WINDOW >> CLIENT_WSCALE), NULL, NULL, 0, NULL, 0);
  const engine_fake_stream *src = &d->fake->streams[0];
  uint64_t given = 0, guard = 0;
  while (d->rx_bytes < total) {
    if (++guard > 100 * total / MSS + 1000000) {
      fprintf(stderr, "t2s_cost_driver: no progress (%" PRIu64 " of %" PRIu64 ")\n", d->rx_bytes,
              total);
      exit(1);
    }
    bool progressed = false;
    if (given < total && !src->paused && !src->closed) {
      size_t space = t2s_engine_stream_recv_space(d->engine, src->id);
      size_t len = (size_t)(total - given < CHUNK ? total - given : CHUNK);
      len = len < space ? len : space;
      if (len > 0) {
        d->now += T2S_MICROSECONDS;
        given += t2s_engine_stream_recv(d->engine, src->id, chunk, len, d->now);
        progressed = true;
      }
    }
    /* Ack every second in-order segment received (the last one alone when nothing follows). */
    while (d->unacked_segs >= 2 || (d->unacked_segs > 0 && !progressed)) {
      d->unacked_segs = d->unacked_segs >= 2 ? d->unacked_segs - 2 : 0;
      patch32(ackpkt, 28, d->s_nxt);
      input(d, ackpkt, (size_t)n);
      progressed = true;
    }
    if (!progressed) {
      d->now += 50 * T2S_MILLISECONDS;
      t2s_engine_handle_expiry(d->engine, d->now);
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || (strcmp(argv[1], "up") != 0 && strcmp(argv[1], "down") != 0)) {
    fprintf(stderr, "usage: t2s_cost_driver up|down [MiB (default 100) [BURST (default 1)]]\n");
    return 2;
  }
  bool up = strcmp(argv[1], "up") == 0;
  uint64_t mib = argc > 2 ? strtoull(argv[2], NULL, 10) : 100;
  unsigned long burst = argc > 3 ? strtoul(argv[3], NULL, 10) : 1;
  if (burst == 0 || burst > 64) {
    fprintf(stderr, "t2s_cost_driver: BURST must be 1..64\n");
    return 2;
  }
  if (mib == 0 || mib > 4000) {
    fprintf(stderr, "t2s_cost_driver: MiB must be 1..4000\n");
    return 2;
  }
  uint64_t total = mib * 1024 * 1024;

  static engine_fake fake;
  engine_fake_init(&fake);
  fake.record_pkts = false;
  fake.mtu = MTU;
  driver d;
  memset(&d, 0, sizeof(d));
  d.fake = &fake;
  fake.on_send = client_recv;
  fake.on_send_arg = &d;
  t2s_addr_parse("198.18.0.2:40000", &d.caddr);
  t2s_addr_parse("203.0.113.9:9", &d.saddr);
  d.c_iss = 0x12345678;
  t2s_mem mem;
  memset(&mem, 0, sizeof(mem));
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.seed = 1;
  cfg.mtu = MTU;
  cfg.proxy_kind = T2S_PROXY_NONE;
  cfg.mem = &mem;
  if (t2s_engine_new(&d.engine, &cfg, &fake.dev, &fake.up, NULL) != 0) {
    fprintf(stderr, "t2s_cost_driver: cannot create the engine\n");
    return 1;
  }
  handshake(&d);
  if (up) {
    run_up(&d, total, (unsigned)burst);
  } else {
    run_down(&d, total);
  }
  t2s_engine_stats st;
  t2s_engine_get_stats(d.engine, &st);
  t2s_engine_del(d.engine);
  printf("direction=%s payload_bytes=%" PRIu64 " packets_in=%" PRIu64 " packets_out=%" PRIu64
         " retransmits=%" PRIu64 " leaked_blocks=%" PRIu64 "\n",
         up ? "up" : "down", total, st.packets_in, st.packets_out, st.tcp_retransmits, mem.live);
  return mem.live == 0 ? 0 : 1;
}
