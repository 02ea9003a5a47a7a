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

typedef struct sim_proxy_config {
  t2s_addr addr;      /* where the proxy listens */
  char username[256]; /* RFC 1929 credentials the proxy requires ("" = none) */
  char password[256];
  char engine_user[256]; /* credentials the engine offers ("" = none) */
  char engine_pass[256];
  bool black_hole; /* accepts TCP, never answers */
  int udp;         /* SIM_PROXY_UDP_*: how UDP ASSOCIATE is answered */
} sim_proxy_config;

/* Points the engine configuration of w at the proxy (proxy_kind SOCKS5) and installs the
 * front on w's upstream. Call before sim_world_start; cfg is copied. Returns 0 or
 * T2S_ERR_NOMEM. The proxy is freed with sim_proxy_free at the end of the run. */
int sim_proxy_install(sim_world *w, const sim_proxy_config *cfg);
void sim_proxy_free(sim_world *w);

#endif
