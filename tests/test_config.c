/* test_config.c: the --config file (src/os/config_file.c, docs/config.md) against the option
 * table (src/os/cli.c): every option round-trips between the command line and the file, the
 * command line overrides the file, and a bad file is refused with its line and key. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "config_file.h"
#include "test_util.h"

#ifndef T2S_SOURCE_DIR
#define T2S_SOURCE_DIR "."
#endif

/* A value for every option of the table (two for the ones that repeat), consistent with each
 * other so that the whole set is a valid configuration. A new option without a value here
 * fails test_every_option_round_trips. */
static const struct {
  const char *name;
  const char *v[2];
} samples[] = {
    {"device", {"tun7"}},
    {"proxy", {"socks5://alice:s3cr%40t@192.0.2.1:1080", "socks5://[2001:db8::2]:1081"}},
    {"proxy-password-file", {"/etc/tun2sock/password"}},
    {"proxy-probe-interval", {"2s"}},
    {"proxy-probe-target", {"example.com:80"}},
    {"address", {"198.18.0.1/15", "fd00:18::1/64"}},
    {"mtu", {"9000"}},
    {"no-offload", {NULL}},
    {"txqueuelen", {"2000"}},
    {"busy-poll", {"50"}},
    {"interface", {"eth7"}},
    {"fwmark", {"0x162"}},
    {"tcp-connect-timeout", {"5s"}},
    {"udp-timeout", {"30s"}},
    {"dns-timeout", {"3s"}},
    {"log-level", {"debug"}},
    {"metrics", {"127.0.0.1:9100"}},
    {"on-network-change", {"reset-all"}},
    {"network-debounce", {"1s"}},
    {"no-logind", {NULL}},
    {"mptcp", {NULL}},
    {"auto-route", {NULL}},
    {"route-table", {"100"}},
    {"route-priority", {"8000"}},
    {"route-exclude", {"10.0.0.0/8", "2001:db8::/32"}},
    {"route-include", {"0.0.0.0/1", "128.0.0.0/1"}},
    {"exclude-uid", {"1000", "2000-2010"}},
    {"exclude-cgroup", {"/system.slice/a.service", "/user.slice"}},
    {"dns-hijack", {"9.9.9.9:5353"}},
    {"memory-budget", {"256M"}},
    {"memory-preset", {"mobile"}},
    {"tcp-sndbuf", {"512K"}},
    {"tcp-rcvbuf", {"2M"}},
    {"max-tcp-flows", {"1000"}},
    {"max-pending-syn", {"100"}},
    {"max-udp-sessions", {"500"}},
    {"icmp-unreachable", {NULL}},
    {"socks5-pipeline", {NULL}},
    {"fake-dns", {NULL}},
    {"fake-dns-pool", {"198.20.0.0/16", "fd00:20::/64"}},
    {"fake-dns-exclude", {"corp.example", "lan"}},
    {"fake-dns-size", {"1000"}},
    {"fake-dns-state", {"/var/lib/tun2sock/fakedns"}},
    {"record", {"/var/tmp/t2s.rec"}},
    {"record-max", {"64M"}},
    {"record-mode", {"ring"}},
    {"pcap", {"/var/tmp/t2s.pcap"}},
    {"pcap-snaplen", {"96"}},
    {"device-fault", {"loss=1%,seed=7"}},
};

static int sample_index(const char *name) {
  for (size_t i = 0; i < T2S_ARRAY_LEN(samples); i++) {
    if (strcmp(samples[i].name, name) == 0) {
      return (int)i;
    }
  }
  return -1;
}

/* Writes text to a new temporary file; its path goes to path (64 bytes). */
static void write_temp(char *path, const char *text) {
  snprintf(path, 64, "/tmp/t2s-config-test-XXXXXX");
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  size_t n = strlen(text);
  CU_ASSERT_FATAL(write(fd, text, n) == (ssize_t)n);
  close(fd);
}

