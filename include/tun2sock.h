/*
 * tun2sock.h: run tun2sock inside your own program, on a TUN file descriptor you own.
 *
 * Your program opens and configures the TUN (addresses, routes; on Android a VpnService fd,
 * elsewhere open("/dev/net/tun") + TUNSETIFF with IFF_TUN | IFF_NO_PI) and hands the fd over.
 * tun2sock terminates every TCP, UDP and ICMP flow that enters it in its own userspace stack and
 * carries each through a SOCKS5 proxy. It runs its own libevent loop on the thread that calls
 * tun2sock_run(); tun2sock_stop() ends it from any thread or signal handler.
 *
 *   tun2sock_config cfg;
 *   tun2sock_config_default(&cfg);
 *   cfg.tun_fd = fd;
 *   cfg.proxy = "socks5://127.0.0.1:1080";
 *   tun2sock *t;
 *   if (tun2sock_new(&t, &cfg) == 0) {
 *     tun2sock_run(t);           // blocks until tun2sock_stop(t)
 *     tun2sock_del(t);
 *   }
 *
 * Build with `pkg-config --cflags --libs tun2sock` (libtun2sock.so, SONAME libtun2sock.so.1,
 * which exports only the tun2sock_* functions of this header). To link statically instead, use
 * the installed archives: -lt2s_os -lt2s_rec -lt2s_core (in that order), then the libraries
 * `pkg-config --print-requires-private tun2sock` names (libevent, libmnl, and liburing when
 * tun2sock was built with it) and -pthread. Log lines go to stderr; the log level is process-wide.
 * tun2sock installs no signal handlers: with `metrics` set, ignore SIGPIPE (a scraper that
 * hangs up mid-reply would otherwise end the process). embedding.md (installed with the
 * documentation) covers Android, iOS/macOS and Linux hosts and the threading rules.
 *
 * This header is the only one installed and the only stable interface: everything tun2sock
 * needs is behind it, and no other tun2sock header is needed or supported.
 */
#ifndef TUN2SOCK_H
#define TUN2SOCK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The version of this interface.
 *   1  tun2sock_new/run/stop/del, the listener, the stats
 *   2  tun2sock_config.protect/protect_arg, tun2sock_stats.upstream_sockets/protect_*
 *   3  tun2sock_config.network_monitor/route/route_arg,
 *      tun2sock_network_changed/paused/resumed
 *   4  tun2sock_config.output/output_arg, tun2sock_input_packet,
 *      tun2sock_stats.input_packets/input_drops/output_errors
 *   5  tun2sock_config.memory_budget/tcp_sndbuf/tcp_rcvbuf, tun2sock_config_memory_preset,
 *      tun2sock_stats.memory_bytes/memory_peak_bytes/memory_refused
 *   6  the structs travel with their size (below); no new field
 *
 * The ABI rule (SONAME libtun2sock.so.1): fields are only ever appended to tun2sock_config and
 * tun2sock_stats, never removed, moved or resized. The library's entry points that take them
 * take the caller's sizeof too (tun2sock_config_default_v, tun2sock_new_v,
 * tun2sock_get_stats_v); the names without _v are static inline wrappers below that pass
 * sizeof, so a program is written against them and the size is the one of the header it was
 * compiled with. The library reads only the `size` bytes the caller has and takes the defaults
 * for every later field, and writes only `size` bytes (never past them). A size must be the
 * struct's size at one of the API versions (1 to this one); any other (smaller than API 1's,
 * between two versions, or larger: a newer header than the library) is refused with
 * TUN2SOCK_ERR_CONFIG and logged. So one library serves every program built against an older or
 * the same header; a program needing a newer field needs a newer library. tun2sock_listener is
 * frozen at its API 1 layout (new callbacks would come with a sized call of their own). */
#define TUN2SOCK_API_VERSION 6

typedef struct tun2sock tun2sock;

enum {
  TUN2SOCK_LOG_DEBUG = 0,
  TUN2SOCK_LOG_INFO = 1,
  TUN2SOCK_LOG_WARN = 2,
  TUN2SOCK_LOG_ERROR = 3,
};

/* Errors returned by tun2sock_new() and tun2sock_run(). */
enum {
  TUN2SOCK_OK = 0,
  TUN2SOCK_ERR_FAILED = -1, /* a runtime failure (logged): privilege, resolution, sockets */
  TUN2SOCK_ERR_CONFIG = -2, /* a bad field in tun2sock_config (logged, naming the field) */
};

