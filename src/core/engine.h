/*
 * engine.h: the tun2sock engine. It terminates the TCP, UDP and ICMP traffic that enters the
 * device in its own stack and carries every flow to the proxy through the upstream connector.
 *
 * Sans-I/O: the engine makes no system call and reads no clock. Every entry point takes `now`.
 * Packets toward the clients go out through the device's send op; bytes toward the proxy
 * through the upstream connector's ops. "When must I be called next?" is
 * t2s_engine_get_expiry(); the caller then calls t2s_engine_handle_expiry().
 * No global state: several engines may live in one process.
 */
#ifndef T2S_ENGINE_H
#define T2S_ENGINE_H

#include "alloc.h"
#include "common.h"
#include "drop.h"
#include "iface.h"
#include "proxy_health.h"

typedef struct t2s_engine t2s_engine;

typedef enum t2s_proxy_kind {
  T2S_PROXY_NONE = 0, /* streams go to the original destination itself (simulator, tests) */
  T2S_PROXY_SOCKS5 = 1,
} t2s_proxy_kind;

/* What a network change does to running flows. Whatever the policy, a resume (RESUMED: the
 * machine slept) resets every flow at once: what was open before a sleep is dead. */
typedef enum t2s_netchange_policy {
  T2S_NETCHANGE_RESET_AFFECTED = 0, /* flows whose path to the proxy changed */
  T2S_NETCHANGE_RESET_ALL,          /* every flow on any effective change */
  T2S_NETCHANGE_NONE, /* no reset on a change (the egress is still re-selected); resumes reset */
} t2s_netchange_policy;

/* The network-change state machine's states. */
typedef enum t2s_net_state {
  T2S_NET_STATE_UP = 0,    /* a route to the proxy exists; flows run */
  T2S_NET_STATE_SETTLING,  /* events arrived; waiting for the debounce to end */
  T2S_NET_STATE_NO_ROUTE,  /* no route to the proxy: new flows refused at once */
  T2S_NET_STATE_SUSPENDED, /* the machine is about to sleep or asleep */
} t2s_net_state;

/* Names "UP", "SETTLING", "NO_ROUTE", "SUSPENDED". */
const char *t2s_net_state_name(t2s_net_state s);

typedef struct t2s_engine_config {
  uint64_t seed; /* seeds ISNs and hash keys; same seed, same run */
  uint32_t mtu;  /* device MTU; 0 = ask the device */
  t2s_proxy_kind proxy_kind;
  t2s_addr proxy;       /* the SOCKS5 server */
  const char *username; /* RFC 1929; NULL = no authentication offered */
  const char *password;
  t2s_egress egress;     /* where upstream sockets leave from (set by the runner / policy) */
  bool socks5_pipelined; /* greeting, auth and CONNECT in one write (def. false) */

  /* TCP */
  t2s_tstamp tcp_connect_timeout; /* SYN held at most this long for the upstream (def. 10 s) */
  uint32_t tcp_sndbuf;            /* bytes buffered toward a client (def. 256 KiB) */
  uint32_t tcp_rcvbuf;            /* bytes buffered from a client (def. 256 KiB) */
  uint32_t max_tcp_flows;         /* def. 16384 */
  uint32_t max_pending_syn;       /* def. 1024 */
  t2s_tstamp tcp_time_wait;       /* def. 2 s (short, bounded) */
  uint32_t tcp_max_retries;       /* retransmissions before giving up (def. 12) */
  t2s_tstamp tcp_keepalive_idle;  /* 0 = off */

  /* UDP */
  t2s_tstamp udp_timeout;    /* def. 60 s */
  t2s_tstamp dns_timeout;    /* def. 10 s */
  uint32_t max_udp_sessions; /* def. 4096 */

  /* ICMP */
  bool icmp_echo_reply;        /* answer echo requests locally (def. true) */
  bool icmp_unreach_on_refuse; /* REP 3/4 => ICMP unreachable instead of RST */

  /* Network changes (docs/network-change.md) */
  t2s_netchange_policy on_network_change; /* def. T2S_NETCHANGE_RESET_AFFECTED */
  t2s_tstamp network_debounce;            /* def. 500 ms */
  uint32_t fwmark;                        /* mark used for route queries (0 = none) */
  bool egress_pinned;                     /* --interface: never re-select the egress */

  /* DNS hijack (--dns-hijack): TCP and UDP flows to port 53 of any address are carried to this
   * resolver instead; answers come back from the address the client asked. Family 0 = off. */
  t2s_addr dns_hijack;

  /* Fake-IP DNS (--fake-dns, docs/fake-dns.md): the table (fakedns.h), borrowed for the
   * engine's life; NULL = off. With it, every UDP query to port 53 is answered from it (the
   * types it does not answer are carried as above), and a TCP or UDP flow to a pool address
   * asks the proxy for the name it stands for (SOCKS5 ATYP 3); one no name holds is refused. */
  struct t2s_fakedns *fake_dns;

  /* Counts every heap block of the engine, its own struct included (alloc.h); owned by the
   * caller, so it can be read after t2s_engine_del (0 = no leak). NULL: an internal counter. */
  t2s_mem *mem;
  /* Bytes the engine may hold on the heap (connections, their buffers, sessions); past it a
   * new SYN is refused with RST and buffers stop growing. 0 = no limit. Def. 512 MiB. */
  uint64_t memory_budget;
} t2s_engine_config;

