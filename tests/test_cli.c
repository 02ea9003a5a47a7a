/* test_cli.c: the binary's pure command-line parsers (src/os/cli_parse.c) and the option
 * parser (src/os/cli.c): durations, numbers, CIDR prefixes, proxy URLs, HOST:PORT, options. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_parse.h"
#include "engine.h"
#include "test_util.h"

static void test_duration_units(void) {
  static const struct {
    const char *in;
    uint64_t ns;
  } ok[] = {
      {"500ms", 500 * T2S_MILLISECONDS},
      {"10s", 10 * T2S_SECONDS},
      {"2m", 120 * T2S_SECONDS},
      {"1h", 3600 * T2S_SECONDS},
      {"1m30s", 90 * T2S_SECONDS},
      {"250us", 250 * T2S_MICROSECONDS},
      {"7ns", 7},
      {"1.5s", 1500 * T2S_MILLISECONDS},
      {"0.25m", 15 * T2S_SECONDS},
      {"30", 30 * T2S_SECONDS}, /* bare: seconds */
  };
  for (size_t i = 0; i < T2S_ARRAY_LEN(ok); i++) {
    uint64_t ns = 0;
    CU_ASSERT_EQUAL(t2s_parse_duration(ok[i].in, &ns, NULL), 0);
    CU_ASSERT_EQUAL(ns, ok[i].ns);
  }
}