/* Parses argv (with the file loader); messages go to errbuf. */
static t2s_cli_result parse_argv(t2s_cli_opts *o, char *errbuf, size_t errlen, int argc,
                                 char **argv) {
  memset(errbuf, 0, errlen);
  FILE *err = fmemopen(errbuf, errlen, "w");
  FILE *out = fopen("/dev/null", "w");
  t2s_cli_result r = t2s_cli_parse_with(argc, argv, o, t2s_config_file_load, NULL, out, err);
  fclose(err);
  fclose(out);
  return r;
}

/* tun2sock --config TEXT (written to a file) ARGS... */
static t2s_cli_result parse_file(t2s_cli_opts *o, char *errbuf, size_t errlen, char *path,
                                 const char *text, ...) {
  write_temp(path, text);
  char *argv[16] = {"tun2sock", "--config", path};
  int argc = 3;
  va_list ap;
  va_start(ap, text);
  for (const char *a; argc < 15 && (a = va_arg(ap, const char *)) != NULL;) {
    argv[argc++] = (char *)a;
  }
  va_end(ap);
  t2s_cli_result r = parse_argv(o, errbuf, errlen, argc, argv);
  unlink(path);
  return r;
}

static void test_every_option_round_trips(void) {
  size_t n;
  const t2s_cli_option *table = t2s_cli_options(&n);
  static char yaml[16384];
  static char argbuf[64][300];
  char *argv[80] = {"tun2sock"};
  int argc = 1;
  size_t ylen = 0;
  for (size_t i = 0; i < n; i++) {
    const t2s_cli_option *opt = &table[i];
    if (opt->flags & (T2S_CLI_CMDLINE_ONLY | T2S_CLI_ALIAS)) {
      continue;
    }
    int s = sample_index(opt->name);
    if (s < 0) {
      fprintf(stderr, "\ntest_config: no sample value for --%s\n", opt->name);
      CU_FAIL("an option of the table has no sample value in test_config.c");
      continue;
    }
    int nv = (opt->flags & T2S_CLI_REPEATABLE) && samples[s].v[1] ? 2 : 1;
    CU_ASSERT_EQUAL(nv == 2, (opt->flags & T2S_CLI_REPEATABLE) != 0);
    if (opt->arg == T2S_CLI_ARG_NONE) {
      snprintf(argbuf[argc], sizeof(argbuf[0]), "--%s", opt->name);
      argv[argc] = argbuf[argc];
      argc++;
      ylen += (size_t)snprintf(yaml + ylen, sizeof(yaml) - ylen, "%s: true\n", opt->name);
      continue;
    }
    ylen += (size_t)snprintf(yaml + ylen, sizeof(yaml) - ylen, "%s:%s", opt->name,
                             nv == 2 ? "\n" : " ");
    for (int k = 0; k < nv; k++) {
      snprintf(argbuf[argc], sizeof(argbuf[0]), "--%s=%s", opt->name, samples[s].v[k]);
      argv[argc] = argbuf[argc];
      argc++;
      ylen += (size_t)snprintf(yaml + ylen, sizeof(yaml) - ylen, "%s'%s'\n", nv == 2 ? "  - " : "",
                               samples[s].v[k]);
    }
  }
  CU_ASSERT_FATAL(argc < 80 && ylen < sizeof(yaml) - 1);
  t2s_cli_opts from_cli, from_file, defaults;
  char errbuf[512];
  CU_ASSERT_EQUAL_FATAL(parse_argv(&from_cli, errbuf, sizeof(errbuf), argc, argv), T2S_CLI_RUN);
  char path[64];
  t2s_cli_result r = parse_file(&from_file, errbuf, sizeof(errbuf), path, yaml, NULL);
  if (r != T2S_CLI_RUN) {
    fprintf(stderr, "\n%s\n%s", yaml, errbuf);
  }
  CU_ASSERT_EQUAL_FATAL(r, T2S_CLI_RUN);
  CU_ASSERT_STRING_EQUAL(from_file.config_path, path);
  memset(from_file.config_path, 0, sizeof(from_file.config_path));
  t2s_cli_defaults(&defaults);
  for (size_t i = 0; i < n; i++) {
    const t2s_cli_option *opt = &table[i];
    if (opt->flags & (T2S_CLI_CMDLINE_ONLY | T2S_CLI_ALIAS)) {
      continue;
    }
    /* Each option's own fields: equal from both sources, and not the default (the sample
     * reached them, and the table names the right fields). */
    if (!t2s_cli_option_same(opt, &from_cli, &from_file) ||
        t2s_cli_option_same(opt, &from_cli, &defaults)) {
      fprintf(stderr, "\ntest_config: --%s: %s\n", opt->name,
              t2s_cli_option_same(opt, &from_cli, &from_file) ? "the default value"
                                                              : "file and command line differ");
      CU_FAIL("an option does not round-trip");
    }
  }
  /* And the whole configuration, byte for byte. */
  CU_ASSERT_EQUAL(memcmp(&from_cli, &from_file, sizeof(from_cli)), 0);
  CU_ASSERT_EQUAL(from_file.nmore_proxies, 1);
  CU_ASSERT_STRING_EQUAL(from_file.proxy.pass, "s3cr@t");
  CU_ASSERT_EQUAL(from_file.naddresses, 2);
}

