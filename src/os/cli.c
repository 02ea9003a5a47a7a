/* cli.c: option parsing for the tun2sock binary (see cli.h, docs/cli.md and docs/config.md).
 *
 * One table (cli_options below) names every option: its long form, which is also its key in
 * a --config file, whether it takes a value, whether it repeats, whether a reload applies it,
 * and the fields of t2s_cli_opts it sets. getopt's table, the config file's keys
 * (config_file.c) and the reload's "needs a restart" list (runner_reload.c) all come from it;
 * t2s_cli_apply() is the one place a value is checked and stored, whatever its source. */
#include "cli.h"

#include <getopt.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "engine.h"
#include "fakedns.h"
#include "rec_wrap.h"

#ifndef T2S_VERSION
#define T2S_VERSION "0.0.0"
#endif

enum {
  OPT_DEVICE = 256,
  OPT_PROXY,
  OPT_ADDRESS,
  OPT_MTU,
  OPT_NO_OFFLOAD,
  OPT_TXQUEUELEN,
  OPT_BUSY_POLL,
  OPT_INTERFACE,
  OPT_FWMARK,
  OPT_TCP_CONNECT_TIMEOUT,
  OPT_UDP_TIMEOUT,
  OPT_DNS_TIMEOUT,
  OPT_LOG_LEVEL,
  OPT_METRICS,
  OPT_PASSWORD_FILE,
  OPT_ON_NETWORK_CHANGE,
  OPT_NETWORK_DEBOUNCE,
  OPT_NO_LOGIND,
  OPT_MPTCP,
  OPT_AUTO_ROUTE,
  OPT_ROUTE_TABLE,
  OPT_ROUTE_PRIORITY,
  OPT_ROUTE_EXCLUDE,
  OPT_ROUTE_INCLUDE,
  OPT_EXCLUDE_UID,
  OPT_EXCLUDE_CGROUP,
  OPT_DNS_HIJACK,
  OPT_MEMORY_BUDGET,
  OPT_MEMORY_PRESET,
  OPT_TCP_SNDBUF,
  OPT_TCP_RCVBUF,
  OPT_MAX_TCP_FLOWS,
  OPT_MAX_PENDING_SYN,
  OPT_MAX_UDP_SESSIONS,
  OPT_ICMP_UNREACHABLE,
  OPT_SOCKS5_PIPELINE,
  OPT_FAKE_DNS,
  OPT_FAKE_DNS_POOL,
  OPT_FAKE_DNS_EXCLUDE,
  OPT_FAKE_DNS_SIZE,
  OPT_FAKE_DNS_STATE,
  OPT_RECORD,
  OPT_RECORD_MAX,
  OPT_RECORD_MODE,
  OPT_PCAP,
  OPT_PCAP_SNAPLEN,
  OPT_DEVICE_FAULT,
  OPT_PROXY_PROBE_INTERVAL,
  OPT_PROXY_PROBE_TARGET,
  OPT_CONFIG,
  OPT_HELP,
  OPT_VERSION,
};

/* The bytes of t2s_cli_opts from field a to field b, both included. */
#define SPAN(a, b)                                                                                 \
  { offsetof(t2s_cli_opts, a), offsetof(t2s_cli_opts, b) + sizeof(((t2s_cli_opts *)0)->b) }
#define NOSPAN                                                                                     \
  { 0, 0 }
#define REP T2S_CLI_REPEATABLE
#define RUN T2S_CLI_RUNTIME
#define NONE T2S_CLI_ARG_NONE
#define REQ T2S_CLI_ARG_REQUIRED
#define OPTV T2S_CLI_ARG_OPTIONAL