static void test_duration_errors(void) {
  uint64_t ns = 77;
  const char *why = NULL;
  CU_ASSERT_EQUAL(t2s_parse_duration("", &ns, &why), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_duration("10x", &ns, &why), T2S_ERR_MALFORMED);
  CU_ASSERT_PTR_NOT_NULL(why);
  CU_ASSERT_PTR_NOT_NULL(strstr(why, "unit"));
  CU_ASSERT_EQUAL(t2s_parse_duration("s", &ns, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_duration("-1s", &ns, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_duration("1m30", &ns, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_duration(".s", &ns, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_duration("99999999999999999999h", &ns, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_duration("6000000h", &ns, NULL), T2S_ERR_MALFORMED); /* > 2^64 ns */
  CU_ASSERT_EQUAL(ns, 77); /* untouched on error */
}

static void test_format_duration(void) {
  char buf[32];
  CU_ASSERT_STRING_EQUAL(t2s_format_duration(10 * T2S_SECONDS, buf, sizeof(buf)), "10s");
  CU_ASSERT_STRING_EQUAL(t2s_format_duration(500 * T2S_MILLISECONDS, buf, sizeof(buf)), "500ms");
  CU_ASSERT_STRING_EQUAL(t2s_format_duration(120 * T2S_SECONDS, buf, sizeof(buf)), "2m");
  CU_ASSERT_STRING_EQUAL(t2s_format_duration(0, buf, sizeof(buf)), "0s");
}

static void test_uint(void) {
  uint64_t v = 0;
  CU_ASSERT_EQUAL(t2s_parse_uint("1500", 576, 65535, &v, NULL), 0);
  CU_ASSERT_EQUAL(v, 1500);
  CU_ASSERT_EQUAL(t2s_parse_uint("0x1f", 0, UINT32_MAX, &v, NULL), 0);
  CU_ASSERT_EQUAL(v, 31);
  CU_ASSERT_EQUAL(t2s_parse_uint("4294967295", 0, UINT32_MAX, &v, NULL), 0);
  CU_ASSERT_EQUAL(t2s_parse_uint("4294967296", 0, UINT32_MAX, &v, NULL), T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_parse_uint("100", 576, 65535, &v, NULL), T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_parse_uint("12a", 0, 100, &v, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_uint("0x", 0, 100, &v, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_uint("", 0, 100, &v, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_uint("99999999999999999999999", 0, UINT64_MAX, &v, NULL),
                  T2S_ERR_MALFORMED);
}

static void test_cidr(void) {
  t2s_cidr c;
  CU_ASSERT_EQUAL(t2s_parse_cidr("198.18.0.1/15", &c, NULL), 0);
  CU_ASSERT_EQUAL(c.addr.family, T2S_AF_INET);
  CU_ASSERT_EQUAL(c.prefixlen, 15);
  CU_ASSERT_EQUAL(c.addr.ip[0], 198);
  CU_ASSERT_EQUAL(c.addr.ip[3], 1);
  CU_ASSERT_EQUAL(t2s_parse_cidr("fd00:18::1/64", &c, NULL), 0);
  CU_ASSERT_EQUAL(c.addr.family, T2S_AF_INET6);
  CU_ASSERT_EQUAL(c.prefixlen, 64);
  CU_ASSERT_EQUAL(c.addr.ip[0], 0xfd);
  CU_ASSERT_EQUAL(c.addr.ip[15], 1);
  CU_ASSERT_EQUAL(t2s_parse_cidr("192.0.2.7", &c, NULL), 0);
  CU_ASSERT_EQUAL(c.prefixlen, 32);
  CU_ASSERT_EQUAL(t2s_parse_cidr("2001:db8::7", &c, NULL), 0);
  CU_ASSERT_EQUAL(c.prefixlen, 128);
  CU_ASSERT_EQUAL(t2s_parse_cidr("198.18.0.1/33", &c, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_cidr("fd00::1/129", &c, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_cidr("198.18.0.1/", &c, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_cidr("198.18.0/16", &c, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_cidr("[fd00::1]/64", &c, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_cidr("", &c, NULL), T2S_ERR_MALFORMED);
}

static void test_proxy_url(void) {
  t2s_proxy_url u;
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://127.0.0.1:1080", &u, NULL), 0);
  CU_ASSERT_STRING_EQUAL(u.scheme, "socks5");
  CU_ASSERT_STRING_EQUAL(u.host, "127.0.0.1");
  CU_ASSERT_EQUAL(u.port, 1080);
  CU_ASSERT_FALSE(u.has_user);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://[::1]:9050", &u, NULL), 0);
  CU_ASSERT_STRING_EQUAL(u.host, "::1");
  CU_ASSERT_EQUAL(u.port, 9050);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("SOCKS5://proxy.example:1081/", &u, NULL), 0);
  CU_ASSERT_STRING_EQUAL(u.host, "proxy.example");
  CU_ASSERT_EQUAL(u.port, 1081);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5h://proxy.example", &u, NULL), 0);
  CU_ASSERT_EQUAL(u.port, 1080); /* default */
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://alice:s3cr%40t:x@[2001:db8::1]:1080", &u, NULL), 0);
  CU_ASSERT_TRUE(u.has_user);
  CU_ASSERT_TRUE(u.has_pass);
  CU_ASSERT_STRING_EQUAL(u.user, "alice");
  CU_ASSERT_STRING_EQUAL(u.pass, "s3cr@t:x");
  CU_ASSERT_STRING_EQUAL(u.host, "2001:db8::1");
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://bob@192.0.2.1:1080", &u, NULL), 0);
  CU_ASSERT_TRUE(u.has_user);
  CU_ASSERT_FALSE(u.has_pass);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://a:p@ss@192.0.2.1", &u, NULL), 0);
  CU_ASSERT_STRING_EQUAL(u.pass, "p@ss"); /* the userinfo ends at the last '@' */
}

static void test_proxy_url_errors(void) {
  t2s_proxy_url u;
  const char *why = NULL;
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("http://127.0.0.1:3128", &u, &why), T2S_ERR_MALFORMED);
  CU_ASSERT_PTR_NOT_NULL(strstr(why, "scheme"));
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("127.0.0.1:1080", &u, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://", &u, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://:1080", &u, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://::1:1080", &u, &why), T2S_ERR_MALFORMED);
  CU_ASSERT_PTR_NOT_NULL(strstr(why, "brackets"));
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://[::1:1080", &u, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://[example]:1080", &u, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://h:0", &u, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://h:65536", &u, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://h:12ab", &u, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://h:1080/path", &u, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://@h:1080", &u, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://a%zz@h", &u, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_proxy_url("socks5://a%00@h", &u, NULL), T2S_ERR_MALFORMED);
  char longuser[400];
  memset(longuser, 'u', sizeof(longuser));
  memcpy(longuser, "socks5://", 9);
  strcpy(longuser + 300, "@h:1");
  CU_ASSERT_EQUAL(t2s_parse_proxy_url(longuser, &u, NULL), T2S_ERR_MALFORMED);
}

static void test_hostport(void) {
  char host[64];
  uint16_t port = 0;
  CU_ASSERT_EQUAL(t2s_parse_hostport("127.0.0.1:9100", host, sizeof(host), &port, NULL), 0);
  CU_ASSERT_STRING_EQUAL(host, "127.0.0.1");
  CU_ASSERT_EQUAL(port, 9100);
  CU_ASSERT_EQUAL(t2s_parse_hostport("[::1]:9100", host, sizeof(host), &port, NULL), 0);
  CU_ASSERT_STRING_EQUAL(host, "::1");
  CU_ASSERT_EQUAL(t2s_parse_hostport(":9100", host, sizeof(host), &port, NULL), 0);
  CU_ASSERT_STRING_EQUAL(host, "");
  CU_ASSERT_EQUAL(t2s_parse_hostport("localhost:1", host, sizeof(host), &port, NULL), 0);
  CU_ASSERT_EQUAL(t2s_parse_hostport("127.0.0.1", host, sizeof(host), &port, NULL),
                  T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_hostport("h:", host, sizeof(host), &port, NULL), T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_hostport("[::1]9100", host, sizeof(host), &port, NULL),
                  T2S_ERR_MALFORMED);
  CU_ASSERT_EQUAL(t2s_parse_hostport("", host, sizeof(host), &port, NULL), T2S_ERR_MALFORMED);
}

/* Runs the option parser on "tun2sock", then pre (NULL-terminated, may be NULL), then the
 * NULL-terminated va_list; err/out go to a scratch buffer. */
static t2s_cli_result vparse(t2s_cli_opts *o, char *errbuf, size_t errlen, char *const *pre,
                             va_list ap) {
  char *argv[32];
  int argc = 0;
  argv[argc++] = "tun2sock";
  for (; pre != NULL && *pre != NULL; pre++) {
    argv[argc++] = *pre;
  }
  for (char *a; argc < 31 && (a = va_arg(ap, char *)) != NULL;) {
    argv[argc++] = a;
  }
  argv[argc] = NULL;
  memset(errbuf, 0, errlen);
  FILE *err = fmemopen(errbuf, errlen, "w");
  FILE *out = fopen("/dev/null", "w");
  t2s_cli_result r = t2s_cli_parse(argc, argv, o, out, err);
  fclose(err);
  fclose(out);
  return r;
}

/* Runs the option parser on a NULL-terminated list. */
static t2s_cli_result parse(t2s_cli_opts *o, char *errbuf, size_t errlen, ...) {
  va_list ap;
  va_start(ap, errlen);
  t2s_cli_result r = vparse(o, errbuf, errlen, NULL, ap);
  va_end(ap);
  return r;
}

/* The same with the two required options first: --device t0 --proxy socks5://h. */
static t2s_cli_result parse_t0(t2s_cli_opts *o, char *errbuf, size_t errlen, ...) {
  static char *const required[] = {"--device", "t0", "--proxy", "socks5://h", NULL};
  va_list ap;
  va_start(ap, errlen);
  t2s_cli_result r = vparse(o, errbuf, errlen, required, ap);
  va_end(ap);
  return r;
}

/* --proxy repeatable (docs/proxies.md): the first in proxy, the others in order, each with
 * its credentials; at most 8; the probe options and their bounds. */
static void test_several_proxies(void) {
  t2s_cli_opts o;
  char err[512];
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--proxy", "socks5://b:pb@192.0.2.2:1081",
                           "--proxy", "socks5://192.0.2.3", "--proxy-probe-interval", "250ms",
                           "--proxy-probe-target", "example.com:80", NULL),
                  T2S_CLI_RUN);
  CU_ASSERT_STRING_EQUAL(o.proxy.host, "h");
  CU_ASSERT_EQUAL(o.nmore_proxies, 2);
  CU_ASSERT_STRING_EQUAL(o.more_proxies[0].host, "192.0.2.2");
  CU_ASSERT_EQUAL(o.more_proxies[0].port, 1081);
  CU_ASSERT_STRING_EQUAL(o.more_proxies[0].user, "b");
  CU_ASSERT_STRING_EQUAL(o.more_proxies[0].pass, "pb");
  CU_ASSERT_FALSE(o.more_proxies[1].has_user);
  CU_ASSERT_EQUAL(o.proxy_probe_interval_ns, 250 * T2S_MILLISECONDS);
  CU_ASSERT_STRING_EQUAL(o.proxy_probe_host, "example.com");
  CU_ASSERT_EQUAL(o.proxy_probe_port, 80);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), NULL), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.nmore_proxies, 0);
  CU_ASSERT_EQUAL(o.proxy_probe_interval_ns, T2S_SECONDS);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--proxy", "socks5://a", "--proxy", "socks5://a",
                           "--proxy", "socks5://a", "--proxy", "socks5://a", "--proxy",
                           "socks5://a", "--proxy", "socks5://a", "--proxy", "socks5://a", NULL),
                  T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.nmore_proxies, 7);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--proxy", "socks5://a", "--proxy", "socks5://a",
                           "--proxy", "socks5://a", "--proxy", "socks5://a", "--proxy",
                           "socks5://a", "--proxy", "socks5://a", "--proxy", "socks5://a",
                           "--proxy", "socks5://a", NULL),
                  T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "too many proxies"));
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--proxy-probe-interval", "10ms", NULL),
                  T2S_CLI_BAD);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--proxy-probe-target", ":80", NULL), T2S_CLI_BAD);
}

static void test_options(void) {
  t2s_cli_opts o;
  char err[512];
  CU_ASSERT_EQUAL(parse(&o, err, sizeof(err), "--device", "tun7", "--proxy",
                        "socks5://u:p@[2001:db8::2]:1085", "--address", "198.18.0.1/15",
                        "--address", "fd00:18::1/64", "--mtu", "9000", "--interface", "eth1",
                        "--fwmark", "0x20", "--tcp-connect-timeout", "3s", "--udp-timeout", "2m",
                        "--dns-timeout", "500ms", "--log-level", "debug", "--metrics", "[::1]:9100",
                        "--proxy-password-file", "/run/pw", NULL),
                  T2S_CLI_RUN);
  CU_ASSERT_STRING_EQUAL(o.ifname, "tun7");
  CU_ASSERT_EQUAL(o.device_fd, -1);
  CU_ASSERT_STRING_EQUAL(o.proxy.host, "2001:db8::2");
  CU_ASSERT_EQUAL(o.proxy.port, 1085);
  CU_ASSERT_EQUAL(o.naddresses, 2);
  CU_ASSERT_EQUAL(o.mtu, 9000);
  CU_ASSERT_STRING_EQUAL(o.interface, "eth1");
  CU_ASSERT_EQUAL(o.fwmark, 0x20);
  CU_ASSERT_EQUAL(o.tcp_connect_timeout_ns, 3 * T2S_SECONDS);
  CU_ASSERT_EQUAL(o.udp_timeout_ns, 120 * T2S_SECONDS);
  CU_ASSERT_EQUAL(o.dns_timeout_ns, 500 * T2S_MILLISECONDS);
  CU_ASSERT_EQUAL(o.log_level, T2S_LOG_DEBUG);
  CU_ASSERT_TRUE(o.metrics);
  CU_ASSERT_STRING_EQUAL(o.metrics_host, "::1");
  CU_ASSERT_EQUAL(o.metrics_port, 9100);
  CU_ASSERT_STRING_EQUAL(o.password_file, "/run/pw");

  /* Defaults, fd://, tun://, the single-dash spelling of xjasonlyu/tun2socks. */
  CU_ASSERT_EQUAL(parse(&o, err, sizeof(err), "-device", "fd://3", "-proxy", "socks5://h", NULL),
                  T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.device_fd, 3);
  CU_ASSERT_EQUAL(o.mtu, 1500);
  CU_ASSERT_EQUAL(o.tcp_connect_timeout_ns, 10 * T2S_SECONDS);
  CU_ASSERT_EQUAL(o.udp_timeout_ns, 60 * T2S_SECONDS);
  CU_ASSERT_EQUAL(o.dns_timeout_ns, 10 * T2S_SECONDS);
  CU_ASSERT_EQUAL(o.log_level, T2S_LOG_INFO);
  CU_ASSERT_FALSE(o.metrics);
  CU_ASSERT_EQUAL(
      parse(&o, err, sizeof(err), "--device", "tun://t9", "--proxy", "socks5://h", NULL),
      T2S_CLI_RUN);
  CU_ASSERT_STRING_EQUAL(o.ifname, "t9");
}

static void test_option_errors_name_the_option(void) {
  t2s_cli_opts o;
  char err[512];
  CU_ASSERT_EQUAL(parse(&o, err, sizeof(err), "--proxy", "socks5://h", NULL), T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "--device"));
  CU_ASSERT_EQUAL(parse(&o, err, sizeof(err), "--device", "t0", NULL), T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "--proxy"));
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--udp-timeout", "1y", NULL), T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "--udp-timeout"));
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--nope", NULL), T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "--nope"));
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--mtu", NULL), T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "mtu"));
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--interface", "t0", NULL), T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "--interface"));
  CU_ASSERT_EQUAL(parse(&o, err, sizeof(err), "--help", NULL), T2S_CLI_EXIT);
  CU_ASSERT_EQUAL(parse(&o, err, sizeof(err), "--version", NULL), T2S_CLI_EXIT);
}

