/* metrics.c: Prometheus text and JSON over libevent's evhttp (see metrics.h). */
#include "metrics.h"

#include <errno.h>
#include <stddef.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>

#include "os_error.h"

struct t2s_metrics {
  struct evhttp *http;
  t2s_metrics_collect_fn collect;
  void *arg;
};

static const char *const state_names[] = {"UP", "SETTLING", "NO_ROUTE", "SUSPENDED"};

/* How a row's value is read from the snapshot and written. */
typedef enum metric_kind {
  MK_U64,      /* uint64_t: an integer in both */
  MK_NS,       /* t2s_tstamp: seconds (%.6f) in Prometheus, nanoseconds in JSON */
  MK_SECONDS,  /* double seconds: %.3f in both */
  MK_STATE,    /* uint32_t t2s_net_state: a series per state (1 for the current) / its name */
  MK_RECOVERY, /* double: the recovery histogram's _sum; the buckets come from the engine */
  MK_STALL,    /* t2s_tstamp: the survivors' stall histogram's _sum (ns); buckets: the engine */
  MK_DROPS,    /* the drop counters: a series per reason / an object */
  MK_ERRORS,   /* the upstream socket errors: a series per errno name / an object */
} metric_kind;

/* Where a row's JSON key stands: the top object, one of its objects, or after those (the
 * map rows, each an object of its own). */
typedef enum json_section { J_TOP, J_NETWORK, J_UDP, J_FAKE_DNS, J_MPTCP, J_END } json_section;

static const char *const json_section_names[] = {NULL, "network", "udp", "fake_dns", "mptcp", NULL};

/*
 * One row per value: both renderers walk this table, in its order, so a counter cannot be in one
 * and missing from the other. The order is the Prometheus one; JSON takes the rows of each
 * section in the same order (JSON objects are unordered: nothing may rely on their key order).
 */
typedef struct metric_row {
  const char *prom;  /* Prometheus name; NULL: in JSON only */
  const char *type;  /* "counter", "gauge", "histogram"; NULL: a further series of the row above */
  const char *help;  /* the # HELP text (with type) */
  const char *label; /* the series' label (direction="up"), or a map row's label name; or NULL */
  json_section sec;
  const char *json; /* the key in its JSON section */
  metric_kind kind;
  size_t off; /* of the value in t2s_metrics_snapshot */
} metric_row;

/* The kind and offset of snapshot field f; a field of another type than the kind reads does
 * not compile. */
#define FIELD(f, T)                                                                                \
  _Generic(((const t2s_metrics_snapshot *)0)->f, T : offsetof(t2s_metrics_snapshot, f))
#define U64(f) MK_U64, FIELD(f, uint64_t)
#define NS(f) MK_NS, FIELD(f, t2s_tstamp)
#define SECONDS(f) MK_SECONDS, FIELD(f, double)
#define STATE(f) MK_STATE, FIELD(f, uint32_t)
#define RECOVERY(f) MK_RECOVERY, FIELD(f, double)
#define STALL(f) MK_STALL, FIELD(f, t2s_tstamp)