/* Fills *cfg with the defaults documented above. */
void t2s_engine_config_default(t2s_engine_config *cfg);

/* What the engine tells its host about (the simulator's event log, the binary's log). */
typedef enum t2s_engine_event_type {
  T2S_EV_DROP = 1,        /* a packet dropped: reason */
  T2S_EV_ICMP_ECHO,       /* an echo request answered */
  T2S_EV_TCP_SYN,         /* a new connection attempt (SYN held) */
  T2S_EV_TCP_ESTABLISHED, /* handshake completed with the client */
  T2S_EV_TCP_REFUSED,     /* upstream failed: err; RST/ICMP sent */
  T2S_EV_TCP_CLOSED,      /* connection finished cleanly */
  T2S_EV_TCP_RESET,       /* connection reset (by whom: err) */
  T2S_EV_UDP_OPEN,
  T2S_EV_UDP_CLOSED,
  T2S_EV_NET_EVENT,    /* a monitor event was received (reason = t2s_net_event_type) */
  T2S_EV_NET_STATE,    /* the network state changed (reason = new t2s_net_state) */
  T2S_EV_NET_DECISION, /* end of a debounce: reason = number of flows reset */
  T2S_EV_EGRESS,       /* the egress changed: see t2s_engine_get_egress() */
  T2S_EV_ROUTE_UPDATE, /* a change that left the path to the proxy as it was */
  /* Several proxies (docs/proxies.md): flow_id = the proxy's index, dst = its address. */
  T2S_EV_PROXY_PROBE,    /* probe it; answer with t2s_engine_proxy_probe_result() */
  T2S_EV_PROXY_DOWN,     /* it went DOWN: reason = t2s_proxy_cause, bytes_up = flows reset */
  T2S_EV_PROXY_UP,       /* it came back: new flows prefer it again */
  T2S_EV_PROXY_FAILURES, /* reason = cause, bytes_up = count, bytes_down = period (ns) */
  T2S_EV_TCP_RETRY,      /* a held SYN whose proxy failed goes to the next proxy under a new
                            flow id (flow_id; src, dst as its T2S_EV_TCP_SYN; reason = the
                            proxy's index; bytes_up = the old flow id) */
} t2s_engine_event_type;

/* The event's name as logs print it ("tcp_syn", "net_state", ...). */
const char *t2s_engine_event_name(t2s_engine_event_type type);