static void test_proxies_as_maps_with_credentials(void) {
  t2s_cli_opts o;
  char err[512], path[64];
  CU_ASSERT_EQUAL_FATAL(parse_file(&o, err, sizeof(err), path,
                                   "device: tun0\n"
                                   "proxy:\n"
                                   "  - url: socks5://192.0.2.1:1080\n"
                                   "    username: alice\n"
                                   "    password: \"p@ss:w/rd %\"\n"
                                   "  - socks5://bob:pw@192.0.2.2:1081\n"
                                   "  - {url: socks5://192.0.2.3, username: carol}\n",
                                   NULL),
                        T2S_CLI_RUN);
  CU_ASSERT_STRING_EQUAL(o.proxy.user, "alice");
  CU_ASSERT_STRING_EQUAL(o.proxy.pass, "p@ss:w/rd %");
  CU_ASSERT_TRUE(o.proxy.has_pass);
  CU_ASSERT_EQUAL(o.proxy.port, 1080);
  CU_ASSERT_EQUAL(o.nmore_proxies, 2);
  CU_ASSERT_STRING_EQUAL(o.more_proxies[0].user, "bob");
  CU_ASSERT_STRING_EQUAL(o.more_proxies[0].pass, "pw");
  CU_ASSERT_STRING_EQUAL(o.more_proxies[1].user, "carol");
  CU_ASSERT_FALSE(o.more_proxies[1].has_pass);
  CU_ASSERT_STRING_EQUAL(o.more_proxies[1].host, "192.0.2.3");
  /* A single proxy as a plain value, flags as YAML booleans, an optional value as true. */
  CU_ASSERT_EQUAL_FATAL(parse_file(&o, err, sizeof(err), path,
                                   "device: tun0\nproxy: socks5://192.0.2.1\nno-offload: yes\n"
                                   "icmp-unreachable: false\ndns-hijack: true\nloglevel: warn\n",
                                   NULL),
                        T2S_CLI_RUN);
  CU_ASSERT_TRUE(o.no_offload);
  CU_ASSERT_FALSE(o.icmp_unreachable);
  CU_ASSERT_EQUAL(o.dns_hijack.port, 53); /* the default resolver */
  CU_ASSERT_EQUAL(o.log_level, T2S_LOG_WARN);
  CU_ASSERT_EQUAL(o.nmore_proxies, 0);
}

