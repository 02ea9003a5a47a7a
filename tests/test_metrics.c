/* test_metrics.c: the /metrics and /stats renderers (metrics.c, no HTTP): the Prometheus names
 * and types and the JSON keys are pinned (harness tests, dashboards and docs use them), and a
 * value shows the same in both. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "test_util.h"

/* Every family, in order, as its "# TYPE" line has it. */
static const char prom_types[] =
    "tun2sock_tcp_flows_active gauge|tun2sock_tcp_pending_syn gauge|"
    "tun2sock_tcp_flows_total counter|tun2sock_tcp_resets_sent_total counter|"
    "tun2sock_tcp_retransmits_total counter|tun2sock_tcp_challenge_acks_total counter|"
    "tun2sock_memory_bytes gauge|tun2sock_memory_refused_total counter|"
    "tun2sock_udp_sessions_active gauge|tun2sock_bytes_total counter|"
    "tun2sock_packets_total counter|tun2sock_packets_dropped_total counter|"
    "tun2sock_icmp_echo_replies_total counter|tun2sock_upstream_errors_total counter|"
    "tun2sock_upstream_failures_total counter|tun2sock_upstream_streams_open gauge|"
    "tun2sock_upstream_dgram_sockets_open gauge|tun2sock_network_changes_total counter|"
    "tun2sock_route_updates_total counter|tun2sock_flows_reset_total counter|"
    "tun2sock_flows_survived_total counter|tun2sock_network_events_total "
    "counter|tun2sock_resumes_total counter|"
    "tun2sock_syn_refused_offline_total counter|tun2sock_network_state gauge|"
    "tun2sock_network_detection_seconds gauge|tun2sock_network_reset_seconds gauge|"
    "tun2sock_network_recovery_seconds histogram|tun2sock_network_last_recovery_seconds gauge|"
    "tun2sock_tun_packets_total counter|tun2sock_tun_write_errors_total counter|"
    "tun2sock_udp_sessions_total counter|tun2sock_udp_datagrams_total counter|"
    "tun2sock_udp_evictions_total counter|tun2sock_udp_timeouts_total counter|"
    "tun2sock_udp_proxy_no_udp gauge|tun2sock_udp_no_udp_verdicts_total counter|"
    "tun2sock_udp_dns_tcp_queries_total counter|tun2sock_udp_dns_tcp_answers_total counter|"
    "tun2sock_udp_port_unreachable_sent_total counter|"
    "tun2sock_dns_servfail_total counter|"
    "tun2sock_fragments_reassembled_total counter|tun2sock_fragments_sent_total counter|"
    "tun2sock_fake_dns_queries_total counter|tun2sock_fake_dns_entries gauge|"
    "tun2sock_fake_dns_pinned gauge|tun2sock_fake_dns_recycled_total counter|"
    "tun2sock_fake_dns_full_total counter|tun2sock_fake_dns_flows_total counter|"
    "tun2sock_fake_dns_stale_total counter|tun2sock_mptcp_flows_total counter|"
    "tun2sock_mptcp_subflows_total counter|tun2sock_mptcp_survivors_reset_total counter|"
    "tun2sock_survived_stall_seconds histogram|"
    "tun2sock_uptime_seconds gauge|tun2sock_config_reloads_total counter|"
    "tun2sock_config_last_reload_successful gauge|tun2sock_upstream_proxy_failures_total counter|";

/* Every JSON key, in order, but those inside packets_dropped and upstream_errors. */
static const char json_keys[] =
    "tcp_flows_active,tcp_pending_syn,tcp_flows_total,tcp_resets_sent,tcp_retransmits,"
    "tcp_challenge_acks,memory_bytes,memory_peak_bytes,memory_refused,udp_sessions_active,"
    "bytes_up,bytes_down,packets_in,packets_out,icmp_echo_replies,upstream_failures,"
    "upstream_streams_open,upstream_dgram_sockets_open,network_changes,route_updates,"
    "flows_reset,flows_survived,tun_rx_packets,tun_tx_packets,tun_write_errors,uptime_seconds,"
    "config_reloads_applied,config_reloads_failed,config_last_reload_successful,network,events,"
    "resumes,syn_refused_offline,state,last_detect_ns,last_reset_ns,recovery_sum_s,"
    "last_recovery_ns,udp,sessions_total,datagrams_up,datagrams_down,evictions,timeouts,"
    "proxy_no_udp,no_udp_verdicts,dns_tcp_queries,dns_tcp_answers,port_unreach_sent,"
    "dns_servfail_proxy_down,dns_servfail_setup_failed,dns_servfail_queue_full,"
    "dns_servfail_flushed,dns_servfail_tcp_upstream,"
    "frag_reassembled,frag_sent,fake_dns,answered,forwarded,refused,dropped,entries,pinned,"
    "recycled,full,flows,stale,mptcp,multipath,fallback,subflows_added,subflows_removed,"
    "survivors_reset,survived_stall_sum_ns,packets_dropped,upstream_errors,upstream_failures_by_"
    "cause,refused,"
    "timeout,unreachable,reset,auth,protocol,";

