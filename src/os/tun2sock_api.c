/* tun2sock_api.c: the embedding API of include/tun2sock.h, on top of the runner. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "embed_packets.h"
#include "host_monitor.h"
#include "log.h"
#include "resolve.h"
#include "runner.h"
#include "tun2sock.h"

#ifndef T2S_VERSION
#define T2S_VERSION "0.0.0"
#endif

_Static_assert(TUN2SOCK_NETCHANGE_RESET_AFFECTED == (int)T2S_NETCHANGE_RESET_AFFECTED &&
                   TUN2SOCK_NETCHANGE_RESET_ALL == (int)T2S_NETCHANGE_RESET_ALL &&
                   TUN2SOCK_NETCHANGE_NONE == (int)T2S_NETCHANGE_NONE,
               "tun2sock.h and engine.h number the network-change policies alike");

struct tun2sock {
  t2s_runner *runner;
  tun2sock_listener listener;
};

/* ---------------- the structs' sizes (the ABI rule in tun2sock.h) ---------------- */

/* The sizes a struct had at the API versions: from the end of the version's last field up to the
 * start of the next version's first field (the trailing padding, whatever the platform's
 * alignment made of it). A size inside one of these ranges holds whole fields only. */
typedef struct size_range {
  size_t lo, hi;
} size_range;

#define FIELD_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

static const size_range config_sizes[] = {
    {FIELD_END(tun2sock_config, network_debounce_ms), offsetof(tun2sock_config, protect)}, /* 1 */
    {FIELD_END(tun2sock_config, protect_arg), offsetof(tun2sock_config, network_monitor)}, /* 2 */
    {FIELD_END(tun2sock_config, route_arg), offsetof(tun2sock_config, output)},            /* 3 */
    {FIELD_END(tun2sock_config, output_arg), offsetof(tun2sock_config, memory_budget)},    /* 4 */
    {FIELD_END(tun2sock_config, tcp_rcvbuf), sizeof(tun2sock_config)}, /* 5, 6 */
};

static const size_range stats_sizes[] = {
    {FIELD_END(tun2sock_stats, network_state), offsetof(tun2sock_stats, upstream_sockets)}, /* 1 */
    {FIELD_END(tun2sock_stats, protect_failures),
     offsetof(tun2sock_stats, input_packets)},                                          /* 2, 3 */
    {FIELD_END(tun2sock_stats, output_errors), offsetof(tun2sock_stats, memory_bytes)}, /* 4 */
    {FIELD_END(tun2sock_stats, memory_refused), sizeof(tun2sock_stats)},                /* 5, 6 */
};

/* Whether size is the struct's size at one of the API versions; logged when not. */
static bool size_known(const char *what, const size_range *r, size_t n, size_t size) {
  for (size_t i = 0; i < n; i++) {
    if (size >= r[i].lo && size <= r[i].hi) {
      return true;
    }
  }
  T2S_ERROR("%s: size %zu is not the struct's size at any API version 1..%d (%zu..%zu); %s", what,
            size, TUN2SOCK_API_VERSION, r[0].lo, r[n - 1].hi,
            size > r[n - 1].hi ? "built against a newer tun2sock.h than this library"
                               : "not a tun2sock.h struct");
  return false;
}

#define SIZE_KNOWN(what, table, size)                                                              \
  size_known(what, table, sizeof(table) / sizeof(table[0]), size)

static void config_defaults(tun2sock_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->tun_fd = -1;
  cfg->log_level = TUN2SOCK_LOG_INFO;
}

int tun2sock_config_default_v(tun2sock_config *cfg, size_t size) {
  if (!cfg || !SIZE_KNOWN("tun2sock_config_default", config_sizes, size)) {
    return TUN2SOCK_ERR_CONFIG;
  }
  tun2sock_config full;
  config_defaults(&full);
  memcpy(cfg, &full, size);
  return TUN2SOCK_OK;
}

int tun2sock_config_memory_preset(tun2sock_config *cfg, int preset) {
  if (!cfg || (preset != TUN2SOCK_MEMORY_DEFAULT && preset != TUN2SOCK_MEMORY_MOBILE)) {
    return TUN2SOCK_ERR_CONFIG;
  }
  bool mobile = preset == TUN2SOCK_MEMORY_MOBILE;
  cfg->memory_budget = mobile ? T2S_CLI_MOBILE_MEMORY_BUDGET : 0;
  cfg->tcp_sndbuf = mobile ? T2S_CLI_MOBILE_TCP_SNDBUF : 0;
  cfg->tcp_rcvbuf = mobile ? T2S_CLI_MOBILE_TCP_RCVBUF : 0;
  return TUN2SOCK_OK;
}

