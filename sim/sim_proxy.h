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
/*
 * Several proxies and their failures (docs/scenarios.md, "Proxy failures"): each `proxy` line
 * installs one more (order = preference). With two or more, or a `proxy-health` line, the
 * engine gets the list (t2s_engine_set_proxies) and keeps their health; the simulator then
 * answers the probes the engine asks for (T2S_EV_PROXY_PROBE) as the proxy's mode says, and a
 * scripted mode change (`at T proxy ADDR:PORT die|refuse|blackhole|hang|back`) changes what
 * the proxy does from then on.
 */
#ifndef T2S_SIM_PROXY_H
#define T2S_SIM_PROXY_H

#include "common.h"
#include "proxy_health.h"
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

/* What a proxy does from a scripted moment on. */
typedef enum sim_proxy_mode {
  SIM_PROXY_OK = 0,    /* answers (`back`) */
  SIM_PROXY_DIE,       /* its process died: open streams reset, connects refused (`die`) */
  SIM_PROXY_REFUSE,    /* connects refused; open streams go on (`refuse`) */
  SIM_PROXY_BLACKHOLE, /* connects never complete; open streams go on (`blackhole`) */
  SIM_PROXY_HANG,      /* answers the greeting, never the request (`hang`) */
  SIM_PROXY_MODE_MAX
} sim_proxy_mode;

/* "back", "die", "refuse", "blackhole", "hang". */
const char *sim_proxy_mode_name(sim_proxy_mode m);

/* Adds a proxy (the first one points the engine configuration of w at it: proxy_kind SOCKS5)
 * and installs the front on w's upstream. Call before sim_world_start; cfg is copied. Returns
 * 0, T2S_ERR_LIMIT (more than T2S_PROXY_MAX) or T2S_ERR_NOMEM. Freed with sim_proxy_free. */
int sim_proxy_install(sim_world *w, const sim_proxy_config *cfg);
void sim_proxy_free(sim_world *w);
/* Turns the engine's proxy health on (implicit with two proxies or more); hcfg NULL: the
 * defaults. Call before sim_world_start. */
void sim_proxy_set_health(sim_world *w, const t2s_proxy_health_config *hcfg);
/* After the engine is created: gives it the list when the health is on. Returns 0 or the
 * engine's error. */
int sim_proxy_engine_started(sim_world *w, t2s_tstamp now);
/* The engine's T2S_EV_PROXY_* events: a probe is answered later (an upstream event) as the
 * proxy's mode says; DOWN and UP are counted. Never calls the engine. */
void sim_proxy_on_event(sim_world *w, const t2s_engine_event *ev);
/* Proxy i's mode from now on (DIE resets its open streams). */
void sim_proxy_set_mode(sim_world *w, size_t i, sim_proxy_mode mode, t2s_tstamp now);

/* What the simulator saw of proxy i (outside the code under test). */
typedef struct sim_proxy_seen {
  uint64_t downs, ups;      /* T2S_EV_PROXY_DOWN / _UP events */
  uint64_t flows_reset;     /* flows reset by its DOWN events */
  uint64_t probes;          /* probes answered */
  uint64_t streams;         /* streams the engine opened to it */
  t2s_tstamp first_down_at; /* T2S_TSTAMP_MAX: never */
} sim_proxy_seen;
/* Index of the proxy at addr, or -1. */
int sim_proxy_index(const sim_world *w, const t2s_addr *addr);
/* Fills *out for proxy i; false when there is none. */
bool sim_proxy_get_seen(const sim_world *w, size_t i, sim_proxy_seen *out);

/* Requests the proxy got for the name (ATYP 3, any case: CONNECTs and relayed datagrams) when
 * it is one of its hosts. 0 without a proxy. */
uint64_t sim_proxy_name_requests(const sim_world *w, const char *name);
/* CONNECT requests the proxy got with an address (ATYP 1 or 4), answered or not. */
uint64_t sim_proxy_addr_requests(const sim_world *w);

#endif
