/* test_engine_reload.c: a reload in a running engine (src/core/engine_reload.c) and the plan
 * of a reload in the binary (src/os/runner_reload.c): the proxies replaced (the flows of a
 * changed proxy reset, the others untouched, new flows with the new credentials), the
 * settings read at use, and which options need a restart. */
#include <string.h>

#include "cli.h"
#include "engine.h"
#include "engine_fake.h"
#include "packet.h"
#include "runner_reload.h"
#include "test_util.h"

#define MS T2S_MILLISECONDS
#define S T2S_SECONDS

static engine_fake EF;
static t2s_engine *EE;
static t2s_addr PA, PB;

static void setup(size_t nproxies, const t2s_engine_config *base) {
  engine_fake_init(&EF);
  engine_fake_set_route(&EF, 2, "eth0", "192.0.2.10", false);
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  if (base) {
    cfg = *base;
  }
  t2s_addr_parse("192.0.2.2:1080", &PA);
  t2s_addr_parse("192.0.2.3:1080", &PB);
  cfg.proxy_kind = T2S_PROXY_SOCKS5;
  cfg.proxy = PA;
  cfg.username = "alice";
  cfg.password = "old";
  CU_ASSERT_EQUAL_FATAL(t2s_engine_new(&EE, &cfg, &EF.dev, &EF.up, NULL), 0);
  if (nproxies > 1) {
    t2s_engine_proxy list[2] = {{.addr = PA, .username = "alice", .password = "old"},
                                {.addr = PB, .username = "bob", .password = "b-pass"}};
    CU_ASSERT_EQUAL_FATAL(t2s_engine_set_proxies(EE, list, nproxies, NULL, 0), 0);
  }
}

static void teardown(void) {
  t2s_engine_del(EE);
  EE = NULL;
}

static void run_to(t2s_tstamp t) {
  engine_fake_run_to(EE, t);
}

static void syn(uint16_t sport, t2s_tstamp now) {
  CU_ASSERT_FATAL(engine_fake_syn(EE, sport, now) != T2S_ERR_NOBUF);
}

static size_t rsts_to(uint16_t sport) {
  size_t n = 0;
  for (size_t i = 0; i < EF.npkts; i++) {
    t2s_pkt p;
    if (t2s_pkt_parse(EF.pkts[i].data, EF.pkts[i].len, &p) == T2S_DROP_NONE &&
        p.proto == T2S_IPPROTO_TCP && p.dst.port == sport && (p.l4.tcp.flags & T2S_TCP_RST)) {
      n++;
    }
  }
  return n;
}

static engine_fake_stream *last_stream(void) {
  CU_ASSERT_FATAL(EF.nstreams > 0);
  return &EF.streams[EF.nstreams - 1];
}

/* A flow through whichever proxy the engine picks; the proxy accepts user/password. */
static engine_fake_stream *flow_ok(uint16_t sport, t2s_tstamp now) {
  syn(sport, now);
  engine_fake_stream *st = last_stream();
  static const uint8_t method[] = {5, 2}, auth[] = {1, 0};
  static const uint8_t reply[] = {5, 0, 0, 1, 203, 0, 113, 10, 0, 80};
  t2s_engine_stream_opened(EE, st->id, 0, now);
  t2s_engine_stream_recv(EE, st->id, method, sizeof(method), now);
  t2s_engine_stream_recv(EE, st->id, auth, sizeof(auth), now);
  t2s_engine_stream_recv(EE, st->id, reply, sizeof(reply), now);
  return st;
}

/* The password the RFC 1929 request written on st carries. */
static bool sent_password(const engine_fake_stream *st, const char *user, const char *pass) {
  /* greeting 5 1 2 (3 bytes) or 5 2 0 2 (4), then 1 ULEN USER PLEN PASS */
  size_t g = st->written[1] + 2u;
  const uint8_t *a = st->written + g;
  size_t ul = strlen(user), pl = strlen(pass);
  return a[0] == 1 && a[1] == ul && memcmp(a + 2, user, ul) == 0 && a[2 + ul] == pl &&
         memcmp(a + 3 + ul, pass, pl) == 0;
}

/* Two proxies; the first one's password changes: its flow is reset once, the second's flow
 * runs on, the second keeps its health (its flows count), new flows use the new password. */