/* The rendering of s (json or Prometheus) as a NUL-terminated string; the caller frees it. */
static char *render(const t2s_metrics_snapshot *s, bool json) {
  struct evbuffer *b = evbuffer_new();
  CU_ASSERT_FATAL(b != NULL);
  if (json) {
    t2s_metrics_render_json(s, b);
  } else {
    t2s_metrics_render_prometheus(s, b);
  }
  size_t n = evbuffer_get_length(b);
  char *text = malloc(n + 1);
  CU_ASSERT_FATAL(text != NULL);
  evbuffer_remove(b, text, n);
  text[n] = '\0';
  evbuffer_free(b);
  return text;
}

static void test_prometheus_names(void) {
  t2s_metrics_snapshot s;
  memset(&s, 0, sizeof(s));
  char *text = render(&s, false);
  char got[sizeof(prom_types) + 256] = "";
  for (const char *p = strstr(text, "# TYPE "); p; p = strstr(p, "# TYPE ")) {
    p += 7;
    size_t n = strcspn(p, "\n");
    if (strlen(got) + n + 2 < sizeof(got)) {
      strncat(got, p, n);
      strcat(got, "|");
    }
  }
  CU_ASSERT_STRING_EQUAL(got, prom_types);
  free(text);
}

static void test_json_keys(void) {
  t2s_metrics_snapshot s;
  memset(&s, 0, sizeof(s));
  s.nerror_kinds = 1;
  s.error_names[0] = "ECONNREFUSED";
  char *text = render(&s, true);
  CU_ASSERT(text[0] == '{' && strcmp(text + strlen(text) - 3, "}}\n") == 0);
  char got[sizeof(json_keys) + 256] = "";
  for (const char *p = strchr(text, '"'); p; p = strchr(p, '"')) {
    const char *end = strchr(p + 1, '"');
    CU_ASSERT_FATAL(end != NULL);
    size_t n = (size_t)(end - p - 1);
    if (end[1] == ':' && strlen(got) + n + 2 < sizeof(got)) {
      strncat(got, p + 1, n);
      strcat(got, ",");
    }
    p = end + 1;
    if (end[1] == ':' && end[2] == '{' && n == 15 &&
        (strncmp(p - n - 1, "packets_dropped", n) == 0 ||
         strncmp(p - n - 1, "upstream_errors", n) == 0)) {
      p = strchr(end, '}'); /* the map's own keys are not pinned here */
      CU_ASSERT_FATAL(p != NULL);
    }
  }
  CU_ASSERT_STRING_EQUAL(got, json_keys);
  free(text);
}

static void expect_in(const char *text, const char *what) {
  if (!strstr(text, what)) {
    fprintf(stderr, "\nmissing: %s\n", what);
  }
  CU_ASSERT_PTR_NOT_NULL(strstr(text, what));
}

static void test_same_values(void) {
  t2s_metrics_snapshot s;
  memset(&s, 0, sizeof(s));
  s.engine.bytes_down = 4242;
  s.engine.mem_peak_bytes = 777;
  s.engine.net_state = 2;
  s.engine.last_detect_ns = 1500000000;
  s.engine.udp_proxy_no_udp = 1;
  s.engine.drops[T2S_DROP_TCP_BAD_CHECKSUM] = 9;
  s.nerror_kinds = 1;
  s.error_names[0] = "ECONNREFUSED";
  s.error_counts[0] = 3;
  s.tun_tx_packets = 31;
  s.recovery_sum_s = 0.25;
  s.uptime_seconds = 12.5;
  char *prom = render(&s, false);
  char *json = render(&s, true);
  expect_in(prom, "\ntun2sock_bytes_total{direction=\"down\"} 4242\n");
  expect_in(json, "\"bytes_down\":4242,");
  expect_in(json, "\"memory_peak_bytes\":777,");
  expect_in(prom, "\ntun2sock_network_state{state=\"NO_ROUTE\"} 1\n");
  expect_in(prom, "\ntun2sock_network_state{state=\"UP\"} 0\n");
  expect_in(json, "\"state\":\"NO_ROUTE\"");
  expect_in(prom, "\ntun2sock_network_detection_seconds 1.500000\n");
  expect_in(json, "\"last_detect_ns\":1500000000");
  expect_in(prom, "\ntun2sock_udp_proxy_no_udp 1\n");
  expect_in(json, "\"proxy_no_udp\":1");
  expect_in(prom, "\ntun2sock_packets_dropped_total{reason=\"tcp_bad_checksum\"} 9\n");
  expect_in(json, "\"tcp_bad_checksum\":9");
  expect_in(prom, "\ntun2sock_upstream_errors_total{error=\"ECONNREFUSED\"} 3\n");
  expect_in(json, "\"upstream_errors\":{\"ECONNREFUSED\":3}");
  expect_in(prom, "\ntun2sock_tun_packets_total{direction=\"tx\"} 31\n");
  expect_in(json, "\"tun_tx_packets\":31,");
  expect_in(prom, "\ntun2sock_network_recovery_seconds_sum 0.250000\n");
  expect_in(prom, "\ntun2sock_network_recovery_seconds_bucket{le=\"+Inf\"} 0\n");
  expect_in(json, "\"recovery_sum_s\":0.250000");
  expect_in(prom, "\ntun2sock_uptime_seconds 12.500\n");
  expect_in(json, "\"uptime_seconds\":12.500,");
  free(prom);
  free(json);
}

int t2s_test_register_metrics(void) {
  CU_pSuite s = CU_add_suite("metrics", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "prometheus names", test_prometheus_names) ||
      !CU_add_test(s, "json keys", test_json_keys) ||
      !CU_add_test(s, "same values", test_same_values)) {
    return -1;
  }
  return 0;
}