typedef struct tun2sock_config {
  int tun_fd;                      /* an open TUN fd (IFF_TUN | IFF_NO_PI); stays yours */
  const char *proxy;               /* "socks5://[USER[:PASS]@]HOST[:PORT]"; HOST may be a name */
  const char *password;            /* replaces the URL's password; NULL = the URL's */
  uint32_t mtu;                    /* 0 = keep the device's MTU */
  const char *interface;           /* pin upstream sockets to this interface; NULL = the route
                                      to the proxy decides */
  uint32_t fwmark;                 /* SO_MARK on upstream sockets (needs CAP_NET_ADMIN); 0 = none */
  uint32_t tcp_connect_timeout_ms; /* 0 = 10 s */
  uint32_t udp_timeout_ms;         /* 0 = 60 s */
  uint32_t dns_timeout_ms;         /* 0 = 10 s */
  int log_level;                   /* TUN2SOCK_LOG_*, default INFO */
  const char *metrics;             /* "HOST:PORT" for Prometheus /metrics and JSON /stats; NULL */
  int on_network_change;           /* TUN2SOCK_NETCHANGE_*, default RESET_AFFECTED */
  uint32_t network_debounce_ms;    /* 0 = 500 ms; how long network events settle */
  /* Loop avoidance by the host (API 2). Called with every upstream socket tun2sock creates,
   * TCP to the proxy and UDP to its relays, and the health probes of a failing proxy (TCP),
   * after socket() and before connect() or the first send, on the thread running tun2sock_run(); it
   * must not block. On Android pass the fd to VpnService.protect(); elsewhere mark it or bind it to
   * the uplink. Return 0 to go on; anything else closes the socket and refuses the flow (the client
   * sees a reset or ICMP unreachable), counted in tun2sock_stats.protect_failures. The fd stays
   * tun2sock's: do not close it or keep it. NULL = no callback. */
  int (*protect)(void *arg, int fd);
  void *protect_arg; /* passed to protect */
  /* Who tells tun2sock about network changes (API 3): TUN2SOCK_MONITOR_RTNETLINK (default)
   * or TUN2SOCK_MONITOR_HOST, where tun2sock opens no rtnetlink socket after tun2sock_new()
   * and the host calls tun2sock_network_changed/paused/resumed (Android 11+, iOS). */
  int network_monitor;
  /* With TUN2SOCK_MONITOR_HOST (API 3), optional: answers "which interface reaches this
   * address?" (the proxy, at the end of every debounce) instead of the fallback below. `family`
   * is 4 or 6, `addr` 4 or 16 bytes; fill `ifname` (16 bytes, may stay "") and/or `*ifindex`
   * and return 0, or return nonzero for "no route". On the loop's thread; must not block.
   * Return 0 with both empty for "on this host" (a local proxy). */
  int (*route)(void *arg, int family, const uint8_t *addr, char *ifname, unsigned *ifindex);
  void *route_arg; /* passed to route */
  /* Packet I/O by callback (API 4), for hosts without a TUN fd (an iOS packetFlow): with output
   * set, tun2sock opens no TUN (tun_fd must stay -1). The host hands every packet it reads from
   * its tunnel to tun2sock_input_packet() and receives through output every IP packet tun2sock
   * would write to the TUN (at most mtu bytes, or 1500 when mtu is 0; no offloads), on the
   * thread running tun2sock_run(), borrowed for the call: copy it, must not block. Return 0;
   * nonzero counts the packet as dropped (output_errors). */
  int (*output)(void *arg, const uint8_t *pkt, size_t len);
  void *output_arg; /* passed to output */
  /* Memory (API 5); 0 = the default. tun2sock_config_memory_preset() fills all three. */
  uint64_t memory_budget; /* heap bytes the engine may hold (flows, their buffers, sessions):
                             past it a new flow is refused and buffers stop growing; established
                             flows are never evicted. At least 1 MiB; default 512 MiB */
  uint32_t tcp_sndbuf;    /* per TCP flow, the most bytes held toward the client (data from the
                             proxy it has not acknowledged); 4 KiB..64 MiB, default 1 MiB */
  uint32_t tcp_rcvbuf;    /* per TCP flow, the most bytes held from the client (its window);
                             4 KiB..64 MiB, default 1 MiB */
} tun2sock_config;

/* Memory presets (API 5), for tun2sock_config_memory_preset(). */
enum {
  TUN2SOCK_MEMORY_DEFAULT = 0, /* 512 MiB budget, 1 MiB per-flow buffers: a server's */
  TUN2SOCK_MEMORY_MOBILE = 1,  /* 32 MiB budget, 16 KiB toward / 12 KiB from each client: a
                                  host killed above about 50 MB (iOS NetworkExtension); 1,000
                                  busy flows fit (docs/embedding.md) */
};