static void test_changed_proxy_reset_others_untouched(void) {
  setup(2, NULL);
  engine_fake_stream *a = flow_ok(41001, 0);
  CU_ASSERT_TRUE(t2s_addr_eq(&a->dst, &PA));
  CU_ASSERT_TRUE(sent_password(a, "alice", "old"));
  /* A refuses the next flow's connect: it is carried by B. */
  syn(41002, 1 * MS);
  t2s_engine_stream_opened(EE, last_stream()->id, T2S_ERR_REFUSED, 1 * MS); /* retried on B */
  engine_fake_stream *b = last_stream();
  CU_ASSERT_TRUE_FATAL(t2s_addr_eq(&b->dst, &PB));
  static const uint8_t method[] = {5, 2}, auth[] = {1, 0};
  static const uint8_t reply[] = {5, 0, 0, 1, 203, 0, 113, 10, 0, 80};
  t2s_engine_stream_opened(EE, b->id, 0, 2 * MS);
  t2s_engine_stream_recv(EE, b->id, method, sizeof(method), 2 * MS);
  t2s_engine_stream_recv(EE, b->id, auth, sizeof(auth), 2 * MS);
  t2s_engine_stream_recv(EE, b->id, reply, sizeof(reply), 2 * MS);
  uint64_t b_picks = t2s_engine_proxy_health(EE)->p[1].picks;
  CU_ASSERT(b_picks >= 1);
  t2s_engine_proxy list[2] = {{.addr = PA, .username = "alice", .password = "new"},
                              {.addr = PB, .username = "bob", .password = "b-pass"}};
  t2s_ssize reset = t2s_engine_replace_proxies(EE, list, 2, NULL, 10 * MS);
  CU_ASSERT_EQUAL(reset, 1);
  CU_ASSERT_EQUAL(rsts_to(41001), 1);
  CU_ASSERT_EQUAL(rsts_to(41002), 0);
  CU_ASSERT_FALSE(b->closed);
  CU_ASSERT_EQUAL(t2s_engine_proxy_health(EE)->p[1].picks, b_picks);      /* B's health kept */
  CU_ASSERT_EQUAL(t2s_engine_proxy_health(EE)->p[0].state, T2S_PROXY_UP); /* A's is new */
  engine_fake_stream *a2 = flow_ok(41003, 20 * MS);
  CU_ASSERT_TRUE(t2s_addr_eq(&a2->dst, &PA));
  CU_ASSERT_TRUE(sent_password(a2, "alice", "new"));
  /* The same list again resets nothing; more time resets nothing more. */
  CU_ASSERT_EQUAL(t2s_engine_replace_proxies(EE, list, 2, NULL, 30 * MS), 0);
  run_to(1 * S);
  CU_ASSERT_EQUAL(rsts_to(41001), 1);
  CU_ASSERT_EQUAL(rsts_to(41002), 0);
  CU_ASSERT_EQUAL(rsts_to(41003), 0);
  t2s_engine_stats st;
  t2s_engine_get_stats(EE, &st);
  CU_ASSERT_EQUAL(st.flows_reset, 1);
  /* B removed: its flow is reset, A's stays. */
  CU_ASSERT_EQUAL(t2s_engine_replace_proxies(EE, list, 1, NULL, 1 * S), 1);
  CU_ASSERT_EQUAL(rsts_to(41002), 1);
  CU_ASSERT_EQUAL(rsts_to(41003), 0);
  teardown();
}

/* One proxy without a health list (cfg.proxy): a new password resets its flows and the next
 * flow authenticates with it; the same one resets nothing; a second proxy starts a list. */