static void test_command_line_overrides_the_file(void) {
  t2s_cli_opts o;
  char err[512], path[64];
  const char *file = "device: tun0\n"
                     "proxy: [socks5://192.0.2.1:1080, socks5://192.0.2.2:1080]\n"
                     "mtu: 9000\n"
                     "address: [198.18.0.1/15, fd00:18::1/64]\n"
                     "log-level: debug\n";
  CU_ASSERT_EQUAL_FATAL(parse_file(&o, err, sizeof(err), path, file, "--mtu", "1400", "--proxy",
                                   "socks5://192.0.2.9:1080", "--address", "10.0.0.1/24", NULL),
                        T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.mtu, 1400);
  CU_ASSERT_STRING_EQUAL(o.proxy.host, "192.0.2.9"); /* the command line's list replaces */
  CU_ASSERT_EQUAL(o.nmore_proxies, 0);
  CU_ASSERT_EQUAL(o.naddresses, 1);
  CU_ASSERT_EQUAL(o.log_level, T2S_LOG_DEBUG); /* not on the command line: the file's */
  CU_ASSERT_STRING_EQUAL(o.ifname, "tun0");
  /* A value the file lacks may come from the command line alone. */
  CU_ASSERT_EQUAL(parse_file(&o, err, sizeof(err), path, "mtu: 1400\n", "--device", "tun1",
                             "--proxy", "socks5://192.0.2.1", NULL),
                  T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.mtu, 1400);
}

/* Each bad file: refused, and the message names the file, the line and (when it has one) the
 * key. */
static void test_bad_files_name_the_line(void) {
  static const struct {
    const char *text;
    unsigned line;
    const char *key; /* NULL: the message needs no key */
    const char *phrase;
  } bad[] = {
      {"device: tun0\nproxy: socks5://192.0.2.1\nbogus: 1\n", 3, NULL, "unknown key 'bogus'"},
      {"device: tun0\nproxy: socks5://192.0.2.1\n\nmtu: 10\n", 4, "mtu", "576..65535"},
      {"device: tun0\nmtu: [1500, 9000]\nproxy: socks5://192.0.2.1\n", 2, "mtu", "not a list"},
      {"device: tun0\nmtu: {a: 1}\nproxy: socks5://192.0.2.1\n", 2, "mtu", "single value"},
      {"device: tun0\nproxy: socks5://192.0.2.1\nno-offload: maybe\n", 3, "no-offload",
       "true or false"},
      {"device: tun0\nproxy: socks5://192.0.2.1\nmtu: 1500\nmtu: 1400\n", 4, "mtu", "twice"},
      {"device: tun0\nproxy: socks5://192.0.2.1\nlog-level: info\nloglevel: info\n", 4, "loglevel",
       "twice"},
      {"device: tun0\nproxy: [socks5://192.0.2.1\nmtu: 1500\n", 3, NULL, "expected"},
      {"device: tun0\nproxy: socks5://192.0.2.1\nconfig: /etc/x.yaml\n", 3, "config",
       "command-line"},
      {"device: tun0\nproxy:\n  - url: socks5://192.0.2.1\n    user: bob\n", 4, "proxy",
       "unknown key 'user'"},
      {"device: tun0\nproxy:\n  - username: bob\n", 3, "proxy", "needs a url"},
      {"device: tun0\nproxy:\n  - url: socks5://u:p@192.0.2.1\n    username: bob\n", 4, "proxy",
       "both"},
      {"device: tun0\nproxy:\n  - socks5://192.0.2.1\n  - http://192.0.2.2\n", 4, "proxy",
       "scheme"},
      {"- device: tun0\n", 1, NULL, "map of option"},
      {"device: tun0\nproxy: socks5://192.0.2.1\nmtu:\n", 3, "mtu", "needs a value"},
      {"device: tun0\nproxy: socks5://192.0.2.1\nroute-exclude: 10.0.0.0/8\n", 3, "route-exclude",
       "needs --auto-route"},
      {"device: tun0\nproxy: socks5://192.0.2.1\n---\nmtu: 1500\n", 3, NULL, "one document"},
      {"device: tun0\n", 0, "proxy", "is required"},
  };
  for (size_t i = 0; i < T2S_ARRAY_LEN(bad); i++) {
    t2s_cli_opts o;
    char err[512], path[64], want[128];
    t2s_cli_result r = parse_file(&o, err, sizeof(err), path, bad[i].text, NULL);
    if (bad[i].line) {
      snprintf(want, sizeof(want), "%s:%u: %s%s", path, bad[i].line, bad[i].key ? bad[i].key : "",
               bad[i].key ? ":" : "");
    } else {
      snprintf(want, sizeof(want), "--%s", bad[i].key);
    }
    if (r != T2S_CLI_BAD || !strstr(err, want) || !strstr(err, bad[i].phrase)) {
      fprintf(stderr, "\ntest_config: bad file %zu: want '%s' and '%s', got: %s\n", i, want,
              bad[i].phrase, err);
      CU_FAIL("a bad file is not refused with its line and key");
    }
  }
}