static const t2s_cli_option cli_options[] = {
    {"device", OPT_DEVICE, REQ, 0, {SPAN(ifname, device_fd), NOSPAN}},
    {"proxy", OPT_PROXY, REQ, REP | RUN, {SPAN(proxy, proxy), SPAN(more_proxies, nmore_proxies)}},
    {"proxy-password-file",
     OPT_PASSWORD_FILE,
     REQ,
     RUN,
     {SPAN(password_file, password_file), NOSPAN}},
    {"proxy-probe-interval",
     OPT_PROXY_PROBE_INTERVAL,
     REQ,
     RUN,
     {SPAN(proxy_probe_interval_ns, proxy_probe_interval_ns), NOSPAN}},
    {"proxy-probe-target",
     OPT_PROXY_PROBE_TARGET,
     REQ,
     RUN,
     {SPAN(proxy_probe_host, proxy_probe_port), NOSPAN}},
    {"address", OPT_ADDRESS, REQ, REP, {SPAN(addresses, naddresses), NOSPAN}},
    {"mtu", OPT_MTU, REQ, 0, {SPAN(mtu, mtu), NOSPAN}},
    {"no-offload", OPT_NO_OFFLOAD, NONE, 0, {SPAN(no_offload, no_offload), NOSPAN}},
    {"txqueuelen", OPT_TXQUEUELEN, REQ, 0, {SPAN(txqueuelen, txqueuelen_given), NOSPAN}},
    {"busy-poll", OPT_BUSY_POLL, REQ, 0, {SPAN(busy_poll_us, busy_poll_us), NOSPAN}},
    {"interface", OPT_INTERFACE, REQ, 0, {SPAN(interface, interface), NOSPAN}},
    {"fwmark", OPT_FWMARK, REQ, 0, {SPAN(fwmark, fwmark), SPAN(fwmark_given, fwmark_given)}},
    {"tcp-connect-timeout",
     OPT_TCP_CONNECT_TIMEOUT,
     REQ,
     RUN,
     {SPAN(tcp_connect_timeout_ns, tcp_connect_timeout_ns), NOSPAN}},
    {"udp-timeout", OPT_UDP_TIMEOUT, REQ, RUN, {SPAN(udp_timeout_ns, udp_timeout_ns), NOSPAN}},
    {"dns-timeout", OPT_DNS_TIMEOUT, REQ, RUN, {SPAN(dns_timeout_ns, dns_timeout_ns), NOSPAN}},
    {"log-level", OPT_LOG_LEVEL, REQ, RUN, {SPAN(log_level, log_level), NOSPAN}},
    {"loglevel", OPT_LOG_LEVEL, REQ, RUN | T2S_CLI_ALIAS, {NOSPAN, NOSPAN}}, /* xjasonlyu's */
    {"metrics", OPT_METRICS, REQ, 0, {SPAN(metrics, metrics_port), NOSPAN}},
    {"on-network-change",
     OPT_ON_NETWORK_CHANGE,
     REQ,
     RUN,
     {SPAN(on_network_change, on_network_change), NOSPAN}},
    {"network-debounce",
     OPT_NETWORK_DEBOUNCE,
     REQ,
     RUN,
     {SPAN(network_debounce_ns, network_debounce_ns), NOSPAN}},
    {"no-logind", OPT_NO_LOGIND, NONE, 0, {SPAN(no_logind, no_logind), NOSPAN}},
    {"mptcp", OPT_MPTCP, NONE, 0, {SPAN(mptcp, mptcp), NOSPAN}},
    {"auto-route", OPT_AUTO_ROUTE, NONE, 0, {SPAN(auto_route, auto_route), NOSPAN}},
    {"route-table", OPT_ROUTE_TABLE, REQ, 0, {SPAN(route_table, route_table), NOSPAN}},
    {"route-priority", OPT_ROUTE_PRIORITY, REQ, 0, {SPAN(route_priority, route_priority), NOSPAN}},
    {"route-exclude", OPT_ROUTE_EXCLUDE, REQ, REP, {SPAN(route_exclude, nroute_exclude), NOSPAN}},
    {"route-include", OPT_ROUTE_INCLUDE, REQ, REP, {SPAN(route_include, nroute_include), NOSPAN}},
    {"exclude-uid", OPT_EXCLUDE_UID, REQ, REP, {SPAN(exclude_uid, nexclude_uid), NOSPAN}},
    {"exclude-cgroup",
     OPT_EXCLUDE_CGROUP,
     REQ,
     REP,
     {SPAN(exclude_cgroup, nexclude_cgroup), NOSPAN}},
    {"dns-hijack", OPT_DNS_HIJACK, OPTV, 0, {SPAN(dns_hijack, dns_hijack), NOSPAN}},
    {"memory-budget",
     OPT_MEMORY_BUDGET,
     REQ,
     0,
     {SPAN(memory_budget, memory_budget), SPAN(memory_budget_given, memory_budget_given)}},
    {"memory-preset", OPT_MEMORY_PRESET, REQ, 0, {SPAN(memory_preset, memory_preset), NOSPAN}},
    {"tcp-sndbuf",
     OPT_TCP_SNDBUF,
     REQ,
     0,
     {SPAN(tcp_sndbuf, tcp_sndbuf), SPAN(tcp_sndbuf_given, tcp_sndbuf_given)}},
    {"tcp-rcvbuf",
     OPT_TCP_RCVBUF,
     REQ,
     0,
     {SPAN(tcp_rcvbuf, tcp_rcvbuf), SPAN(tcp_rcvbuf_given, tcp_rcvbuf_given)}},
    {"max-tcp-flows", OPT_MAX_TCP_FLOWS, REQ, 0, {SPAN(max_tcp_flows, max_tcp_flows), NOSPAN}},
    {"max-pending-syn",
     OPT_MAX_PENDING_SYN,
     REQ,
     0,
     {SPAN(max_pending_syn, max_pending_syn), NOSPAN}},
    {"max-udp-sessions",
     OPT_MAX_UDP_SESSIONS,
     REQ,
     0,
     {SPAN(max_udp_sessions, max_udp_sessions), NOSPAN}},
    {"icmp-unreachable",
     OPT_ICMP_UNREACHABLE,
     NONE,
     RUN,
     {SPAN(icmp_unreachable, icmp_unreachable), NOSPAN}},
    {"socks5-pipeline",
     OPT_SOCKS5_PIPELINE,
     NONE,
     RUN,
     {SPAN(socks5_pipeline, socks5_pipeline), NOSPAN}},
    {"fake-dns", OPT_FAKE_DNS, NONE, 0, {SPAN(fake_dns, fake_dns), NOSPAN}},
    {"fake-dns-pool",
     OPT_FAKE_DNS_POOL,
     REQ,
     REP,
     {SPAN(fake_dns_pool4, fake_dns_pool6_given), NOSPAN}},
    {"fake-dns-exclude",
     OPT_FAKE_DNS_EXCLUDE,
     REQ,
     REP,
     {SPAN(fake_dns_exclude, nfake_dns_exclude), NOSPAN}},
    {"fake-dns-size",
     OPT_FAKE_DNS_SIZE,
     REQ,
     0,
     {SPAN(fake_dns_size, fake_dns_size_given), NOSPAN}},
    {"fake-dns-state", OPT_FAKE_DNS_STATE, REQ, 0, {SPAN(fake_dns_state, fake_dns_state), NOSPAN}},
    {"record", OPT_RECORD, REQ, 0, {SPAN(record_path, record_path), NOSPAN}},
    {"record-max", OPT_RECORD_MAX, REQ, 0, {SPAN(record_max, record_max), NOSPAN}},
    {"record-mode", OPT_RECORD_MODE, REQ, 0, {SPAN(record_ring, record_ring), NOSPAN}},
    {"pcap", OPT_PCAP, REQ, 0, {SPAN(pcap_path, pcap_path), NOSPAN}},
    {"pcap-snaplen", OPT_PCAP_SNAPLEN, REQ, 0, {SPAN(pcap_snaplen, pcap_snaplen), NOSPAN}},
    {"device-fault", OPT_DEVICE_FAULT, REQ, 0, {SPAN(device_fault, device_fault), NOSPAN}},
    {"config", OPT_CONFIG, REQ, T2S_CLI_CMDLINE_ONLY, {SPAN(config_path, config_path), NOSPAN}},
    {"help", OPT_HELP, NONE, T2S_CLI_CMDLINE_ONLY, {NOSPAN, NOSPAN}},
    {"version", OPT_VERSION, NONE, T2S_CLI_CMDLINE_ONLY, {NOSPAN, NOSPAN}},
};