static bool bad_buf(uint32_t v) {
  return v && (v < (4u << 10) || v > (64u << 20));
}

const char *tun2sock_version(void) {
  return T2S_VERSION;
}

static int bad(const char *field, const char *why) {
  T2S_ERROR("tun2sock_config.%s: %s", field, why);
  return TUN2SOCK_ERR_CONFIG;
}

static int new_from(tun2sock **pt, const tun2sock_config *cfg);

int tun2sock_new_v(tun2sock **pt, const tun2sock_config *cfg, size_t size) {
  if (!pt || !cfg || !SIZE_KNOWN("tun2sock_new", config_sizes, size)) {
    return TUN2SOCK_ERR_CONFIG;
  }
  /* The caller's fields, the defaults for those its header did not have. */
  tun2sock_config full;
  config_defaults(&full);
  memcpy(&full, cfg, size);
  return new_from(pt, &full);
}

static int new_from(tun2sock **pt, const tun2sock_config *cfg) {
  if (cfg->log_level < TUN2SOCK_LOG_DEBUG || cfg->log_level > TUN2SOCK_LOG_ERROR) {
    return bad("log_level", "must be one of TUN2SOCK_LOG_*");
  }
  t2s_log_set_level((t2s_log_level)cfg->log_level);
  t2s_cli_opts *o = calloc(1, sizeof(*o));
  if (!o) {
    return TUN2SOCK_ERR_FAILED;
  }
  t2s_cli_defaults(o);
  o->no_logind = true; /* the embedding program's own sleep handling: not ours to add */
  int rv = TUN2SOCK_ERR_CONFIG;
  const char *why = NULL;
  if (cfg->output && cfg->tun_fd >= 0) {
    rv = bad("tun_fd", "must be -1 with packet callbacks (output)");
    goto out;
  }
  if (cfg->tun_fd < 0 && !cfg->output) {
    rv = bad("tun_fd", "must be an open TUN file descriptor (or set output)");
    goto out;
  }
  o->device_fd = cfg->tun_fd;
  o->mtu = cfg->mtu;
  if (cfg->mtu && (cfg->mtu < 576 || cfg->mtu > 65535)) {
    rv = bad("mtu", "must be 0 or 576..65535");
    goto out;
  }
  if (!cfg->proxy || t2s_parse_proxy_url(cfg->proxy, &o->proxy, &why) != 0) {
    rv = bad("proxy", why ? why : "is required (socks5://HOST:PORT)");
    goto out;
  }
  if (cfg->interface) {
    if (!cfg->interface[0] || strlen(cfg->interface) >= sizeof(o->interface)) {
      rv = bad("interface", "not a valid interface name");
      goto out;
    }
    strcpy(o->interface, cfg->interface);
  }
  o->fwmark = cfg->fwmark;
  if (cfg->tcp_connect_timeout_ms) {
    o->tcp_connect_timeout_ns = (uint64_t)cfg->tcp_connect_timeout_ms * T2S_MILLISECONDS;
  }
  if (cfg->udp_timeout_ms) {
    o->udp_timeout_ns = (uint64_t)cfg->udp_timeout_ms * T2S_MILLISECONDS;
  }
  if (cfg->dns_timeout_ms) {
    o->dns_timeout_ns = (uint64_t)cfg->dns_timeout_ms * T2S_MILLISECONDS;
  }
  o->log_level = (t2s_log_level)cfg->log_level;
  if (cfg->on_network_change < TUN2SOCK_NETCHANGE_RESET_AFFECTED ||
      cfg->on_network_change > TUN2SOCK_NETCHANGE_NONE) {
    rv = bad("on_network_change", "must be one of TUN2SOCK_NETCHANGE_*");
    goto out;
  }
  o->on_network_change = cfg->on_network_change; /* the same numbers as t2s_netchange_policy */
  if (cfg->network_debounce_ms > 60000) {
    rv = bad("network_debounce_ms", "must be at most 60000");
    goto out;
  }
  if (cfg->network_debounce_ms) {
    o->network_debounce_ns = (uint64_t)cfg->network_debounce_ms * T2S_MILLISECONDS;
  }
  if (cfg->network_monitor != TUN2SOCK_MONITOR_RTNETLINK &&
      cfg->network_monitor != TUN2SOCK_MONITOR_HOST) {
    rv = bad("network_monitor", "must be one of TUN2SOCK_MONITOR_*");
    goto out;
  }
  if (cfg->memory_budget) {
    if (cfg->memory_budget < (1u << 20)) {
      rv = bad("memory_budget", "must be 0 or at least 1 MiB");
      goto out;
    }
    o->memory_budget = cfg->memory_budget;
  }
  if (bad_buf(cfg->tcp_sndbuf) || bad_buf(cfg->tcp_rcvbuf)) {
    rv = bad(bad_buf(cfg->tcp_sndbuf) ? "tcp_sndbuf" : "tcp_rcvbuf", "must be 0 or 4 KiB..64 MiB");
    goto out;
  }
  if (cfg->tcp_sndbuf) {
    o->tcp_sndbuf = cfg->tcp_sndbuf;
  }
  if (cfg->tcp_rcvbuf) {
    o->tcp_rcvbuf = cfg->tcp_rcvbuf;
  }
  if (cfg->metrics) {
    if (t2s_parse_hostport(cfg->metrics, o->metrics_host, sizeof(o->metrics_host), &o->metrics_port,
                           &why) != 0) {
      rv = bad("metrics", why);
      goto out;
    }
    o->metrics = true;
  }
  const char *password = cfg->password ? cfg->password : o->proxy.pass;
  if (strlen(password) >= T2S_PROXY_FIELD_MAX) {
    rv = bad("password", "longer than 255 bytes");
    goto out;
  }
  t2s_runner_config rc = {
      .opts = o,
      .username = o->proxy.has_user ? o->proxy.user : NULL,
      .password = password,
      .handle_signals = false,
      .owns_fd = false,
      .protect = cfg->protect,
      .protect_arg = cfg->protect_arg,
      .host_monitor = cfg->network_monitor == TUN2SOCK_MONITOR_HOST,
      .host_route = cfg->route,
      .host_route_arg = cfg->route_arg,
      .packet_output = cfg->output,
      .packet_output_arg = cfg->output_arg,
  };
  if (t2s_resolve_host(o->proxy.host, o->proxy.port, &rc.proxy, "tun2sock_config.proxy") != 0) {
    rv = TUN2SOCK_ERR_FAILED;
    goto out;
  }
  tun2sock *t = calloc(1, sizeof(*t));
  if (!t) {
    rv = TUN2SOCK_ERR_FAILED;
    goto out;
  }
  int err = t2s_runner_new(&t->runner, &rc);
  if (err != 0) {
    free(t);
    rv = err == T2S_ERR_INVALID_ARGUMENT ? TUN2SOCK_ERR_CONFIG : TUN2SOCK_ERR_FAILED;
    goto out;
  }
  *pt = t;
  rv = TUN2SOCK_OK;
out:
  explicit_bzero(o, sizeof(*o));
  free(o);
  return rv;
}

