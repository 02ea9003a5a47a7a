/* runner_report.c: counters to the log and the metrics (see runner_report.h). */
#include "runner_report.h"

#include <string.h>

#include "clock_linux.h"
#include "log.h"

void t2s_report_stats(const t2s_report_sources *src) {
  t2s_engine_stats st;
  t2s_engine_get_stats(src->engine, &st);
  uint64_t drops = 0;
  for (int i = 1; i < T2S_DROP_MAX; i++) {
    drops += st.drops[i];
  }
  T2S_INFO("stats: packets in %llu out %llu, bytes up %llu down %llu, tcp active %llu "
           "(total %llu, pending %llu), udp active %llu, icmp echo replies %llu, drops %llu, "
           "upstream errors %llu, flows reset %llu",
           (unsigned long long)st.packets_in, (unsigned long long)st.packets_out,
           (unsigned long long)st.bytes_up, (unsigned long long)st.bytes_down,
           (unsigned long long)st.tcp_flows_active, (unsigned long long)st.tcp_flows_total,
           (unsigned long long)st.tcp_pending_syn, (unsigned long long)st.udp_sessions_active,
           (unsigned long long)st.icmp_echo_replies, (unsigned long long)drops,
           (unsigned long long)st.upstream_errors, (unsigned long long)st.flows_reset);
  for (int i = 1; i < T2S_DROP_MAX; i++) {
    if (st.drops[i]) {
      T2S_INFO("stats: dropped %s %llu", t2s_drop_name(i), (unsigned long long)st.drops[i]);
    }
  }
  for (size_t i = 0; i < t2s_upstream_sock_error_kinds(); i++) {
    uint64_t c = t2s_upstream_sock_error_count(src->up, i);
    if (c) {
      T2S_INFO("stats: upstream error %s %llu", t2s_upstream_sock_error_name(i),
               (unsigned long long)c);
    }
  }
}

void t2s_report_engine_event(const t2s_engine_event *ev) {
  if (!t2s_log_enabled(T2S_LOG_DEBUG)) {
    return;
  }
  char s[64], d[64];
  t2s_addr_format(&ev->src, true, s, sizeof(s));
  t2s_addr_format(&ev->dst, true, d, sizeof(d));
  if (ev->type == T2S_EV_DROP) {
    T2S_DEBUG("drop %s %s -> %s", t2s_drop_name(ev->reason), ev->src.family ? s : "-",
              ev->dst.family ? d : "-");
  } else if (ev->type == T2S_EV_TCP_REFUSED || ev->type == T2S_EV_TCP_RESET) {
    T2S_DEBUG("%s flow %llu %s -> %s: %s", t2s_engine_event_name(ev->type),
              (unsigned long long)ev->flow_id, s, d, t2s_strerror(ev->reason));
  } else {
    T2S_DEBUG("%s flow %llu %s -> %s (up %llu, down %llu bytes)", t2s_engine_event_name(ev->type),
              (unsigned long long)ev->flow_id, s, d, (unsigned long long)ev->bytes_up,
              (unsigned long long)ev->bytes_down);
  }
}

void t2s_report_collect(const t2s_report_sources *src, t2s_metrics_snapshot *snap) {
  memset(snap, 0, sizeof(*snap));
  t2s_engine_get_stats(src->engine, &snap->engine);
  size_t n = t2s_upstream_sock_error_kinds();
  if (n > T2S_METRICS_MAX_ERROR_KINDS) {
    n = T2S_METRICS_MAX_ERROR_KINDS;
  }
  snap->nerror_kinds = n;
  for (size_t i = 0; i < n; i++) {
    snap->error_names[i] = t2s_upstream_sock_error_name(i);
    snap->error_counts[i] = t2s_upstream_sock_error_count(src->up, i);
  }
  snap->network_changes = snap->engine.network_changes;
  snap->route_updates = snap->engine.route_updates;
  snap->last_reset_ns = src->net->last_reset_ns;
  snap->recovery_sum_s = src->net->recovery_sum_s;
  t2s_tun_counters c = {0};
  if (src->tun) { /* NULL with the embedder's packet callbacks */
    t2s_tun_get_counters(src->tun, &c);
  }
  snap->tun_rx_packets = c.rx_packets;
  snap->tun_tx_packets = c.tx_packets;
  snap->tun_tx_errors = c.tx_errors;
  t2s_upstream_sock_counts(src->up, &snap->upstream_streams, &snap->upstream_dgrams);
  snap->uptime_seconds = (double)(t2s_clock_monotonic_ns() - src->started) / 1e9;
}
