/*
 * upstream_sock.h: the t2s_upstream of the binary: non-blocking TCP streams to the proxy and
 * UDP sockets to its relays, driven by libevent.
 *
 * Streams: TCP_NODELAY, keepalive, TCP_USER_TIMEOUT, SO_MARK when the egress has a mark,
 * SO_BINDTODEVICE when the egress names an interface (ifindex != 0). Reads stop while the
 * engine has no room (t2s_engine_stream_recv_space() == 0) or asked for a pause, and never
 * read more than that room. Half-close is shutdown(SHUT_WR); abort is SO_LINGER 0 (RST).
 *
 * Re-entrancy (iface.h): ops never call the engine; completions come from libevent callbacks.
 * After every callback that called the engine, the connector calls the host's `after` hook
 * (the runner re-arms its timer there) and the host must then call t2s_upstream_sock_poll().
 *
 * Socket errors are counted by errno name (t2s_upstream_sock_errors) and mapped to T2S_ERR_*.
 */
#ifndef T2S_UPSTREAM_SOCK_H
#define T2S_UPSTREAM_SOCK_H

#include <event2/event.h>
#include <sys/socket.h>

#include "engine.h"

/* The recorder (src/rec/rec.h), only named here: a host that never records needs no rec.h. */
typedef struct t2s_rec t2s_rec;

typedef struct t2s_upstream_sock t2s_upstream_sock;

typedef struct t2s_upstream_sock_config {
  uint32_t keepalive_idle_s;  /* TCP_KEEPIDLE (default 30) */
  uint32_t keepalive_intvl_s; /* TCP_KEEPINTVL (default 10) */
  uint32_t keepalive_cnt;     /* TCP_KEEPCNT (default 3) */
  uint32_t user_timeout_ms;   /* TCP_USER_TIMEOUT (default 30000; 0 = kernel default) */
  /* --mptcp (docs/mptcp.md): streams are opened with IPPROTO_MPTCP (plain TCP when the kernel
   * refuses it, logged once), not bound to the egress interface or source address (the mark
   * stays), and each one's status is told to the engine (t2s_engine_stream_multipath) after
   * the connect and whenever its subflow count changes (re-read once a second). Default off. */
  bool mptcp;
} t2s_upstream_sock_config;

/* Fills *cfg with the defaults above. */
void t2s_upstream_sock_config_default(t2s_upstream_sock_config *cfg);

/* Creates a connector on base. Returns 0 or T2S_ERR_NOMEM. */
int t2s_upstream_sock_new(t2s_upstream_sock **pup, struct event_base *base,
                          const t2s_upstream_sock_config *cfg);
/* Closes every socket still open (no callbacks) and frees the connector. */
void t2s_upstream_sock_del(t2s_upstream_sock *up);
/* A t2s_upstream over up (borrowed). */
void t2s_upstream_sock_ops(t2s_upstream_sock *up, t2s_upstream *out);
/* Tells the connector which engine to report to, and the hook to run after every callback
 * that called the engine. Must be set before the engine opens anything. */
void t2s_upstream_sock_set_engine(t2s_upstream_sock *up, t2s_engine *engine,
                                  void (*after)(void *arg), void *arg);
/* Where the connector reports its completions: each is the engine.h call of the same name
 * (t2s_engine_stream_opened, ...) with the sink's arg first. By default they go straight to the
 * engine; a recorder puts itself in between (t2s_upstream_sock_set_recorder). */