/* --tcp-sndbuf / --tcp-rcvbuf: sizes with units, 1 MiB by default, 4K..64M. */
static void test_tcp_buffer_options(void) {
  t2s_cli_opts o;
  char err[512];
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), NULL), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.tcp_sndbuf, 1u << 20);
  CU_ASSERT_EQUAL(o.tcp_rcvbuf, 1u << 20);
  CU_ASSERT_EQUAL(
      parse_t0(&o, err, sizeof(err), "--tcp-sndbuf", "256K", "--tcp-rcvbuf", "64MiB", NULL),
      T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.tcp_sndbuf, 256u << 10);
  CU_ASSERT_EQUAL(o.tcp_rcvbuf, 64u << 20);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--tcp-sndbuf", "4096", NULL), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.tcp_sndbuf, 4096);
  static const char *const bad[] = {"4095", "65M", "1G", "-1", "", "1X", "K"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--tcp-rcvbuf", bad[i], NULL), T2S_CLI_BAD);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--tcp-rcvbuf"));
    CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--tcp-sndbuf", bad[i], NULL), T2S_CLI_BAD);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--tcp-sndbuf"));
  }
}

/* --busy-poll USEC: off (0) by default, 0..100000, anything else refused with the range. */
static void test_busy_poll_option(void) {
  t2s_cli_opts o;
  char err[512];
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), NULL), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.busy_poll_us, 0);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--busy-poll", "200", NULL), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.busy_poll_us, 200);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--busy-poll", "100000", NULL), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.busy_poll_us, 100000);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--busy-poll", "0", NULL), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.busy_poll_us, 0);
  static const char *const bad[] = {"100001", "-1", "", "50us", "1e3", "abc", "4294967346"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--busy-poll", bad[i], NULL), T2S_CLI_BAD);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--busy-poll"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "0..100000"));
  }
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--busy-poll", NULL), T2S_CLI_BAD);
}