static const metric_row metric_rows[] = {
    {"tun2sock_tcp_flows_active", "gauge", "TCP flows open now.", NULL, J_TOP, "tcp_flows_active",
     U64(engine.tcp_flows_active)},
    {"tun2sock_tcp_pending_syn", "gauge", "TCP connection attempts waiting for the proxy.", NULL,
     J_TOP, "tcp_pending_syn", U64(engine.tcp_pending_syn)},
    {"tun2sock_tcp_flows_total", "counter", "TCP flows ever accepted.", NULL, J_TOP,
     "tcp_flows_total", U64(engine.tcp_flows_total)},
    {"tun2sock_tcp_resets_sent_total", "counter", "RSTs sent to clients.", NULL, J_TOP,
     "tcp_resets_sent", U64(engine.tcp_resets_sent)},
    {"tun2sock_tcp_retransmits_total", "counter", "TCP segments retransmitted toward clients.",
     NULL, J_TOP, "tcp_retransmits", U64(engine.tcp_retransmits)},
    {"tun2sock_tcp_challenge_acks_total", "counter",
     "RFC 5961 challenge ACKs sent (blind or stale RST/SYN answered).", NULL, J_TOP,
     "tcp_challenge_acks", U64(engine.tcp_challenge_acks)},
    {"tun2sock_memory_bytes", "gauge", "Heap bytes the engine holds.", NULL, J_TOP, "memory_bytes",
     U64(engine.mem_bytes)},
    {NULL, NULL, NULL, NULL, J_TOP, "memory_peak_bytes", U64(engine.mem_peak_bytes)},
    {"tun2sock_memory_refused_total", "counter",
     "Allocations refused by the memory budget (or out of memory).", NULL, J_TOP, "memory_refused",
     U64(engine.mem_refused)},
    {"tun2sock_udp_sessions_active", "gauge", "UDP sessions open now.", NULL, J_TOP,
     "udp_sessions_active", U64(engine.udp_sessions_active)},
    {"tun2sock_bytes_total", "counter",
     "Payload bytes carried (up: toward the proxy, down: toward the clients).", "direction=\"up\"",
     J_TOP, "bytes_up", U64(engine.bytes_up)},
    {"tun2sock_bytes_total", NULL, NULL, "direction=\"down\"", J_TOP, "bytes_down",
     U64(engine.bytes_down)},
    {"tun2sock_packets_total", "counter",
     "IP packets (in: from the TUN to the engine, out: from the engine to the TUN).",
     "direction=\"in\"", J_TOP, "packets_in", U64(engine.packets_in)},
    {"tun2sock_packets_total", NULL, NULL, "direction=\"out\"", J_TOP, "packets_out",
     U64(engine.packets_out)},
    {"tun2sock_packets_dropped_total", "counter", "Packets dropped, by reason.", "reason", J_END,
     "packets_dropped", MK_DROPS, 0},
    {"tun2sock_icmp_echo_replies_total", "counter",
     "ICMP and ICMPv6 echo requests answered locally.", NULL, J_TOP, "icmp_echo_replies",
     U64(engine.icmp_echo_replies)},
    {"tun2sock_upstream_errors_total", "counter", "Upstream socket errors, by errno name.", "error",
     J_END, "upstream_errors", MK_ERRORS, 0},
    {"tun2sock_upstream_failures_total", "counter",
     "Upstream failures seen by the engine (sockets and proxy replies).", NULL, J_TOP,
     "upstream_failures", U64(engine.upstream_errors)},
    {"tun2sock_upstream_streams_open", "gauge", "Upstream TCP sockets open now.", NULL, J_TOP,
     "upstream_streams_open", U64(upstream_streams)},
    {"tun2sock_upstream_dgram_sockets_open", "gauge", "Upstream UDP sockets open now.", NULL, J_TOP,
     "upstream_dgram_sockets_open", U64(upstream_dgrams)},
    /* The network-change figures (docs/network-change.md, "What is counted"). */
    {"tun2sock_network_changes_total", "counter",
     "Debounced network changes that moved the path to the proxy (or a resume).", NULL, J_TOP,
     "network_changes", U64(network_changes)},
    {"tun2sock_route_updates_total", "counter",
     "Debounced network changes that left the path to the proxy as it was.", NULL, J_TOP,
     "route_updates", U64(route_updates)},
    {"tun2sock_flows_reset_total", "counter", "Flows reset by the network-change policy.", NULL,
     J_TOP, "flows_reset", U64(engine.flows_reset)},
    {"tun2sock_flows_survived_total", "counter",
     "Multipath flows a network change did not reset (--mptcp; docs/mptcp.md).", NULL, J_TOP,
     "flows_survived", U64(engine.flows_survived)},
    {"tun2sock_network_events_total", "counter",
     "Raw events from the network monitor (links, addresses, routes, sleep).", NULL, J_NETWORK,
     "events", U64(engine.net_events)},
    {"tun2sock_resumes_total", "counter", "Resumes from sleep detected.", NULL, J_NETWORK,
     "resumes", U64(engine.resumes)},
    {"tun2sock_syn_refused_offline_total", "counter",
     "New TCP connections refused at once while offline or suspended.", NULL, J_NETWORK,
     "syn_refused_offline", U64(engine.syn_refused_offline)},
    {"tun2sock_network_state", "gauge",
     "The network-change state machine's state (1 for the current one).", "state", J_NETWORK,
     "state", STATE(engine.net_state)},
    {"tun2sock_network_detection_seconds", "gauge",
     "Last change: first monitor event of the burst to the decision (the debounce).", NULL,
     J_NETWORK, "last_detect_ns", NS(engine.last_detect_ns)},
    {"tun2sock_network_reset_seconds", "gauge",
     "Last change that reset flows: wall-clock time spent resetting them.", NULL, J_NETWORK,
     "last_reset_ns", NS(last_reset_ns)},
    {"tun2sock_network_recovery_seconds", "histogram",
     "Decision after a network change to the first new TCP connection established.", NULL,
     J_NETWORK, "recovery_sum_s", RECOVERY(recovery_sum_s)},
    {"tun2sock_network_last_recovery_seconds", "gauge",
     "Last change: decision to the first new TCP connection established.", NULL, J_NETWORK,
     "last_recovery_ns", NS(engine.last_recovery_ns)},
    {"tun2sock_tun_packets_total", "counter", "Packets read from and written to the TUN device.",
     "direction=\"rx\"", J_TOP, "tun_rx_packets", U64(tun_rx_packets)},
    {"tun2sock_tun_packets_total", NULL, NULL, "direction=\"tx\"", J_TOP, "tun_tx_packets",
     U64(tun_tx_packets)},
    {"tun2sock_tun_write_errors_total", "counter", "Failed writes to the TUN.", NULL, J_TOP,
     "tun_write_errors", U64(tun_tx_errors)},
    {"tun2sock_udp_sessions_total", "counter", "UDP sessions ever opened.", NULL, J_UDP,
     "sessions_total", U64(engine.udp_sessions_total)},
    {"tun2sock_udp_datagrams_total", "counter",
     "UDP datagrams carried (up: toward the proxy, down: toward the clients).", "direction=\"up\"",
     J_UDP, "datagrams_up", U64(engine.udp_datagrams_up)},
    {"tun2sock_udp_datagrams_total", NULL, NULL, "direction=\"down\"", J_UDP, "datagrams_down",
     U64(engine.udp_datagrams_down)},
    {"tun2sock_udp_evictions_total", "counter",
     "UDP sessions evicted at the session cap (least recently used, DNS first).", NULL, J_UDP,
     "evictions", U64(engine.udp_evictions)},
    {"tun2sock_udp_timeouts_total", "counter", "UDP sessions ended idle.", NULL, J_UDP, "timeouts",
     U64(engine.udp_timeouts)},
    {"tun2sock_udp_proxy_no_udp", "gauge",
     "1 while the proxy is believed to have no UDP ASSOCIATE.", NULL, J_UDP, "proxy_no_udp",
     U64(engine.udp_proxy_no_udp)},
    {"tun2sock_udp_no_udp_verdicts_total", "counter",
     "Times the proxy was found to have no UDP (REP 7 or a close).", NULL, J_UDP, "no_udp_verdicts",
     U64(engine.udp_no_udp_verdicts)},
    {"tun2sock_udp_dns_tcp_queries_total", "counter",
     "DNS queries carried over TCP because the proxy has no UDP.", NULL, J_UDP, "dns_tcp_queries",
     U64(engine.udp_dns_tcp_queries)},
    {"tun2sock_udp_dns_tcp_answers_total", "counter", "Answers to them returned as UDP.", NULL,
     J_UDP, "dns_tcp_answers", U64(engine.udp_dns_tcp_answers)},
    {"tun2sock_udp_port_unreachable_sent_total", "counter",
     "ICMP port unreachable sent for UDP (no-UDP proxy, refused destination).", NULL, J_UDP,
     "port_unreach_sent", U64(engine.udp_port_unreach_sent)},
    /* DNS queries answered SERVFAIL at once instead of left to the client's timeout
     * (docs/udp.md). */
    {"tun2sock_dns_servfail_total", "counter",
     "DNS queries answered SERVFAIL at once because they could not be carried, by cause.",
     "cause=\"proxy_down\"", J_UDP, "dns_servfail_proxy_down",
     U64(engine.dns_servfail[T2S_DNS_SERVFAIL_PROXY_DOWN])},
    {"tun2sock_dns_servfail_total", NULL, NULL, "cause=\"setup_failed\"", J_UDP,
     "dns_servfail_setup_failed", U64(engine.dns_servfail[T2S_DNS_SERVFAIL_SETUP_FAILED])},
    {"tun2sock_dns_servfail_total", NULL, NULL, "cause=\"queue_full\"", J_UDP,
     "dns_servfail_queue_full", U64(engine.dns_servfail[T2S_DNS_SERVFAIL_QUEUE_FULL])},
    {"tun2sock_dns_servfail_total", NULL, NULL, "cause=\"flushed\"", J_UDP, "dns_servfail_flushed",
     U64(engine.dns_servfail[T2S_DNS_SERVFAIL_FLUSHED])},
    {"tun2sock_dns_servfail_total", NULL, NULL, "cause=\"tcp_upstream\"", J_UDP,
     "dns_servfail_tcp_upstream", U64(engine.dns_servfail[T2S_DNS_SERVFAIL_TCP_UPSTREAM])},
    {"tun2sock_fragments_reassembled_total", "counter",
     "Packets reassembled from client fragments.", NULL, J_UDP, "frag_reassembled",
     U64(engine.frag_reassembled)},
    {"tun2sock_fragments_sent_total", "counter",
     "Fragments sent for packets larger than the TUN MTU.", NULL, J_UDP, "frag_sent",
     U64(engine.frag_sent)},
    /* --fake-dns (docs/fake-dns.md); zero when it is off. */
    {"tun2sock_fake_dns_queries_total", "counter",
     "DNS queries seen by the fake-IP responder, by what became of them.", "result=\"answered\"",
     J_FAKE_DNS, "answered", U64(fake_dns.answered)},
    {"tun2sock_fake_dns_queries_total", NULL, NULL, "result=\"forwarded\"", J_FAKE_DNS, "forwarded",
     U64(fake_dns.forwarded)},
    {"tun2sock_fake_dns_queries_total", NULL, NULL, "result=\"refused\"", J_FAKE_DNS, "refused",
     U64(fake_dns.refused)},
    {"tun2sock_fake_dns_queries_total", NULL, NULL, "result=\"dropped\"", J_FAKE_DNS, "dropped",
     U64(fake_dns.dropped)},
    {"tun2sock_fake_dns_entries", "gauge", "Names in the fake-IP table now.", NULL, J_FAKE_DNS,
     "entries", U64(fake_dns.entries)},
    {"tun2sock_fake_dns_pinned", "gauge", "Names with live flows now (never recycled).", NULL,
     J_FAKE_DNS, "pinned", U64(fake_dns.pinned)},
    {"tun2sock_fake_dns_recycled_total", "counter",
     "Names recycled for a new one (least recently used).", NULL, J_FAKE_DNS, "recycled",
     U64(fake_dns.recycled)},
    {"tun2sock_fake_dns_full_total", "counter",
     "Names refused (SERVFAIL) because every entry had live flows.", NULL, J_FAKE_DNS, "full",
     U64(fake_dns.full)},
    {"tun2sock_fake_dns_flows_total", "counter", "Flows to a pool address carried by name.", NULL,
     J_FAKE_DNS, "flows", U64(fake_dns.flows)},
    {"tun2sock_fake_dns_stale_total", "counter",
     "Flows to a pool address no name holds, refused at once.", NULL, J_FAKE_DNS, "stale",
     U64(fake_dns.stale)},
    /* --mptcp (docs/mptcp.md); zero when it is off. */
    {"tun2sock_mptcp_flows_total", "counter",
     "Upstream streams by what Multipath TCP became (multipath, or fell back to TCP).",
     "path=\"multipath\"", J_MPTCP, "multipath", U64(engine.mptcp_multipath)},
    {"tun2sock_mptcp_flows_total", NULL, NULL, "path=\"fallback\"", J_MPTCP, "fallback",
     U64(engine.mptcp_fallback)},
    {"tun2sock_mptcp_subflows_total", "counter",
     "Subflows of multipath upstreams the kernel added and removed.", "event=\"added\"", J_MPTCP,
     "subflows_added", U64(engine.mptcp_subflows_added)},
    {"tun2sock_mptcp_subflows_total", NULL, NULL, "event=\"removed\"", J_MPTCP, "subflows_removed",
     U64(engine.mptcp_subflows_removed)},
    {"tun2sock_mptcp_survivors_reset_total", "counter",
     "Flows that survived a change but got no bytes for 10 s after it: reset then.", NULL, J_MPTCP,
     "survivors_reset", U64(engine.survivors_reset)},
    {"tun2sock_survived_stall_seconds", "histogram",
     "Flows that survived a network change: their silence from the upstream across it.", NULL,
     J_MPTCP, "survived_stall_sum_ns", STALL(engine.survived_stall_sum_ns)},
    {"tun2sock_uptime_seconds", "gauge", "Seconds since start.", NULL, J_TOP, "uptime_seconds",
     SECONDS(uptime_seconds)},
    /* --config reloads on SIGHUP (docs/config.md). */
    {"tun2sock_config_reloads_total", "counter",
     "SIGHUP reloads of --config: read and applied, or failed (nothing changed).",
     "result=\"applied\"", J_TOP, "config_reloads_applied", U64(reloads_applied)},
    {"tun2sock_config_reloads_total", NULL, NULL, "result=\"failed\"", J_TOP,
     "config_reloads_failed", U64(reloads_failed)},
    {"tun2sock_config_last_reload_successful", "gauge",
     "1 unless the last reload of --config failed.", NULL, J_TOP, "config_last_reload_successful",
     U64(last_reload_ok)},
};