#undef SPAN
#undef NOSPAN
#undef REP
#undef RUN
#undef NONE
#undef REQ
#undef OPTV

_Static_assert(T2S_ARRAY_LEN(cli_options) <= T2S_CLI_OPTIONS_MAX, "raise T2S_CLI_OPTIONS_MAX");

const t2s_cli_option *t2s_cli_options(size_t *pn) {
  *pn = T2S_ARRAY_LEN(cli_options);
  return cli_options;
}

const t2s_cli_option *t2s_cli_find(const char *name) {
  for (size_t i = 0; i < T2S_ARRAY_LEN(cli_options); i++) {
    if (strcmp(cli_options[i].name, name) == 0) {
      return &cli_options[i];
    }
  }
  return NULL;
}

/* The canonical entry of an alias (the option of the same id that is not an alias). */
static const t2s_cli_option *canonical(const t2s_cli_option *opt) {
  for (size_t i = 0; i < T2S_ARRAY_LEN(cli_options); i++) {
    if (cli_options[i].id == opt->id && !(cli_options[i].flags & T2S_CLI_ALIAS)) {
      return &cli_options[i];
    }
  }
  return opt;
}

bool t2s_cli_option_same(const t2s_cli_option *opt, const t2s_cli_opts *a, const t2s_cli_opts *b) {
  opt = canonical(opt);
  for (size_t k = 0; k < 2; k++) {
    size_t off = opt->span[k].start, end = opt->span[k].end;
    if (end > off && memcmp((const char *)a + off, (const char *)b + off, end - off) != 0) {
      return false;
    }
  }
  return true;
}

void t2s_cli_defaults(t2s_cli_opts *opts) {
  memset(opts, 0, sizeof(*opts));
  opts->device_fd = -1;
  opts->mtu = 1500;
  opts->txqueuelen = T2S_CLI_DEFAULT_TXQUEUELEN;
  opts->tcp_connect_timeout_ns = 10 * T2S_SECONDS;
  opts->udp_timeout_ns = 60 * T2S_SECONDS;
  opts->dns_timeout_ns = 10 * T2S_SECONDS;
  opts->memory_budget = 512ULL << 20;
  opts->pcap_snaplen = 65535;
  opts->tcp_sndbuf = 1u << 20;
  opts->tcp_rcvbuf = 1u << 20;
  opts->max_tcp_flows = 16384;
  opts->max_pending_syn = 1024;
  opts->max_udp_sessions = 4096;
  opts->log_level = T2S_LOG_INFO;
  opts->on_network_change = T2S_NETCHANGE_RESET_AFFECTED;
  opts->network_debounce_ns = 500 * T2S_MILLISECONDS;
  opts->proxy_probe_interval_ns = 1 * T2S_SECONDS;
  opts->route_table = 2022;
  opts->route_priority = 9000;
  t2s_fakedns_config fd;
  t2s_fakedns_config_default(&fd);
  opts->fake_dns_pool4.addr = fd.pool4;
  opts->fake_dns_pool4.prefixlen = fd.pool4_prefix;
  opts->fake_dns_pool6.addr = fd.pool6;
  opts->fake_dns_pool6.prefixlen = fd.pool6_prefix;
  opts->fake_dns_size = fd.size;
}

