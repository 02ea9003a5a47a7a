/* cli.c: option parsing for the tun2sock binary (see cli.h and docs/cli.md). */
#include "cli.h"

#include <getopt.h>
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
  OPT_AUTO_ROUTE,
  OPT_ROUTE_TABLE,
  OPT_ROUTE_PRIORITY,
  OPT_ROUTE_EXCLUDE,
  OPT_ROUTE_INCLUDE,
  OPT_EXCLUDE_UID,
  OPT_EXCLUDE_CGROUP,
  OPT_DNS_HIJACK,
  OPT_MEMORY_BUDGET,
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
  OPT_HELP,
  OPT_VERSION,
};

static const struct option long_options[] = {
    {"device", required_argument, NULL, OPT_DEVICE},
    {"proxy", required_argument, NULL, OPT_PROXY},
    {"address", required_argument, NULL, OPT_ADDRESS},
    {"mtu", required_argument, NULL, OPT_MTU},
    {"no-offload", no_argument, NULL, OPT_NO_OFFLOAD},
    {"txqueuelen", required_argument, NULL, OPT_TXQUEUELEN},
    {"interface", required_argument, NULL, OPT_INTERFACE},
    {"fwmark", required_argument, NULL, OPT_FWMARK},
    {"tcp-connect-timeout", required_argument, NULL, OPT_TCP_CONNECT_TIMEOUT},
    {"udp-timeout", required_argument, NULL, OPT_UDP_TIMEOUT},
    {"dns-timeout", required_argument, NULL, OPT_DNS_TIMEOUT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"loglevel", required_argument, NULL, OPT_LOG_LEVEL}, /* xjasonlyu/tun2socks spelling */
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"proxy-password-file", required_argument, NULL, OPT_PASSWORD_FILE},
    {"on-network-change", required_argument, NULL, OPT_ON_NETWORK_CHANGE},
    {"network-debounce", required_argument, NULL, OPT_NETWORK_DEBOUNCE},
    {"no-logind", no_argument, NULL, OPT_NO_LOGIND},
    {"auto-route", no_argument, NULL, OPT_AUTO_ROUTE},
    {"route-table", required_argument, NULL, OPT_ROUTE_TABLE},
    {"route-priority", required_argument, NULL, OPT_ROUTE_PRIORITY},
    {"route-exclude", required_argument, NULL, OPT_ROUTE_EXCLUDE},
    {"route-include", required_argument, NULL, OPT_ROUTE_INCLUDE},
    {"exclude-uid", required_argument, NULL, OPT_EXCLUDE_UID},
    {"exclude-cgroup", required_argument, NULL, OPT_EXCLUDE_CGROUP},
    {"dns-hijack", optional_argument, NULL, OPT_DNS_HIJACK},
    {"memory-budget", required_argument, NULL, OPT_MEMORY_BUDGET},
    {"tcp-sndbuf", required_argument, NULL, OPT_TCP_SNDBUF},
    {"tcp-rcvbuf", required_argument, NULL, OPT_TCP_RCVBUF},
    {"max-tcp-flows", required_argument, NULL, OPT_MAX_TCP_FLOWS},
    {"max-pending-syn", required_argument, NULL, OPT_MAX_PENDING_SYN},
    {"max-udp-sessions", required_argument, NULL, OPT_MAX_UDP_SESSIONS},
    {"icmp-unreachable", no_argument, NULL, OPT_ICMP_UNREACHABLE},
    {"socks5-pipeline", no_argument, NULL, OPT_SOCKS5_PIPELINE},
    {"fake-dns", no_argument, NULL, OPT_FAKE_DNS},
    {"fake-dns-pool", required_argument, NULL, OPT_FAKE_DNS_POOL},
    {"fake-dns-exclude", required_argument, NULL, OPT_FAKE_DNS_EXCLUDE},
    {"fake-dns-size", required_argument, NULL, OPT_FAKE_DNS_SIZE},
    {"fake-dns-state", required_argument, NULL, OPT_FAKE_DNS_STATE},
    {"record", required_argument, NULL, OPT_RECORD},
    {"record-max", required_argument, NULL, OPT_RECORD_MAX},
    {"record-mode", required_argument, NULL, OPT_RECORD_MODE},
    {"pcap", required_argument, NULL, OPT_PCAP},
    {"pcap-snaplen", required_argument, NULL, OPT_PCAP_SNAPLEN},
    {"device-fault", required_argument, NULL, OPT_DEVICE_FAULT},
    {"proxy-probe-interval", required_argument, NULL, OPT_PROXY_PROBE_INTERVAL},
    {"proxy-probe-target", required_argument, NULL, OPT_PROXY_PROBE_TARGET},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