typedef struct t2s_engine_event {
  t2s_engine_event_type type;
  t2s_tstamp now;
  uint64_t flow_id;
  t2s_addr src; /* client side */
  t2s_addr dst; /* original destination */
  int reason;   /* drop reason (T2S_DROP_*) or error (T2S_ERR_*) */
  uint64_t bytes_up, bytes_down;
} t2s_engine_event;

typedef struct t2s_engine_hooks {
  void (*on_event)(void *arg, const t2s_engine_event *ev); /* may be NULL */
  void *arg;
} t2s_engine_hooks;

/* Buckets of the recovery-time histogram (change => first new flow established). */
#define T2S_RECOVERY_BUCKETS 9
/* Upper bound of bucket i (10 ms, 50 ms, 100 ms, 250 ms, 500 ms, 1 s, 2 s, 5 s, +Inf). */
t2s_tstamp t2s_engine_recovery_bucket_bound(size_t i);

/* Why a DNS query was answered SERVFAIL by the engine instead of carried (docs/udp.md). */
typedef enum t2s_dns_servfail_cause {
  T2S_DNS_SERVFAIL_PROXY_DOWN = 0, /* every proxy DOWN (docs/proxies.md) */
  T2S_DNS_SERVFAIL_SETUP_FAILED,   /* queued on a UDP session whose setup failed */
  T2S_DNS_SERVFAIL_QUEUE_FULL,     /* the session's setup queue was full */
  T2S_DNS_SERVFAIL_FLUSHED,        /* queued on a session closed before it was ready */
  T2S_DNS_SERVFAIL_TCP_UPSTREAM,   /* --fake-dns over TCP: the forwarding stream failed */
  T2S_DNS_SERVFAIL_CAUSE_COUNT
} t2s_dns_servfail_cause;

typedef struct t2s_engine_stats {
  uint64_t packets_in, packets_out;
  uint64_t bytes_up;   /* payload bytes handed to the upstream */
  uint64_t bytes_down; /* payload bytes sent to clients (first transmissions) */
  uint64_t drops[T2S_DROP_MAX];
  uint64_t tcp_flows_active;
  uint64_t tcp_pending_syn;
  uint64_t tcp_flows_total;
  uint64_t tcp_resets_sent;
  uint64_t tcp_retransmits;
  uint64_t tcp_challenge_acks; /* RFC 5961 challenge ACKs (blind RST/SYN answered) */
  uint64_t udp_sessions_active;
  uint64_t udp_sessions_total;
  uint64_t udp_datagrams_up;      /* datagrams sent toward the proxy (or destination) */
  uint64_t udp_datagrams_down;    /* datagrams delivered to clients */
  uint64_t udp_evictions;         /* sessions evicted at max_udp_sessions (LRU, DNS first) */
  uint64_t udp_timeouts;          /* sessions ended by their idle timeout */
  uint64_t udp_no_udp_verdicts;   /* times the proxy was found to have no UDP */
  uint64_t udp_dns_tcp_queries;   /* DNS queries carried over TCP (no-UDP fallback) */
  uint64_t udp_dns_tcp_answers;   /* their answers returned as UDP */
  uint64_t udp_port_unreach_sent; /* ICMP port unreachable sent for UDP */
  uint64_t udp_proxy_no_udp;      /* 1 while the proxy is believed to have no UDP */
  uint64_t frag_reassembled;      /* packets reassembled from client fragments */
  uint64_t frag_sent;             /* fragments sent for packets larger than the MTU */
  uint64_t icmp_echo_replies;
  uint64_t upstream_errors;
  uint64_t upstream_failures[T2S_PROXY_CAUSE_COUNT]; /* proxy handshakes failed, by cause
                                                       (t2s_proxy_cause; docs/proxies.md) */
  uint64_t flows_reset;                              /* by the network-change policy */
  uint64_t network_changes;     /* debounced changes that altered the path or state */
  uint64_t route_updates;       /* debounced changes that left the path to the proxy as it was */
  uint64_t net_events;          /* raw monitor events received */
  uint64_t resumes;             /* resume events (sleep detected) */
  uint64_t syn_refused_offline; /* SYNs refused at once in NO_ROUTE/SUSPENDED */
  uint32_t net_state;           /* t2s_net_state */
  t2s_tstamp last_detect_ns;    /* last change: first event => decision */
  t2s_tstamp last_reset_ns;     /* last change: time spent resetting flows (engine time) */
  t2s_tstamp last_recovery_ns;  /* last change: decision => first new flow established */
  uint64_t mem_blocks;          /* heap blocks the engine holds now (alloc.h) */
  uint64_t mem_bytes;           /* heap bytes the engine holds now */
  uint64_t mem_peak_bytes;      /* the most it ever held */
  uint64_t mem_refused;         /* allocations refused (memory budget or out of memory) */
  uint64_t recovery_hist[T2S_RECOVERY_BUCKETS]; /* non-cumulative counts per bucket */
  /* Multipath TCP (docs/mptcp.md; t2s_engine_stream_multipath) */
  uint64_t mptcp_multipath;        /* streams reported MPTCP end to end */
  uint64_t mptcp_fallback;         /* streams reported fallen back to TCP */
  uint64_t mptcp_subflows_added;   /* subflows the connector saw appear */
  uint64_t mptcp_subflows_removed; /* ... and go */
  uint64_t flows_survived;  /* multipath flows a change of path did not reset (engine_net.c) */
  uint64_t survivors_reset; /* of them, reset later: no bytes for 10 s after the decision */
  t2s_tstamp survived_stall_sum_ns;                   /* the sum of their measured stalls */
  uint64_t survived_stall_hist[T2S_RECOVERY_BUCKETS]; /* stall: no bytes from the upstream
                                                       * across the change (recovery buckets) */
  /* DNS queries the engine answered SERVFAIL, by t2s_dns_servfail_cause */
  uint64_t dns_servfail[T2S_DNS_SERVFAIL_CAUSE_COUNT];
} t2s_engine_stats;