/* "UID" or "UID-UID". */
static int parse_uid_range(const char *v, uint32_t out[2]) {
  char a[32];
  const char *dash = strchr(v, '-');
  size_t n = dash ? (size_t)(dash - v) : strlen(v);
  if (n == 0 || n >= sizeof(a)) {
    return -1;
  }
  memcpy(a, v, n);
  a[n] = '\0';
  uint64_t lo, hi;
  const char *why = NULL;
  if (t2s_parse_uint(a, 0, UINT32_MAX - 1, &lo, &why) != 0) {
    return -1;
  }
  hi = lo;
  if (dash && t2s_parse_uint(dash + 1, 0, UINT32_MAX - 1, &hi, &why) != 0) {
    return -1;
  }
  if (hi < lo) {
    return -1;
  }
  out[0] = (uint32_t)lo;
  out[1] = (uint32_t)hi;
  return 0;
}

/* A size with an optional K, M or G (and i/B) suffix, at least min bytes. */
static int parse_size(const char *s, uint64_t min, uint64_t *out) {
  char *end = NULL;
  if (s == NULL || *s < '0' || *s > '9') {
    return -1;
  }
  unsigned long long v = strtoull(s, &end, 10);
  uint64_t mult = 1;
  if (*end == 'K' || *end == 'k') {
    mult = 1ULL << 10;
    end++;
  } else if (*end == 'M' || *end == 'm') {
    mult = 1ULL << 20;
    end++;
  } else if (*end == 'G' || *end == 'g') {
    mult = 1ULL << 30;
    end++;
  }
  if (*end == 'i' || *end == 'B') { /* "MiB", "MB" */
    end += (*end == 'i' && end[1] == 'B') ? 2 : 1;
  }
  if (*end != 0 || v > (UINT64_MAX >> 30) || v * mult < min) {
    return -1;
  }
  *out = v * mult;
  return 0;
}

static bool valid_ifname(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= T2S_CLI_IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '/' || s[i] == ':' || (unsigned char)s[i] <= ' ') {
      return false;
    }
  }
  return true;
}

static const char *parse_device(const char *v, t2s_cli_opts *o) {
  if (strncmp(v, "fd://", 5) == 0) {
    uint64_t fd;
    if (t2s_parse_uint(v + 5, 0, 1u << 30, &fd, NULL) != 0) {
      return "fd://N needs a file descriptor number";
    }
    o->device_fd = (int)fd;
    memset(o->ifname, 0, sizeof(o->ifname));
    return NULL;
  }
  const char *name = v;
  if (strncmp(v, "tun://", 6) == 0) {
    name = v + 6;
  } else if (strstr(v, "://")) {
    return "unsupported scheme (use NAME, tun://NAME or fd://N)";
  }
  if (!valid_ifname(name)) {
    return "not a valid interface name (1..15 characters, no '/')";
  }
  memset(o->ifname, 0, sizeof(o->ifname));
  strcpy(o->ifname, name);
  o->device_fd = -1;
  return NULL;
}

static const char *parse_timeout(const char *v, uint64_t *pns) {
  const char *why = NULL;
  uint64_t ns;
  if (t2s_parse_duration(v, &ns, &why) != 0) {
    return why;
  }
  if (ns < T2S_MILLISECONDS) {
    return "must be at least 1ms";
  }
  if (ns > 24 * 3600 * T2S_SECONDS) {
    return "must be at most 24h";
  }
  *pns = ns;
  return NULL;
}