/* --record, --record-max, --record-mode, --pcap, --pcap-snaplen, --device-fault (issue 15). */
static void test_record_options(void) {
  t2s_cli_opts o;
  char err[512];
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), NULL), T2S_CLI_RUN);
  CU_ASSERT_STRING_EQUAL(o.record_path, "");
  CU_ASSERT_EQUAL(o.pcap_snaplen, 65535);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--record", "/tmp/r.t2srec", "--record-max", "64M",
                           "--record-mode", "ring", "--pcap", "/tmp/p.pcap", "--pcap-snaplen", "96",
                           "--device-fault", "loss=2%,seed=3", NULL),
                  T2S_CLI_RUN);
  CU_ASSERT_STRING_EQUAL(o.record_path, "/tmp/r.t2srec");
  CU_ASSERT_EQUAL(o.record_max, 64ull << 20);
  CU_ASSERT(o.record_ring);
  CU_ASSERT_STRING_EQUAL(o.pcap_path, "/tmp/p.pcap");
  CU_ASSERT_EQUAL(o.pcap_snaplen, 96);
  CU_ASSERT_STRING_EQUAL(o.device_fault, "loss=2%,seed=3");
  static const char *const bad[][3] = {
      {"--record-max", "1M", "--record"},         /* without --record */
      {"--record-mode", "ring", "--record-mode"}, /* without --record */
      {"--record-mode", "fifo", "--record-mode"},
      {"--pcap-snaplen", "10", "--pcap-snaplen"},
      {"--device-fault", "loss=200%", "--device-fault"},
      {"--device-fault", "jitter=1ms", "--device-fault"},
      {"--record-max", "1K", "--record-max"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), bad[i][0], bad[i][1], NULL), T2S_CLI_BAD);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i][2]));
  }
  /* a ring needs its size */
  CU_ASSERT_EQUAL(
      parse_t0(&o, err, sizeof(err), "--record", "/tmp/r", "--record-mode", "ring", NULL),
      T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "--record-max"));
}

