/*
 * cli.h: the command line of the tun2sock binary (long options in the conventions of
 * xjasonlyu/tun2socks; a single dash works too: -device tun0). See docs/cli.md.
 */
#ifndef T2S_CLI_H
#define T2S_CLI_H

#include <stdio.h>

#include "cli_parse.h"
#include "log.h"

#define T2S_CLI_MAX_ADDRESSES 8
#define T2S_CLI_IFNAMSIZ 16
#define T2S_CLI_MAX_ROUTES 32           /* --route-exclude, --route-include */
#define T2S_CLI_MAX_UIDS 16             /* --exclude-uid */
#define T2S_CLI_MAX_CGROUPS 8           /* --exclude-cgroup */
#define T2S_CLI_MAX_FAKE_DNS_EXCLUDE 32 /* --fake-dns-exclude */
#define T2S_CLI_MAX_PROXIES 8           /* --proxy (repeatable; T2S_PROXY_MAX) */
/* The TUN's transmit queue length when --txqueuelen is not given: the kernel's 500 loses
 * packets to a reader descheduled for 25 ms at 20,000 packets/s (a SYN flood on a loaded
 * machine). Applied to a TUN whose queue is shorter, never to an fd://N. */
#define T2S_CLI_DEFAULT_TXQUEUELEN 10000
/* --busy-poll's largest value (microseconds): a longer spin buys no latency a blocking wait
 * would not give back. */
#define T2S_CLI_BUSY_POLL_MAX_US 100000
/* --memory-preset (docs/embedding.md, tun2sock.h's TUN2SOCK_MEMORY_*): default, or mobile for
 * a host killed above about 50 MB (an iOS NetworkExtension). */
enum { T2S_CLI_MEMORY_DEFAULT = 0, T2S_CLI_MEMORY_MOBILE = 1 };
#define T2S_CLI_MOBILE_MEMORY_BUDGET (32ULL << 20)
#define T2S_CLI_MOBILE_TCP_SNDBUF (16u << 10)
#define T2S_CLI_MOBILE_TCP_RCVBUF (12u << 10)

