/* test_fuzz_regressions.c: inputs found by the fuzz targets (fuzz/, docs/fuzzing.md), with
 * their bytes inline, run through the same target bodies (fz_run_sequence, fz_run_packet) and
 * the same contract checks.
 *
 * Each input runs in a child process: a failed check aborts the child, and the parent reports
 * the child's message. A case marked `known_bug` is a bug still open (strict xfail): the test
 * passes while the input still fails with the expected message, and fails once the input passes,
 * so whoever fixes the bug moves the case to the fixed ones (known_bug = NULL).
 * A few whole sessions also run, so the harness itself stays honest. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz_harness.h"
#include "packet.h"
#include "test_util.h"

typedef struct fuzz_case {
  const char *name;
  void (*run)(const uint8_t *data, size_t size);
  const uint8_t *data;
  size_t len;
  const char *known_bug; /* NULL: must pass; else a substring of the failure the bug gives */
} fuzz_case;

/* Runs one input in a child; returns true when it passed. msg receives the child's failure
 * line ("fuzz check failed: ..." or a sanitizer's summary). */
static bool run_case(const fuzz_case *fc, char *msg, size_t msglen) {
  int fds[2];
  msg[0] = 0;
  if (pipe(fds) != 0) {
    snprintf(msg, msglen, "pipe failed");
    return false;
  }
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    snprintf(msg, msglen, "fork failed");
    close(fds[0]);
    close(fds[1]);
    return false;
  }
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    alarm(60); /* a hang is a failure too */
    fc->run(fc->data, fc->len);
    _exit(0);
  }
  close(fds[1]);
  char out[16384];
  size_t n = 0;
  /* Bounded by the buffer; the child's output beyond it is read and dropped. */
  for (;;) {
    char tmp[1024];
    ssize_t r = read(fds[0], tmp, sizeof(tmp));
    if (r <= 0) {
      break;
    }
    size_t take = T2S_MIN((size_t)r, sizeof(out) - 1 - n);
    memcpy(out + n, tmp, take);
    n += take;
  }
  out[n] = 0;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!ok) {
    const char *line = strstr(out, "fuzz check failed");
    if (line == NULL) {
      line = strstr(out, "SUMMARY:");
    }
    if (line == NULL) {
      line = out;
    }
    size_t len = strcspn(line, "\n");
    snprintf(msg, msglen, "%.*s%s", (int)T2S_MIN(len, msglen - 64), line,
             WIFSIGNALED(status) ? " (killed by a signal)" : "");
  }
  return ok;
}

static void check_case(const fuzz_case *fc) {
  char msg[1024];
  bool ok = run_case(fc, msg, sizeof(msg));
  if (fc->known_bug == NULL) {
    if (!ok) {
      fprintf(stderr, "\nfuzz regression %s failed: %s\n", fc->name, msg);
    }
    CU_ASSERT(ok);
    return;
  }
  if (ok) {
    fprintf(stderr,
            "\nfuzz regression %s now passes: the known bug is fixed; set its known_bug to NULL\n",
            fc->name);
    CU_FAIL("a known bug's input passes: mark the case fixed");
  } else if (strstr(msg, fc->known_bug) == NULL) {
    fprintf(stderr, "\nfuzz regression %s fails differently: %s\n", fc->name, msg);
    CU_FAIL("a known bug's input fails with another message");
  } else {
    fprintf(stderr, "\n[known bug, still open] %s: %s\n", fc->name, msg);
  }
}

/* ---- the inputs ---- */

/*
 * Sequence target. Found by fuzz_engine_sequence (campaign of 2026-11-25), reduced by hand to:
 *   config: direct (no proxy), defaults
 *   SYN on tuple 0 with MSS 1456, SACK permitted, timestamps; the upstream connects
 *   ACK with timestamps; then 10 bytes 100 bytes ahead of rcv.nxt (the engine now holds an
 *   out-of-order block and puts a SACK block in every segment it sends)
 *   the upstream delivers 3000 bytes
 * The engine sends a 1444-byte payload (MSS 1456 - 12 bytes of timestamps) plus 12 bytes of
 * SACK option: a 1508-byte IPv4 packet on a 1500-byte MTU. The payload size must leave room
 * for the SACK blocks (or the blocks must be left out of full-sized segments).
 * Owner: src/core/tcp_out.c. Fixed in 30d90a9 (seg_payload_max(): the MSS less the SACK option).
 */
