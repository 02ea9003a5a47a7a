/*
 * fuzz_harness.h: what the engine fuzz targets share: a byte reader over the fuzz input, and a
 * world of stubs around one engine (a device that records and checks every packet the engine
 * sends, an upstream connector that keeps the state of every stream and datagram socket, and a
 * network monitor whose route answers come from the input).
 *
 * The stubs are oracles too: an engine that breaks the connector's contract (writes to a
 * stream it never opened or already closed, reuses an open id, closes twice, sends a packet
 * that does not parse, leaves a timer due after handle_expiry, leaves a stream open after
 * t2s_engine_del) makes the target trap, and libFuzzer saves the input.
 */
#ifndef T2S_FUZZ_HARNESS_H
#define T2S_FUZZ_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* Stops the run with a message; libFuzzer records the input as a crash. */
#define FZ_CHECK(cond, ...)                                                                        \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);                                             \
    }                                                                                              \
  } while (0)

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

/* ---- reading the fuzz input: past the end every read gives zeros ---- */

typedef struct fz_in {
  const uint8_t *p;
  size_t len;
  size_t off;
} fz_in;

void fz_in_init(fz_in *in, const uint8_t *data, size_t len);
bool fz_in_empty(const fz_in *in);
size_t fz_in_left(const fz_in *in);
uint8_t fz_u8(fz_in *in);
uint16_t fz_u16(fz_in *in);
uint32_t fz_u32(fz_in *in);
/* Up to n bytes (fewer at the end of the input); *pn receives how many. */
const uint8_t *fz_bytes(fz_in *in, size_t n, size_t *pn);

/* ---- the world around one engine ---- */

#define FZ_MAX_STREAMS 32
#define FZ_MAX_DGRAMS 32

typedef enum fz_stream_state {
  FZ_ST_FREE = 0,
  FZ_ST_CONNECTING, /* stream_open called, completion not delivered */
  FZ_ST_OPEN,       /* stream_opened(0) delivered */
} fz_stream_state;

typedef struct fz_stream {
  uint64_t id;
  fz_stream_state state;
  bool paused;      /* the engine asked us to pause reads */
  bool short_write; /* a write took less than offered: stream_writable is due */
  bool shut;        /* the engine half-closed its side */
  bool eof_sent;    /* we delivered EOF */
  uint64_t written;
} fz_stream;

typedef struct fz_dgram {
  uint64_t id;
  bool used;
  uint64_t sent;
} fz_dgram;

/* The engine's view of one TCP connection as the packets it sent tell it (for the structured
 * segments of the sequence target). */
typedef struct fz_peer {
  bool seen;
  uint32_t seq_end; /* seq + length (+SYN, +FIN) of the last segment the engine sent */
  uint32_t ack;     /* its last acknowledgment */
  uint32_t seq;     /* seq of its last segment */
  uint16_t wnd;
} fz_peer;

#define FZ_TUPLES 8

typedef struct fz_world {
  t2s_engine *engine;
  t2s_device dev;
  t2s_upstream up;
  t2s_monitor mon;
  t2s_tstamp now;
  uint32_t mtu;

  /* upstream connector */
  fz_stream streams[FZ_MAX_STREAMS];
  fz_dgram dgrams[FZ_MAX_DGRAMS];
  size_t write_cap;     /* a stream_write takes at most this many bytes (0: refuses all) */
  bool fail_next_open;  /* the next stream_open / dgram_open returns an error */
  bool fail_next_write; /* the next stream_write / dgram_send returns an error */
  bool dgram_wouldblock;
  bool in_engine; /* re-entrancy check: set while the engine runs */
  uint64_t opens, closes;

  /* network monitor */
  int route_err;          /* what route_get returns (0 or an error) */
  uint32_t route_ifindex; /* and the interface it names */

  /* device */
  uint64_t packets_out;
  uint8_t last_out[65536];
  size_t last_out_len;

  /* the structured-segment tuples (client addr:port -> server addr:port) */
  t2s_addr tuple_client[FZ_TUPLES];
  t2s_addr tuple_server[FZ_TUPLES];
  fz_peer peer[FZ_TUPLES];
} fz_world;

/* Sets up the stubs and creates the engine with cfg (cfg->mtu 0: the device's mtu). Returns 0
 * or the engine's error. */
int fz_world_init(fz_world *w, const t2s_engine_config *cfg, uint32_t mtu);
/* How many streams the stub holds now (opened by the engine, not closed, not failed). */
size_t fz_streams_open(const fz_world *w);
/* Deletes the engine and checks that it closed every stream and datagram socket. */
void fz_world_free(fz_world *w);

/* Engine entry points wrapped with the re-entrancy flag and the checks after each call. */
void fz_input(fz_world *w, const uint8_t *pkt, size_t len);
/* The same with device flags (T2S_PARSE_*: t2s_engine_input_ex). */
void fz_input_ex(fz_world *w, const uint8_t *pkt, size_t len, unsigned flags);
/* Moves the clock to `to`, running every timer due on the way (at most `max_fires`
 * handle_expiry calls); checks that each call leaves nothing due at or before its time. */
void fz_advance(fz_world *w, t2s_tstamp to, unsigned max_fires);

/* Completions for the streams the stub holds. idx picks one (modulo the open ones); each
 * returns false when no stream is in a state that allows it (the completion is skipped, as
 * the connector's contract says it cannot happen). */
bool fz_complete_open(fz_world *w, unsigned idx, int err);
bool fz_deliver(fz_world *w, unsigned idx, const uint8_t *data, size_t len);
bool fz_deliver_eof(fz_world *w, unsigned idx);
bool fz_deliver_error(fz_world *w, unsigned idx, int err);
bool fz_deliver_writable(fz_world *w, unsigned idx);
bool fz_dgram_deliver(fz_world *w, unsigned idx, const uint8_t *data, size_t len);
bool fz_dgram_fail(fz_world *w, unsigned idx, int err);
/* The SOCKS5 server's side of a successful handshake for the stream idx: method reply
 * (no auth or RFC 1929 per userpass), auth status OK, CONNECT reply with an IPv4 BND. */
bool fz_socks5_accept(fz_world *w, unsigned idx, bool userpass);

/* Recomputes the IPv4 header checksum and the TCP/UDP/ICMP/ICMPv6 checksum of pkt in place
 * where the headers can be found (no IPv6 extension headers, not a fragment, lengths that fit).
 * Leaves anything else as it is. */
void fz_fix_checksums(uint8_t *pkt, size_t len);

/* An error code for a completion, chosen by a byte. */
int fz_pick_error(uint8_t b);

/* ---- the engine targets' bodies (also run by tests/test_fuzz_regressions.c) ---- */

/* fuzz_packet.c: one packet into a fresh engine (input: the packet). */
void fz_run_packet(const uint8_t *data, size_t size);
/* fuzz_sequence.c: configuration + operations into one engine (docs/fuzzing.md). */
void fz_run_sequence(const uint8_t *data, size_t size);
/* fuzz_dnstcp.c: --fake-dns's DNS over TCP through one engine (docs/fuzzing.md). */
void fz_run_dns_tcp(const uint8_t *data, size_t size);

#endif