static void test_network_change_options(void) {
  t2s_cli_opts o;
  char err[512];
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), NULL), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.on_network_change, T2S_NETCHANGE_RESET_AFFECTED);
  CU_ASSERT_EQUAL(o.network_debounce_ns, 500 * T2S_MILLISECONDS);
  static const struct {
    const char *v;
    int want;
  } pol[] = {{"reset-all", T2S_NETCHANGE_RESET_ALL},
             {"none", T2S_NETCHANGE_NONE},
             {"reset-affected", T2S_NETCHANGE_RESET_AFFECTED}};
  for (size_t i = 0; i < T2S_ARRAY_LEN(pol); i++) {
    CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--on-network-change", pol[i].v,
                             "--network-debounce", "2s", NULL),
                    T2S_CLI_RUN);
    CU_ASSERT_EQUAL(o.on_network_change, pol[i].want);
    CU_ASSERT_EQUAL(o.network_debounce_ns, 2 * T2S_SECONDS);
  }
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--network-debounce", "0", NULL), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.network_debounce_ns, 0);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--on-network-change", "sometimes", NULL),
                  T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "--on-network-change"));
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--network-debounce", "2m", NULL), T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "at most 60s"));
}

static void test_auto_route_options(void) {
  t2s_cli_opts o;
  char err[512];
  /* Defaults: off; with --auto-route the mark defaults to 0x2022. */
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), NULL), T2S_CLI_RUN);
  CU_ASSERT_FALSE(o.auto_route);
  CU_ASSERT_EQUAL(o.fwmark, 0);
  CU_ASSERT_EQUAL(o.dns_hijack.family, 0);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--auto-route", "--route-exclude", "10.0.0.0/8",
                           "--route-exclude", "fd00::/8", "--route-include", "192.0.2.0/24",
                           "--exclude-uid", "1000", "--exclude-uid", "2000-2999",
                           "--exclude-cgroup", "system.slice/x", "--route-table", "100",
                           "--route-priority", "500", NULL),
                  T2S_CLI_RUN);
  CU_ASSERT_TRUE(o.auto_route);
  CU_ASSERT_EQUAL(o.fwmark, 0x2022);
  CU_ASSERT_EQUAL(o.route_table, 100);
  CU_ASSERT_EQUAL(o.route_priority, 500);
  CU_ASSERT_EQUAL(o.nroute_exclude, 2);
  CU_ASSERT_EQUAL(o.route_exclude[1].prefixlen, 8);
  CU_ASSERT_EQUAL(o.nroute_include, 1);
  CU_ASSERT_EQUAL(o.nexclude_uid, 2);
  CU_ASSERT_EQUAL(o.exclude_uid[0][0], 1000);
  CU_ASSERT_EQUAL(o.exclude_uid[0][1], 1000);
  CU_ASSERT_EQUAL(o.exclude_uid[1][0], 2000);
  CU_ASSERT_EQUAL(o.exclude_uid[1][1], 2999);
  CU_ASSERT_EQUAL(o.nexclude_cgroup, 1);
  CU_ASSERT_STRING_EQUAL(o.exclude_cgroup[0], "system.slice/x");
  /* An explicit mark wins. */
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--fwmark", "7", "--auto-route", NULL),
                  T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.fwmark, 7);
  /* --dns-hijack: bare, =IP, separate IP word (also before other options), [v6]:port. */
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--dns-hijack", NULL), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.dns_hijack.family, T2S_AF_INET);
  CU_ASSERT_EQUAL(o.dns_hijack.ip[0], 1);
  CU_ASSERT_EQUAL(o.dns_hijack.port, 53);
  CU_ASSERT_EQUAL(parse(&o, err, sizeof(err), "--dns-hijack", "192.0.2.53", "--device", "t0",
                        "--proxy", "socks5://h", NULL),
                  T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.dns_hijack.ip[3], 53);
  CU_ASSERT_STRING_EQUAL(o.ifname, "t0");
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--dns-hijack=[2001:db8::53]:5353", NULL),
                  T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.dns_hijack.family, T2S_AF_INET6);
  CU_ASSERT_EQUAL(o.dns_hijack.port, 5353);
  /* Errors. */
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--route-exclude", "10.0.0.0/8", NULL),
                  T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "needs --auto-route"));
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--auto-route", "--route-table", "255", NULL),
                  T2S_CLI_BAD);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--auto-route", "--exclude-uid", "5-2", NULL),
                  T2S_CLI_BAD);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--auto-route", "--fwmark", "0", NULL),
                  T2S_CLI_BAD);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--dns-hijack=nope", NULL), T2S_CLI_BAD);
}