static const uint8_t sack_over_mtu[] = {
    0x00, 0x0f, 0x07, 0x00, 0x00, 0x05, 0x00, 0x00, 0x01, 0x60, 0x02, 0x00, 0x00, 0xff, 0xff,
    0x0d, 0xab, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00,
    0xff, 0xff, 0x08, 0xab, 0x00, 0x01, 0x08, 0x10, 0x00, 0x64, 0xff, 0xff, 0x08, 0xab, 0x0a,
    0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x7a, 0x05, 0x00, 0x0b, 0xb8,
};

/* Whole sessions (fuzz/make_seeds.py session()): direct, and SOCKS5 with RFC 1929 over IPv6:
 * handshake, request, 3000-byte response with SACK, EOF, both FINs, TIME-WAIT. */
static const uint8_t session_direct[] = {
    0x00, 0x0f, 0x07, 0x00, 0x00, 0x05, 0x00, 0x00, 0x01, 0x60, 0x02, 0x00, 0x00, 0xff, 0xff,
    0x0f, 0xab, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00,
    0xff, 0xff, 0x08, 0xab, 0x00, 0x01, 0x00, 0x18, 0x00, 0x00, 0xff, 0xff, 0x08, 0xab, 0x12,
    0x47, 0x45, 0x54, 0x20, 0x2f, 0x20, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x30, 0x0d,
    0x0a, 0x0d, 0x0a, 0x05, 0x00, 0x0b, 0xb8, 0x02, 0x01, 0x00, 0x32, 0x01, 0x00, 0x10, 0x00,
    0x00, 0xff, 0xff, 0x18, 0xab, 0x00, 0x01, 0x00, 0x10, 0x00, 0x00, 0xff, 0xff, 0x08, 0xab,
    0x00, 0x04, 0x00, 0x18, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x30, 0x20, 0x32, 0x30,
    0x30, 0x20, 0x4f, 0x4b, 0x0d, 0x0a, 0x0d, 0x0a, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x06, 0x00,
    0x02, 0x01, 0x00, 0x0a, 0x01, 0x00, 0x10, 0x00, 0x00, 0xff, 0xff, 0x00, 0xab, 0x00, 0x01,
    0x00, 0x11, 0x00, 0x00, 0xff, 0xff, 0x00, 0xab, 0x00, 0x02, 0x01, 0x00, 0xc8, 0x01, 0x00,
    0x10, 0x00, 0x00, 0xff, 0xff, 0x00, 0xab, 0x00, 0x02, 0x04, 0x00, 0x05,
};

static const uint8_t session_socks5_v6[] = {
    0x05, 0x0f, 0x07, 0x00, 0x00, 0x05, 0x00, 0x00, 0x01, 0x65, 0x02, 0x00, 0x00, 0xff, 0xff,
    0x0f, 0xab, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x09, 0x00, 0x01, 0x05, 0x10,
    0x00, 0x00, 0xff, 0xff, 0x08, 0xab, 0x00, 0x01, 0x05, 0x18, 0x00, 0x00, 0xff, 0xff, 0x08,
    0xab, 0x12, 0x47, 0x45, 0x54, 0x20, 0x2f, 0x20, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e,
    0x30, 0x0d, 0x0a, 0x0d, 0x0a, 0x05, 0x00, 0x0b, 0xb8, 0x02, 0x01, 0x00, 0x32, 0x01, 0x05,
    0x10, 0x00, 0x00, 0xff, 0xff, 0x18, 0xab, 0x00, 0x01, 0x05, 0x10, 0x00, 0x00, 0xff, 0xff,
    0x08, 0xab, 0x00, 0x04, 0x00, 0x18, 0x48, 0x54, 0x54, 0x50, 0x2f, 0x31, 0x2e, 0x30, 0x20,
    0x32, 0x30, 0x30, 0x20, 0x4f, 0x4b, 0x0d, 0x0a, 0x0d, 0x0a, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
    0x06, 0x00, 0x02, 0x01, 0x00, 0x0a, 0x01, 0x05, 0x10, 0x00, 0x00, 0xff, 0xff, 0x00, 0xab,
    0x00, 0x01, 0x05, 0x11, 0x00, 0x00, 0xff, 0xff, 0x00, 0xab, 0x00, 0x02, 0x01, 0x00, 0xc8,
    0x01, 0x05, 0x10, 0x00, 0x00, 0xff, 0xff, 0x00, 0xab, 0x00, 0x02, 0x04, 0x00, 0x05,
};

/* Packet target: an IPv4 SYN to 203.0.113.10:80 with MSS, SACK permitted, timestamps and window
 * scale (checksums recomputed by the target): connected through the SOCKS5 stub, then
 * timers until the pending connection gives up. */
static const uint8_t packet_syn[] = {
    0x45, 0x00, 0x00, 0x3c, 0x00, 0x01, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 0xc6, 0x12, 0x00,
    0x02, 0xcb, 0x00, 0x71, 0x0a, 0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00,
    0x00, 0x00, 0xa0, 0x02, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04,
    0x02, 0x08, 0x0a, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
};