/* The runner's listener calls the embedder's through these (unsigned vs uint32_t index). */
static void l_default(void *arg, const char *name, uint32_t index) {
  tun2sock *t = arg;
  if (t->listener.on_default_interface_changed) {
    t->listener.on_default_interface_changed(t->listener.arg, name, index);
  }
}

static void l_paused(void *arg) {
  tun2sock *t = arg;
  if (t->listener.on_network_paused) {
    t->listener.on_network_paused(t->listener.arg);
  }
}

static void l_resumed(void *arg, uint64_t slept_ms) {
  tun2sock *t = arg;
  if (t->listener.on_network_resumed) {
    t->listener.on_network_resumed(t->listener.arg, slept_ms);
  }
}

static void l_routes(void *arg) {
  tun2sock *t = arg;
  if (t->listener.on_routes_changed) {
    t->listener.on_routes_changed(t->listener.arg);
  }
}

void tun2sock_set_listener(tun2sock *t, const tun2sock_listener *listener) {
  if (listener) {
    t->listener = *listener;
  } else {
    memset(&t->listener, 0, sizeof(t->listener));
  }
  t2s_runner_listener rl = {l_default, l_paused, l_resumed, l_routes, t};
  t2s_runner_set_listener(t->runner, &rl);
}

int tun2sock_run(tun2sock *t) {
  return t2s_runner_run(t->runner) == 0 ? TUN2SOCK_OK : TUN2SOCK_ERR_FAILED;
}