void t2s_cli_usage(FILE *out, const char *prog) {
  fprintf(out,
          "Usage: %s --device DEV --proxy socks5://[USER[:PASS]@]HOST[:PORT] [options]\n"
          "\n"
          "Carries every TCP, UDP and ICMP flow that enters a TUN device through a SOCKS5 "
          "proxy.\n"
          "\n"
          "Options:\n"
          "  --device DEV                 TUN device: NAME (created or attached), tun://NAME,\n"
          "                               or fd://N (an open TUN file descriptor)\n"
          "  --proxy URL                  socks5://[USER[:PASS]@]HOST[:PORT] (port 1080 by\n"
          "                               default; HOST may be a name, IPv4 or [IPv6]);\n"
          "                               repeatable: the order is the preference, each\n"
          "                               with its own credentials (docs/proxies.md)\n"
          "  --proxy-probe-interval DUR   with several proxies: the first wait before probing\n"
          "                               a proxy that is down (default 1s, doubling to 30s)\n"
          "  --proxy-probe-target H:P     probe with a CONNECT to H:P instead of the greeting\n"
          "  --address CIDR               address to put on the TUN (repeatable, IPv4 and\n"
          "                               IPv6), e.g. 198.18.0.1/15 or fd00:18::1/64\n"
          "  --mtu N                      TUN MTU (default 1500; 576..65535)\n"
          "  --no-offload                 no TUN offloads (IFF_VNET_HDR, checksum offload,\n"
          "                               TSO): one plain packet per read and write\n"
          "  --txqueuelen N               the TUN's queue of packets waiting for tun2sock\n"
          "                               (default: raised to 10000; 0 = the kernel's)\n"
          "  --interface IFNAME           pin upstream sockets to this interface (default:\n"
          "                               the interface of the route to the proxy)\n"
          "  --fwmark N                   SO_MARK for upstream sockets (decimal or 0x hex)\n"
          "  --tcp-connect-timeout DUR    how long a new TCP flow waits for the proxy "
          "(default 10s)\n"
          "  --udp-timeout DUR            idle timeout of a UDP session (default 60s)\n"
          "  --dns-timeout DUR            idle timeout of a DNS (port 53) session (default "
          "10s)\n"
          "  --log-level LEVEL            debug, info, warn or error (default info)\n"
          "  --metrics HOST:PORT          serve Prometheus text at /metrics and JSON at "
          "/stats\n"
          "  --proxy-password-file FILE   read the proxy password from FILE (first line)\n"
          "  --on-network-change POLICY   when the route to the proxy moves or the machine\n"
          "                               wakes: reset-affected (default: flows whose path\n"
          "                               changed get an RST), reset-all, or none\n"
          "  --network-debounce DUR       how long network events settle before a decision\n"
          "                               (default 500ms; 0..60s)\n"
          "  --no-logind                  do not listen for systemd-logind's PrepareForSleep\n"
          "                               (sleep is then noticed by the clocks only)\n"
          "  --auto-route                 route all IPv4 and IPv6 traffic into the TUN with\n"
          "                               policy rules (removed at exit); see auto-route.md\n"
          "  --route-table N              routing table of --auto-route (default 2022)\n"
          "  --route-priority N           first rule priority of --auto-route (default 9000;\n"
          "                               N..N+9 are reserved)\n"
          "  --route-exclude CIDR         keep a range off the tunnel (repeatable)\n"
          "  --route-include CIDR         tunnel only these ranges (repeatable)\n"
          "  --exclude-uid UID[-UID]      a user's traffic bypasses the tunnel (repeatable)\n"
          "  --exclude-cgroup PATH        a cgroup v2's traffic bypasses the tunnel (nftables)\n"
          "  --dns-hijack[=IP[:PORT]]     send every port-53 flow to this resolver through\n"
          "                               the proxy (default 1.1.1.1:53)\n"
          "  --memory-budget SIZE         heap the engine may use (default 512M; K, M, G)\n"
          "  --tcp-sndbuf SIZE            per-flow buffer toward a client (default 1M;\n"
          "                               4K..64M; allocated as bytes arrive)\n"
          "  --tcp-rcvbuf SIZE            per-flow buffer from a client, its window\n"
          "                               (default 1M; 4K..64M)\n"
          "  --max-tcp-flows N            TCP flow cap; past it a SYN gets an RST (16384)\n"
          "  --max-pending-syn N          SYNs held while their upstream opens (1024)\n"
          "  --max-udp-sessions N         UDP session cap, least recently used evicted (4096)\n"
          "  --icmp-unreachable           answer a proxy's unreachable (REP 3/4) with ICMP\n"
          "                               unreachable instead of a TCP reset\n"
          "  --socks5-pipeline            send greeting, auth and CONNECT in one write (saves\n"
          "                               round trips; the server must accept it)\n"
          "  --fake-dns                   answer every A/AAAA query entering the TUN with an\n"
          "                               address of a private pool and connect to such an\n"
          "                               address by name (SOCKS5 ATYP 3); see fake-dns.md\n"
          "  --fake-dns-pool CIDR         the pool, one IPv4 and one IPv6 (default\n"
          "                               198.19.0.0/16 and fd00:19::/64)\n"
          "  --fake-dns-exclude SUFFIX    names resolved for real, through the proxy\n"
          "                               (repeatable; a suffix matches the names under it)\n"
          "  --fake-dns-size N            names remembered, least recently used recycled\n"
          "                               (default 16384)\n"
          "  --fake-dns-state FILE        keep the names across restarts in FILE\n"
          "  --record FILE                write a flight recording (docs/recording.md): every\n"
          "                               input and output of the engine, payloads included\n"
          "  --record-max SIZE            bound the recording (K, M, G); at it, stop recording\n"
          "  --record-mode stop|ring      ring: keep the newest SIZE in memory, written at\n"
          "                               each flush (default stop)\n"
          "  --pcap FILE                  write the TUN's packets as a pcap (LINKTYPE_RAW)\n"
          "  --pcap-snaplen N             bytes kept per packet in the pcap (default 65535)\n"
          "  --device-fault SPEC          for tests: inject faults on the TUN, e.g.\n"
          "                               loss=2%%,dup=1%%,reorder=1%%,delay=10ms,seed=7\n"
          "  --help                       print this help and exit\n"
          "  --version                    print the version and exit\n"
          "\n"
          "Durations take a unit: 500ms, 10s, 2m, 1h (a bare number is seconds).\n"
          "The proxy password may also come from the environment variable\n"
          "TUN2SOCK_PROXY_PASSWORD (the file wins over the variable, both over the URL).\n"
          "Signals: SIGINT, SIGTERM, SIGHUP and SIGQUIT stop cleanly, SIGUSR1 logs the\n"
          "counters, SIGUSR2 flushes --record and --pcap.\n"
          "Exit status: 0 stopped cleanly, 1 runtime failure or missing privilege, 2 bad "
          "usage.\n",
          prog);
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

/* A byte count with an optional K, M or G suffix (powers of 1024), at least 1 MiB. */
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

static t2s_cli_result parse_device(const char *v, t2s_cli_opts *o, FILE *err, const char *prog) {
  if (strncmp(v, "fd://", 5) == 0) {
    uint64_t fd;
    const char *why = NULL;
    if (t2s_parse_uint(v + 5, 0, 1u << 30, &fd, &why) != 0) {
      return bad(err, prog, "device", v, "fd://N needs a file descriptor number");
    }
    o->device_fd = (int)fd;
    o->ifname[0] = '\0';
    return T2S_CLI_RUN;
  }
  const char *name = v;
  if (strncmp(v, "tun://", 6) == 0) {
    name = v + 6;
  } else if (strstr(v, "://")) {
    return bad(err, prog, "device", v, "unsupported scheme (use NAME, tun://NAME or fd://N)");
  }
  if (!valid_ifname(name)) {
    return bad(err, prog, "device", v, "not a valid interface name (1..15 characters, no '/')");
  }
  strcpy(o->ifname, name);
  o->device_fd = -1;
  return T2S_CLI_RUN;
}

static t2s_cli_result parse_timeout(const char *opt, const char *v, uint64_t *pns, FILE *err,
                                    const char *prog) {
  const char *why = NULL;
  uint64_t ns;
  if (t2s_parse_duration(v, &ns, &why) != 0) {
    return bad(err, prog, opt, v, why);
  }
  if (ns < T2S_MILLISECONDS) {
    return bad(err, prog, opt, v, "must be at least 1ms");
  }
  if (ns > 24 * 3600 * T2S_SECONDS) {
    return bad(err, prog, opt, v, "must be at most 24h");
  }
  *pns = ns;
  return T2S_CLI_RUN;
}

t2s_cli_result t2s_cli_parse(int argc, char **argv, t2s_cli_opts *o, FILE *out, FILE *err) {
  const char *prog = "tun2sock";
  bool have_device = false, have_proxy = false;
  t2s_cli_defaults(o);
  optind = 0; /* glibc: full reinitialisation, so the parser can run more than once */
  opterr = 0; /* we print our own messages */
  for (;;) {
    int idx = -1;
    int c = getopt_long_only(argc, argv, ":hV", long_options, &idx);
    if (c == -1) {
      break;
    }
    const char *v = optarg;
    const char *why = NULL;
    switch (c) {
    case OPT_DEVICE:
      if (parse_device(v, o, err, prog) != T2S_CLI_RUN) {
        return T2S_CLI_BAD;
      }
      have_device = true;
      break;
    case OPT_PROXY: {
      /* Repeatable (docs/proxies.md): the first is o->proxy, the others follow in order. */
      if (have_proxy && o->nmore_proxies == T2S_CLI_MAX_PROXIES - 1) {
        return bad(err, prog, "proxy", v, "too many proxies (at most 8)");
      }
      t2s_proxy_url *u = have_proxy ? &o->more_proxies[o->nmore_proxies] : &o->proxy;
      if (t2s_parse_proxy_url(v, u, &why) != 0) {
        return bad(err, prog, "proxy", v, why);
      }
      if (have_proxy) {
        o->nmore_proxies++;
      }
      have_proxy = true;
      break;
    }
    case OPT_PROXY_PROBE_INTERVAL: {
      uint64_t ns;
      if (t2s_parse_duration(v, &ns, &why) != 0) {
        return bad(err, prog, "proxy-probe-interval", v, why);
      }
      if (ns < 100 * T2S_MILLISECONDS || ns > 30 * T2S_SECONDS) {
        return bad(err, prog, "proxy-probe-interval", v, "must be between 100ms and 30s");
      }
      o->proxy_probe_interval_ns = ns;
      break;
    }
    case OPT_PROXY_PROBE_TARGET:
      if (t2s_parse_hostport(v, o->proxy_probe_host, sizeof(o->proxy_probe_host),
                             &o->proxy_probe_port, &why) != 0) {
        return bad(err, prog, "proxy-probe-target", v, why);
      }
      if (!o->proxy_probe_host[0]) {
        return bad(err, prog, "proxy-probe-target", v, "needs a host");
      }
      break;
    case OPT_ADDRESS:
      if (o->naddresses == T2S_CLI_MAX_ADDRESSES) {
        return bad(err, prog, "address", v, "too many addresses (at most 8)");
      }
      if (t2s_parse_cidr(v, &o->addresses[o->naddresses], &why) != 0) {
        return bad(err, prog, "address", v, why);
      }
      o->naddresses++;
      break;
    case OPT_MTU: {
      uint64_t mtu;
      if (t2s_parse_uint(v, 576, 65535, &mtu, &why) != 0) {
        return bad(err, prog, "mtu", v, "must be a number in 576..65535");
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
        return bad(err, prog, "txqueuelen", v, "must be a number in 0..1000000");
      }
      o->txqueuelen = (uint32_t)n;
      o->txqueuelen_given = true;
      break;
    }
    case OPT_INTERFACE:
      if (!valid_ifname(v)) {
        return bad(err, prog, "interface", v, "not a valid interface name (1..15 characters)");
      }
      strcpy(o->interface, v);
      break;
    case OPT_FWMARK: {
      uint64_t mark;
      if (t2s_parse_uint(v, 0, UINT32_MAX, &mark, &why) != 0) {
        return bad(err, prog, "fwmark", v, "must be a 32-bit number (decimal or 0x hex)");
      }
      o->fwmark = (uint32_t)mark;
      o->fwmark_given = true;
      break;
    }
    case OPT_TCP_CONNECT_TIMEOUT:
      if (parse_timeout("tcp-connect-timeout", v, &o->tcp_connect_timeout_ns, err, prog) !=
          T2S_CLI_RUN) {
        return T2S_CLI_BAD;
      }
      break;
    case OPT_UDP_TIMEOUT:
      if (parse_timeout("udp-timeout", v, &o->udp_timeout_ns, err, prog) != T2S_CLI_RUN) {
        return T2S_CLI_BAD;
      }
      break;
    case OPT_DNS_TIMEOUT:
      if (parse_timeout("dns-timeout", v, &o->dns_timeout_ns, err, prog) != T2S_CLI_RUN) {
        return T2S_CLI_BAD;
      }
      break;
    case OPT_MEMORY_BUDGET:
      if (parse_size(v, 1ULL << 20, &o->memory_budget) != 0) {
        return bad(err, prog, "memory-budget", v, "must be a size such as 64M or 1G (>= 1M)");
      }
      break;
    case OPT_TCP_SNDBUF:
    case OPT_TCP_RCVBUF: {
      uint64_t n;
      const char *name = c == OPT_TCP_SNDBUF ? "tcp-sndbuf" : "tcp-rcvbuf";
      if (parse_size(v, 4ULL << 10, &n) != 0 || n > (64ULL << 20)) {
        return bad(err, prog, name, v, "must be a size from 4K to 64M, such as 256K or 1M");
      }
      *(c == OPT_TCP_SNDBUF ? &o->tcp_sndbuf : &o->tcp_rcvbuf) = (uint32_t)n;
      break;
    }
    case OPT_MAX_TCP_FLOWS:
    case OPT_MAX_PENDING_SYN:
    case OPT_MAX_UDP_SESSIONS: {
      uint64_t n;
      const char *name = c == OPT_MAX_TCP_FLOWS     ? "max-tcp-flows"
                         : c == OPT_MAX_PENDING_SYN ? "max-pending-syn"
                                                    : "max-udp-sessions";
      if (t2s_parse_uint(v, 1, 1000000, &n, &why) != 0) {
        return bad(err, prog, name, v, "must be a number in 1..1000000");
      }
      uint32_t *dst = c == OPT_MAX_TCP_FLOWS     ? &o->max_tcp_flows
                      : c == OPT_MAX_PENDING_SYN ? &o->max_pending_syn
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
    case OPT_SOCKS5_PIPELINE:
      o->socks5_pipeline = true;
      break;
    case OPT_RECORD:
    case OPT_PCAP: {
      char *dst = c == OPT_RECORD ? o->record_path : o->pcap_path;
      if (!*v || strlen(v) >= sizeof(o->record_path)) {
        return bad(err, prog, c == OPT_RECORD ? "record" : "pcap", v, "needs a file name");
      }
      strcpy(dst, v);
      break;
    }
    case OPT_RECORD_MAX:
      if (parse_size(v, 64ULL << 10, &o->record_max) != 0) {
        return bad(err, prog, "record-max", v, "must be a size such as 64M or 1G (>= 64K)");
      }
      break;
    case OPT_RECORD_MODE:
      if (strcmp(v, "stop") == 0 || strcmp(v, "ring") == 0) {
        o->record_ring = v[0] == 'r';
      } else {
        return bad(err, prog, "record-mode", v, "must be stop or ring");
      }
      break;
    case OPT_PCAP_SNAPLEN: {
      uint64_t n;
      if (t2s_parse_uint(v, 20, 65535, &n, &why) != 0) {
        return bad(err, prog, "pcap-snaplen", v, "must be in 20..65535");
      }
      o->pcap_snaplen = (uint32_t)n;
      break;
    }
    case OPT_DEVICE_FAULT: {
      t2s_fault_opts fo;
      char ferr[160];
      if (strlen(v) >= sizeof(o->device_fault) ||
          t2s_fault_parse(v, &fo, ferr, sizeof(ferr)) != 0) {
        return bad(err, prog, "device-fault", v,
                   strlen(v) >= sizeof(o->device_fault) ? "is too long" : ferr);
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
        return bad(err, prog, "log-level", v, "must be debug, info, warn or error");
      }
      break;
    case OPT_METRICS:
      if (t2s_parse_hostport(v, o->metrics_host, sizeof(o->metrics_host), &o->metrics_port, &why) !=
          0) {
        return bad(err, prog, "metrics", v, why);
      }
      o->metrics = true;
      break;
    case OPT_PASSWORD_FILE:
      if (!*v || strlen(v) >= sizeof(o->password_file)) {
        return bad(err, prog, "proxy-password-file", v, "needs a file name");
      }
      strcpy(o->password_file, v);
      break;
    case OPT_AUTO_ROUTE:
      o->auto_route = true;
      break;
    case OPT_ROUTE_TABLE: {
      uint64_t t;
      if (t2s_parse_uint(v, 1, UINT32_MAX, &t, &why) != 0 || t == 253 || t == 254 || t == 255) {
        return bad(err, prog, "route-table", v,
                   "must be a table number in 1..4294967295 other than 253, 254, 255");
      }
      o->route_table = (uint32_t)t;
      break;
    }
    case OPT_ROUTE_PRIORITY: {
      uint64_t p;
      if (t2s_parse_uint(v, 1, 32756, &p, &why) != 0) {
        return bad(err, prog, "route-priority", v,
                   "must be in 1..32756 (the rules must come before the main table's 32766)");
      }
      o->route_priority = (uint32_t)p;
      break;
    }
    case OPT_ROUTE_EXCLUDE:
    case OPT_ROUTE_INCLUDE: {
      bool ex = c == OPT_ROUTE_EXCLUDE;
      const char *name = ex ? "route-exclude" : "route-include";
      size_t *n = ex ? &o->nroute_exclude : &o->nroute_include;
      t2s_cidr *arr = ex ? o->route_exclude : o->route_include;
      if (*n == T2S_CLI_MAX_ROUTES) {
        return bad(err, prog, name, v, "too many ranges (at most 32)");
      }
      if (t2s_parse_cidr(v, &arr[*n], &why) != 0) {
        return bad(err, prog, name, v, why);
      }
      (*n)++;
      break;
    }
    case OPT_EXCLUDE_UID:
      if (o->nexclude_uid == T2S_CLI_MAX_UIDS) {
        return bad(err, prog, "exclude-uid", v, "too many ranges (at most 16)");
      }
      if (parse_uid_range(v, o->exclude_uid[o->nexclude_uid]) != 0) {
        return bad(err, prog, "exclude-uid", v, "must be UID or UID-UID (numbers, low-high)");
      }
      o->nexclude_uid++;
      break;
    case OPT_EXCLUDE_CGROUP:
      if (o->nexclude_cgroup == T2S_CLI_MAX_CGROUPS) {
        return bad(err, prog, "exclude-cgroup", v, "too many cgroups (at most 8)");
      }
      if (!*v || strlen(v) >= sizeof(o->exclude_cgroup[0]) || strchr(v, '"')) {
        return bad(err, prog, "exclude-cgroup", v, "needs a cgroup v2 path");
      }
      strcpy(o->exclude_cgroup[o->nexclude_cgroup++], v);
      break;
    case OPT_DNS_HIJACK: {
      /* The resolver is optional: --dns-hijack=IP, or --dns-hijack IP when the next word is
       * an address. */
      const char *res = v;
      if (!res && optind < argc && argv[optind][0] != '-') {
        t2s_addr probe;
        if (t2s_addr_parse(argv[optind], &probe) == 0) {
          res = argv[optind++];
        }
      }
      if (!res) {
        res = "1.1.1.1";
      }
      if (t2s_addr_parse(res, &o->dns_hijack) != 0) {
        return bad(err, prog, "dns-hijack", res, "must be an IP address with an optional port");
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
        return bad(err, prog, "fake-dns-pool", v, why);
      }
      bool v4 = pool.addr.family == T2S_AF_INET;
      if (v4 ? (pool.prefixlen < 8 || pool.prefixlen > 30)
             : (pool.prefixlen < 8 || pool.prefixlen > 126)) {
        return bad(err, prog, "fake-dns-pool", v,
                   v4 ? "an IPv4 pool needs a prefix length in 8..30"
                      : "an IPv6 pool needs a prefix length in 8..126");
      }
      bool *given = v4 ? &o->fake_dns_pool4_given : &o->fake_dns_pool6_given;
      if (*given) {
        return bad(err, prog, "fake-dns-pool", v, v4 ? "only one IPv4 pool" : "only one IPv6 pool");
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
        return bad(err, prog, "fake-dns-exclude", v, "too many suffixes (at most 32)");
      }
      if (!*name || strlen(name) >= sizeof(o->fake_dns_exclude[0]) ||
          t2s_dns_name_to_wire(name, wire, sizeof(wire)) <= 1 || strpbrk(name, " \t\\")) {
        return bad(err, prog, "fake-dns-exclude", v, "needs a domain name suffix");
      }
      strcpy(o->fake_dns_exclude[o->nfake_dns_exclude++], name);
      break;
    }
    case OPT_FAKE_DNS_SIZE: {
      uint64_t n;
      if (t2s_parse_uint(v, 1, T2S_FAKEDNS_SIZE_MAX, &n, &why) != 0) {
        return bad(err, prog, "fake-dns-size", v, "must be a number in 1..1048576");
      }
      o->fake_dns_size = (uint32_t)n;
      o->fake_dns_size_given = true;
      break;
    }
    case OPT_FAKE_DNS_STATE:
      if (!*v || strlen(v) >= sizeof(o->fake_dns_state)) {
        return bad(err, prog, "fake-dns-state", v, "needs a file name");
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
        return bad(err, prog, "on-network-change", v, "must be reset-affected, reset-all or none");
      }
      break;
    case OPT_NETWORK_DEBOUNCE: {
      uint64_t ns;
      if (t2s_parse_duration(v, &ns, &why) != 0) {
        return bad(err, prog, "network-debounce", v, why);
      }
      if (ns > 60 * T2S_SECONDS) {
        return bad(err, prog, "network-debounce", v, "must be at most 60s");
      }
      o->network_debounce_ns = ns;
      break;
    }
    case OPT_HELP:
    case 'h':
      t2s_cli_usage(out, prog);
      return T2S_CLI_EXIT;
    case OPT_VERSION:
    case 'V':
      fprintf(out, "tun2sock %s\n", T2S_VERSION);
      return T2S_CLI_EXIT;
    case ':': {
      /* A missing argument: name the option as the user wrote it. */
      const char *arg = argv[optind - 1];
      while (*arg == '-') {
        arg++;
      }
      return bad(err, prog, arg, NULL, "needs a value");
    }
    default: {
      const char *arg = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
      fprintf(err, "%s: unknown option '%s'\n", prog, arg);
      fprintf(err, "Try '%s --help' for more information.\n", prog);
      return T2S_CLI_BAD;
    }
    }
  }
  if (optind < argc) {
    fprintf(err, "%s: unexpected argument '%s'\n", prog, argv[optind]);
    fprintf(err, "Try '%s --help' for more information.\n", prog);
    return T2S_CLI_BAD;
  }
  if (!have_device) {
    return bad(err, prog, "device", NULL, "is required (e.g. --device tun0)");
  }
  if (!have_proxy) {
    return bad(err, prog, "proxy", NULL, "is required (e.g. --proxy socks5://127.0.0.1:1080)");
  }
  for (size_t i = 0; i < o->naddresses; i++) {
    if (o->addresses[i].addr.family == T2S_AF_INET6 && o->mtu < 1280) {
      return bad(err, prog, "mtu", NULL, "an IPv6 --address needs an MTU of at least 1280");
    }
  }
  if (!o->auto_route) {
    const char *needs = o->nroute_exclude    ? "route-exclude"
                        : o->nroute_include  ? "route-include"
                        : o->nexclude_uid    ? "exclude-uid"
                        : o->nexclude_cgroup ? "exclude-cgroup"
                                             : NULL;
    if (needs) {
      return bad(err, prog, needs, NULL, "needs --auto-route");
    }
  } else if (!o->fwmark_given) {
    o->fwmark = 0x2022; /* our upstream sockets must carry a mark to bypass the table */
  } else if (o->fwmark == 0) {
    return bad(err, prog, "fwmark", "0", "--auto-route needs a nonzero mark");
  }
  if (!o->fake_dns) {
    const char *needs = o->fake_dns_pool4_given || o->fake_dns_pool6_given ? "fake-dns-pool"
                        : o->nfake_dns_exclude                             ? "fake-dns-exclude"
                        : o->fake_dns_size_given                           ? "fake-dns-size"
                        : o->fake_dns_state[0]                             ? "fake-dns-state"
                                                                           : NULL;
    if (needs) {
      return bad(err, prog, needs, NULL, "needs --fake-dns");
    }
  } else {
    /* The table must leave free addresses in the smaller pool (docs/fake-dns.md). */
    uint64_t count = UINT64_MAX;
    for (int k = 0; k < 2; k++) {
      const t2s_cidr *p = k == 0 ? &o->fake_dns_pool4 : &o->fake_dns_pool6;
      unsigned bits = (p->addr.family == T2S_AF_INET ? 32u : 128u) - p->prefixlen;
      uint64_t n = bits >= 32 ? (1ull << 32) - 2 : (1ull << bits) - 2;
      count = n < count ? n : count;
    }
    if ((uint64_t)o->fake_dns_size + T2S_FAKEDNS_MAX_AVOID >= count) {
      return bad(err, prog, "fake-dns-size", NULL,
                 "must be smaller than the number of addresses of the smaller --fake-dns-pool "
                 "(less 9)");
    }
  }
  if (o->txqueuelen_given && o->device_fd >= 0 && o->txqueuelen != 0) {
    return bad(err, prog, "txqueuelen", NULL,
               "does not apply to --device fd://N (the TUN is not ours to configure)");
  }
  if ((o->record_max || o->record_ring) && !o->record_path[0]) {
    return bad(err, prog, o->record_ring ? "record-mode" : "record-max", NULL, "needs --record");
  }
  if (o->record_ring && !o->record_max) {
    return bad(err, prog, "record-mode", "ring", "needs --record-max (the ring's size)");
  }
  if (o->interface[0] && o->ifname[0] && strcmp(o->interface, o->ifname) == 0) {
    return bad(err, prog, "interface", o->interface,
               "is the TUN device itself (upstream traffic would loop)");
  }
  return T2S_CLI_RUN;
}
