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

/* The network-change state machine (engine_net.c). */
typedef struct t2s_engine_net {
  t2s_monitor monitor;
  bool has_monitor;
  t2s_net_state state;
  t2s_tstamp debounce_at;    /* end of the current debounce (T2S_TSTAMP_MAX: none) */
  t2s_tstamp first_event_at; /* first event of the current burst */
  bool have_path;            /* path is the last answer of route_get for the proxy */
  t2s_route path;
  uint32_t default_ifindex[2]; /* default route's interface per family (0: none), from events */
  uint32_t decided_default[2]; /* the same at the last decision */
  bool pinned_lost;            /* the pinned interface went down or lost an address */
  t2s_tstamp decided_at;       /* last decision that changed something */
  bool awaiting_first_flow;    /* for the recovery time */
} t2s_engine_net;

struct t2s_engine {
  t2s_engine_config cfg;
  char username[256];
  char password[256];
  t2s_device dev;
  t2s_upstream up;
  t2s_engine_hooks hooks;
  t2s_rand rand;
  t2s_engine_stats stats;
  t2s_mem *mem;    /* cfg.mem, or &own_mem (alloc.h) */
  t2s_mem own_mem; /* used when cfg.mem is NULL (the engine struct itself is not counted) */
  t2s_tcp_stack *tcp;
  t2s_idmap sessions; /* id -> struct t2s_session */
  uint64_t next_id;
  struct t2s_session *dead; /* sessions to free at the next safe point */
  t2s_tstamp now;           /* time of the call being handled */
  struct t2s_udp *udp;      /* UDP sessions and fragments (engine_udp.c) */
  t2s_engine_net net;
  struct t2s_engine_proxies *px; /* several proxies (engine_proxy.c); NULL: cfg.proxy alone */
  /* A burst (T2S_INPUT_MORE): sessions with client data to write upstream at its end. */
  struct t2s_session *pumpq;
  bool in_burst;
  uint8_t outbuf[T2S_ENGINE_OUTBUF];
};

/* Sends a packet toward the clients and counts it. */
int t2s_engine_send(t2s_engine *e, const uint8_t *pkt, size_t len);
/* Sends toward the sender of *orig an ICMP destination unreachable from `from` (code: the
 * family's ICMP code, see t2s_build_icmp_unreach) quoting orig. Returns true when sent. */
bool t2s_engine_send_unreach(t2s_engine *e, const t2s_addr *from, const t2s_pkt *orig,
                             uint8_t code);
/* The same, quoting pkt[0..len): a packet the caller rebuilt because the client's is gone (a
 * held SYN, a datagram); len is its builder's result (negative: not built, nothing sent). */
bool t2s_engine_send_unreach_rebuilt(t2s_engine *e, const t2s_addr *from, const uint8_t *pkt,
                                     t2s_ssize len, uint8_t code);
/* Counts a drop and reports it. pkt may be NULL. */
void t2s_engine_drop(t2s_engine *e, t2s_drop_reason reason, t2s_tstamp now, const t2s_pkt *pkt);
/* Reports an event to the hooks. */
void t2s_engine_emit(t2s_engine *e, t2s_engine_event_type type, t2s_tstamp now, uint64_t id,
                     const t2s_addr *src, const t2s_addr *dst, int reason);

/* engine_net.c */
t2s_tstamp t2s_engine_net_expiry(const t2s_engine *e);
void t2s_engine_net_handle_expiry(t2s_engine *e, t2s_tstamp now);
/* True when new flows must be refused at once (NO_ROUTE, SUSPENDED). */
bool t2s_engine_offline(const t2s_engine *e);
/* A new flow completed its handshake (recovery time after a change). */
void t2s_engine_net_flow_established(t2s_engine *e, t2s_tstamp now);

/* engine_proxy.c (docs/proxies.md). Without t2s_engine_set_proxies() these answer for
 * cfg.proxy: pick -1, the address and credentials of the configuration, no outcome kept. */