const char *t2s_cli_apply(t2s_cli_opts *o, const t2s_cli_option *opt, const char *v, char *buf,
                          size_t buflen) {
  const char *why = NULL;
  if (opt->arg == T2S_CLI_ARG_REQUIRED && v == NULL) {
    return "needs a value";
  }
  switch (opt->id) {
  case OPT_DEVICE:
    return parse_device(v, o);
  case OPT_PROXY: {
    /* Repeatable (docs/proxies.md): the first is o->proxy, the others follow in order. */
    bool have_proxy = o->proxy.host[0] != '\0';
    if (have_proxy && o->nmore_proxies == T2S_CLI_MAX_PROXIES - 1) {
      return "too many proxies (at most 8)";
    }
    t2s_proxy_url *u = have_proxy ? &o->more_proxies[o->nmore_proxies] : &o->proxy;
    if (t2s_parse_proxy_url(v, u, &why) != 0) {
      return why;
    }
    if (have_proxy) {
      o->nmore_proxies++;
    }
    break;
  }
  case OPT_PROXY_PROBE_INTERVAL: {
    uint64_t ns;
    if (t2s_parse_duration(v, &ns, &why) != 0) {
      return why;
    }
    if (ns < 100 * T2S_MILLISECONDS || ns > 30 * T2S_SECONDS) {
      return "must be between 100ms and 30s";
    }
    o->proxy_probe_interval_ns = ns;
    break;
  }
  case OPT_PROXY_PROBE_TARGET:
    if (t2s_parse_hostport(v, o->proxy_probe_host, sizeof(o->proxy_probe_host),
                           &o->proxy_probe_port, &why) != 0) {
      return why;
    }
    if (!o->proxy_probe_host[0]) {
      return "needs a host";
    }
    break;
  case OPT_ADDRESS:
    if (o->naddresses == T2S_CLI_MAX_ADDRESSES) {
      return "too many addresses (at most 8)";
    }
    if (t2s_parse_cidr(v, &o->addresses[o->naddresses], &why) != 0) {
      return why;
    }
    o->naddresses++;
    break;
  case OPT_MTU: {
    uint64_t mtu;
    if (t2s_parse_uint(v, 576, 65535, &mtu, &why) != 0) {
      return "must be a number in 576..65535";
    }
    o->mtu = (uint32_t)mtu;
    break;
  case OPT_NO_OFFLOAD:
    o->no_offload = true;
    break;
  }
  case OPT_TXQUEUELEN: {
    uint64_t n;
    if (t2s_parse_uint(v, 0, 1000000, &n, &why) != 0) {
      return "must be a number in 0..1000000";
    }
    o->txqueuelen = (uint32_t)n;
    o->txqueuelen_given = true;
    break;
  }
  case OPT_BUSY_POLL: {
    uint64_t us;
    if (t2s_parse_uint(v, 0, T2S_CLI_BUSY_POLL_MAX_US, &us, &why) != 0) {
      return "must be a number of microseconds in 0..100000 (0 = off)";
    }
    o->busy_poll_us = (uint32_t)us;
    break;
  }
  case OPT_INTERFACE:
    if (!valid_ifname(v)) {
      return "not a valid interface name (1..15 characters)";
    }
    strcpy(o->interface, v);
    break;
  case OPT_FWMARK: {
    uint64_t mark;
    if (t2s_parse_uint(v, 0, UINT32_MAX, &mark, &why) != 0) {
      return "must be a 32-bit number (decimal or 0x hex)";
    }
    o->fwmark = (uint32_t)mark;
    o->fwmark_given = true;
    break;
  }
  case OPT_TCP_CONNECT_TIMEOUT:
    return parse_timeout(v, &o->tcp_connect_timeout_ns);
  case OPT_UDP_TIMEOUT:
    return parse_timeout(v, &o->udp_timeout_ns);
  case OPT_DNS_TIMEOUT:
    return parse_timeout(v, &o->dns_timeout_ns);
  case OPT_MEMORY_BUDGET:
    if (parse_size(v, 1ULL << 20, &o->memory_budget) != 0) {
      return "must be a size such as 64M or 1G (>= 1M)";
    }
    o->memory_budget_given = true;
    break;
  case OPT_MEMORY_PRESET:
    if (strcmp(v, "default") == 0) {
      o->memory_preset = T2S_CLI_MEMORY_DEFAULT;
    } else if (strcmp(v, "mobile") == 0) {
      o->memory_preset = T2S_CLI_MEMORY_MOBILE;
    } else {
      return "must be default or mobile";
    }
    break;
  case OPT_TCP_SNDBUF:
  case OPT_TCP_RCVBUF: {
    uint64_t n;
    if (parse_size(v, 4ULL << 10, &n) != 0 || n > (64ULL << 20)) {
      return "must be a size from 4K to 64M, such as 256K or 1M";
    }
    *(opt->id == OPT_TCP_SNDBUF ? &o->tcp_sndbuf : &o->tcp_rcvbuf) = (uint32_t)n;
    *(opt->id == OPT_TCP_SNDBUF ? &o->tcp_sndbuf_given : &o->tcp_rcvbuf_given) = true;
    break;
  }
  case OPT_MAX_TCP_FLOWS:
  case OPT_MAX_PENDING_SYN:
  case OPT_MAX_UDP_SESSIONS: {
    uint64_t n;
    if (t2s_parse_uint(v, 1, 1000000, &n, &why) != 0) {
      return "must be a number in 1..1000000";
    }
    uint32_t *dst = opt->id == OPT_MAX_TCP_FLOWS     ? &o->max_tcp_flows
                    : opt->id == OPT_MAX_PENDING_SYN ? &o->max_pending_syn
                                                     : &o->max_udp_sessions;
    *dst = (uint32_t)n;
    break;
  }
  case OPT_ICMP_UNREACHABLE:
    o->icmp_unreachable = true;
    break;
  case OPT_NO_LOGIND:
    o->no_logind = true;
    break;
  case OPT_MPTCP:
    o->mptcp = true;
    break;
  case OPT_SOCKS5_PIPELINE:
    o->socks5_pipeline = true;
    break;
  case OPT_RECORD:
  case OPT_PCAP: {
    char *dst = opt->id == OPT_RECORD ? o->record_path : o->pcap_path;
    if (!*v || strlen(v) >= sizeof(o->record_path)) {
      return "needs a file name";
    }
    strcpy(dst, v);
    break;
  }
  case OPT_RECORD_MAX:
    if (parse_size(v, 64ULL << 10, &o->record_max) != 0) {
      return "must be a size such as 64M or 1G (>= 64K)";
    }
    break;
  case OPT_RECORD_MODE:
    if (strcmp(v, "stop") == 0 || strcmp(v, "ring") == 0) {
      o->record_ring = v[0] == 'r';
    } else {
      return "must be stop or ring";
    }
    break;
  case OPT_PCAP_SNAPLEN: {
    uint64_t n;
    if (t2s_parse_uint(v, 20, 65535, &n, &why) != 0) {
      return "must be in 20..65535";
    }
    o->pcap_snaplen = (uint32_t)n;
    break;
  }
  case OPT_DEVICE_FAULT: {
    t2s_fault_opts fo;
    if (strlen(v) >= sizeof(o->device_fault)) {
      return "is too long";
    }
    if (t2s_fault_parse(v, &fo, buf, buflen) != 0) {
      return buf;
    }
    strcpy(o->device_fault, v);
    break;
  }
  case OPT_LOG_LEVEL:
    if (strcmp(v, "debug") == 0) {
      o->log_level = T2S_LOG_DEBUG;
    } else if (strcmp(v, "info") == 0) {
      o->log_level = T2S_LOG_INFO;
    } else if (strcmp(v, "warn") == 0 || strcmp(v, "warning") == 0) {
      o->log_level = T2S_LOG_WARN;
    } else if (strcmp(v, "error") == 0) {
      o->log_level = T2S_LOG_ERROR;
    } else {
      return "must be debug, info, warn or error";
    }
    break;
  case OPT_METRICS:
    if (t2s_parse_hostport(v, o->metrics_host, sizeof(o->metrics_host), &o->metrics_port, &why) !=
        0) {
      return why;
    }
    o->metrics = true;
    break;
  case OPT_PASSWORD_FILE:
    if (!*v || strlen(v) >= sizeof(o->password_file)) {
      return "needs a file name";
    }
    strcpy(o->password_file, v);
    break;
  case OPT_AUTO_ROUTE:
    o->auto_route = true;
    break;
  case OPT_ROUTE_TABLE: {
    uint64_t t;
    if (t2s_parse_uint(v, 1, UINT32_MAX, &t, &why) != 0 || t == 253 || t == 254 || t == 255) {
      return "must be a table number in 1..4294967295 other than 253, 254, 255";
    }
    o->route_table = (uint32_t)t;
    break;
  }
  case OPT_ROUTE_PRIORITY: {
    uint64_t p;
    if (t2s_parse_uint(v, 1, 32756, &p, &why) != 0) {
      return "must be in 1..32756 (the rules must come before the main table's 32766)";
    }
    o->route_priority = (uint32_t)p;
    break;
  }
  case OPT_ROUTE_EXCLUDE:
  case OPT_ROUTE_INCLUDE: {
    bool ex = opt->id == OPT_ROUTE_EXCLUDE;
    size_t *n = ex ? &o->nroute_exclude : &o->nroute_include;
    t2s_cidr *arr = ex ? o->route_exclude : o->route_include;
    if (*n == T2S_CLI_MAX_ROUTES) {
      return "too many ranges (at most 32)";
    }
    if (t2s_parse_cidr(v, &arr[*n], &why) != 0) {
      return why;
    }
    (*n)++;
    break;
  }
  case OPT_EXCLUDE_UID:
    if (o->nexclude_uid == T2S_CLI_MAX_UIDS) {
      return "too many ranges (at most 16)";
    }
    if (parse_uid_range(v, o->exclude_uid[o->nexclude_uid]) != 0) {
      return "must be UID or UID-UID (numbers, low-high)";
    }
    o->nexclude_uid++;
    break;
  case OPT_EXCLUDE_CGROUP:
    if (o->nexclude_cgroup == T2S_CLI_MAX_CGROUPS) {
      return "too many cgroups (at most 8)";
    }
    if (!*v || strlen(v) >= sizeof(o->exclude_cgroup[0]) || strchr(v, '"')) {
      return "needs a cgroup v2 path";
    }
    strcpy(o->exclude_cgroup[o->nexclude_cgroup++], v);
    break;
  case OPT_DNS_HIJACK: {
    /* The resolver is optional (NULL: the default). */
    const char *res = v;
    if (!res) {
      res = "1.1.1.1";
    }
    if (t2s_addr_parse(res, &o->dns_hijack) != 0) {
      return "must be an IP address with an optional port";
    }
    if (o->dns_hijack.port == 0) {
      o->dns_hijack.port = 53;
    }
    break;
  }
  case OPT_FAKE_DNS:
    o->fake_dns = true;
    break;
  case OPT_FAKE_DNS_POOL: {
    t2s_cidr pool;
    if (t2s_parse_cidr(v, &pool, &why) != 0) {
      return why;
    }
    bool v4 = pool.addr.family == T2S_AF_INET;
    if (v4 ? (pool.prefixlen < 8 || pool.prefixlen > 30)
           : (pool.prefixlen < 8 || pool.prefixlen > 126)) {
      return v4 ? "an IPv4 pool needs a prefix length in 8..30"
                : "an IPv6 pool needs a prefix length in 8..126";
    }
    bool *given = v4 ? &o->fake_dns_pool4_given : &o->fake_dns_pool6_given;
    if (*given) {
      return v4 ? "only one IPv4 pool" : "only one IPv6 pool";
    }
    *given = true;
    *(v4 ? &o->fake_dns_pool4 : &o->fake_dns_pool6) = pool;
    break;
  }
  case OPT_FAKE_DNS_EXCLUDE: {
    uint8_t wire[T2S_DNS_NAME_MAX];
    const char *name = v;
    while (*name == '.') {
      name++; /* ".corp.example" means the same as "corp.example" */
    }
    if (o->nfake_dns_exclude == T2S_CLI_MAX_FAKE_DNS_EXCLUDE) {
      return "too many suffixes (at most 32)";
    }
    if (!*name || strlen(name) >= sizeof(o->fake_dns_exclude[0]) ||
        t2s_dns_name_to_wire(name, wire, sizeof(wire)) <= 1 || strpbrk(name, " \t\\")) {
      return "needs a domain name suffix";
    }
    strcpy(o->fake_dns_exclude[o->nfake_dns_exclude++], name);
    break;
  }
  case OPT_FAKE_DNS_SIZE: {
    uint64_t n;
    if (t2s_parse_uint(v, 1, T2S_FAKEDNS_SIZE_MAX, &n, &why) != 0) {
      return "must be a number in 1..1048576";
    }
    o->fake_dns_size = (uint32_t)n;
    o->fake_dns_size_given = true;
    break;
  }
  case OPT_FAKE_DNS_STATE:
    if (!*v || strlen(v) >= sizeof(o->fake_dns_state)) {
      return "needs a file name";
    }
    strcpy(o->fake_dns_state, v);
    break;
  case OPT_ON_NETWORK_CHANGE:
    if (strcmp(v, "reset-affected") == 0) {
      o->on_network_change = T2S_NETCHANGE_RESET_AFFECTED;
    } else if (strcmp(v, "reset-all") == 0) {
      o->on_network_change = T2S_NETCHANGE_RESET_ALL;
    } else if (strcmp(v, "none") == 0) {
      o->on_network_change = T2S_NETCHANGE_NONE;
    } else {
      return "must be reset-affected, reset-all or none";
    }
    break;
  case OPT_NETWORK_DEBOUNCE: {
    uint64_t ns;
    if (t2s_parse_duration(v, &ns, &why) != 0) {
      return why;
    }
    if (ns > 60 * T2S_SECONDS) {
      return "must be at most 60s";
    }
    o->network_debounce_ns = ns;
    break;
  }
  case OPT_CONFIG:
    if (!*v || strlen(v) >= sizeof(o->config_path)) {
      return "needs a file name";
    }
    strcpy(o->config_path, v);
    break;
  default:
    return "cannot be set here";
  }
  return NULL;
}

