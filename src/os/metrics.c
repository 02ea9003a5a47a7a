/* metrics.c: Prometheus text and JSON over libevent's evhttp (see metrics.h). */
#include "metrics.h"

#include <errno.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

struct t2s_metrics {
  struct evhttp *http;
  t2s_metrics_collect_fn collect;
  void *arg;
};

static void put_header(struct evbuffer *out, const char *name, const char *type, const char *help) {
  evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_value(struct evbuffer *out, const char *name, uint64_t v) {
  evbuffer_add_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void put_simple(struct evbuffer *out, const char *name, const char *type, const char *help,
                       uint64_t v) {
  put_header(out, name, type, help);
  put_value(out, name, v);
}

static const char *const state_names[] = {"UP", "SETTLING", "NO_ROUTE", "SUSPENDED"};

/* The network-change figures (docs/network-change.md, "What is counted"). */
static void render_network(const t2s_metrics_snapshot *s, struct evbuffer *out) {
  const t2s_engine_stats *e = &s->engine;
  put_simple(out, "tun2sock_network_changes_total", "counter",
             "Debounced network changes that moved the path to the proxy (or a resume).",
             s->network_changes);
  put_simple(out, "tun2sock_route_updates_total", "counter",
             "Debounced network changes that left the path to the proxy as it was.",
             s->route_updates);
  put_simple(out, "tun2sock_flows_reset_total", "counter",
             "Flows reset by the network-change policy.", e->flows_reset);
  put_simple(out, "tun2sock_network_events_total", "counter",
             "Raw events from the network monitor (links, addresses, routes, sleep).",
             e->net_events);
  put_simple(out, "tun2sock_resumes_total", "counter", "Resumes from sleep detected.", e->resumes);
  put_simple(out, "tun2sock_syn_refused_offline_total", "counter",
             "New TCP connections refused at once while offline or suspended.",
             e->syn_refused_offline);
  put_header(out, "tun2sock_network_state", "gauge",
             "The network-change state machine's state (1 for the current one).");
  for (size_t i = 0; i < T2S_ARRAY_LEN(state_names); i++) {
    evbuffer_add_printf(out, "tun2sock_network_state{state=\"%s\"} %d\n", state_names[i],
                        e->net_state == i ? 1 : 0);
  }
  put_header(out, "tun2sock_network_detection_seconds", "gauge",
             "Last change: first monitor event of the burst to the decision (the debounce).");
  evbuffer_add_printf(out, "tun2sock_network_detection_seconds %.6f\n",
                      (double)e->last_detect_ns / 1e9);
  put_header(out, "tun2sock_network_reset_seconds", "gauge",
             "Last change that reset flows: wall-clock time spent resetting them.");
  evbuffer_add_printf(out, "tun2sock_network_reset_seconds %.6f\n", (double)s->last_reset_ns / 1e9);
  put_header(out, "tun2sock_network_recovery_seconds", "histogram",
             "Decision after a network change to the first new TCP connection established.");
  uint64_t cum = 0;
  for (size_t i = 0; i < T2S_RECOVERY_BUCKETS; i++) {
    cum += e->recovery_hist[i];
    t2s_tstamp b = t2s_engine_recovery_bucket_bound(i);
    if (b == T2S_TSTAMP_MAX) {
      evbuffer_add_printf(out, "tun2sock_network_recovery_seconds_bucket{le=\"+Inf\"} %llu\n",
                          (unsigned long long)cum);
    } else {
      evbuffer_add_printf(out, "tun2sock_network_recovery_seconds_bucket{le=\"%g\"} %llu\n",
                          (double)b / 1e9, (unsigned long long)cum);
    }
  }
  evbuffer_add_printf(out, "tun2sock_network_recovery_seconds_sum %.6f\n", s->recovery_sum_s);
  evbuffer_add_printf(out, "tun2sock_network_recovery_seconds_count %llu\n",
                      (unsigned long long)cum);
  put_header(out, "tun2sock_network_last_recovery_seconds", "gauge",
             "Last change: decision to the first new TCP connection established.");
  evbuffer_add_printf(out, "tun2sock_network_last_recovery_seconds %.6f\n",
                      (double)e->last_recovery_ns / 1e9);
}

void t2s_metrics_render_prometheus(const t2s_metrics_snapshot *s, struct evbuffer *out) {
  const t2s_engine_stats *e = &s->engine;
  put_simple(out, "tun2sock_tcp_flows_active", "gauge", "TCP flows open now.", e->tcp_flows_active);
  put_simple(out, "tun2sock_tcp_pending_syn", "gauge",
             "TCP connection attempts waiting for the proxy.", e->tcp_pending_syn);
  put_simple(out, "tun2sock_tcp_flows_total", "counter", "TCP flows ever accepted.",
             e->tcp_flows_total);
  put_simple(out, "tun2sock_tcp_resets_sent_total", "counter", "RSTs sent to clients.",
             e->tcp_resets_sent);
  put_simple(out, "tun2sock_tcp_retransmits_total", "counter",
             "TCP segments retransmitted toward clients.", e->tcp_retransmits);
  put_simple(out, "tun2sock_tcp_challenge_acks_total", "counter",
             "RFC 5961 challenge ACKs sent (blind or stale RST/SYN answered).",
             e->tcp_challenge_acks);
  put_simple(out, "tun2sock_memory_bytes", "gauge", "Heap bytes the engine holds.", e->mem_bytes);
  put_simple(out, "tun2sock_memory_refused_total", "counter",
             "Allocations refused by the memory budget (or out of memory).", e->mem_refused);
  put_simple(out, "tun2sock_udp_sessions_active", "gauge", "UDP sessions open now.",
             e->udp_sessions_active);
  put_header(out, "tun2sock_bytes_total", "counter",
             "Payload bytes carried (up: toward the proxy, down: toward the clients).");
  evbuffer_add_printf(out, "tun2sock_bytes_total{direction=\"up\"} %llu\n",
                      (unsigned long long)e->bytes_up);
  evbuffer_add_printf(out, "tun2sock_bytes_total{direction=\"down\"} %llu\n",
                      (unsigned long long)e->bytes_down);
  put_header(out, "tun2sock_packets_total", "counter",
             "IP packets (in: from the TUN to the engine, out: from the engine to the TUN).");
  evbuffer_add_printf(out, "tun2sock_packets_total{direction=\"in\"} %llu\n",
                      (unsigned long long)e->packets_in);
  evbuffer_add_printf(out, "tun2sock_packets_total{direction=\"out\"} %llu\n",
                      (unsigned long long)e->packets_out);
  put_header(out, "tun2sock_packets_dropped_total", "counter", "Packets dropped, by reason.");
  for (int i = 1; i < T2S_DROP_MAX; i++) {
    evbuffer_add_printf(out, "tun2sock_packets_dropped_total{reason=\"%s\"} %llu\n",
                        t2s_drop_name(i), (unsigned long long)e->drops[i]);
  }
  put_simple(out, "tun2sock_icmp_echo_replies_total", "counter",
             "ICMP and ICMPv6 echo requests answered locally.", e->icmp_echo_replies);
  put_header(out, "tun2sock_upstream_errors_total", "counter",
             "Upstream socket errors, by errno name.");
  for (size_t i = 0; i < s->nerror_kinds; i++) {
    evbuffer_add_printf(out, "tun2sock_upstream_errors_total{error=\"%s\"} %llu\n",
                        s->error_names[i], (unsigned long long)s->error_counts[i]);
  }
  put_simple(out, "tun2sock_upstream_failures_total", "counter",
             "Upstream failures seen by the engine (sockets and proxy replies).",
             e->upstream_errors);
  put_simple(out, "tun2sock_upstream_streams_open", "gauge", "Upstream TCP sockets open now.",
             s->upstream_streams);
  put_simple(out, "tun2sock_upstream_dgram_sockets_open", "gauge", "Upstream UDP sockets open now.",
             s->upstream_dgrams);
  render_network(s, out);
  put_header(out, "tun2sock_tun_packets_total", "counter",
             "Packets read from and written to the TUN device.");
  evbuffer_add_printf(out, "tun2sock_tun_packets_total{direction=\"rx\"} %llu\n",
                      (unsigned long long)s->tun_rx_packets);
  evbuffer_add_printf(out, "tun2sock_tun_packets_total{direction=\"tx\"} %llu\n",
                      (unsigned long long)s->tun_tx_packets);
  put_simple(out, "tun2sock_tun_write_errors_total", "counter", "Failed writes to the TUN.",
             s->tun_tx_errors);
  put_simple(out, "tun2sock_udp_sessions_total", "counter", "UDP sessions ever opened.",
             e->udp_sessions_total);
  put_header(out, "tun2sock_udp_datagrams_total", "counter",
             "UDP datagrams carried (up: toward the proxy, down: toward the clients).");
  evbuffer_add_printf(out, "tun2sock_udp_datagrams_total{direction=\"up\"} %llu\n",
                      (unsigned long long)e->udp_datagrams_up);
  evbuffer_add_printf(out, "tun2sock_udp_datagrams_total{direction=\"down\"} %llu\n",
                      (unsigned long long)e->udp_datagrams_down);
  put_simple(out, "tun2sock_udp_evictions_total", "counter",
             "UDP sessions evicted at the session cap (least recently used, DNS first).",
             e->udp_evictions);
  put_simple(out, "tun2sock_udp_timeouts_total", "counter", "UDP sessions ended idle.",
             e->udp_timeouts);
  put_simple(out, "tun2sock_udp_proxy_no_udp", "gauge",
             "1 while the proxy is believed to have no UDP ASSOCIATE.", e->udp_proxy_no_udp);
  put_simple(out, "tun2sock_udp_no_udp_verdicts_total", "counter",
             "Times the proxy was found to have no UDP (REP 7 or a close).",
             e->udp_no_udp_verdicts);
  put_simple(out, "tun2sock_udp_dns_tcp_queries_total", "counter",
             "DNS queries carried over TCP because the proxy has no UDP.", e->udp_dns_tcp_queries);
  put_simple(out, "tun2sock_udp_dns_tcp_answers_total", "counter",
             "Answers to them returned as UDP.", e->udp_dns_tcp_answers);
  put_simple(out, "tun2sock_udp_port_unreachable_sent_total", "counter",
             "ICMP port unreachable sent for UDP (no-UDP proxy, refused destination).",
             e->udp_port_unreach_sent);
  put_simple(out, "tun2sock_fragments_reassembled_total", "counter",
             "Packets reassembled from client fragments.", e->frag_reassembled);
  put_simple(out, "tun2sock_fragments_sent_total", "counter",
             "Fragments sent for packets larger than the TUN MTU.", e->frag_sent);
  put_header(out, "tun2sock_uptime_seconds", "gauge", "Seconds since start.");
  evbuffer_add_printf(out, "tun2sock_uptime_seconds %.3f\n", s->uptime_seconds);
}

void t2s_metrics_render_json(const t2s_metrics_snapshot *s, struct evbuffer *out) {
  const t2s_engine_stats *e = &s->engine;
#define U(x) ((unsigned long long)(x))
  evbuffer_add_printf(out,
                      "{\"tcp_flows_active\":%llu,\"tcp_pending_syn\":%llu,"
                      "\"tcp_flows_total\":%llu,\"tcp_resets_sent\":%llu,"
                      "\"tcp_retransmits\":%llu,\"tcp_challenge_acks\":%llu,"
                      "\"memory_bytes\":%llu,\"memory_peak_bytes\":%llu,\"memory_refused\":%llu,"
                      "\"udp_sessions_active\":%llu,"
                      "\"bytes_up\":%llu,\"bytes_down\":%llu,\"packets_in\":%llu,"
                      "\"packets_out\":%llu,\"icmp_echo_replies\":%llu,"
                      "\"upstream_failures\":%llu,\"flows_reset\":%llu,"
                      "\"network_changes\":%llu,\"route_updates\":%llu,"
                      "\"upstream_streams_open\":%llu,\"upstream_dgram_sockets_open\":%llu,"
                      "\"tun_rx_packets\":%llu,\"tun_tx_packets\":%llu,"
                      "\"tun_write_errors\":%llu,\"uptime_seconds\":%.3f,",
                      U(e->tcp_flows_active), U(e->tcp_pending_syn), U(e->tcp_flows_total),
                      U(e->tcp_resets_sent), U(e->tcp_retransmits), U(e->tcp_challenge_acks),
                      U(e->mem_bytes), U(e->mem_peak_bytes), U(e->mem_refused),
                      U(e->udp_sessions_active), U(e->bytes_up), U(e->bytes_down), U(e->packets_in),
                      U(e->packets_out), U(e->icmp_echo_replies), U(e->upstream_errors),
                      U(e->flows_reset), U(s->network_changes), U(s->route_updates),
                      U(s->upstream_streams), U(s->upstream_dgrams), U(s->tun_rx_packets),
                      U(s->tun_tx_packets), U(s->tun_tx_errors), s->uptime_seconds);
  evbuffer_add_printf(out,
                      "\"network\":{\"state\":\"%s\",\"events\":%llu,\"resumes\":%llu,"
                      "\"syn_refused_offline\":%llu,\"last_detect_ns\":%llu,"
                      "\"last_reset_ns\":%llu,\"last_recovery_ns\":%llu,"
                      "\"recovery_sum_s\":%.6f},",
                      e->net_state < T2S_ARRAY_LEN(state_names) ? state_names[e->net_state] : "?",
                      U(e->net_events), U(e->resumes), U(e->syn_refused_offline),
                      U(e->last_detect_ns), U(s->last_reset_ns), U(e->last_recovery_ns),
                      s->recovery_sum_s);
  evbuffer_add_printf(out,
                      "\"udp\":{\"sessions_total\":%llu,\"datagrams_up\":%llu,"
                      "\"datagrams_down\":%llu,\"evictions\":%llu,\"timeouts\":%llu,"
                      "\"no_udp_verdicts\":%llu,\"proxy_no_udp\":%llu,\"dns_tcp_queries\":%llu,"
                      "\"dns_tcp_answers\":%llu,\"port_unreach_sent\":%llu,"
                      "\"frag_reassembled\":%llu,\"frag_sent\":%llu},",
                      U(e->udp_sessions_total), U(e->udp_datagrams_up), U(e->udp_datagrams_down),
                      U(e->udp_evictions), U(e->udp_timeouts), U(e->udp_no_udp_verdicts),
                      U(e->udp_proxy_no_udp), U(e->udp_dns_tcp_queries), U(e->udp_dns_tcp_answers),
                      U(e->udp_port_unreach_sent), U(e->frag_reassembled), U(e->frag_sent));
  evbuffer_add_printf(out, "\"packets_dropped\":{");
  for (int i = 1; i < T2S_DROP_MAX; i++) {
    evbuffer_add_printf(out, "%s\"%s\":%llu", i > 1 ? "," : "", t2s_drop_name(i), U(e->drops[i]));
  }
  evbuffer_add_printf(out, "},\"upstream_errors\":{");
  for (size_t i = 0; i < s->nerror_kinds; i++) {
    evbuffer_add_printf(out, "%s\"%s\":%llu", i > 0 ? "," : "", s->error_names[i],
                        U(s->error_counts[i]));
  }
  evbuffer_add_printf(out, "}}\n");
#undef U
}

static void handle(struct evhttp_request *req, void *arg) {
  t2s_metrics *m = arg;
  if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
      evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
    evhttp_send_error(req, 405, "Method Not Allowed");
    return;
  }
  const char *uri = evhttp_request_get_uri(req);
  size_t plen = strcspn(uri, "?");
  bool prom = plen == 8 && strncmp(uri, "/metrics", 8) == 0;
  bool json = plen == 6 && strncmp(uri, "/stats", 6) == 0;
  if (!prom && !json) {
    evhttp_send_error(req, 404, "Not Found (try /metrics or /stats)");
    return;
  }
  t2s_metrics_snapshot *snap = calloc(1, sizeof(*snap));
  struct evbuffer *body = evbuffer_new();
  if (!snap || !body) {
    free(snap);
    if (body) {
      evbuffer_free(body);
    }
    evhttp_send_error(req, 500, "Out of memory");
    return;
  }
  m->collect(m->arg, snap);
  struct evkeyvalq *h = evhttp_request_get_output_headers(req);
  if (prom) {
    t2s_metrics_render_prometheus(snap, body);
    evhttp_add_header(h, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  } else {
    t2s_metrics_render_json(snap, body);
    evhttp_add_header(h, "Content-Type", "application/json");
  }
  evhttp_send_reply(req, 200, "OK", body);
  evbuffer_free(body);
  free(snap);
}

int t2s_metrics_new(t2s_metrics **pm, struct event_base *base, const char *host, uint16_t port,
                    t2s_metrics_collect_fn collect, void *arg) {
  t2s_metrics *m = calloc(1, sizeof(*m));
  if (!m) {
    return -ENOMEM;
  }
  m->collect = collect;
  m->arg = arg;
  m->http = evhttp_new(base);
  if (!m->http) {
    free(m);
    return -ENOMEM;
  }
  evhttp_set_allowed_methods(m->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
  evhttp_set_timeout(m->http, 10);
  evhttp_set_max_headers_size(m->http, 8192);
  evhttp_set_max_body_size(m->http, 0);
  evhttp_set_gencb(m->http, handle, m);
  errno = 0;
  if (evhttp_bind_socket(m->http, host && host[0] ? host : "0.0.0.0", port) != 0) {
    int err = errno ? errno : EADDRNOTAVAIL;
    evhttp_free(m->http);
    free(m);
    return -err;
  }
  *pm = m;
  return 0;
}

void t2s_metrics_del(t2s_metrics *m) {
  if (!m) {
    return;
  }
  evhttp_free(m->http);
  free(m);
}