void tun2sock_stop(tun2sock *t) {
  t2s_runner_stop(t->runner);
}

static void stats_fill(const tun2sock *t, tun2sock_stats *st);

int tun2sock_get_stats_v(const tun2sock *t, tun2sock_stats *st, size_t size) {
  if (!t || !st || !SIZE_KNOWN("tun2sock_get_stats", stats_sizes, size)) {
    return TUN2SOCK_ERR_CONFIG;
  }
  tun2sock_stats full;
  stats_fill(t, &full);
  memcpy(st, &full, size); /* nothing past the caller's struct */
  return TUN2SOCK_OK;
}

static void stats_fill(const tun2sock *t, tun2sock_stats *st) {
  t2s_engine_stats es;
  t2s_runner_get_stats(t->runner, &es);
  memset(st, 0, sizeof(*st));
  st->packets_in = es.packets_in;
  st->packets_out = es.packets_out;
  st->bytes_up = es.bytes_up;
  st->bytes_down = es.bytes_down;
  st->tcp_flows_active = es.tcp_flows_active;
  st->tcp_flows_total = es.tcp_flows_total;
  st->udp_sessions_active = es.udp_sessions_active;
  st->icmp_echo_replies = es.icmp_echo_replies;
  for (int i = 1; i < T2S_DROP_MAX; i++) {
    st->packets_dropped += es.drops[i];
  }
  st->upstream_errors = es.upstream_errors;
  st->network_changes = es.network_changes;
  st->route_updates = es.route_updates;
  st->flows_reset = es.flows_reset;
  st->last_recovery_ms = es.last_recovery_ns / T2S_MILLISECONDS;
  st->network_state = (int)es.net_state;
  st->memory_bytes = es.mem_bytes;
  st->memory_peak_bytes = es.mem_peak_bytes;
  st->memory_refused = es.mem_refused;
  t2s_runner_protect_counts(t->runner, &st->upstream_sockets, &st->protect_calls,
                            &st->protect_failures);
  t2s_embed_packets *p = t2s_runner_packets(t->runner);
  if (p) {
    t2s_embed_packets_counters c;
    t2s_embed_packets_get_counters(p, &c);
    st->input_packets = c.queued;
    st->input_drops = c.queue_drops + c.invalid;
    st->output_errors = c.output_errors;
  }
}

void tun2sock_del(tun2sock *t) {
  if (!t) {
    return;
  }
  t2s_runner_del(t->runner);
  free(t);
}

/* Network events from the host: queued into the loop (host_monitor.c). */
static int host_result(int rv) {
  return rv == 0 ? TUN2SOCK_OK : TUN2SOCK_ERR_FAILED;
}

int tun2sock_network_changed(tun2sock *t, const char *ifname, unsigned ifindex) {
  t2s_host_monitor *m = t ? t2s_runner_host_monitor(t->runner) : NULL;
  return m ? host_result(t2s_host_monitor_changed(m, ifname, ifindex)) : TUN2SOCK_ERR_CONFIG;
}

int tun2sock_network_paused(tun2sock *t) {
  t2s_host_monitor *m = t ? t2s_runner_host_monitor(t->runner) : NULL;
  return m ? host_result(t2s_host_monitor_paused(m)) : TUN2SOCK_ERR_CONFIG;
}

int tun2sock_network_resumed(tun2sock *t, uint64_t slept_ms) {
  t2s_host_monitor *m = t ? t2s_runner_host_monitor(t->runner) : NULL;
  return m ? host_result(t2s_host_monitor_resumed(m, slept_ms)) : TUN2SOCK_ERR_CONFIG;
}

/* Packets from the host: queued into the loop (embed_packets.c). */
int tun2sock_input_packet(tun2sock *t, const uint8_t *pkt, size_t len) {
  t2s_embed_packets *p = t ? t2s_runner_packets(t->runner) : NULL;
  if (!p) {
    return TUN2SOCK_ERR_CONFIG;
  }
  return t2s_embed_packets_input(p, pkt, len) == 0 ? TUN2SOCK_OK : TUN2SOCK_ERR_FAILED;
}