typedef struct t2s_cli_opts {
  /* --device: "tun0", "tun://tun0" or "fd://N" */
  char ifname[T2S_CLI_IFNAMSIZ];             /* the TUN to create or attach; "" with fd:// */
  int device_fd;                             /* >= 0 with fd://N, else -1 */
  t2s_proxy_url proxy;                       /* --proxy */
  t2s_cidr addresses[T2S_CLI_MAX_ADDRESSES]; /* --address (repeatable) */
  size_t naddresses;
  uint32_t mtu;                     /* --mtu, default 1500 */
  bool no_offload;                  /* --no-offload: no IFF_VNET_HDR, checksum offload, TSO */
  uint32_t txqueuelen;              /* --txqueuelen, 0 = leave the kernel's */
  bool txqueuelen_given;            /* --txqueuelen was on the command line */
  uint32_t busy_poll_us;            /* --busy-poll USEC: spin after I/O (runner_loop.h); 0 = off */
  char interface[T2S_CLI_IFNAMSIZ]; /* --interface: pinned egress; "" = route to the proxy */
  uint32_t fwmark;                  /* --fwmark, 0 = none */
  uint64_t tcp_connect_timeout_ns;  /* --tcp-connect-timeout, default 10 s */
  uint64_t udp_timeout_ns;          /* --udp-timeout, default 60 s */
  uint64_t dns_timeout_ns;          /* --dns-timeout, default 10 s */
  t2s_log_level log_level;          /* --log-level, default info */
  bool metrics;                     /* --metrics given */
  char metrics_host[256];           /* "" = every address */
  uint16_t metrics_port;
  char password_file[4096]; /* --proxy-password-file, "" = none */
  /* --auto-route and its companions (docs/auto-route.md) */
  bool auto_route;                            /* --auto-route */
  uint32_t route_table;                       /* --route-table, default 2022 */
  uint32_t route_priority;                    /* --route-priority, default 9000 */
  t2s_cidr route_exclude[T2S_CLI_MAX_ROUTES]; /* --route-exclude (repeatable) */
  size_t nroute_exclude;
  t2s_cidr route_include[T2S_CLI_MAX_ROUTES]; /* --route-include (repeatable) */
  size_t nroute_include;
  uint32_t exclude_uid[T2S_CLI_MAX_UIDS][2]; /* --exclude-uid UID[-UID], inclusive */
  size_t nexclude_uid;
  char exclude_cgroup[T2S_CLI_MAX_CGROUPS][256]; /* --exclude-cgroup PATH */
  size_t nexclude_cgroup;
  bool fwmark_given;            /* --fwmark was on the command line */
  t2s_addr dns_hijack;          /* --dns-hijack [IP[:PORT]]; family 0 = off */
  int on_network_change;        /* --on-network-change: a t2s_netchange_policy (engine.h) */
  uint64_t network_debounce_ns; /* --network-debounce, default 500 ms */
  bool no_logind;               /* --no-logind: no PrepareForSleep from systemd-logind */
  bool mptcp;                   /* --mptcp: Multipath TCP to the proxy (docs/mptcp.md) */
  /* Engine limits and protocol choices (docs/cli.md) */
  uint64_t memory_budget; /* --memory-budget SIZE, bytes; default 512 MiB */
  uint32_t tcp_sndbuf;    /* --tcp-sndbuf SIZE: per-flow buffer toward a client; 1 MiB */
  uint32_t tcp_rcvbuf;    /* --tcp-rcvbuf SIZE: per-flow buffer from a client; 1 MiB */
  /* --memory-preset mobile (T2S_CLI_MEMORY_*): sets the three above, each unless given */
  int memory_preset;
  bool memory_budget_given, tcp_sndbuf_given, tcp_rcvbuf_given;
  uint32_t max_tcp_flows;    /* --max-tcp-flows, default 16384 */
  uint32_t max_pending_syn;  /* --max-pending-syn, default 1024 */
  uint32_t max_udp_sessions; /* --max-udp-sessions, default 4096 */
  bool icmp_unreachable;     /* --icmp-unreachable: REP 3/4 answered with ICMP, not RST */
  bool socks5_pipeline;      /* --socks5-pipeline: greeting, auth and CONNECT in one write */
  /* --fake-dns and its companions (docs/fake-dns.md) */
  bool fake_dns;             /* --fake-dns: answer A/AAAA from a pool, connect by name */
  t2s_cidr fake_dns_pool4;   /* --fake-dns-pool (IPv4); default 198.19.0.0/16 */
  t2s_cidr fake_dns_pool6;   /* --fake-dns-pool (IPv6); default fd00:19::/64 */
  bool fake_dns_pool4_given; /* an IPv4 --fake-dns-pool was on the command line */
  bool fake_dns_pool6_given; /* an IPv6 one */
  char fake_dns_exclude[T2S_CLI_MAX_FAKE_DNS_EXCLUDE][254]; /* --fake-dns-exclude SUFFIX */
  size_t nfake_dns_exclude;
  uint32_t fake_dns_size;    /* --fake-dns-size N, default 16384 */
  bool fake_dns_size_given;  /* --fake-dns-size was on the command line */
  char fake_dns_state[4096]; /* --fake-dns-state FILE, "" = none */
  /* Diagnosis (docs/recording.md) */
  char record_path[4096]; /* --record FILE: the flight recording, "" = none */
  uint64_t record_max;    /* --record-max SIZE: the file's bound, 0 = none */
  bool record_ring;       /* --record-mode ring (keep the newest; needs --record-max) */
  char pcap_path[4096];   /* --pcap FILE: the TUN side as a pcap, "" = none */
  uint32_t pcap_snaplen;  /* --pcap-snaplen N: bytes kept per packet, default 65535 */
  char device_fault[256]; /* --device-fault SPEC (for tests: rec_wrap.h), "" = none */
  /* Several proxies (docs/proxies.md): the second --proxy and later, in order of preference
   * (the first is `proxy`); each with the credentials of its URL. */
  t2s_proxy_url more_proxies[T2S_CLI_MAX_PROXIES - 1];
  size_t nmore_proxies;
  uint64_t proxy_probe_interval_ns; /* --proxy-probe-interval, default 1 s (doubling to 30 s) */
  char proxy_probe_host[T2S_PROXY_FIELD_MAX]; /* --proxy-probe-target HOST:PORT, "" = greeting */
  uint16_t proxy_probe_port;
  char config_path[4096]; /* --config FILE (docs/config.md), "" = none */
} t2s_cli_opts;

/* Fills *opts with the defaults (no device, no proxy). */
void t2s_cli_defaults(t2s_cli_opts *opts);

/* What t2s_cli_parse decided. */
typedef enum t2s_cli_result {
  T2S_CLI_RUN = 0,  /* options valid: run */
  T2S_CLI_EXIT = 1, /* --help or --version printed to out: exit 0 */
  T2S_CLI_BAD = 2,  /* a message naming the bad option was printed to err: exit 2 */
} t2s_cli_result;