static void test_fake_dns_options(void) {
  t2s_cli_opts o;
  char err[512];
  /* Off by default, with the documented defaults ready. */
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), NULL), T2S_CLI_RUN);
  CU_ASSERT(!o.fake_dns);
  CU_ASSERT_EQUAL(o.fake_dns_size, 16384);
  CU_ASSERT_EQUAL(o.fake_dns_pool4.addr.family, T2S_AF_INET);
  CU_ASSERT_EQUAL(o.fake_dns_pool4.addr.ip[1], 19);
  CU_ASSERT_EQUAL(o.fake_dns_pool4.prefixlen, 16);
  CU_ASSERT_EQUAL(o.fake_dns_pool6.addr.family, T2S_AF_INET6);
  CU_ASSERT_EQUAL(o.fake_dns_pool6.prefixlen, 64);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--fake-dns", "--fake-dns-pool", "10.64.0.0/10",
                           "--fake-dns-pool", "fd00:aa::/96", "--fake-dns-exclude", "corp.example",
                           "--fake-dns-exclude", ".lan", "--fake-dns-size", "1000",
                           "--fake-dns-state", "/var/lib/tun2sock/fake-dns", NULL),
                  T2S_CLI_RUN);
  CU_ASSERT(o.fake_dns);
  CU_ASSERT_EQUAL(o.fake_dns_pool4.addr.ip[0], 10);
  CU_ASSERT_EQUAL(o.fake_dns_pool4.prefixlen, 10);
  CU_ASSERT_EQUAL(o.fake_dns_pool6.prefixlen, 96);
  CU_ASSERT_EQUAL(o.nfake_dns_exclude, 2);
  CU_ASSERT_STRING_EQUAL(o.fake_dns_exclude[0], "corp.example");
  CU_ASSERT_STRING_EQUAL(o.fake_dns_exclude[1], "lan");
  CU_ASSERT_EQUAL(o.fake_dns_size, 1000);
  CU_ASSERT_STRING_EQUAL(o.fake_dns_state, "/var/lib/tun2sock/fake-dns");
  /* Bad values, each naming its option. */
  static const char *const bad[][2] = {
      {"--fake-dns-pool", "198.19.0.0/31"},
      {"--fake-dns-pool", "10.0.0.0/7"},
      {"--fake-dns-pool", "fd00::/127"},
      {"--fake-dns-pool", "nope"},
      {"--fake-dns-exclude", ""},
      {"--fake-dns-exclude", "a..b"},
      {"--fake-dns-exclude", "."},
      {"--fake-dns-exclude", "a b"},
      {"--fake-dns-size", "0"},
      {"--fake-dns-size", "1048577"},
      {"--fake-dns-state", ""},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--fake-dns", bad[i][0], bad[i][1], NULL),
                    T2S_CLI_BAD);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i][0]));
  }
  /* One pool per family. */
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--fake-dns", "--fake-dns-pool", "10.0.0.0/16",
                           "--fake-dns-pool", "10.1.0.0/16", NULL),
                  T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "only one IPv4 pool"));
  /* The size must leave addresses free in the smaller pool: a /24 has 254. */
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--fake-dns", "--fake-dns-pool", "10.0.0.0/24",
                           "--fake-dns-size", "246", NULL),
                  T2S_CLI_BAD);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "--fake-dns-size"));
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--fake-dns", "--fake-dns-pool", "10.0.0.0/24",
                           "--fake-dns-size", "246", "--fake-dns-pool", "fd00::/64", NULL),
                  T2S_CLI_BAD);
  CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), "--fake-dns", "--fake-dns-pool", "10.0.0.0/24",
                           "--fake-dns-size", "245", NULL),
                  T2S_CLI_RUN);
  /* The default size does not fit a /24. */
  CU_ASSERT_EQUAL(
      parse_t0(&o, err, sizeof(err), "--fake-dns", "--fake-dns-pool", "10.0.0.0/24", NULL),
      T2S_CLI_BAD);
  /* The companions need --fake-dns. */
  static const char *const needs[][2] = {{"--fake-dns-pool", "10.0.0.0/16"},
                                         {"--fake-dns-exclude", "lan"},
                                         {"--fake-dns-size", "100"},
                                         {"--fake-dns-state", "f"}};
  for (size_t i = 0; i < sizeof(needs) / sizeof(needs[0]); i++) {
    CU_ASSERT_EQUAL(parse_t0(&o, err, sizeof(err), needs[i][0], needs[i][1], NULL), T2S_CLI_BAD);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "needs --fake-dns"));
  }
}