#undef FIELD
#undef U64
#undef NS
#undef SECONDS
#undef STATE
#undef RECOVERY
#undef STALL

static uint64_t u64_at(const t2s_metrics_snapshot *s, size_t off) {
  uint64_t v;
  memcpy(&v, (const char *)s + off, sizeof(v));
  return v;
}

static double double_at(const t2s_metrics_snapshot *s, size_t off) {
  double v;
  memcpy(&v, (const char *)s + off, sizeof(v));
  return v;
}

static uint32_t u32_at(const t2s_metrics_snapshot *s, size_t off) {
  uint32_t v;
  memcpy(&v, (const char *)s + off, sizeof(v));
  return v;
}

/* Entry i of a map row (MK_DROPS, MK_ERRORS): false past its end. */
static bool map_entry(const metric_row *r, const t2s_metrics_snapshot *s, size_t i,
                      const char **pname, uint64_t *pv) {
  if (r->kind == MK_DROPS) {
    if (i + 1 >= T2S_DROP_MAX) {
      return false;
    }
    *pname = t2s_drop_name((int)i + 1);
    *pv = s->engine.drops[i + 1];
    return true;
  }
  if (i >= s->nerror_kinds) {
    return false;
  }
  *pname = s->error_names[i];
  *pv = s->error_counts[i];
  return true;
}