/* Parses argv (getopt_long_only; resets getopt's state first, so it can be called again).
 * Help and version go to out, errors to err. Does not read files or the environment: a
 * --config is refused (see t2s_cli_parse_with). */
t2s_cli_result t2s_cli_parse(int argc, char **argv, t2s_cli_opts *opts, FILE *out, FILE *err);

/* ---- the option table (one entry per spelling; the long option is the config file's key) ---- */

#define T2S_CLI_OPTIONS_MAX 64

typedef enum t2s_cli_arg {
  T2S_CLI_ARG_NONE = 0, /* a flag: --no-offload; `true`/`false` in a file */
  T2S_CLI_ARG_REQUIRED, /* --mtu 1500 */
  T2S_CLI_ARG_OPTIONAL, /* --dns-hijack[=IP[:PORT]]; `true` or a value in a file */
} t2s_cli_arg;

#define T2S_CLI_REPEATABLE 0x1u   /* a list: given again, it adds (a YAML sequence in a file) */
#define T2S_CLI_RUNTIME 0x2u      /* a reload (SIGHUP) applies it; others need a restart */
#define T2S_CLI_CMDLINE_ONLY 0x4u /* --config, --help, --version: not a config file key */
#define T2S_CLI_ALIAS 0x8u        /* another spelling of an option (--loglevel) */

typedef struct t2s_cli_option {
  const char *name; /* the long option without dashes, and the config file key */
  int id;           /* the same for an option and its aliases */
  t2s_cli_arg arg;
  unsigned flags; /* T2S_CLI_* */
  struct {
    size_t start, end; /* [start, end) bytes of t2s_cli_opts */
  } span[2];           /* the fields this option sets (empty for --help, --version, aliases) */
} t2s_cli_option;

/* The table: *pn entries. */
const t2s_cli_option *t2s_cli_options(size_t *pn);
/* The entry whose name is `name` (an alias too), or NULL. */
const t2s_cli_option *t2s_cli_find(const char *name);
/* True when a and b hold the same value for opt (its fields compared byte for byte). */
bool t2s_cli_option_same(const t2s_cli_option *opt, const t2s_cli_opts *a, const t2s_cli_opts *b);

/* Checks and stores one value of opt in *o (a repeatable option appends; a flag takes
 * value NULL; an optional value may be NULL). Returns NULL, or why the value is bad (a static
 * phrase or buf). The same checks whatever the source (command line or file). */
const char *t2s_cli_apply(t2s_cli_opts *o, const t2s_cli_option *opt, const char *value, char *buf,
                          size_t buflen);
/* Puts opt's fields back to their defaults (a list emptied). */
void t2s_cli_clear(t2s_cli_opts *o, const t2s_cli_option *opt);
/* The checks across options (required ones, "needs --auto-route", ...) after every value is
 * in; may fill derived defaults (the --auto-route fwmark). Returns NULL, or why, with *pname
 * the option to blame and *pvalue the value to show (NULL: none). */
const char *t2s_cli_check(t2s_cli_opts *o, const char **pname, const char **pvalue);
/* Fills --memory-budget, --tcp-sndbuf and --tcp-rcvbuf from --memory-preset, each unless given
 * (t2s_cli_check calls it; idempotent). */
void t2s_cli_memory_preset(t2s_cli_opts *o);

/* Where each option's value came from, for messages: the config file's path and the line of
 * each key in it (indexed like the table; 0 = not from the file). */
typedef struct t2s_cli_origin {
  char path[4096];
  unsigned line[T2S_CLI_OPTIONS_MAX];
} t2s_cli_origin;

/* Reads a config file into *o (on top of what o holds) and records each key's line in
 * *origin. Returns 0, or -1 after printing a message naming the file, line and key to err.
 * config_file.h has the YAML one; cli.c itself reads no file. */
typedef int (*t2s_cli_loader)(void *arg, const char *path, t2s_cli_opts *o, t2s_cli_origin *origin,
                              FILE *err);

/* t2s_cli_parse with --config FILE: the file is read with load (its values first, the
 * command line's on top: a value given on both wins from the command line, a list given on
 * the command line replaces the file's), then the checks across options. */
t2s_cli_result t2s_cli_parse_with(int argc, char **argv, t2s_cli_opts *opts, t2s_cli_loader load,
                                  void *load_arg, FILE *out, FILE *err);

/* Prints "tun2sock: PATH:LINE: KEY: 'VALUE': WHY" (KEY and VALUE may be NULL) to err. */
void t2s_cli_file_error(FILE *err, const char *path, unsigned line, const char *key,
                        const char *value, const char *why);

/* Prints the --help text. */
void t2s_cli_usage(FILE *out, const char *prog);

#endif
