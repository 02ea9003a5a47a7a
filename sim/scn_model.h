/*
 * scn_model.h: a parsed scenario (docs/scenarios.md), what the parser (scn_parse*.c) produces
 * and the executor (scn_exec.c) and the expectation checker (scn_check.c) read. Internal to
 * the scenario files; the rest of the simulator sees sim_scenario.h.
 *
 * Each timed action (`at T ...`) is one scn_action: its line, time and kind, and the typed
 * struct of that kind (scn_replay, scn_inject_echo, scn_client, sim_net_action).
 */
#ifndef T2S_SIM_SCN_MODEL_H
#define T2S_SIM_SCN_MODEL_H

#include "fakedns.h"
#include "scn_lex.h"
#include "sim_client.h"
#include "sim_net.h"
#include "sim_proxy.h"
#include "sim_scenario.h"
#include "sim_upstream.h"

/* ---------------- timed actions ---------------- */

typedef enum scn_action_kind {
  SCN_ACT_REPLAY = 0,  /* at T replay FILE */
  SCN_ACT_INJECT_ECHO, /* at T inject-echo SRC DST [OPTION...] */
  SCN_ACT_CLIENT,      /* at T client NAME PROTO DST [OPTION...] */
  SCN_ACT_NET,         /* at T link|addr|route|suspend|resume ... */
  SCN_ACT_PROXY,       /* at T proxy ADDR:PORT die|refuse|blackhole|hang|back */
} scn_action_kind;

/* at T proxy ADDR:PORT MODE: what proxy `index` (declared by a proxy line) does from T on. */
typedef struct scn_proxy_act {
  size_t index;
  sim_proxy_mode mode;
} scn_proxy_act;

/* at T replay FILE: the capture's packets enter the engine from T on. */
typedef struct scn_replay {
  char *path; /* the file name resolved against the scenario's directory (owned) */
} scn_replay;

/* at T inject-echo: echo requests from src to dst, count of them interval apart. */
typedef struct scn_inject_echo {
  t2s_addr src, dst;
  uint64_t size; /* ICMP payload bytes (default 56) */
  bool has_id;   /* id given; else drawn when scheduled, in file order */
  uint16_t id;
  uint16_t seq; /* the first one's sequence number (default 1), then +1 each */
  uint64_t count;
  t2s_tstamp interval;
} scn_inject_echo;

/* at T client: a client host's TCP, UDP or ping client. */
typedef struct scn_client {
  sim_client_spec spec; /* spec.text is set from text when the client starts */
  uint8_t *text;        /* send "STRING": its bytes (owned; spec.text_len of them), or NULL */
  /* A destination by name (NAME:PORT, scn_parse_fakedns.c): looked up first over UDP at
   * resolver (A, or AAAA with qfamily INET6), then connected to the address answered. */
  char qname[256]; /* "" : the destination is an address */
  uint8_t qfamily;
  t2s_addr resolver;
} scn_client;

typedef struct scn_action {
  int line; /* 0 for the replay mode's action */
  t2s_tstamp at;
  scn_action_kind kind;
  union {
    scn_replay replay;    /* SCN_ACT_REPLAY */
    scn_inject_echo echo; /* SCN_ACT_INJECT_ECHO */
    scn_client client;    /* SCN_ACT_CLIENT */
    sim_net_action net;   /* SCN_ACT_NET */
    scn_proxy_act proxy;  /* SCN_ACT_PROXY */
  } u;
} scn_action;

/* Frees what action a owns (not a itself). */
void scn_action_free(scn_action *a);

/* ---------------- expectations ---------------- */

typedef enum scn_expect_kind {
  SCN_EXP_COUNTER = 0, /* a counter compared with a number */
  SCN_EXP_CLIENT,      /* a client ended in a state (before a time) */
  SCN_EXP_UP_RECEIVED, /* bytes an upstream destination received (intact) */
  SCN_EXP_UP_STREAMS,  /* streams opened toward an upstream destination */
  SCN_EXP_UNTOUCHED,   /* a client was never reset nor refused */
  SCN_EXP_UP_VIA,      /* every socket toward a destination left through one interface */
  SCN_EXP_EGRESS,      /* the engine's egress interface (sampled after T, or at the end) */
  SCN_EXP_NET_STATE,   /* the engine's network state (sampled after T, or at the end) */
  SCN_EXP_UDP_AFTER,   /* UDP sessions open (sampled after T, or at the end) */
  SCN_EXP_FAKEDNS,     /* fake-dns, proxy names, a client's lookup (scn_fakedns.h) */
  SCN_EXP_PROXY_STATE, /* a proxy's health state (sampled after T, or at the end) */
  SCN_EXP_PROXY_COUNT, /* what the simulator saw of a proxy (downs, ups, ...) compared */
  SCN_EXP_PROXY_DOWN,  /* a proxy first went DOWN between two times */
} scn_expect_kind;

/* The counts of SCN_EXP_PROXY_COUNT (sim_proxy_seen). */
typedef enum scn_proxy_count {
  SCN_PX_DOWNS = 0,
  SCN_PX_UPS,
  SCN_PX_FLOWS_RESET,
  SCN_PX_PROBES,
  SCN_PX_STREAMS,
} scn_proxy_count;

/* The counters of SCN_EXP_COUNTER. */
typedef enum scn_counter {
  SCN_C_PACKETS_OUT = 0,
  SCN_C_PACKETS_IN,
  SCN_C_ECHO_REPLIES,
  SCN_C_DROPS,       /* drops of one reason (drop_reason) */
  SCN_C_DROPS_TOTAL, /* drops of every reason */
  SCN_C_STAT,        /* an engine counter by name (stat_off) */
  SCN_C_UP_OPEN,
  SCN_C_CLIENTS_UNFINISHED,
  SCN_C_INVARIANTS,
} scn_counter;