/* A histogram's series (the recovery time, the survivors' stall): cumulative buckets, _sum,
 * _count. */
static void prom_recovery(const metric_row *r, const t2s_metrics_snapshot *s,
                          struct evbuffer *out) {
  const uint64_t *hist =
      r->kind == MK_STALL ? s->engine.survived_stall_hist : s->engine.recovery_hist;
  uint64_t cum = 0;
  for (size_t i = 0; i < T2S_RECOVERY_BUCKETS; i++) {
    cum += hist[i];
    t2s_tstamp b = t2s_engine_recovery_bucket_bound(i);
    if (b == T2S_TSTAMP_MAX) {
      evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", r->prom, (unsigned long long)cum);
    } else {
      evbuffer_add_printf(out, "%s_bucket{le=\"%g\"} %llu\n", r->prom, (double)b / 1e9,
                          (unsigned long long)cum);
    }
  }
  double sum = r->kind == MK_STALL ? (double)u64_at(s, r->off) / 1e9 : double_at(s, r->off);
  evbuffer_add_printf(out, "%s_sum %.6f\n", r->prom, sum);
  evbuffer_add_printf(out, "%s_count %llu\n", r->prom, (unsigned long long)cum);
}

static void prom_row(const metric_row *r, const t2s_metrics_snapshot *s, struct evbuffer *out) {
  if (r->type) {
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", r->prom, r->help, r->prom, r->type);
  }
  const char *name;
  uint64_t v;
  switch (r->kind) {
  case MK_STATE:
    for (size_t i = 0; i < T2S_ARRAY_LEN(state_names); i++) {
      evbuffer_add_printf(out, "%s{%s=\"%s\"} %d\n", r->prom, r->label, state_names[i],
                          u32_at(s, r->off) == i ? 1 : 0);
    }
    return;
  case MK_RECOVERY:
  case MK_STALL:
    prom_recovery(r, s, out);
    return;
  case MK_DROPS:
  case MK_ERRORS:
    for (size_t i = 0; map_entry(r, s, i, &name, &v); i++) {
      evbuffer_add_printf(out, "%s{%s=\"%s\"} %llu\n", r->prom, r->label, name,
                          (unsigned long long)v);
    }
    return;
  default:
    break;
  }
  if (r->label) {
    evbuffer_add_printf(out, "%s{%s}", r->prom, r->label);
  } else {
    evbuffer_add_printf(out, "%s", r->prom);
  }
  if (r->kind == MK_NS) {
    evbuffer_add_printf(out, " %.6f\n", (double)u64_at(s, r->off) / 1e9);
  } else if (r->kind == MK_SECONDS) {
    evbuffer_add_printf(out, " %.3f\n", double_at(s, r->off));
  } else {
    evbuffer_add_printf(out, " %llu\n", (unsigned long long)u64_at(s, r->off));
  }
}