typedef struct t2s_upstream_sink {
  void (*stream_opened)(void *arg, t2s_engine *e, uint64_t id, int err, t2s_tstamp now);
  size_t (*stream_recv)(void *arg, t2s_engine *e, uint64_t id, const uint8_t *data, size_t len,
                        t2s_tstamp now);
  void (*stream_eof)(void *arg, t2s_engine *e, uint64_t id, t2s_tstamp now);
  void (*stream_writable)(void *arg, t2s_engine *e, uint64_t id, t2s_tstamp now);
  void (*stream_error)(void *arg, t2s_engine *e, uint64_t id, int err, t2s_tstamp now);
  void (*dgram_recv)(void *arg, t2s_engine *e, uint64_t id, const uint8_t *data, size_t len,
                     t2s_tstamp now);
  void (*dgram_error)(void *arg, t2s_engine *e, uint64_t id, int err, t2s_tstamp now);
  /* t2s_engine_stream_multipath (--mptcp); NULL: straight to the engine */
  void (*stream_multipath)(void *arg, t2s_engine *e, uint64_t id, t2s_stream_mp mp,
                           uint32_t subflows, t2s_tstamp now);
} t2s_upstream_sink;

/* Sends completions through sink (copied) with arg; NULL: straight to the engine (the
 * default). */
void t2s_upstream_sock_set_sink(t2s_upstream_sock *up, const t2s_upstream_sink *sink, void *arg);
/* Records every completion reported to the engine in rec (--record, docs/recording.md); NULL
 * (the default) reports them directly. A sink over rec.h's t2s_rec_stream_* entry points, in
 * upstream_sock_rec.c: a program that never calls this does not link the recorder. */
void t2s_upstream_sock_set_recorder(t2s_upstream_sock *up, t2s_rec *rec);
/* Fills *ss and *plen with a (IPv4 or IPv6, with its port). Returns 0 or
 * T2S_ERR_INVALID_ARGUMENT (another family). Also used by the proxy prober. */
int t2s_upstream_sock_sockaddr(const t2s_addr *a, struct sockaddr_storage *ss, socklen_t *plen);
/* Housekeeping at a safe point (outside any engine call): resumes reads of streams whose
 * engine-side room reopened, frees closed sockets. Bounded by the number of such sockets. */
void t2s_upstream_sock_poll(t2s_upstream_sock *up);

/* Number of error names; each index below it has a name and a count. */
size_t t2s_upstream_sock_error_kinds(void);
/* The name of error kind i ("ECONNREFUSED", ..., "other"). */
const char *t2s_upstream_sock_error_name(size_t i);
/* How many socket errors of kind i were seen. */
uint64_t t2s_upstream_sock_error_count(const t2s_upstream_sock *up, size_t i);
/* --mptcp: streams opened with IPPROTO_MPTCP, and those opened as plain TCP because the kernel
 * refused it. */
void t2s_upstream_sock_mptcp_counts(const t2s_upstream_sock *up, uint64_t *pmptcp,
                                    uint64_t *prefused);
/* Streams and datagram sockets open now. */
void t2s_upstream_sock_counts(const t2s_upstream_sock *up, uint64_t *pstreams, uint64_t *pdgrams);

/* The embedder's protect (tun2sock.h): called with every upstream socket, stream or datagram,
 * after socket() (and SO_MARK/SO_BINDTODEVICE) and before connect() or the first send; nonzero
 * closes it and refuses the flow (T2S_ERR_UNREACHABLE to the engine). NULL (the default): none. */
void t2s_upstream_sock_set_protect(t2s_upstream_sock *up, int (*protect)(void *arg, int fd),
                                   void *arg);
/* Sockets created (proxy probes included), protect calls and protect failures so far. */
void t2s_upstream_sock_protect_counts(const t2s_upstream_sock *up, uint64_t *popened,
                                      uint64_t *pcalls, uint64_t *pfailures);

/* Prepares fd, a TCP socket the library opens toward dst for itself (a proxy probe,
 * proxy_probe.c), exactly like an upstream socket: counted in the sockets opened, the egress
 * applied (mark, interface, source address; eg NULL = none), then the embedder's protect called
 * and counted. Returns 0 or the T2S_ERR_* that refuses it (the caller closes fd). */
int t2s_upstream_sock_prepare(t2s_upstream_sock *up, int fd, const t2s_addr *dst,
                              const t2s_egress *eg);

/* Maps an errno to the T2S_ERR_* the engine gets (never in the fatal band). */
int t2s_upstream_map_errno(int err);

#endif