/* Creates an engine. dev and up are borrowed for the engine's life; hooks may be NULL.
 * Returns 0, T2S_ERR_INVALID_ARGUMENT or T2S_ERR_NOMEM. */
int t2s_engine_new(t2s_engine **pengine, const t2s_engine_config *cfg, const t2s_device *dev,
                   const t2s_upstream *up, const t2s_engine_hooks *hooks);
/* Frees the engine and everything it holds, closing upstreams through the connector. */
void t2s_engine_del(t2s_engine *engine);

/* Feeds one IP packet from the device. Never fails on bad input (drops are counted); returns
 * 0, or a fatal error. */
int t2s_engine_input(t2s_engine *engine, const uint8_t *pkt, size_t len, t2s_tstamp now);
/* The same with what the device knows of the packet: T2S_PARSE_* flags (packet.h), from the
 * device's rx_flags(). */
int t2s_engine_input_ex(t2s_engine *engine, const uint8_t *pkt, size_t len, unsigned flags,
                        t2s_tstamp now);

/* A flag for t2s_engine_input_ex: more packets of the same burst follow (the device read
 * loop has not yet seen "would block"). Within a burst the engine coalesces as GRO does: each
 * TCP flow that received data is written upstream once with everything the burst delivered,
 * and answered with one ACK (carrying the window its writes opened). The burst ends with an
 * input without the flag, or with t2s_engine_flush(). Out-of-order data, duplicates and FINs
 * are still answered at once. */
#define T2S_INPUT_MORE (1u << 31)
/* Ends a burst begun with T2S_INPUT_MORE: does the upstream writes and sends the ACKs held for
 * it. Does nothing outside a burst. */
void t2s_engine_flush(t2s_engine *engine, t2s_tstamp now);