/* The proxies (docs/proxies.md): one series per proxy (label proxy="HOST:PORT" as given). */
static void prom_proxies(const t2s_metrics_snapshot *s, struct evbuffer *out) {
  evbuffer_add_printf(out, "# HELP tun2sock_upstream_proxy_failures_total Proxy handshakes that "
                           "failed, by cause (timeouts included).\n"
                           "# TYPE tun2sock_upstream_proxy_failures_total counter\n");
  for (size_t c = 0; c < T2S_PROXY_CAUSE_COUNT; c++) {
    evbuffer_add_printf(out, "tun2sock_upstream_proxy_failures_total{cause=\"%s\"} %llu\n",
                        t2s_proxy_cause_name((t2s_proxy_cause)c),
                        (unsigned long long)s->engine.upstream_failures[c]);
  }
  if (s->nproxies == 0) {
    return;
  }
  evbuffer_add_printf(out, "# HELP tun2sock_proxy_info The address in use (address=\"\": its "
                           "name does not resolve yet).\n# TYPE tun2sock_proxy_info gauge\n");
  for (size_t i = 0; i < s->nproxies; i++) {
    evbuffer_add_printf(out, "tun2sock_proxy_info{proxy=\"%s\",address=\"%s\"} 1\n",
                        s->proxies[i].name, s->proxies[i].address);
  }
  evbuffer_add_printf(out, "# HELP tun2sock_proxy_bytes_total Payload (TCP and UDP) carried "
                           "through the proxy.\n# TYPE tun2sock_proxy_bytes_total counter\n");
  for (size_t i = 0; i < s->nproxies; i++) {
    evbuffer_add_printf(out,
                        "tun2sock_proxy_bytes_total{proxy=\"%s\",direction=\"up\"} %llu\n"
                        "tun2sock_proxy_bytes_total{proxy=\"%s\",direction=\"down\"} %llu\n",
                        s->proxies[i].name, (unsigned long long)s->proxies[i].bytes_up,
                        s->proxies[i].name, (unsigned long long)s->proxies[i].bytes_down);
  }
  evbuffer_add_printf(out, "# HELP tun2sock_proxy_state The proxy's health state (1 = in it).\n"
                           "# TYPE tun2sock_proxy_state gauge\n");
  for (size_t i = 0; i < s->nproxies; i++) {
    for (uint32_t st = 0; st < T2S_PROXY_STATE_COUNT; st++) {
      evbuffer_add_printf(out, "tun2sock_proxy_state{proxy=\"%s\",state=\"%s\"} %d\n",
                          s->proxies[i].name, t2s_proxy_state_name((t2s_proxy_state)st),
                          s->proxies[i].state == st ? 1 : 0);
    }
  }
  evbuffer_add_printf(out, "# HELP tun2sock_proxy_state_seconds Seconds since the state changed.\n"
                           "# TYPE tun2sock_proxy_state_seconds gauge\n");
  for (size_t i = 0; i < s->nproxies; i++) {
    evbuffer_add_printf(out, "tun2sock_proxy_state_seconds{proxy=\"%s\"} %.3f\n",
                        s->proxies[i].name, s->proxies[i].since_change_s);
  }
  evbuffer_add_printf(out, "# HELP tun2sock_proxy_flows_total Flows sent to the proxy.\n"
                           "# TYPE tun2sock_proxy_flows_total counter\n");
  for (size_t i = 0; i < s->nproxies; i++) {
    evbuffer_add_printf(out, "tun2sock_proxy_flows_total{proxy=\"%s\"} %llu\n", s->proxies[i].name,
                        (unsigned long long)s->proxies[i].flows);
  }
  evbuffer_add_printf(out, "# HELP tun2sock_proxy_failures_total Failed connections and probes by "
                           "cause.\n# TYPE tun2sock_proxy_failures_total counter\n");
  for (size_t i = 0; i < s->nproxies; i++) {
    for (size_t c = 0; c < T2S_PROXY_CAUSE_COUNT; c++) {
      evbuffer_add_printf(out, "tun2sock_proxy_failures_total{proxy=\"%s\",cause=\"%s\"} %llu\n",
                          s->proxies[i].name, t2s_proxy_cause_name((t2s_proxy_cause)c),
                          (unsigned long long)s->proxies[i].failures[c]);
    }
  }
  evbuffer_add_printf(out, "# HELP tun2sock_proxy_downs_total Times the proxy went down.\n"
                           "# TYPE tun2sock_proxy_downs_total counter\n");
  for (size_t i = 0; i < s->nproxies; i++) {
    evbuffer_add_printf(out, "tun2sock_proxy_downs_total{proxy=\"%s\"} %llu\n", s->proxies[i].name,
                        (unsigned long long)s->proxies[i].downs);
  }
}