void t2s_cli_clear(t2s_cli_opts *o, const t2s_cli_option *opt) {
  t2s_cli_opts d;
  t2s_cli_defaults(&d);
  opt = canonical(opt);
  for (size_t k = 0; k < 2; k++) {
    size_t off = opt->span[k].start, end = opt->span[k].end;
    if (end > off) {
      memcpy((char *)o + off, (const char *)&d + off, end - off);
    }
  }
}

void t2s_cli_memory_preset(t2s_cli_opts *o) {
  t2s_cli_opts d;
  t2s_cli_defaults(&d);
  bool mobile = o->memory_preset == T2S_CLI_MEMORY_MOBILE;
  if (!o->memory_budget_given) {
    o->memory_budget = mobile ? T2S_CLI_MOBILE_MEMORY_BUDGET : d.memory_budget;
  }
  if (!o->tcp_sndbuf_given) {
    o->tcp_sndbuf = mobile ? T2S_CLI_MOBILE_TCP_SNDBUF : d.tcp_sndbuf;
  }
  if (!o->tcp_rcvbuf_given) {
    o->tcp_rcvbuf = mobile ? T2S_CLI_MOBILE_TCP_RCVBUF : d.tcp_rcvbuf;
  }
}

static t2s_cli_result bad(FILE *err, const char *prog, const char *opt, const char *value,
                          const char *why) {
  if (value) {
    fprintf(err, "%s: --%s '%s': %s\n", prog, opt, value, why);
  } else {
    fprintf(err, "%s: --%s: %s\n", prog, opt, why);
  }
  fprintf(err, "Try '%s --help' for more information.\n", prog);
  return T2S_CLI_BAD;
}