static void test_single_proxy_credentials(void) {
  setup(1, NULL);
  engine_fake_stream *a = flow_ok(41010, 0);
  CU_ASSERT_TRUE(sent_password(a, "alice", "old"));
  t2s_engine_proxy same = {.addr = PA, .username = "alice", .password = "old"};
  CU_ASSERT_EQUAL(t2s_engine_replace_proxies(EE, &same, 1, NULL, 1 * MS), 0);
  CU_ASSERT_PTR_NULL(t2s_engine_proxy_health(EE)); /* still no list */
  t2s_engine_proxy changed = {.addr = PA, .username = "alice", .password = "new"};
  CU_ASSERT_EQUAL(t2s_engine_replace_proxies(EE, &changed, 1, NULL, 2 * MS), 1);
  CU_ASSERT_EQUAL(rsts_to(41010), 1);
  engine_fake_stream *a2 = flow_ok(41011, 3 * MS);
  CU_ASSERT_TRUE(sent_password(a2, "alice", "new"));
  t2s_engine_proxy two[2] = {changed, {.addr = PB, .username = NULL, .password = NULL}};
  CU_ASSERT_EQUAL(t2s_engine_replace_proxies(EE, two, 2, NULL, 4 * MS), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(t2s_engine_proxy_health(EE));
  CU_ASSERT_EQUAL(t2s_engine_proxy_health(EE)->n, 2);
  CU_ASSERT_EQUAL(rsts_to(41011), 0);
  CU_ASSERT_EQUAL(t2s_engine_replace_proxies(EE, two, 0, NULL, 5 * MS), T2S_ERR_INVALID_ARGUMENT);
  teardown();
}

/* The connect timeout a reload sets applies to the SYNs that come after it. */
static void test_runtime_settings(void) {
  setup(1, NULL);
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.tcp_connect_timeout = 1 * S;
  t2s_engine_set_runtime(EE, &cfg);
  syn(41020, 0);
  run_to(900 * MS);
  CU_ASSERT_EQUAL(rsts_to(41020), 0);
  run_to(1100 * MS);
  CU_ASSERT_EQUAL(rsts_to(41020), 1); /* the default (10 s) would still hold it */
  teardown();
}

static void parse_opts(t2s_cli_opts *o, const char *extra1, const char *extra2) {
  char *argv[8] = {"tun2sock", "--device", "tun0", "--proxy", "socks5://alice@192.0.2.2:1080"};
  int argc = 5;
  if (extra1) {
    argv[argc++] = (char *)extra1;
  }
  if (extra2) {
    argv[argc++] = (char *)extra2;
  }
  FILE *null = fopen("/dev/null", "w");
  CU_ASSERT_EQUAL_FATAL(t2s_cli_parse(argc, argv, o, null, null), T2S_CLI_RUN);
  fclose(null);
}

/* The plan: reloadable options are taken, the others listed as needing a restart and kept. */
static void test_reload_plan(void) {
  static t2s_cli_opts running, fresh;
  static t2s_reload_plan plan;
  char buf[256];
  parse_opts(&running, "--mtu=1500", NULL);
  parse_opts(&fresh, "--mtu=1400", "--udp-timeout=5s");
  t2s_reload_plan_make(&running, "pw", &fresh, "pw", &plan);
  CU_ASSERT_STRING_EQUAL(t2s_reload_join(plan.restart, plan.nrestart, buf, sizeof(buf)), "mtu");
  CU_ASSERT_STRING_EQUAL(t2s_reload_join(plan.changed, plan.nchanged, buf, sizeof(buf)),
                         "udp-timeout");
  CU_ASSERT_EQUAL(plan.next.mtu, 1500);             /* kept */
  CU_ASSERT_EQUAL(plan.next.udp_timeout_ns, 5 * S); /* taken */
  CU_ASSERT_FALSE(plan.proxies);
  /* A password alone (from a password file) is a change of the proxies. */
  parse_opts(&fresh, "--mtu=1500", NULL);
  t2s_reload_plan_make(&running, "pw", &fresh, "pw2", &plan);
  CU_ASSERT_TRUE(plan.proxies);
  CU_ASSERT_TRUE(plan.password);
  CU_ASSERT_STRING_EQUAL(t2s_reload_join(plan.changed, plan.nchanged, buf, sizeof(buf)), "proxy");
  CU_ASSERT_EQUAL(plan.nrestart, 0);
  /* A second proxy and the device. */
  parse_opts(&fresh, "--proxy=socks5://192.0.2.3:1080", "--device=tun1");
  fresh.mtu = 9000;
  t2s_reload_plan_make(&running, "pw", &fresh, "pw", &plan);
  CU_ASSERT_TRUE(plan.proxies);
  CU_ASSERT_EQUAL(plan.next.nmore_proxies, 1);
  CU_ASSERT_STRING_EQUAL(plan.next.ifname, "tun0");
  CU_ASSERT_STRING_EQUAL(t2s_reload_join(plan.restart, plan.nrestart, buf, sizeof(buf)),
                         "device and mtu");
  CU_ASSERT_EQUAL(plan.next.mtu, 1500);
  /* Nothing at all. */
  t2s_reload_plan_make(&running, "pw", &running, "pw", &plan);
  CU_ASSERT_EQUAL(plan.nchanged + plan.nrestart, 0);
}

int t2s_test_register_engine_reload(void) {
  CU_pSuite s = CU_add_suite("engine_reload", NULL, NULL);
  if (s == NULL) {
    return -1;
  }
  if (!CU_add_test(s, "a changed proxy's flows reset, the others untouched",
                   test_changed_proxy_reset_others_untouched) ||
      !CU_add_test(s, "one proxy: new credentials", test_single_proxy_credentials) ||
      !CU_add_test(s, "timeouts from the reload on", test_runtime_settings) ||
      !CU_add_test(s, "the plan: applied, needs a restart", test_reload_plan)) {
    return -1;
  }
  return 0;
}