void t2s_metrics_render_prometheus(const t2s_metrics_snapshot *s, struct evbuffer *out) {
  for (size_t i = 0; i < T2S_ARRAY_LEN(metric_rows); i++) {
    if (metric_rows[i].prom) {
      prom_row(&metric_rows[i], s, out);
    }
  }
  prom_proxies(s, out);
}

/* "upstream_failures_by_cause": {...}; "proxies": [{...}, ...] (with a proxy list). */
static void json_proxies(const t2s_metrics_snapshot *s, struct evbuffer *out) {
  evbuffer_add_printf(out, ",\"upstream_failures_by_cause\":{");
  for (size_t c = 0; c < T2S_PROXY_CAUSE_COUNT; c++) {
    evbuffer_add_printf(out, "%s\"%s\":%llu", c > 0 ? "," : "",
                        t2s_proxy_cause_name((t2s_proxy_cause)c),
                        (unsigned long long)s->engine.upstream_failures[c]);
  }
  evbuffer_add_printf(out, "}");
  if (s->nproxies == 0) {
    return;
  }
  evbuffer_add_printf(out, ",\"proxies\":[");
  for (size_t i = 0; i < s->nproxies; i++) {
    const t2s_metrics_proxy *p = &s->proxies[i];
    evbuffer_add_printf(out,
                        "%s{\"proxy\":\"%s\",\"state\":\"%s\",\"state_seconds\":%.3f,"
                        "\"flows\":%llu,\"downs\":%llu,\"probes\":%llu,",
                        i > 0 ? "," : "", p->name, t2s_proxy_state_name((t2s_proxy_state)p->state),
                        p->since_change_s, (unsigned long long)p->flows,
                        (unsigned long long)p->downs, (unsigned long long)p->probes);
    if (p->address[0]) {
      evbuffer_add_printf(out, "\"address\":\"%s\",", p->address);
    } else {
      evbuffer_add_printf(out, "\"address\":null,");
    }
    evbuffer_add_printf(out, "\"bytes_up\":%llu,\"bytes_down\":%llu,\"lookups\":%llu,",
                        (unsigned long long)p->bytes_up, (unsigned long long)p->bytes_down,
                        (unsigned long long)p->lookups);
    if (p->last_success_ago_s >= 0) {
      evbuffer_add_printf(out, "\"last_success_seconds_ago\":%.3f,", p->last_success_ago_s);
    } else {
      evbuffer_add_printf(out, "\"last_success_seconds_ago\":null,");
    }
    if (p->last_failure_ago_s >= 0) {
      evbuffer_add_printf(out, "\"last_error\":\"%s\",\"last_error_seconds_ago\":%.3f,",
                          t2s_proxy_cause_name((t2s_proxy_cause)p->last_cause),
                          p->last_failure_ago_s);
    } else {
      evbuffer_add_printf(out, "\"last_error\":null,\"last_error_seconds_ago\":null,");
    }
    evbuffer_add_printf(out, "\"failures\":{");
    for (size_t c = 0; c < T2S_PROXY_CAUSE_COUNT; c++) {
      evbuffer_add_printf(out, "%s\"%s\":%llu", c > 0 ? "," : "",
                          t2s_proxy_cause_name((t2s_proxy_cause)c),
                          (unsigned long long)p->failures[c]);
    }
    evbuffer_add_printf(out, "}}");
  }
  evbuffer_add_printf(out, "]");
}