/* The earliest time at which t2s_engine_handle_expiry() must be called (T2S_TSTAMP_MAX: none). */
t2s_tstamp t2s_engine_get_expiry(const t2s_engine *engine);
/* Runs every timer due at or before now. Returns 0 or a fatal error. */
int t2s_engine_handle_expiry(t2s_engine *engine, t2s_tstamp now);

/* ---- completions from the upstream connector (see iface.h) ---- */

/* The connect for stream id finished: err 0 = connected, otherwise why it failed. */
void t2s_engine_stream_opened(t2s_engine *engine, uint64_t id, int err, t2s_tstamp now);
/* How many bytes the engine can take now for stream id (the connector reads at most this). */
size_t t2s_engine_stream_recv_space(const t2s_engine *engine, uint64_t id);
/* Where the connector may read up to len bytes of stream id in place, into the flow's own
 * buffer: *pbuf and the room there (0, *pbuf NULL: none; read into a buffer of its own). Bytes
 * read there are then handed over with t2s_engine_stream_recv(engine, id, *pbuf, n, now), which
 * takes them without a copy. Nothing else may be called for id in between. */
size_t t2s_engine_stream_recv_buf(t2s_engine *engine, uint64_t id, size_t len, uint8_t **pbuf);
/* Bytes arrived on stream id. Returns how many were taken (all, when len <= recv_space). */
size_t t2s_engine_stream_recv(t2s_engine *engine, uint64_t id, const uint8_t *data, size_t len,
                              t2s_tstamp now);
/* The peer closed its side (EOF). */
void t2s_engine_stream_eof(t2s_engine *engine, uint64_t id, t2s_tstamp now);
/* The socket can take more bytes after a short write. */
void t2s_engine_stream_writable(t2s_engine *engine, uint64_t id, t2s_tstamp now);
/* The stream failed (reset, timeout, ...): err says why. The connector forgets id. */
void t2s_engine_stream_error(t2s_engine *engine, uint64_t id, int err, t2s_tstamp now);
/* A datagram arrived on datagram socket id (from the relay). */
void t2s_engine_dgram_recv(t2s_engine *engine, uint64_t id, const uint8_t *data, size_t len,
                           t2s_tstamp now);
/* The datagram socket failed. */
void t2s_engine_dgram_error(t2s_engine *engine, uint64_t id, int err, t2s_tstamp now);
/* What stream id turned out to be (iface.h, t2s_stream_mp): MPTCP end to end or fallen back
 * to TCP, and how many subflows the kernel holds for it now (0 when unknown). A connection
 * starts with one subflow: the first report counts the others as added, later ones count the
 * difference as added or removed. Counted per flow and in the stats (mptcp_*); the
 * network-change policy reads it. Unknown ids are ignored. */
void t2s_engine_stream_multipath(t2s_engine *engine, uint64_t id, t2s_stream_mp mp,
                                 uint32_t subflows, t2s_tstamp now);

/* ---- network changes (docs/network-change.md) ---- */

/*
 * Gives the engine the network monitor whose route_get it uses at the end of each debounce
 * (borrowed; NULL = none: then the egress stays what the configuration says). Call before the
 * first event. The engine never calls start/stop: the host does.
 */
void t2s_engine_set_monitor(t2s_engine *engine, const t2s_monitor *monitor);
/*
 * Reports a monitor event. Events start or extend the debounce (SETTLING); PAUSED enters
 * SUSPENDED at once; RESUMED resets every flow at once (whatever on_network_change says),
 * counts a network change and starts a debounce (SETTLING) at whose end the egress is
 * re-selected. The decision is taken in t2s_engine_handle_expiry() when the debounce ends.
 */
void t2s_engine_network_event(t2s_engine *engine, const t2s_net_event *ev, t2s_tstamp now);
/* The current state. */
t2s_net_state t2s_engine_net_state(const t2s_engine *engine);
/* The egress new upstream streams use now. */
const t2s_egress *t2s_engine_get_egress(const t2s_engine *engine);
/*
 * Resets every flow now, whatever its kind (TCP: RST to the client and upstream closed; UDP
 * sessions flushed). Returns how many flows were reset. Counted in flows_reset.
 */