/*
 * Sequence target. Found by fuzz_engine_sequence (fifth run, after 109 s; docs/fuzzing.md):
 *   config: SOCKS5 proxy, defaults (udp cap 2)
 *   a DNS query from 198.18.0.2:40000 to 203.0.113.10:53 opens a UDP session (control stream);
 *   the stream connects; method reply + UDP ASSOCIATE reply (relay 10.0.0.1:1080)
 *   the relay sends a datagram whose SOCKS5 header names the source 0.0.0.0:768
 * The engine built a UDP packet from 0.0.0.0 toward the client (a source its own parser drops
 * as bad_src_addr). Datagrams from the relay whose source is unspecified, multicast or
 * broadcast are now dropped and counted (socks5_udp_bad): t2s_addr_is_valid_src() in packet.c,
 * checked in t2s_engine_dgram_recv() (engine_udp.c).
 */
static const uint8_t relay_src_any[] = {
    0x01, 0x0f, 0x07, 0x00, 0x00, 0xdc, 0x05, 0x00, 0x10, 0x08, 0x1e, 0x12, 0x34, 0x01, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x65, 0x78, 0x61, 0x04, 0x6c, 0x65,
    0x74, 0x70, 0x6d, 0x65, 0x73, 0x74, 0x00, 0x00, 0x01, 0x00, 0x01, 0x03, 0x00, 0x00, 0x09,
    0x00, 0x0e, 0x00, 0x28, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0xcb,
    0x00, 0x71, 0x0a, 0x00, 0x01, 0xdc, 0xdc, 0xdc, 0xdc, 0xdc, 0xdc, 0xdc,
};

static const fuzz_case cases[] = {
    {"sequence: session direct", fz_run_sequence, session_direct, sizeof(session_direct), NULL},
    {"sequence: session SOCKS5 RFC 1929 IPv6", fz_run_sequence, session_socks5_v6,
     sizeof(session_socks5_v6), NULL},
    {"packet: SYN with options", fz_run_packet, packet_syn, sizeof(packet_syn), NULL},
    {"sequence: SACK blocks push a full-sized segment over the MTU", fz_run_sequence, sack_over_mtu,
     sizeof(sack_over_mtu), NULL}, /* fixed: tcp_out.c seg_payload_max() */
    {"sequence: relay datagram from 0.0.0.0 relayed as a packet from 0.0.0.0", fz_run_sequence,
     relay_src_any, sizeof(relay_src_any), NULL},
};

static void test_fuzz_sessions(void) {
  check_case(&cases[0]);
  check_case(&cases[1]);
  check_case(&cases[2]);
}

static void test_fuzz_sack_over_mtu(void) {
  check_case(&cases[3]);
}

static void test_fuzz_relay_src_any(void) {
  check_case(&cases[4]);
  /* The rule itself, as the parser applies it to sources. */
  t2s_addr a;
  static const char *const bad[] = {"0.0.0.0",         "224.0.0.1", "239.1.2.3",
                                    "255.255.255.255", "::",        "ff02::1"};
  static const char *const good[] = {"203.0.113.10", "10.0.0.1", "2001:db8::1", "fe80::1"};
  for (size_t i = 0; i < T2S_ARRAY_LEN(bad); i++) {
    CU_ASSERT_FATAL(t2s_addr_parse(bad[i], &a) == 0);
    CU_ASSERT(!t2s_addr_is_valid_src(&a));
  }
  for (size_t i = 0; i < T2S_ARRAY_LEN(good); i++) {
    CU_ASSERT_FATAL(t2s_addr_parse(good[i], &a) == 0);
    CU_ASSERT(t2s_addr_is_valid_src(&a));
  }
  memset(&a, 0, sizeof(a));
  CU_ASSERT(!t2s_addr_is_valid_src(&a)); /* family unset */
}

int t2s_test_register_fuzz_regressions(void) {
  CU_pSuite s = CU_add_suite("fuzz_regressions", NULL, NULL);
  if (s == NULL) {
    return -1;
  }
  if (CU_add_test(s, "whole sessions and a SYN through the fuzz harness", test_fuzz_sessions) ==
          NULL ||
      CU_add_test(s, "fixed: SACK blocks push a full-sized segment over the MTU",
                  test_fuzz_sack_over_mtu) == NULL ||
      CU_add_test(s, "fixed: a relay datagram's invalid source is dropped, not relayed",
                  test_fuzz_relay_src_any) == NULL) {
    return -1;
  }
  return 0;
}