typedef struct scn_expect {
  int line;
  char *text; /* the line as written, for messages (owned) */
  scn_expect_kind kind;
  scn_counter ctr; /* COUNTER */
  int drop_reason; /* COUNTER, SCN_C_DROPS: a T2S_DROP_* */
  size_t stat_off; /* COUNTER, SCN_C_STAT: offset in t2s_engine_stats */
  scn_cmp op;      /* COUNTER, UP_STREAMS, UDP_AFTER */
  uint64_t value;  /* COUNTER, UP_STREAMS, UDP_AFTER: compared with; UP_RECEIVED: bytes */
  char name[SCN_MAX_NAME + 1]; /* CLIENT, UNTOUCHED: the client */
  sim_client_state want;       /* CLIENT */
  bool has_before;             /* CLIENT: ... before T */
  t2s_tstamp before;
  t2s_addr dst;              /* UP_*: the destination (port 0: any port) */
  bool intact;               /* UP_RECEIVED: the bytes follow the pattern */
  char ifname[T2S_IFNAMSIZ]; /* UP_VIA, EGRESS ("none": unbound) */
  t2s_net_state state;       /* NET_STATE */
  bool has_after;            /* EGRESS, NET_STATE, UDP_AFTER, PROXY_STATE: sampled at T */
  t2s_tstamp after;
  int fd_what;              /* FAKEDNS: which (scn_fakedns.h) */
  char host[256];           /* FAKEDNS: a domain name */
  size_t proxy;             /* PROXY_*: its index (the order of the proxy lines) */
  scn_proxy_count px_count; /* PROXY_COUNT */
  t2s_proxy_state px_state; /* PROXY_STATE */
  t2s_tstamp from, until;   /* PROXY_DOWN: between from and until */
} scn_expect;

/* True for the kinds checked on a value sampled during the run (after T, or at the end). */
static inline bool scn_expect_sampled(const scn_expect *e) {
  return e->kind == SCN_EXP_EGRESS || e->kind == SCN_EXP_NET_STATE ||
         e->kind == SCN_EXP_UDP_AFTER || e->kind == SCN_EXP_PROXY_STATE;
}

/* A value sampled during the run for an "... after T" expectation. */
typedef struct scn_sample {
  bool taken;
  uint64_t value;
  char ifname[T2S_IFNAMSIZ];
} scn_sample;

/* ---------------- the world ---------------- */

/* upstream TARGET BEHAVIOUR ...: what the simulated far end does for TARGET. */
typedef struct scn_up_rule {
  int line;
  bool is_default;
  t2s_addr dst;
  sim_up_behaviour beh;
} scn_up_rule;

struct sim_scenario {
  char *name;    /* in messages: the file name, or "replay" */
  char *basedir; /* relative file names are resolved against it ("": the current directory) */
  bool has_seed;
  uint64_t seed;
  bool has_until;
  t2s_tstamp until;
  bool has_mtu;
  uint32_t mtu;
  bool faults_set;
  sim_faults faults;
  scn_up_rule *rules;
  size_t nrules;
  scn_action *acts;
  size_t nacts;
  scn_expect *exps;
  size_t nexps;
  bool has_proxy;
  sim_proxy_config proxy; /* the first proxy line (also where `proxy host` lines go) */
  size_t nmore_proxies;   /* the second proxy line and later, in order of preference */
  sim_proxy_config more_proxies[T2S_PROXY_MAX - 1];
  bool has_health; /* a proxy-health line (implicit with two proxies or more) */
  t2s_proxy_health_config health;
  t2s_tstamp replay_span; /* replay mode: time from the first record to the last */
  sim_net_action *netcfg; /* link, addr, route lines before the run (sim_net.h) */
  size_t nnetcfg;
  bool has_net;        /* the scenario declares links: the world has a network */
  t2s_tstamp debounce; /* `engine network-debounce`; the word `debounce` in durations */
  t2s_tstamp udp_timeout, dns_timeout; /* `engine udp-timeout|dns-timeout T` (0: default) */
  uint64_t max_udp_sessions;           /* `engine max-udp-sessions N` (0: default) */
  bool has_policy;                     /* `engine on-network-change` */
  bool mptcp;                          /* `engine mptcp`: streams opened with Multipath TCP */
  t2s_netchange_policy policy;
  /* `fake-dns ...` (scn_parse_fakedns.c): the fake-IP table of the run; the exclusions point
   * into fake_dns_exclude. */
  bool has_fake_dns;
  t2s_fakedns_config fake_dns;
  char fake_dns_exclude[T2S_FAKEDNS_MAX_EXCLUDE][256];
  scn_sample *samples; /* one per expectation, filled during the run */
  sim_world *w;        /* set by sim_scenario_schedule */
};

/* The config of proxy i (0: the first proxy line) or NULL; the number of proxies. */
static inline sim_proxy_config *scn_proxy_at(sim_scenario *scn, size_t i) {
  if (!scn->has_proxy) {
    return NULL;
  }
  return i == 0 ? &scn->proxy : i <= scn->nmore_proxies ? &scn->more_proxies[i - 1] : NULL;
}
static inline size_t scn_nproxies(const sim_scenario *scn) {
  return scn->has_proxy ? 1 + scn->nmore_proxies : 0;
}

/* Appends a copy of a to scn's actions. Returns 0 or T2S_ERR_NOMEM (a untouched). */
int scn_add_action(sim_scenario *scn, const scn_action *a);
/* A new empty scenario named name, relative paths against basedir; NULL when out of memory. */
sim_scenario *scn_alloc(const char *name, const char *basedir);

#endif