size_t t2s_engine_reset_all(t2s_engine *engine, t2s_tstamp now);

/* ---- several proxies (docs/proxies.md) ---- */

typedef struct t2s_engine_proxy {
  t2s_addr addr;        /* the SOCKS5 server */
  const char *username; /* RFC 1929; NULL = none offered (copied) */
  const char *password;
} t2s_engine_proxy;

/*
 * Gives the engine list[0..n) (1..T2S_PROXY_MAX, order = preference) in place of cfg.proxy and
 * its credentials, each with a health state (hcfg NULL = defaults). An entry whose addr.family
 * is 0 (a name that does not resolve yet) starts UNRESOLVED until t2s_engine_proxy_set_addr().
 * Call once, before the first packet. New flows go to the most preferred healthy proxy; with every
 * proxy DOWN they are refused at once, as in NO_ROUTE. Returns 0, T2S_ERR_INVALID_ARGUMENT or
 * T2S_ERR_NOMEM.
 */
int t2s_engine_set_proxies(t2s_engine *engine, const t2s_engine_proxy *list, size_t n,
                           const t2s_proxy_health_config *hcfg, t2s_tstamp now);
/* Proxy i's address: its first (it was UNRESOLVED), or a new one its name resolves to now.
 * A new address makes it UP (t2s_proxy_set_readdressed); flows on the old address stay where
 * they are. For proxy 0 the network-change machine follows the route to the new address from
 * now on (without a reset). Same address: nothing. Returns 0 or T2S_ERR_INVALID_ARGUMENT. */
int t2s_engine_proxy_set_addr(t2s_engine *engine, size_t i, const t2s_addr *addr, t2s_tstamp now);
/* The probe asked by T2S_EV_PROXY_PROBE for proxy i ended: err 0 = good, else why it failed. */
void t2s_engine_proxy_probe_result(t2s_engine *engine, size_t i, int err, t2s_tstamp now);
/* The proxies' health (for /stats), or NULL without t2s_engine_set_proxies(). */
const t2s_proxy_set *t2s_engine_proxy_health(const t2s_engine *engine);

/* ---- a reload (docs/config.md; engine_reload.c) ---- */

/*
 * Takes from cfg the settings a reload may change at run time: tcp_connect_timeout (for SYNs
 * from now on), udp_timeout and dns_timeout (sessions' next idle deadline), on_network_change,
 * network_debounce, icmp_unreach_on_refuse and socks5_pipelined (handshakes from now on). The
 * other fields of cfg are ignored.
 */
void t2s_engine_set_runtime(t2s_engine *engine, const t2s_engine_config *cfg);
/*
 * Replaces the proxies at run time with list[0..n) (1..T2S_PROXY_MAX; an address of family 0
 * is a name not resolved yet: UNRESOLVED, as in t2s_engine_set_proxies). A
 * proxy that keeps its place in the order with the same address and credentials keeps its
 * health and its flows; the flows of every other old proxy (removed, changed, or moved in the
 * order) are reset now (TCP: RST to the client; UDP sessions flushed), counted in flows_reset.
 * Works with or without t2s_engine_set_proxies(): without it (cfg.proxy alone) a list of one
 * stays without health, a longer one gets it. Call at a safe point (not inside a callback of
 * the engine). Returns the flows reset, or T2S_ERR_INVALID_ARGUMENT / T2S_ERR_NOMEM (then the
 * engine keeps no proxy list: every flow is refused until the next call).
 */
t2s_ssize t2s_engine_replace_proxies(t2s_engine *engine, const t2s_engine_proxy *list, size_t n,
                                     const t2s_proxy_health_config *hcfg, t2s_tstamp now);

/* Copies the counters. */
void t2s_engine_get_stats(const t2s_engine *engine, t2s_engine_stats *stats);

#endif
