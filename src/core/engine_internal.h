/*
 * engine_internal.h: the engine's state and the functions its files share. Not part of the
 * public API.
 */
#ifndef T2S_ENGINE_INTERNAL_H
#define T2S_ENGINE_INTERNAL_H

#include "engine.h"
#include "flow.h"
#include "frag.h"
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
  uint32_t burst;              /* bursts begun so far (a flow's rx_gap names the one it spans) */
  t2s_tstamp survivor_check;   /* survivors silent since the change are reset then (0: none) */
} t2s_engine_net;

/* Fragments: reassembly of what clients send, fragmentation of what goes to them
 * (engine_frag.c). */
typedef struct t2s_engine_frag {
  t2s_reasm *reasm;
  uint32_t ident;                   /* identification of the last packet we fragmented */
  uint8_t whole[T2S_REASM_MAX_PKT]; /* the last reassembled packet */
  uint8_t scratch[65536 + 64];      /* one outgoing fragment at a time */
} t2s_engine_frag;

struct t2s_engine {
  t2s_engine_config cfg;
  char username[256];
  char password[256];
  t2s_device dev;
  t2s_upstream up;
  t2s_engine_hooks hooks;
  t2s_rand rand;
  t2s_engine_stats stats;
  t2s_mem *mem;         /* cfg.mem, or &own_mem (alloc.h) */
  t2s_mem own_mem;      /* used when cfg.mem is NULL (the engine struct itself is not counted) */
  t2s_flow_table flows; /* every upstream id -> its flow (flow.h) */
  t2s_tcp_stack *tcp;   /* the TCP endpoint (tcp.h) */
  struct t2s_session *tcp_dead; /* TCP sessions to free at the next safe point */
  struct t2s_udp *udp;          /* UDP sessions (engine_udp.c) */
  bool reap_due;                /* a kind has something to free at the next safe point */
  t2s_tstamp now;               /* time of the call being handled */
  t2s_engine_net net;
  struct t2s_engine_proxies *px; /* several proxies (engine_proxy.c); NULL: cfg.proxy alone */
  /* A burst (T2S_INPUT_MORE): sessions with client data to write upstream at its end. */
  struct t2s_session *pumpq;
  bool in_burst;
  /* The TCP stack's callbacks of each kind that terminates a client's TCP connection (the
   * connection's user is its t2s_flow; engine.c dispatches by the flow's kind). */
  t2s_tcp_callbacks conn_cbs[T2S_FLOW_KIND_MAX];
  /* --fake-dns's DNS-over-TCP connections (engine_fakedns_tcp.c): live ones least recently
   * active first, and those to free at the next safe point. */
  struct t2s_dnsl *dnsl_head, *dnsl_tail, *dnsl_dead;
  t2s_engine_frag frag;
  uint8_t outbuf[T2S_ENGINE_OUTBUF];
};

/*
 * Who calls whom (docs/architecture.md): engine.c (the hub: every public entry point, packet
 * demultiplexing, dispatch of upstream completions by flow kind, timers, the safe point) calls
 * the kinds and the policy; the kinds (engine_tcp.c, engine_udp*.c) and the policy
 * (engine_net.c) call only what is below them; nothing calls up. Kinds never call each other.
 *
 *   engine.c  ->  engine_tcp.c, engine_udp.c (kinds)  ->  engine_net.c (state queries)
 *             ->  engine_net.c (policy: resets through the flow iterator and the ops)
 *   everyone  ->  engine_out.c (packets toward clients, drops, events), engine_frag.c, flow.c
 */

/* ---- engine_out.c: what every part sends toward the clients and reports to the host ---- */

/* Sends a packet toward the clients and counts it. */
int t2s_engine_send(t2s_engine *e, const uint8_t *pkt, size_t len);
/* The same for a packet in pieces, through the device's sendv (which must be set). */
int t2s_engine_sendv(t2s_engine *e, const t2s_iovec *iov, size_t niov);
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
/* Reports a fully built event (its type and now set by the caller). */
void t2s_engine_emit_ev(t2s_engine *e, const t2s_engine_event *ev);

/* ---- engine_frag.c: fragment reassembly and fragmentation ---- */

/* Creates the reassembler (draws the first identification from the engine's generator).
 * Returns 0 or T2S_ERR_NOMEM. */
int t2s_engine_frag_init(t2s_engine *e);
void t2s_engine_frag_free(t2s_engine *e);
/* A fragment from a client: when it completes a packet, *pwhole and *pwholelen give the
 * whole packet (valid until the next call) and T2S_DROP_NONE is returned; *pwhole is NULL
 * while the packet is incomplete; otherwise the drop reason. */
t2s_drop_reason t2s_engine_frag_input(t2s_engine *e, const t2s_pkt *frag, t2s_tstamp now,
                                      const uint8_t **pwhole, size_t *pwholelen);
t2s_tstamp t2s_engine_frag_get_expiry(const t2s_engine *e);
/* Drops the datagrams whose reassembly time is up (counted as T2S_DROP_FRAG_TIMEOUT). */
void t2s_engine_frag_handle_expiry(t2s_engine *e, t2s_tstamp now);
/* Sends a packet toward the clients, fragmented when it is larger than the MTU. Returns 0 or
 * the device's error. */
int t2s_engine_send_frag(t2s_engine *e, const uint8_t *pkt, size_t len);

/* ---- engine_net.c: the network-change state machine ---- */

