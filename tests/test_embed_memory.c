/* test_embed_memory.c: the memory settings of the embedding API (tun2sock.h API 5) and the
 * binary's --memory-preset: the mobile preset's values, explicit sizes winning over the preset in
 * either order, and the bounds tun2sock_new() checks. What the budget does to buffers is the
 * engine's (tests of the core); bench/net/mobile.py measures 1,000 busy flows under it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "test_util.h"
#include "tun2sock.h"

static void test_api_preset(void) {
  tun2sock_config cfg;
  tun2sock_config_default(&cfg);
  CU_ASSERT_EQUAL(cfg.memory_budget, 0);
  CU_ASSERT_EQUAL(tun2sock_config_memory_preset(&cfg, TUN2SOCK_MEMORY_MOBILE), TUN2SOCK_OK);
  CU_ASSERT_EQUAL(cfg.memory_budget, 32u << 20);
  CU_ASSERT_EQUAL(cfg.tcp_sndbuf, 16u << 10);
  CU_ASSERT_EQUAL(cfg.tcp_rcvbuf, 12u << 10);
  CU_ASSERT(cfg.memory_budget < 40u << 20); /* the bound for 1,000 busy flows */
  CU_ASSERT_EQUAL(tun2sock_config_memory_preset(&cfg, 7), TUN2SOCK_ERR_CONFIG);
  CU_ASSERT_EQUAL(cfg.memory_budget, 32u << 20); /* unchanged */
  CU_ASSERT_EQUAL(tun2sock_config_memory_preset(&cfg, TUN2SOCK_MEMORY_DEFAULT), TUN2SOCK_OK);
  CU_ASSERT_EQUAL(cfg.memory_budget, 0);
  CU_ASSERT_EQUAL(cfg.tcp_sndbuf, 0);
  CU_ASSERT_EQUAL(cfg.tcp_rcvbuf, 0);
}

static int discard(void *arg, const uint8_t *pkt, size_t len) {
  (void)arg;
  (void)pkt;
  (void)len;
  return 0;
}

static void test_api_bounds(void) {
  tun2sock_config cfg;
  tun2sock_config_default(&cfg);
  cfg.proxy = "socks5://127.0.0.1:1080";
  cfg.output = discard;
  cfg.network_monitor = TUN2SOCK_MONITOR_HOST;
  cfg.log_level = TUN2SOCK_LOG_ERROR;
  tun2sock *t = NULL;
  cfg.memory_budget = 512u << 10;
  CU_ASSERT_EQUAL(tun2sock_new(&t, &cfg), TUN2SOCK_ERR_CONFIG);
  cfg.memory_budget = 0;
  cfg.tcp_sndbuf = 1024;
  CU_ASSERT_EQUAL(tun2sock_new(&t, &cfg), TUN2SOCK_ERR_CONFIG);
  cfg.tcp_sndbuf = 0;
  cfg.tcp_rcvbuf = 128u << 20;
  CU_ASSERT_EQUAL(tun2sock_new(&t, &cfg), TUN2SOCK_ERR_CONFIG);
  CU_ASSERT_EQUAL(tun2sock_config_memory_preset(&cfg, TUN2SOCK_MEMORY_MOBILE), TUN2SOCK_OK);
  CU_ASSERT_EQUAL_FATAL(tun2sock_new(&t, &cfg), TUN2SOCK_OK);
  tun2sock_stats st;
  tun2sock_get_stats(t, &st);
  CU_ASSERT(st.memory_bytes > 0 && st.memory_bytes < cfg.memory_budget);
  CU_ASSERT(st.memory_peak_bytes >= st.memory_bytes);
  CU_ASSERT_EQUAL(st.memory_refused, 0);
  tun2sock_del(t);
}

static int parse(t2s_cli_opts *o, int argc, char **argv) {
  FILE *null = fopen("/dev/null", "w");
  int r = (int)t2s_cli_parse(argc, argv, o, null, null);
  fclose(null);
  return r;
}

static void test_cli_preset(void) {
  t2s_cli_opts o;
  char *mobile[] = {"tun2sock",        "--device", "t0", "--proxy", "socks5://127.0.0.1:1080",
                    "--memory-preset", "mobile"};
  CU_ASSERT_EQUAL_FATAL(parse(&o, 7, mobile), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.memory_budget, 32u << 20);
  CU_ASSERT_EQUAL(o.tcp_sndbuf, 16u << 10);
  CU_ASSERT_EQUAL(o.tcp_rcvbuf, 12u << 10);
  /* An explicit size wins, before or after the preset. */
  char *after[] = {
      "tun2sock",        "--device", "t0",           "--proxy", "socks5://127.0.0.1:1080",
      "--memory-preset", "mobile",   "--tcp-sndbuf", "1M"};
  CU_ASSERT_EQUAL_FATAL(parse(&o, 9, after), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.tcp_sndbuf, 1u << 20);
  CU_ASSERT_EQUAL(o.tcp_rcvbuf, 12u << 10);
  CU_ASSERT_EQUAL(o.memory_budget, 32u << 20);
  char *before[] = {"tun2sock",
                    "--memory-budget",
                    "40M",
                    "--device",
                    "t0",
                    "--proxy",
                    "socks5://127.0.0.1:1080",
                    "--memory-preset",
                    "mobile"};
  CU_ASSERT_EQUAL_FATAL(parse(&o, 9, before), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.memory_budget, 40u << 20);
  CU_ASSERT_EQUAL(o.tcp_sndbuf, 16u << 10);
  /* Without a preset (or with default): the defaults. */
  char *none[] = {"tun2sock",        "--device", "t0", "--proxy", "socks5://127.0.0.1:1080",
                  "--memory-preset", "default"};
  CU_ASSERT_EQUAL_FATAL(parse(&o, 7, none), T2S_CLI_RUN);
  CU_ASSERT_EQUAL(o.memory_budget, 512u << 20);
  CU_ASSERT_EQUAL(o.tcp_sndbuf, 1u << 20);
  char *bad[] = {"tun2sock",        "--device", "t0", "--proxy", "socks5://127.0.0.1:1080",
                 "--memory-preset", "tablet"};
  CU_ASSERT_EQUAL(parse(&o, 7, bad), T2S_CLI_BAD);
}

int t2s_test_register_embed_memory(void) {
  CU_pSuite s = CU_add_suite("embed_memory", NULL, NULL);
  if (!s) {
    return -1;
  }
  if (!CU_add_test(s, "the API's mobile preset", test_api_preset) ||
      !CU_add_test(s, "tun2sock_new checks the sizes", test_api_bounds) ||
      !CU_add_test(s, "--memory-preset, explicit sizes win", test_cli_preset)) {
    return -1;
  }
  return 0;
}
