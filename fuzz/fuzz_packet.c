/*
 * fuzz_packet.c: the body of the fuzz_engine_packet target (fz_run_packet): one IP packet into a
 * fresh engine.
 *
 * The input is the packet itself (the seeds are raw IPv4/IPv6 packets). The engine runs with
 * a SOCKS5 proxy configured; the packet goes in as it is, then as a TUN with checksum offload
 * hands it over (its TCP/UDP checksum vouched for), then once more with its checksums
 * recomputed (so that mutations get past the checksum checks), a stream the engine opened is
 * connected and its SOCKS5 handshake answered, and the clock jumps through the timers (delayed
 * ACK, retransmission, connect timeout, TIME-WAIT). The engine is then deleted: LeakSanitizer
 * sees anything it did not free, and the stubs check every stream was closed.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_harness.h"
#include "packet.h"

void fz_run_packet(const uint8_t *data, size_t size) {
  if (size > 65535) {
    return;
  }
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.seed = 1;
  cfg.max_tcp_flows = 64; /* a small flow table: creating the engine is most of a run */
  cfg.proxy_kind = T2S_PROXY_SOCKS5;
  t2s_addr_parse("192.0.2.1:1080", &cfg.proxy);

  static fz_world w; /* large (the device keeps its last packet): not on the stack */
  FZ_CHECK(fz_world_init(&w, &cfg, 1500) == 0, "t2s_engine_new failed");

  /* An exact-size heap copy, so ASan sees any read past the packet. */
  uint8_t *pkt = malloc(size ? size : 1);
  FZ_CHECK(pkt != NULL, "out of memory");
  memcpy(pkt, data, size);
  fz_input(&w, pkt, size);
  /* As a TUN with offloads hands it over: the TCP/UDP checksum vouched for, not verified. */
  w.now += T2S_MILLISECONDS;
  fz_input_ex(&w, pkt, size, T2S_PARSE_L4_CSUM_VALID);
  fz_fix_checksums(pkt, size);
  if (memcmp(pkt, data, size) != 0) {
    w.now += T2S_MILLISECONDS;
    fz_input(&w, pkt, size);
  }
  free(pkt);

  /* A SYN held for the upstream: connect it and answer the SOCKS5 handshake. */
  w.now += T2S_MILLISECONDS;
  if (fz_complete_open(&w, 0, 0)) {
    fz_socks5_accept(&w, 0, false);
  }

  static const t2s_tstamp later[] = {
      200 * T2S_MILLISECONDS, 1 * T2S_SECONDS,  3 * T2S_SECONDS,
      11 * T2S_SECONDS,       70 * T2S_SECONDS, 600 * T2S_SECONDS,
  };
  t2s_tstamp start = w.now;
  for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
    fz_advance(&w, start + later[i], 1000);
  }
  fz_world_free(&w);
}