enum {
  TUN2SOCK_MONITOR_RTNETLINK = 0, /* links, addresses and routes from rtnetlink, sleep from the
                                     clocks */
  TUN2SOCK_MONITOR_HOST = 1,      /* only what the host reports (below) */
};

/* What a network change does to running flows (docs/network-change.md). */
enum {
  TUN2SOCK_NETCHANGE_RESET_AFFECTED = 0, /* flows whose path to the proxy changed get an RST */
  TUN2SOCK_NETCHANGE_RESET_ALL = 1,      /* every flow, on any change of the path */
  TUN2SOCK_NETCHANGE_NONE = 2,           /* none (new flows still use the new path) */
};
/* Under every policy, NONE included, a resume after sleep resets every flow (see
 * on_network_resumed): what was open before the sleep is dead at the proxy and every NAT. */

/*
 * Network-change callbacks. tun2sock watches the links, addresses and routes (rtnetlink) and
 * the clocks (a jump of CLOCK_BOOTTIME over CLOCK_MONOTONIC means the machine slept), decides
 * after a debounce whether the path to the proxy moved, and resets the affected flows. These
 * tell you what it decided; they run on the thread running tun2sock_run(), must not block,
 * and may be NULL. tun2sock logs the same events itself.
 */
typedef struct tun2sock_listener {
  /* Upstream traffic now leaves through the interface `name` (ifindex `index`); "" and 0 when
   * sockets are unbound (the proxy is on this host) or there is no route to the proxy. Also
   * called once when tun2sock_run() starts. */
  void (*on_default_interface_changed)(void *arg, const char *name, unsigned index);
  /* The machine is going to sleep: new connections are refused until it wakes. */
  void (*on_network_paused)(void *arg);
  /* The machine woke after sleeping slept_ms; every flow open before was reset. */
  void (*on_network_resumed)(void *arg, uint64_t slept_ms);
  /* A burst of link, address or route changes settled and was decided (see the stats). */
  void (*on_routes_changed)(void *arg);
  void *arg; /* passed to each callback */
} tun2sock_listener;

typedef struct tun2sock_stats {
  uint64_t packets_in, packets_out; /* IP packets from / to the TUN */
  uint64_t bytes_up, bytes_down;    /* payload toward the proxy / toward the clients */
  uint64_t tcp_flows_active, tcp_flows_total;
  uint64_t udp_sessions_active;
  uint64_t icmp_echo_replies;
  uint64_t packets_dropped; /* all reasons together */
  uint64_t upstream_errors;
  uint64_t network_changes;  /* changes that moved the path to the proxy (or resumes) */
  uint64_t route_updates;    /* changes that left the path as it was */
  uint64_t flows_reset;      /* flows reset by the network-change policy */
  uint64_t last_recovery_ms; /* last change: decision to the first new connection */
  int network_state;         /* 0 up, 1 settling, 2 no route to the proxy, 3 suspended */
  /* API 2: upstream sockets created (stream and datagram, proxy probes included), calls of
   * tun2sock_config.protect (equal to upstream_sockets when set, unless socket options failed
   * first) and how many of them failed (each refused a flow). */
  uint64_t upstream_sockets, protect_calls, protect_failures;
  /* API 4, with config.output: packets taken by tun2sock_input_packet, calls it refused (the
   * queue full, or an empty or oversized packet), and output callbacks that failed. */
  uint64_t input_packets, input_drops, output_errors;
  /* API 5: the engine's heap bytes now and at their peak (what memory_budget limits), and the
   * allocations the budget refused. */
  uint64_t memory_bytes, memory_peak_bytes, memory_refused;
} tun2sock_stats;

/* Fills the first `size` bytes of *cfg (sizeof(tun2sock_config) of the caller's header) with
 * the defaults (tun_fd -1, no proxy). Returns TUN2SOCK_OK, or TUN2SOCK_ERR_CONFIG for a size that
 * is no API version's (nothing written). Call it through tun2sock_config_default(). */
int tun2sock_config_default_v(tun2sock_config *cfg, size_t size);
/* Fills *cfg with the defaults. */
static inline void tun2sock_config_default(tun2sock_config *cfg) {
  (void)tun2sock_config_default_v(cfg, sizeof(*cfg));
}

/* Sets cfg's memory_budget, tcp_sndbuf and tcp_rcvbuf to a TUN2SOCK_MEMORY_* preset (the same
 * values as the binary's --memory-preset). Returns TUN2SOCK_OK or TUN2SOCK_ERR_CONFIG (an unknown
 * preset; cfg unchanged). */