static void json_row(const metric_row *r, const t2s_metrics_snapshot *s, struct evbuffer *out) {
  evbuffer_add_printf(out, "\"%s\":", r->json);
  const char *name;
  uint64_t v;
  switch (r->kind) {
  case MK_U64:
  case MK_NS:
  case MK_STALL:
    evbuffer_add_printf(out, "%llu", (unsigned long long)u64_at(s, r->off));
    break;
  case MK_SECONDS:
    evbuffer_add_printf(out, "%.3f", double_at(s, r->off));
    break;
  case MK_STATE: {
    uint32_t st = u32_at(s, r->off);
    evbuffer_add_printf(out, "\"%s\"", st < T2S_ARRAY_LEN(state_names) ? state_names[st] : "?");
    break;
  }
  case MK_RECOVERY:
    evbuffer_add_printf(out, "%.6f", double_at(s, r->off));
    break;
  case MK_DROPS:
  case MK_ERRORS:
    evbuffer_add_printf(out, "{");
    for (size_t i = 0; map_entry(r, s, i, &name, &v); i++) {
      evbuffer_add_printf(out, "%s\"%s\":%llu", i > 0 ? "," : "", name, (unsigned long long)v);
    }
    evbuffer_add_printf(out, "}");
    break;
  }
}

/* The rows of section sec, each after a comma but the first of the object (*pfirst). */
static void json_rows(json_section sec, const t2s_metrics_snapshot *s, struct evbuffer *out,
                      bool *pfirst) {
  for (size_t i = 0; i < T2S_ARRAY_LEN(metric_rows); i++) {
    if (metric_rows[i].sec == sec && metric_rows[i].json) {
      evbuffer_add_printf(out, "%s", *pfirst ? "" : ",");
      *pfirst = false;
      json_row(&metric_rows[i], s, out);
    }
  }
}

void t2s_metrics_render_json(const t2s_metrics_snapshot *s, struct evbuffer *out) {
  bool first = true;
  evbuffer_add_printf(out, "{");
  json_rows(J_TOP, s, out, &first);
  for (json_section sec = J_NETWORK; sec < J_END; sec++) {
    bool sfirst = true;
    evbuffer_add_printf(out, "%s\"%s\":{", first ? "" : ",", json_section_names[sec]);
    first = false;
    json_rows(sec, s, out, &sfirst);
    evbuffer_add_printf(out, "}");
  }
  json_rows(J_END, s, out, &first);
  json_proxies(s, out);
  evbuffer_add_printf(out, "}\n");
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
                    t2s_metrics_collect_fn collect, void *arg, int *perrno) {
  *perrno = ENOMEM;
  t2s_metrics *m = calloc(1, sizeof(*m));
  if (!m) {
    return T2S_ERR_NOMEM;
  }
  m->collect = collect;
  m->arg = arg;
  m->http = evhttp_new(base);
  if (!m->http) {
    free(m);
    return T2S_ERR_NOMEM;
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
    *perrno = err;
    return t2s_err_from_errno(err);
  }
  *perrno = 0;
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
