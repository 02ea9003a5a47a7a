/*
 * engine_fake.h: a recording device, upstream connector and network monitor for driving a
 * t2s_engine without I/O, shared by tests/test_engine_net.c, tests/test_udp.c and
 * bench/cost_driver.c (it uses no CUnit, so the bench links it too).
 *
 * engine_fake_init() wires f->dev, f->up and f->mon to f; pass them to t2s_engine_new() and
 * t2s_engine_set_monitor(). The device keeps every packet the engine sends (up to
 * ENGINE_FAKE_MAX_PKTS) unless record_pkts is cleared, and hands each to on_send when it is set.
 * The upstream records each stream and datagram flow it is asked to open; a stream takes every
 * byte written to it and keeps the first ones. The monitor answers route_get with route, or
 * with route_rv when that is not 0.
 */
#ifndef T2S_ENGINE_FAKE_H
#define T2S_ENGINE_FAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define ENGINE_FAKE_MAX_PKTS 256
#define ENGINE_FAKE_MAX_STREAMS 32
#define ENGINE_FAKE_MAX_DGRAMS 32

/* A packet the engine sent toward the clients. */
typedef struct engine_fake_pkt {
  uint8_t data[1600];
  size_t len;
} engine_fake_pkt;

/* A stream the engine opened (stream_open). */
typedef struct engine_fake_stream {
  uint64_t id;
  t2s_addr dst;
  t2s_egress egress;
  uint8_t written[1024]; /* the first bytes written */
  size_t wlen;           /* bytes kept in written */
  uint64_t wtotal;       /* every byte written (all are taken) */
  bool paused;           /* the engine paused reading it */
  bool closed;
} engine_fake_stream;

/* A datagram flow the engine opened (dgram_open). */
typedef struct engine_fake_dgram {
  uint64_t id;
  t2s_addr relay;
  t2s_egress egress;
  uint8_t last[2048]; /* the last datagram sent, cut to this size */
  size_t lastlen;
  size_t sent; /* datagrams sent */
  bool closed;
} engine_fake_dgram;

typedef struct engine_fake {
  /* Options: set after engine_fake_init(). */
  bool record_pkts; /* keep sent packets in pkts[] (default true) */
  void (*on_send)(void *arg, const uint8_t *pkt, size_t len); /* also sees each packet */
  void *on_send_arg;
  uint32_t mtu; /* the device's caps (default 1500) */
  /* Device. */
  engine_fake_pkt pkts[ENGINE_FAKE_MAX_PKTS];
  size_t npkts;
  /* Upstream, in the order opened. */
  engine_fake_stream streams[ENGINE_FAKE_MAX_STREAMS];
  size_t nstreams;
  engine_fake_dgram dgrams[ENGINE_FAKE_MAX_DGRAMS];
  size_t ndgrams;
  /* Monitor. */
  int route_rv;
  t2s_route route;
  size_t route_queries;
  /* The handles to give the engine; self is this fake. */
  t2s_device dev;
  t2s_upstream up;
  t2s_monitor mon;
} engine_fake;

/* Clears *f, sets the default options and wires dev, up and mon to it. */
void engine_fake_init(engine_fake *f);

/* The device's send op (self: an engine_fake), also usable as a t2s_frag_out_fn: records
 * pkt[0..len) and hands it to on_send. Returns 0. */
int engine_fake_send(void *self, const uint8_t *pkt, size_t len);

/* Sets the monitor's answer to a route through ifindex/ifname with source address src (an
 * address t2s_addr_parse accepts); local: the destination is on this host. route_rv becomes 0. */
void engine_fake_set_route(engine_fake *f, uint32_t ifindex, const char *ifname, const char *src,
                           bool local);

/* Runs every timer of e due at or before t (at most 1000 expiries). */
void engine_fake_run_to(t2s_engine *e, t2s_tstamp t);
/* Feeds e a SYN without options from the client 198.18.0.2:sport to 203.0.113.10:80 (ISN
 * 1000 * sport) at now. Returns what t2s_engine_input returned, or T2S_ERR_NOBUF when the
 * packet could not be built. */
int engine_fake_syn(t2s_engine *e, uint16_t sport, t2s_tstamp now);

#endif