int tun2sock_config_memory_preset(tun2sock_config *cfg, int preset);

/* Validates cfg (its first `size` bytes; later fields take their defaults), resolves the proxy,
 * chooses the egress and builds the engine on the fd. Returns TUN2SOCK_OK with *pt set, or a
 * TUN2SOCK_ERR_* (the reason is logged; TUN2SOCK_ERR_CONFIG for a size that is no API
 * version's). Call it through tun2sock_new(). */
int tun2sock_new_v(tun2sock **pt, const tun2sock_config *cfg, size_t size);
/* tun2sock_new_v with the size of this header's tun2sock_config. */
static inline int tun2sock_new(tun2sock **pt, const tun2sock_config *cfg) {
  return tun2sock_new_v(pt, cfg, sizeof(*cfg));
}

/* Sets the network-change listener (copied; NULL clears it). Call before tun2sock_run(). */
void tun2sock_set_listener(tun2sock *t, const tun2sock_listener *listener);

/* Runs the loop on the calling thread until tun2sock_stop(). Returns TUN2SOCK_OK after a stop,
 * TUN2SOCK_ERR_FAILED after a fatal error. */
int tun2sock_run(tun2sock *t);

/* Makes tun2sock_run() return soon. Safe from any thread and from a signal handler. */
void tun2sock_stop(tun2sock *t);

/* Copies the counters into the first `size` bytes of *st (nothing past them). Returns
 * TUN2SOCK_OK, or TUN2SOCK_ERR_CONFIG for a size that is no API version's (nothing written). Call
 * it from the thread running tun2sock_run(), or when it is not running (the counters are not
 * synchronised); through tun2sock_get_stats(). */
int tun2sock_get_stats_v(const tun2sock *t, tun2sock_stats *st, size_t size);
/* tun2sock_get_stats_v with the size of this header's tun2sock_stats. */
static inline void tun2sock_get_stats(const tun2sock *t, tun2sock_stats *st) {
  (void)tun2sock_get_stats_v(t, st, sizeof(*st));
}

/*
 * Network events from the host (network_monitor = TUN2SOCK_MONITOR_HOST; otherwise they
 * return TUN2SOCK_ERR_CONFIG). Safe from any thread, before or during tun2sock_run(): each
 * report is queued and handled on the loop's thread, through the same debounce, decision and
 * policy (on_network_change) as rtnetlink's events, and the listener is called as usual.
 * They return TUN2SOCK_OK, or TUN2SOCK_ERR_FAILED when 64 reports are already waiting.
 *
 * Route questions: with a host monitor, config.route answers them when set; without it the
 * path to the proxy is the interface the host last reported (a loopback proxy is local; none =
 * no route: new flows are refused at once); before the first report, the interface chosen by
 * tun2sock_new().
 */
/* The default network is now the interface `ifname` (index `ifindex`: give either, the other
 * is looked up; Android: the Network's LinkProperties.getInterfaceName()); NULL/"" and 0: no
 * network. Flows whose path to the proxy changed are reset after the debounce. */
int tun2sock_network_changed(tun2sock *t, const char *ifname, unsigned ifindex);
/* The device is about to sleep: new connections are refused until it resumes. */
int tun2sock_network_paused(tun2sock *t);
/* The device woke after sleeping slept_ms (0 if unknown): every flow open before is reset. */
int tun2sock_network_resumed(tun2sock *t, uint64_t slept_ms);

/*
 * Packet input (config.output set; otherwise TUN2SOCK_ERR_CONFIG). Safe from any thread, before
 * or during tun2sock_run(): the packet (one IP packet, 1..65535 bytes) is copied into a queue
 * the loop drains (at most 2048 packets and 4 MiB waiting) and the loop is woken. Returns
 * TUN2SOCK_OK, or TUN2SOCK_ERR_FAILED when the queue is full or the packet is empty or too
 * long: the packet is not taken and the refusal is counted (input_drops). A full queue is
 * backpressure: retry the packet a little later, or drop it as a TUN's kernel queue would.
 */
int tun2sock_input_packet(tun2sock *t, const uint8_t *pkt, size_t len);

/* Closes every flow and frees t (the TUN fd stays open: it is yours). Not while running, and
 * not while another thread may still call tun2sock_input_packet or tun2sock_network_*. */
void tun2sock_del(tun2sock *t);

/* "0.1.0" */
const char *tun2sock_version(void);

#ifdef __cplusplus
}
#endif

#endif