int t2s_engine_proxy_pick(t2s_engine *e);
bool t2s_engine_proxies_all_down(const t2s_engine *e);
/* The next proxy (not DOWN) after index `after` for a held SYN whose connect failed, or -1. */
int t2s_engine_proxy_next(t2s_engine *e, int after);
const t2s_addr *t2s_engine_proxy_addr(const t2s_engine *e, int i);
const char *t2s_engine_proxy_username(const t2s_engine *e, int i);
const char *t2s_engine_proxy_password(const t2s_engine *e, int i);
/* A handshake with proxy i ended: err 0 = the proxy answered, else why it failed. */
void t2s_engine_proxy_outcome(t2s_engine *e, int i, int err, t2s_tstamp now);
t2s_tstamp t2s_engine_proxy_expiry(const t2s_engine *e);
/* Answers the DNS query in UDP packet *pkt (to port 53) with SERVFAIL at once: what a query
 * that cannot be carried gets (every proxy DOWN). Returns false when pkt is not a query (or
 * nothing could be sent): the caller then does what it does for other datagrams. */
bool t2s_engine_dns_servfail(t2s_engine *e, const t2s_pkt *pkt);
void t2s_engine_proxy_handle_expiry(t2s_engine *e, t2s_tstamp now);
void t2s_engine_proxy_free(t2s_engine *e);

/* engine_udp.c: flushes the UDP sessions whose egress differs from *keep (all when keep is
 * NULL); returns how many. */
size_t t2s_engine_udp_flush(t2s_engine *e, const t2s_egress *keep, t2s_tstamp now);

/* True when a flow that left through egress a must be reset when the egress becomes b. */
bool t2s_engine_egress_differs(const t2s_egress *a, const t2s_egress *b);

/* engine_tcp.c */
/* Resets the TCP sessions whose egress differs from *keep (every one when keep is NULL).
 * Returns how many. */
size_t t2s_engine_tcp_reset(t2s_engine *e, const t2s_egress *keep, t2s_tstamp now);
/* Resets the TCP sessions carried by proxy index `proxy`. Returns how many. */
size_t t2s_engine_tcp_reset_proxy(t2s_engine *e, int proxy, t2s_tstamp now);
void t2s_engine_tcp_callbacks(t2s_tcp_callbacks *cbs);
void t2s_engine_sessions_close_all(t2s_engine *e);
/* Writes upstream what the burst delivered to each queued session (engine_tcp.c). */
void t2s_engine_tcp_flush(t2s_engine *e, t2s_tstamp now);
void t2s_engine_reap(t2s_engine *e);

/* engine_udp.c: UDP sessions (SOCKS5 UDP ASSOCIATE, full cone), the no-UDP fallback (DNS
 * over TCP, ICMP port unreachable), fragment reassembly and fragmentation toward clients. */
int t2s_engine_udp_init(t2s_engine *e);
void t2s_engine_udp_free(t2s_engine *e);
/* A parsed UDP packet from a client. */
void t2s_engine_udp_input(t2s_engine *e, const t2s_pkt *pkt, t2s_tstamp now);
t2s_tstamp t2s_engine_udp_get_expiry(const t2s_engine *e);
void t2s_engine_udp_handle_expiry(t2s_engine *e, t2s_tstamp now);
/* t2s_engine_udp_flush: declared above (network changes). */
/* True when stream id is a UDP session's control (or DNS-over-TCP) stream: the
 * t2s_engine_stream_* completions for it go to the functions below. */
bool t2s_engine_udp_owns_stream(const t2s_engine *e, uint64_t id);
void t2s_engine_udp_stream_opened(t2s_engine *e, uint64_t id, int err, t2s_tstamp now);
size_t t2s_engine_udp_stream_recv_space(const t2s_engine *e, uint64_t id);
size_t t2s_engine_udp_stream_recv(t2s_engine *e, uint64_t id, const uint8_t *data, size_t len,
                                  t2s_tstamp now);
void t2s_engine_udp_stream_eof(t2s_engine *e, uint64_t id, t2s_tstamp now);
void t2s_engine_udp_stream_writable(t2s_engine *e, uint64_t id, t2s_tstamp now);
void t2s_engine_udp_stream_error(t2s_engine *e, uint64_t id, int err, t2s_tstamp now);
/* A fragment from a client: when it completes a packet, *pwhole and *pwholelen give the
 * whole packet (valid until the next call) and T2S_DROP_NONE is returned; *pwhole is NULL
 * while the packet is incomplete; otherwise the drop reason. */
t2s_drop_reason t2s_engine_frag_input(t2s_engine *e, const t2s_pkt *frag, t2s_tstamp now,
                                      const uint8_t **pwhole, size_t *pwholelen);
/* Sends a packet toward the clients, fragmented when it is larger than the MTU. Returns 0 or
 * the device's error. */
int t2s_engine_send_frag(t2s_engine *e, const uint8_t *pkt, size_t len);

#endif