static char *read_file(const char *path) {
  FILE *f = fopen(path, "r");
  if (f == NULL) {
    return NULL;
  }
  static char buf[1 << 17];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  return buf;
}

/* dist/tun2sock.yaml, the example, is a valid file; docs/config.md names every key, and
 * docs/cli.md and the man page give both spellings of every option. */
static void test_example_file_and_docs(void) {
  t2s_cli_opts o;
  char err[512];
  char *argv[] = {"tun2sock", "--config", T2S_SOURCE_DIR "/dist/tun2sock.yaml"};
  t2s_cli_result r = parse_argv(&o, err, sizeof(err), 3, argv);
  if (r != T2S_CLI_RUN) {
    fprintf(stderr, "\n%s", err);
  }
  CU_ASSERT_EQUAL(r, T2S_CLI_RUN);
  static const struct {
    const char *path;
    const char *fmt; /* how the page writes a key */
    bool aliases;    /* the page names the aliases too */
  } pages[] = {
      {T2S_SOURCE_DIR "/docs/config.md", "| `%s`", false},
      {T2S_SOURCE_DIR "/docs/config.md", "`%s`", true},
      {T2S_SOURCE_DIR "/docs/cli.md", "| `%s`", false},
      {T2S_SOURCE_DIR "/docs/cli.md", "| `--%s`", false},
      {T2S_SOURCE_DIR "/docs/tun2sock.8", "\n%s: ", false},
      {T2S_SOURCE_DIR "/docs/tun2sock.8", "\\-\\-%s", false},
  };
  size_t n;
  const t2s_cli_option *table = t2s_cli_options(&n);
  for (size_t p = 0; p < T2S_ARRAY_LEN(pages); p++) {
    const char *doc = read_file(pages[p].path);
    CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
    for (size_t i = 0; i < n; i++) {
      if ((table[i].flags & T2S_CLI_CMDLINE_ONLY) ||
          ((table[i].flags & T2S_CLI_ALIAS) && !pages[p].aliases)) {
        continue;
      }
      char want[160], name[64];
      snprintf(name, sizeof(name), "%s", table[i].name);
      if (strstr(pages[p].fmt, "\\-")) { /* the man page escapes each dash */
        char esc[128] = "";
        for (const char *c = table[i].name; *c; c++) {
          strncat(esc, *c == '-' ? "\\-" : (char[]){*c, 0}, sizeof(esc) - strlen(esc) - 1);
        }
        snprintf(want, sizeof(want), "\\-\\-%s", esc);
      } else {
        snprintf(want, sizeof(want), pages[p].fmt, name);
      }
      if (!strstr(doc, want)) {
        fprintf(stderr, "\ntest_config: %s does not name %s\n", pages[p].path, want);
        CU_FAIL("a page misses an option");
      }
    }
  }
}

int t2s_test_register_config(void) {
  CU_pSuite s = CU_add_suite("config", NULL, NULL);
  if (s == NULL) {
    return -1;
  }
  if (!CU_add_test(s, "every option round-trips (file = command line)",
                   test_every_option_round_trips) ||
      !CU_add_test(s, "proxies as maps with credentials", test_proxies_as_maps_with_credentials) ||
      !CU_add_test(s, "the command line overrides the file",
                   test_command_line_overrides_the_file) ||
      !CU_add_test(s, "bad files name the line and key", test_bad_files_name_the_line) ||
      !CU_add_test(s, "the example file parses, the docs name every key",
                   test_example_file_and_docs)) {
    return -1;
  }
  return 0;
}
