/*
 * sim_proxy.h: the simulated SOCKS5 proxy. Streams the engine opens to the proxy address get
 * a protocol front (sim_upstream.h) that runs the server model of sim_socks5.h: greeting,
 * RFC 1929 authentication when configured, then the CONNECT request, answered by what the
 * scenario's upstream rules say about the requested destination (refuse: REP 5, blackhole:
 * no reply, otherwise success and the stream carries on with that destination's behaviour).
 * UDP ASSOCIATE is answered with BND 0.0.0.0 and the proxy's port (the relay is the proxy's
 * address): datagrams to the relay are unwrapped, handled by the destination's behaviour
 * (echo; `reply-from` adds a copy from a second remote) and wrapped back. The control
 * connection stays open and silent until the engine closes it.
 */
#ifndef T2S_SIM_PROXY_H
#define T2S_SIM_PROXY_H

#include "common.h"
#include "sim_world.h"

/* UDP ASSOCIATE: relayed (dante), REP 7 (microsocks), or a close (ssh -D). */
enum { SIM_PROXY_UDP_RELAY = 0, SIM_PROXY_UDP_REP7, SIM_PROXY_UDP_CLOSE };

/* A name the proxy's side resolves (`proxy host NAME ADDR`, a resolver beside the proxy): a
 * CONNECT to the name (ATYP 3) goes to addr, with the port asked. */
#define SIM_PROXY_MAX_HOSTS 16
typedef struct sim_proxy_host {
  char name[256]; /* lower case, no final dot */
  t2s_addr addr;  /* port 0 */
} sim_proxy_host;

typedef struct sim_proxy_config {
  t2s_addr addr;      /* where the proxy listens */
  char username[256]; /* RFC 1929 credentials the proxy requires ("" = none) */
  char password[256];
  char engine_user[256]; /* credentials the engine offers ("" = none) */
  char engine_pass[256];
  bool black_hole; /* accepts TCP, never answers */
  int udp;         /* SIM_PROXY_UDP_*: how UDP ASSOCIATE is answered */
  bool names_only; /* a CONNECT to an address (ATYP 1, 4) gets REP 8 (address type) */
  sim_proxy_host hosts[SIM_PROXY_MAX_HOSTS]; /* the names it resolves (others: REP 4) */
  size_t nhosts;
  bool mptcp; /* speaks Multipath TCP (`proxy socks5 ADDR:PORT mptcp`) */
} sim_proxy_config;

/* Points the engine configuration of w at the proxy (proxy_kind SOCKS5) and installs the
 * front on w's upstream. Call before sim_world_start; cfg is copied. Returns 0 or
 * T2S_ERR_NOMEM. The proxy is freed with sim_proxy_free at the end of the run. */
int sim_proxy_install(sim_world *w, const sim_proxy_config *cfg);
void sim_proxy_free(sim_world *w);

/* Requests the proxy got for the name (ATYP 3, any case: CONNECTs and relayed datagrams) when
 * it is one of its hosts. 0 without a proxy. */
uint64_t sim_proxy_name_requests(const sim_world *w, const char *name);
/* CONNECT requests the proxy got with an address (ATYP 1 or 4), answered or not. */
uint64_t sim_proxy_addr_requests(const sim_world *w);

#endif