t2s_tstamp t2s_engine_net_expiry(const t2s_engine *e);
void t2s_engine_net_handle_expiry(t2s_engine *e, t2s_tstamp now);
/* A monitor event (t2s_engine_network_event without the safe point). */
void t2s_engine_net_event(t2s_engine *e, const t2s_net_event *ev, t2s_tstamp now);
/* True when new flows must be refused at once (NO_ROUTE, SUSPENDED). */
bool t2s_engine_offline(const t2s_engine *e);
/* A new flow completed its handshake (recovery time after a change). */
void t2s_engine_net_flow_established(t2s_engine *e, t2s_tstamp now);
/* True when a flow that left through egress a must be reset when the egress becomes b. */
bool t2s_engine_egress_differs(const t2s_egress *a, const t2s_egress *b);
/* Resets every flow (any kind, through the flow iterator and its ops) whose egress differs
 * from *keep, every flow when keep is NULL. Counted in flows_reset; returns how many. The
 * caller reaps. */
size_t t2s_engine_reset_flows(t2s_engine *e, const t2s_egress *keep, t2s_tstamp now);
/* Multipath TCP (docs/mptcp.md): what the connector reported for flow f's stream (counted). */
void t2s_engine_net_stream_multipath(t2s_engine *e, t2s_flow *f, t2s_stream_mp mp,
                                     uint32_t subflows, t2s_tstamp now);
/* Bytes arrived on multipath flow f (its stall across a change ends). */
void t2s_engine_net_flow_rx(t2s_engine *e, t2s_flow *f, t2s_tstamp now);

/* ---- engine_proxy.c (docs/proxies.md): the proxies' health, below the kinds ----
 * Without t2s_engine_set_proxies() these answer for cfg.proxy: pick -1, the address and
 * credentials of the configuration, no outcome kept. */
int t2s_engine_proxy_pick(t2s_engine *e);
bool t2s_engine_proxies_all_down(const t2s_engine *e);
/* The next proxy (not DOWN) after index `after` for a held SYN whose connect failed, or -1. */
int t2s_engine_proxy_next(t2s_engine *e, int after);
const t2s_addr *t2s_engine_proxy_addr(const t2s_engine *e, int i);
const char *t2s_engine_proxy_username(const t2s_engine *e, int i);
const char *t2s_engine_proxy_password(const t2s_engine *e, int i);
/* A handshake with proxy i ended: err 0 = the proxy answered, else why it failed (counted in
 * stats.upstream_failures by cause, with or without a proxy set). */
void t2s_engine_proxy_outcome(t2s_engine *e, int i, int err, t2s_tstamp now);
/* Payload carried through proxy i (its per-proxy counters; nothing without a set). */
void t2s_engine_proxy_count_bytes(t2s_engine *e, int i, uint64_t up, uint64_t down);
/* Proxy i's new address (t2s_engine_proxy_set_addr without the network part): returns 1 when
 * it was proxy 0's (the route to follow moved), 0, or T2S_ERR_INVALID_ARGUMENT. */
int t2s_engine_proxy_readdress(t2s_engine *e, size_t i, const t2s_addr *addr, t2s_tstamp now);
/* A network decision was taken (engine_net.c): DOWN proxies are probed again at once. */
void t2s_engine_proxy_net_decision(t2s_engine *e, t2s_tstamp now);
/* engine_net.c: proxy 0 has a new address; take the path to it now, without a reset. */
void t2s_engine_net_retarget(t2s_engine *e, t2s_tstamp now);
t2s_tstamp t2s_engine_proxy_expiry(const t2s_engine *e);
/* Answers the DNS query in UDP packet *pkt (to port 53) with SERVFAIL at once: what a query
 * that cannot be carried gets (every proxy DOWN). Returns false when pkt is not a query (or
 * nothing could be sent): the caller then does what it does for other datagrams. */
bool t2s_engine_dns_servfail(t2s_engine *e, const t2s_pkt *pkt);
/* A proxy that went DOWN has its flows reset here (its TCP flows, every UDP session) through
 * the flow iterator. */
void t2s_engine_proxy_handle_expiry(t2s_engine *e, t2s_tstamp now);
void t2s_engine_proxy_free(t2s_engine *e);

/* ---- engine_tcp.c: the TCP session kind ---- */

/* The TCP stack's callbacks (on_syn opens a session and its upstream). */
void t2s_engine_tcp_callbacks(t2s_tcp_callbacks *cbs);
/* Frees the TCP sessions that ended (the safe point). */
void t2s_engine_tcp_reap(t2s_engine *e);
/* Writes upstream what the burst delivered to each queued session. */
void t2s_engine_tcp_flush(t2s_engine *e, t2s_tstamp now);

/* ---- engine_udp.c: the UDP session kinds (datagram socket, ASSOCIATE control stream,
 * DNS-over-TCP stream), the no-UDP fallback ---- */

int t2s_engine_udp_init(t2s_engine *e);
/* Engine teardown: closes every UDP session's upstreams (least recently used first), no
 * event; their ids leave the flow table. */
void t2s_engine_udp_close_all(t2s_engine *e);
/* Frees the UDP module (every session must have been closed: t2s_engine_udp_close_all). */
void t2s_engine_udp_free(t2s_engine *e);
/* A parsed UDP packet from a client. */
void t2s_engine_udp_input(t2s_engine *e, const t2s_pkt *pkt, t2s_tstamp now);
t2s_tstamp t2s_engine_udp_get_expiry(const t2s_engine *e);
void t2s_engine_udp_handle_expiry(t2s_engine *e, t2s_tstamp now);
/* Frees the UDP sessions that ended (the safe point). */
void t2s_engine_udp_reap(t2s_engine *e);

#endif