int t2s_test_register_cli(void) {
  CU_pSuite s = CU_add_suite("cli", NULL, NULL);
  if (s == NULL) {
    return -1;
  }
  if (!CU_add_test(s, "duration units", test_duration_units) ||
      !CU_add_test(s, "duration errors", test_duration_errors) ||
      !CU_add_test(s, "format duration", test_format_duration) ||
      !CU_add_test(s, "unsigned numbers", test_uint) || !CU_add_test(s, "cidr", test_cidr) ||
      !CU_add_test(s, "proxy url", test_proxy_url) ||
      !CU_add_test(s, "proxy url errors", test_proxy_url_errors) ||
      !CU_add_test(s, "host:port", test_hostport) || !CU_add_test(s, "options", test_options) ||
      !CU_add_test(s, "option errors name the option", test_option_errors_name_the_option) ||
      !CU_add_test(s, "tcp buffer options", test_tcp_buffer_options) ||
      !CU_add_test(s, "busy-poll option", test_busy_poll_option) ||
      !CU_add_test(s, "record options", test_record_options) ||
      !CU_add_test(s, "network-change options", test_network_change_options) ||
      !CU_add_test(s, "auto-route options", test_auto_route_options) ||
      !CU_add_test(s, "fake-dns options", test_fake_dns_options) ||
      !CU_add_test(s, "several proxies", test_several_proxies)) {
    return -1;
  }
  return 0;
}
