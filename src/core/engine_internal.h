/*
 * engine_internal.h: the engine's state, shared by engine.c (packets, ICMP, timers) and
 * engine_tcp.c (TCP sessions and their upstream streams). Not part of the public API.
 */
#ifndef T2S_ENGINE_INTERNAL_H
#define T2S_ENGINE_INTERNAL_H

#include "engine.h"
#include "idmap.h"
#include "packet.h"
#include "rand.h"
#include "tcp.h"

#define T2S_ENGINE_OUTBUF 65536

struct t2s_engine {
  t2s_engine_config cfg;
  char username[256];
  char password[256];
  t2s_device dev;
  t2s_upstream up;
  t2s_engine_hooks hooks;
  t2s_rand rand;
  t2s_engine_stats stats;
  t2s_tcp_stack *tcp;
  t2s_idmap sessions; /* id -> struct t2s_session */
  uint64_t next_id;
  struct t2s_session *dead; /* sessions to free at the next safe point */
  t2s_tstamp now;           /* time of the call being handled */
  uint8_t outbuf[T2S_ENGINE_OUTBUF];
};

/* Sends a packet toward the clients and counts it. */
int t2s_engine_send(t2s_engine *e, const uint8_t *pkt, size_t len);
/* Counts a drop and reports it. pkt may be NULL. */
void t2s_engine_drop(t2s_engine *e, t2s_drop_reason reason, t2s_tstamp now, const t2s_pkt *pkt);
/* Reports an event to the hooks. */
void t2s_engine_emit(t2s_engine *e, t2s_engine_event_type type, t2s_tstamp now, uint64_t id,
                     const t2s_addr *src, const t2s_addr *dst, int reason);

/* engine_tcp.c */
void t2s_engine_tcp_callbacks(t2s_tcp_callbacks *cbs);
void t2s_engine_sessions_close_all(t2s_engine *e);
void t2s_engine_reap(t2s_engine *e);

#endif