void t2s_cli_file_error(FILE *err, const char *path, unsigned line, const char *key,
                        const char *value, const char *why) {
  fprintf(err, "tun2sock: %s:%u: ", path, line);
  if (key && value) {
    fprintf(err, "%s: '%s': ", key, value);
  } else if (key) {
    fprintf(err, "%s: ", key);
  }
  fprintf(err, "%s\n", why);
}

/* One option of the command line, in the order given. */
typedef struct cli_arg {
  const t2s_cli_option *opt;
  const char *value;
} cli_arg;

t2s_cli_result t2s_cli_parse_with(int argc, char **argv, t2s_cli_opts *o, t2s_cli_loader load,
                                  void *load_arg, FILE *out, FILE *err) {
  const char *prog = "tun2sock";
  t2s_cli_defaults(o);
  struct option long_options[T2S_ARRAY_LEN(cli_options) + 1];
  for (size_t i = 0; i < T2S_ARRAY_LEN(cli_options); i++) {
    static const int has_arg[] = {[T2S_CLI_ARG_NONE] = no_argument,
                                  [T2S_CLI_ARG_REQUIRED] = required_argument,
                                  [T2S_CLI_ARG_OPTIONAL] = optional_argument};
    long_options[i] =
        (struct option){cli_options[i].name, has_arg[cli_options[i].arg], NULL, (int)i + 1};
  }
  long_options[T2S_ARRAY_LEN(cli_options)] = (struct option){NULL, 0, NULL, 0};
  cli_arg *args = calloc((size_t)(argc > 0 ? argc : 1), sizeof(*args));
  if (args == NULL) {
    fprintf(err, "%s: out of memory\n", prog);
    return T2S_CLI_BAD;
  }
  size_t nargs = 0;
  const char *config = NULL;
  t2s_cli_result res = T2S_CLI_RUN;
  optind = 0; /* glibc: full reinitialisation, so the parser can run more than once */
  opterr = 0; /* we print our own messages */
  /* First the command line is read whole (bounded by argc); the file, when given, is applied
   * first and the command line on top of it. */
  while (res == T2S_CLI_RUN) {
    int idx = -1;
    int c = getopt_long_only(argc, argv, ":hV", long_options, &idx);
    if (c == -1) {
      break;
    }
    if (c == 'h' ||
        (c > 0 && c <= (int)T2S_ARRAY_LEN(cli_options) && cli_options[c - 1].id == OPT_HELP)) {
      t2s_cli_usage(out, prog);
      res = T2S_CLI_EXIT;
    } else if (c == 'V' || (c > 0 && c <= (int)T2S_ARRAY_LEN(cli_options) &&
                            cli_options[c - 1].id == OPT_VERSION)) {
      fprintf(out, "tun2sock %s\n", T2S_VERSION);
      res = T2S_CLI_EXIT;
    } else if (c == ':') {
      /* A missing argument: name the option as the user wrote it. */
      const char *arg = argv[optind - 1];
      while (*arg == '-') {
        arg++;
      }
      res = bad(err, prog, arg, NULL, "needs a value");
    } else if (c <= 0 || c > (int)T2S_ARRAY_LEN(cli_options)) {
      const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
      fprintf(err, "%s: unknown option '%s'\n", prog, arg);
      fprintf(err, "Try '%s --help' for more information.\n", prog);
      res = T2S_CLI_BAD;
    } else {
      const t2s_cli_option *opt = &cli_options[c - 1];
      const char *v = optarg;
      if (opt->id == OPT_DNS_HIJACK && !v && optind < argc && argv[optind][0] != '-') {
        /* The resolver is optional: --dns-hijack=IP, or --dns-hijack IP when the next word
         * is an address. */
        t2s_addr probe;
        if (t2s_addr_parse(argv[optind], &probe) == 0) {
          v = argv[optind++];
        }
      }
      if (opt->id == OPT_CONFIG) {
        config = v;
      }
      args[nargs++] = (cli_arg){opt, v};
    }
  }
  if (res == T2S_CLI_RUN && optind < argc) {
    fprintf(err, "%s: unexpected argument '%s'\n", prog, argv[optind]);
    fprintf(err, "Try '%s --help' for more information.\n", prog);
    res = T2S_CLI_BAD;
  }
  t2s_cli_origin origin;
  memset(&origin, 0, sizeof(origin));
  if (res == T2S_CLI_RUN && config) {
    if (load == NULL) {
      res = bad(err, prog, "config", config, "is not supported here");
    } else if (load(load_arg, config, o, &origin, err) != 0) {
      res = T2S_CLI_BAD;
    }
  }
  bool cleared[T2S_ARRAY_LEN(cli_options)] = {false};
  for (size_t i = 0; i < nargs && res == T2S_CLI_RUN; i++) {
    const t2s_cli_option *opt = canonical(args[i].opt);
    size_t k = (size_t)(opt - cli_options);
    if ((opt->flags & T2S_CLI_REPEATABLE) && origin.line[k] != 0 && !cleared[k]) {
      t2s_cli_clear(o, opt); /* the command line's list replaces the file's */
    }
    cleared[k] = true;
    origin.line[k] = 0; /* the value is the command line's now */
    char buf[256];
    const char *why = t2s_cli_apply(o, args[i].opt, args[i].value, buf, sizeof(buf));
    if (why) {
      res = bad(err, prog, args[i].opt->name, args[i].value, why);
    }
  }
  free(args);
  if (res != T2S_CLI_RUN) {
    return res;
  }
  const char *name = NULL, *value = NULL;
  const char *why = t2s_cli_check(o, &name, &value);
  if (why) {
    const t2s_cli_option *opt = t2s_cli_find(name);
    size_t k = opt ? (size_t)(canonical(opt) - cli_options) : 0;
    if (opt && origin.path[0] && origin.line[k] != 0) {
      t2s_cli_file_error(err, origin.path, origin.line[k], name, value, why);
      return T2S_CLI_BAD;
    }
    return bad(err, prog, name, value, why);
  }
  return T2S_CLI_RUN;
}

t2s_cli_result t2s_cli_parse(int argc, char **argv, t2s_cli_opts *o, FILE *out, FILE *err) {
  return t2s_cli_parse_with(argc, argv, o, NULL, NULL, out, err);
}
