/* test_engine_net.c: the network-change state machine (docs/network-change.md), driven with a
 * fake device, upstream and monitor: flows are opened through the SOCKS5 handshake, then the
 * world changes and each test checks who got a RST, when, and where new flows go. */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "engine_fake.h"
#include "packet.h"
#include "test_util.h"

static engine_fake F;
static t2s_engine *E;
static bool icmp_unreach_on_refuse;
static uint64_t memory_budget;

static void set_route(uint32_t ifindex, const char *ifname, const char *src, bool local) {
  engine_fake_set_route(&F, ifindex, ifname, src, local);
}

static void setup(t2s_netchange_policy policy) {
  engine_fake_init(&F);
  set_route(2, "wlan0", "192.0.2.10", false);
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.proxy_kind = T2S_PROXY_SOCKS5;
  t2s_addr_parse("198.51.100.200:1080", &cfg.proxy);
  cfg.on_network_change = policy;
  cfg.icmp_unreach_on_refuse = icmp_unreach_on_refuse;
  if (memory_budget) {
    cfg.memory_budget = memory_budget;
  }
  CU_ASSERT_EQUAL_FATAL(t2s_engine_new(&E, &cfg, &F.dev, &F.up, NULL), 0);
  t2s_engine_set_monitor(E, &F.mon);
}

static void teardown(void) {
  t2s_engine_del(E);
  E = NULL;
}

static void send_syn(uint16_t sport, t2s_tstamp now) {
  t2s_addr src, dst;
  t2s_addr_parse("198.18.0.2", &src);
  t2s_addr_parse("203.0.113.10:80", &dst);
  src.port = sport;
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  o.has_mss = true;
  o.mss = 1460;
  uint8_t buf[128];
  t2s_ssize n = t2s_build_tcp(buf, sizeof(buf), &src, &dst, 1000u * sport, 0, T2S_TCP_SYN, 65535,
                              &o, NULL, 0, NULL, 0);
  CU_ASSERT_FATAL(n > 0);
  t2s_engine_input(E, buf, (size_t)n, now);
}

/* Answers the last stream opened as the proxy would: connect, SOCKS5 method, then reply. */
static void answer_last_stream(const uint8_t *reply, size_t replylen, t2s_tstamp now) {
  CU_ASSERT_FATAL(F.nstreams > 0);
  uint64_t id = F.streams[F.nstreams - 1].id;
  static const uint8_t method[] = {5, 0};
  t2s_engine_stream_opened(E, id, 0, now);
  t2s_engine_stream_recv(E, id, method, sizeof(method), now);
  t2s_engine_stream_recv(E, id, reply, replylen, now);
}

/* Completes the upstream side of the last stream opened with a success reply. */
static void complete_last_stream(t2s_tstamp now) {
  static const uint8_t reply[] = {5, 0, 0, 1, 198, 51, 100, 200, 0x04, 0x38};
  answer_last_stream(reply, sizeof(reply), now);
}

/* Finds the last packet sent to client port sport; returns its TCP flags or -1. */
static int last_flags_to(uint16_t sport, size_t from) {
  int flags = -1;
  for (size_t i = from; i < F.npkts; i++) {
    t2s_pkt p;
    if (t2s_pkt_parse(F.pkts[i].data, F.pkts[i].len, &p) == T2S_DROP_NONE &&
        p.proto == T2S_IPPROTO_TCP && p.dst.port == sport) {
      flags = p.l4.tcp.flags;
    }
  }
  return flags;
}

/* Opens a flow and completes the client's side of the handshake (the ACK of the SYN-ACK). */
static void open_flow(uint16_t sport, t2s_tstamp now) {
  size_t mark = F.npkts;
  send_syn(sport, now);
  complete_last_stream(now);
  CU_ASSERT_EQUAL_FATAL(last_flags_to(sport, mark) & (T2S_TCP_SYN | T2S_TCP_ACK),
                        T2S_TCP_SYN | T2S_TCP_ACK);
  t2s_pkt synack;
  CU_ASSERT_EQUAL_FATAL(t2s_pkt_parse(F.pkts[F.npkts - 1].data, F.pkts[F.npkts - 1].len, &synack),
                        0);
  uint8_t buf[128];
  t2s_ssize n = t2s_build_tcp(buf, sizeof(buf), &synack.dst, &synack.src, 1000u * sport + 1,
                              synack.l4.tcp.seq + 1, T2S_TCP_ACK, 65535, NULL, NULL, 0, NULL, 0);
  CU_ASSERT_FATAL(n > 0);
  t2s_engine_input(E, buf, (size_t)n, now);
}

static void net_event(t2s_net_event_type type, uint32_t ifindex, t2s_tstamp now) {
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = type;
  ev.ifindex = ifindex;
  ev.family = T2S_AF_INET;
  t2s_engine_network_event(E, &ev, now);
}

static void run_until(t2s_tstamp t) {
  for (int i = 0; i < 1000; i++) {
    t2s_tstamp x = t2s_engine_get_expiry(E);
    if (x > t) {
      break;
    }
    t2s_engine_handle_expiry(E, x);
  }
}

static t2s_engine_stats stats(void) {
  t2s_engine_stats st;
  t2s_engine_get_stats(E, &st);
  return st;
}

static const t2s_tstamp MS = T2S_MILLISECONDS;

/* A reset goes through the flow table to every kind: a TCP session (RST, upstream aborted)
 * and a UDP ASSOCIATE session with both of its ids (control stream and datagram socket),
 * counted once. */
static void test_reset_all_ends_every_kind_once(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  size_t tcp_stream = F.nstreams - 1;
  t2s_addr src, dst;
  t2s_addr_parse("198.18.0.2:5353", &src);
  t2s_addr_parse("203.0.113.20:7000", &dst);
  uint8_t buf[128];
  t2s_ssize n = t2s_build_udp(buf, sizeof(buf), &src, &dst, (const uint8_t *)"q", 1);
  CU_ASSERT_FATAL(n > 0);
  t2s_engine_input(E, buf, (size_t)n, 10 * MS);
  size_t ctl_stream = F.nstreams - 1;
  CU_ASSERT_NOT_EQUAL(ctl_stream, tcp_stream);
  static const uint8_t assoc_reply[] = {5, 0, 0, 1, 198, 51, 100, 200, 0x04, 0x38};
  answer_last_stream(assoc_reply, sizeof(assoc_reply), 10 * MS);
  CU_ASSERT_EQUAL_FATAL(F.ndgrams, 1); /* the session holds two ids now */
  CU_ASSERT_EQUAL(stats().udp_sessions_active, 1);
  size_t mark = F.npkts;
  CU_ASSERT_EQUAL(t2s_engine_reset_all(E, 20 * MS), 2);
  CU_ASSERT_EQUAL(stats().flows_reset, 2);
  CU_ASSERT(last_flags_to(40001, mark) & T2S_TCP_RST);
  CU_ASSERT(F.streams[tcp_stream].closed);
  CU_ASSERT(F.streams[ctl_stream].closed);
  CU_ASSERT(F.dgrams[0].closed);
  CU_ASSERT_EQUAL(stats().udp_sessions_active, 0);
  CU_ASSERT_EQUAL(stats().tcp_flows_active, 0);
  /* Their ids are gone: late completions for them change nothing. */
  t2s_engine_dgram_recv(E, F.dgrams[0].id, (const uint8_t *)"x", 1, 30 * MS);
  t2s_engine_stream_eof(E, F.streams[ctl_stream].id, 30 * MS);
  CU_ASSERT_EQUAL(stats().udp_datagrams_down, 0);
  CU_ASSERT_EQUAL(t2s_engine_reset_all(E, 40 * MS), 0);
  teardown();
}

static void test_flap_that_ends_where_it_started_resets_nothing(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  size_t mark = F.npkts;
  net_event(T2S_NET_LINK_DOWN, 2, 100 * MS);
  net_event(T2S_NET_LINK_UP, 2, 300 * MS);
  CU_ASSERT_EQUAL(t2s_engine_net_state(E), T2S_NET_STATE_SETTLING);
  CU_ASSERT_EQUAL(t2s_engine_get_expiry(E), 800 * MS); /* extended by the second event */
  run_until(900 * MS);
  CU_ASSERT_EQUAL(t2s_engine_net_state(E), T2S_NET_STATE_UP);
  CU_ASSERT_EQUAL(stats().route_updates, 1);
  CU_ASSERT_EQUAL(stats().network_changes, 0);
  CU_ASSERT_EQUAL(stats().flows_reset, 0);
  CU_ASSERT_EQUAL(last_flags_to(40001, mark), -1);
  teardown();
}

static void test_new_default_interface_resets_affected_flows_once(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  open_flow(40002, 0);
  size_t mark = F.npkts;
  net_event(T2S_NET_DEFAULT_ROUTE_CHANGED, 3, 1000 * MS);
  set_route(3, "eth0", "198.51.100.10", false);
  net_event(T2S_NET_ROUTE_CHANGED, 3, 1100 * MS);
  run_until(1599 * MS);
  CU_ASSERT_EQUAL(stats().flows_reset, 0); /* still settling */
  run_until(1600 * MS);
  CU_ASSERT_EQUAL(stats().flows_reset, 2);
  CU_ASSERT_EQUAL(stats().network_changes, 1);
  CU_ASSERT(last_flags_to(40001, mark) & T2S_TCP_RST);
  CU_ASSERT(last_flags_to(40002, mark) & T2S_TCP_RST);
  CU_ASSERT_EQUAL(stats().last_detect_ns, 600 * MS);
  CU_ASSERT_STRING_EQUAL(t2s_engine_get_egress(E)->ifname, "eth0");
  /* A new flow leaves through the new egress, and its success is the recovery time. */
  open_flow(40003, 1700 * MS);
  CU_ASSERT_EQUAL(F.streams[F.nstreams - 1].egress.ifindex, 3);
  CU_ASSERT_EQUAL(stats().tcp_flows_active, 1);
  teardown();
}

static void test_unaffected_flows_keep_running(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  /* The default route moves, but the proxy is still reached over the same LAN interface. */
  net_event(T2S_NET_DEFAULT_ROUTE_CHANGED, 7, 10 * MS);
  size_t mark = F.npkts;
  run_until(2 * T2S_SECONDS);
  CU_ASSERT_EQUAL(stats().flows_reset, 0);
  CU_ASSERT_EQUAL(stats().route_updates, 1);
  CU_ASSERT_EQUAL(last_flags_to(40001, mark), -1);
  teardown();
}

static void test_no_route_refuses_new_flows_at_once(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  F.route_rv = T2S_ERR_UNREACHABLE;
  net_event(T2S_NET_LINK_DOWN, 2, 10 * MS);
  run_until(T2S_SECONDS);
  CU_ASSERT_EQUAL(t2s_engine_net_state(E), T2S_NET_STATE_NO_ROUTE);
  CU_ASSERT_EQUAL(stats().flows_reset, 1);
  size_t before = F.nstreams;
  size_t mark = F.npkts;
  send_syn(40002, 2 * T2S_SECONDS);
  CU_ASSERT(last_flags_to(40002, mark) & T2S_TCP_RST);
  CU_ASSERT_EQUAL(F.nstreams, before); /* no upstream attempted */
  CU_ASSERT_EQUAL(stats().syn_refused_offline, 1);
  /* The route comes back elsewhere: UP again, new flows work through it. */
  set_route(3, "eth0", "198.51.100.10", false);
  net_event(T2S_NET_LINK_UP, 3, 3 * T2S_SECONDS);
  run_until(4 * T2S_SECONDS);
  CU_ASSERT_EQUAL(t2s_engine_net_state(E), T2S_NET_STATE_UP);
  open_flow(40003, 4 * T2S_SECONDS);
  CU_ASSERT_EQUAL(F.streams[F.nstreams - 1].egress.ifindex, 3);
  teardown();
}

static void test_resume_resets_every_flow_at_once(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  open_flow(40002, 0);
  net_event(T2S_NET_PAUSED, 0, 10 * MS);
  CU_ASSERT_EQUAL(t2s_engine_net_state(E), T2S_NET_STATE_SUSPENDED);
  size_t mark = F.npkts;
  send_syn(40009, 20 * MS); /* asleep: refused at once */
  CU_ASSERT(last_flags_to(40009, mark) & T2S_TCP_RST);
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = T2S_NET_RESUMED;
  ev.slept_ns = 30 * T2S_SECONDS;
  t2s_engine_network_event(E, &ev, 50 * MS);
  CU_ASSERT_EQUAL(stats().flows_reset, 2); /* at the resume itself, no debounce */
  CU_ASSERT(last_flags_to(40001, mark) & T2S_TCP_RST);
  CU_ASSERT(last_flags_to(40002, mark) & T2S_TCP_RST);
  CU_ASSERT_EQUAL(stats().resumes, 1);
  run_until(T2S_SECONDS);
  CU_ASSERT_EQUAL(t2s_engine_net_state(E), T2S_NET_STATE_UP);
  teardown();
}

static void test_local_proxy_default_change_resets_everything(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  set_route(1, "lo", "127.0.0.1", true);
  t2s_engine_set_monitor(E, &F.mon);
  CU_ASSERT_EQUAL(t2s_engine_get_egress(E)->ifindex, 0); /* local proxy: unbound */
  open_flow(40001, 0);
  net_event(T2S_NET_DEFAULT_ROUTE_CHANGED, 3, 10 * MS);
  run_until(T2S_SECONDS);
  CU_ASSERT_EQUAL(stats().flows_reset, 1);
  CU_ASSERT_EQUAL(stats().network_changes, 1);
  teardown();
}

static void test_policy_none_keeps_flows_but_moves_the_egress(void) {
  setup(T2S_NETCHANGE_NONE);
  open_flow(40001, 0);
  set_route(3, "eth0", "198.51.100.10", false);
  net_event(T2S_NET_ROUTE_CHANGED, 3, 10 * MS);
  run_until(T2S_SECONDS);
  CU_ASSERT_EQUAL(stats().flows_reset, 0);
  CU_ASSERT_EQUAL(stats().network_changes, 1);
  CU_ASSERT_EQUAL(t2s_engine_get_egress(E)->ifindex, 3);
  teardown();
}

/* ---- Multipath TCP (docs/mptcp.md): what the connector reports, and the policy ---- */

static uint64_t last_stream_id(void) {
  return F.streams[F.nstreams - 1].id;
}

static void test_multipath_reports_are_counted(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  uint64_t a = last_stream_id();
  t2s_engine_stream_multipath(E, a, T2S_STREAM_MULTIPATH, 1, 10 * MS);
  CU_ASSERT_EQUAL(stats().mptcp_multipath, 1);
  CU_ASSERT_EQUAL(stats().mptcp_subflows_added, 0); /* one subflow: the initial one */
  t2s_engine_stream_multipath(E, a, T2S_STREAM_MULTIPATH, 3, 20 * MS);
  t2s_engine_stream_multipath(E, a, T2S_STREAM_MULTIPATH, 2, 30 * MS);
  CU_ASSERT_EQUAL(stats().mptcp_multipath, 1); /* one stream, counted once */
  CU_ASSERT_EQUAL(stats().mptcp_subflows_added, 2);
  CU_ASSERT_EQUAL(stats().mptcp_subflows_removed, 1);
  open_flow(40002, 40 * MS);
  t2s_engine_stream_multipath(E, last_stream_id(), T2S_STREAM_FALLBACK, 0, 50 * MS);
  CU_ASSERT_EQUAL(stats().mptcp_fallback, 1);
  open_flow(40003, 60 * MS); /* joined before the first report: counted as added */
  t2s_engine_stream_multipath(E, last_stream_id(), T2S_STREAM_MULTIPATH, 2, 70 * MS);
  CU_ASSERT_EQUAL(stats().mptcp_multipath, 2);
  CU_ASSERT_EQUAL(stats().mptcp_subflows_added, 3);
  t2s_engine_stream_multipath(E, 999999, T2S_STREAM_MULTIPATH, 1, 60 * MS); /* unknown id */
  CU_ASSERT_EQUAL(stats().mptcp_multipath, 2);
  teardown();
}

/* Wi-Fi => Ethernet: the multipath flow is spared and counted as survived, its stall measured
 * from its last bytes before the change to its first bytes after; the fallen-back flow and the
 * plain one are reset as always. */
static void test_multipath_flow_survives_a_change_of_path(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  uint64_t mp = last_stream_id();
  size_t mp_idx = F.nstreams - 1;
  t2s_engine_stream_multipath(E, mp, T2S_STREAM_MULTIPATH, 2, 0);
  open_flow(40002, 0);
  t2s_engine_stream_multipath(E, last_stream_id(), T2S_STREAM_FALLBACK, 0, 0);
  open_flow(40003, 0); /* plain TCP: nothing reported */
  t2s_engine_stream_recv(E, mp, (const uint8_t *)"abcd", 4, 900 * MS);
  size_t mark = F.npkts;
  net_event(T2S_NET_LINK_DOWN, 2, 1000 * MS);
  set_route(3, "eth0", "198.51.100.10", false);
  run_until(1600 * MS);
  CU_ASSERT_EQUAL(stats().network_changes, 1);
  CU_ASSERT_EQUAL(stats().flows_reset, 2);
  CU_ASSERT_EQUAL(stats().flows_survived, 1);
  CU_ASSERT(last_flags_to(40002, mark) & T2S_TCP_RST);
  CU_ASSERT(last_flags_to(40003, mark) & T2S_TCP_RST);
  CU_ASSERT(!(last_flags_to(40001, mark) & T2S_TCP_RST));
  CU_ASSERT(!F.streams[mp_idx].closed);
  CU_ASSERT_EQUAL(stats().tcp_flows_active, 1);
  /* Bytes flow again 800 ms after the last ones before the change: the stall. */
  uint64_t hist0[T2S_RECOVERY_BUCKETS];
  memcpy(hist0, stats().survived_stall_hist, sizeof(hist0));
  CU_ASSERT_EQUAL(stats().survived_stall_sum_ns, 0);
  t2s_engine_stream_recv(E, mp, (const uint8_t *)"efgh", 4, 1700 * MS);
  CU_ASSERT_EQUAL(stats().survived_stall_sum_ns, 800 * MS);
  CU_ASSERT_EQUAL(stats().survived_stall_hist[5], 1); /* (500 ms, 1 s] */
  t2s_engine_stream_recv(E, mp, (const uint8_t *)"ijkl", 4, 1800 * MS);
  CU_ASSERT_EQUAL(stats().survived_stall_sum_ns, 800 * MS); /* measured once */
  CU_ASSERT_EQUAL(stats().bytes_down, 12);                  /* all delivered */
  teardown();
}

/* A survivor whose bytes came back during the debounce: its stall is the gap across the
 * start of the burst, counted at the decision. */
static void test_survivor_stall_measured_when_bytes_resumed_before_the_decision(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  uint64_t mp = last_stream_id();
  t2s_engine_stream_multipath(E, mp, T2S_STREAM_MULTIPATH, 2, 0);
  t2s_engine_stream_recv(E, mp, (const uint8_t *)"a", 1, 950 * MS);
  net_event(T2S_NET_LINK_DOWN, 2, 1000 * MS);
  set_route(3, "eth0", "198.51.100.10", false);
  t2s_engine_stream_recv(E, mp, (const uint8_t *)"b", 1, 1150 * MS);
  t2s_engine_stream_recv(E, mp, (const uint8_t *)"c", 1, 1160 * MS);
  run_until(1600 * MS);
  CU_ASSERT_EQUAL(stats().flows_survived, 1);
  CU_ASSERT_EQUAL(stats().survived_stall_sum_ns, 200 * MS);
  CU_ASSERT_EQUAL(stats().survived_stall_hist[3], 1); /* (100 ms, 250 ms] */
  teardown();
}

/* A survivor that was receiving and gets nothing for 10 s after the decision has no working
 * subflow left (MPTCP sockets have no TCP_USER_TIMEOUT): reset then, counted; one whose bytes
 * came back is kept. */
static void test_silent_survivor_is_reset_after_the_grace(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  uint64_t dead = last_stream_id();
  size_t dead_idx = F.nstreams - 1;
  t2s_engine_stream_multipath(E, dead, T2S_STREAM_MULTIPATH, 2, 0);
  open_flow(40002, 0);
  uint64_t alive = last_stream_id();
  t2s_engine_stream_multipath(E, alive, T2S_STREAM_MULTIPATH, 2, 0);
  t2s_engine_stream_recv(E, dead, (const uint8_t *)"a", 1, 900 * MS);
  t2s_engine_stream_recv(E, alive, (const uint8_t *)"a", 1, 900 * MS);
  net_event(T2S_NET_LINK_DOWN, 2, 1000 * MS);
  set_route(3, "eth0", "198.51.100.10", false);
  run_until(1600 * MS);
  CU_ASSERT_EQUAL(stats().flows_survived, 2);
  CU_ASSERT_EQUAL(t2s_engine_get_expiry(E) <= 11500 * MS, true);
  t2s_engine_stream_recv(E, alive, (const uint8_t *)"b", 1, 2 * T2S_SECONDS);
  size_t mark = F.npkts;
  run_until(11499 * MS);
  CU_ASSERT_EQUAL(stats().flows_reset, 0);
  run_until(11500 * MS);
  CU_ASSERT_EQUAL(stats().flows_reset, 1);
  CU_ASSERT_EQUAL(stats().survivors_reset, 1);
  CU_ASSERT(last_flags_to(40001, mark) & T2S_TCP_RST);
  CU_ASSERT(!(last_flags_to(40002, mark) & T2S_TCP_RST));
  CU_ASSERT(F.streams[dead_idx].closed);
  CU_ASSERT_EQUAL(stats().tcp_flows_active, 1);
  teardown();
}

/* An idle multipath flow survives too, but has no stall to measure. */
static void test_idle_survivor_has_no_stall(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  uint64_t mp = last_stream_id();
  t2s_engine_stream_multipath(E, mp, T2S_STREAM_MULTIPATH, 2, 0);
  net_event(T2S_NET_LINK_DOWN, 2, 10 * T2S_SECONDS);
  set_route(3, "eth0", "198.51.100.10", false);
  run_until(11 * T2S_SECONDS);
  CU_ASSERT_EQUAL(stats().flows_survived, 1);
  t2s_engine_stream_recv(E, mp, (const uint8_t *)"a", 1, 12 * T2S_SECONDS);
  CU_ASSERT_EQUAL(stats().survived_stall_sum_ns, 0);
  teardown();
}

/* No route to the proxy at all: no subflow can survive; a resume resets whatever the upstream;
 * reset-all resets every flow; a flap back spares nothing and counts nothing. */
static void test_multipath_flows_reset_without_route_on_resume_and_reset_all(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  t2s_engine_stream_multipath(E, last_stream_id(), T2S_STREAM_MULTIPATH, 2, 0);
  F.route_rv = T2S_ERR_UNREACHABLE;
  net_event(T2S_NET_LINK_DOWN, 2, 10 * MS);
  run_until(T2S_SECONDS);
  CU_ASSERT_EQUAL(t2s_engine_net_state(E), T2S_NET_STATE_NO_ROUTE);
  CU_ASSERT_EQUAL(stats().flows_reset, 1);
  CU_ASSERT_EQUAL(stats().flows_survived, 0);
  teardown();

  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  t2s_engine_stream_multipath(E, last_stream_id(), T2S_STREAM_MULTIPATH, 2, 0);
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = T2S_NET_RESUMED;
  ev.slept_ns = 3600 * T2S_SECONDS;
  t2s_engine_network_event(E, &ev, 50 * MS);
  run_until(T2S_SECONDS);
  CU_ASSERT_EQUAL(stats().flows_reset, 1);
  CU_ASSERT_EQUAL(stats().flows_survived, 0);
  teardown();

  setup(T2S_NETCHANGE_RESET_ALL);
  open_flow(40001, 0);
  t2s_engine_stream_multipath(E, last_stream_id(), T2S_STREAM_MULTIPATH, 2, 0);
  set_route(3, "eth0", "198.51.100.10", false);
  net_event(T2S_NET_ROUTE_CHANGED, 3, 10 * MS);
  run_until(T2S_SECONDS);
  CU_ASSERT_EQUAL(stats().flows_reset, 1);
  CU_ASSERT_EQUAL(stats().flows_survived, 0);
  teardown();

  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  t2s_engine_stream_multipath(E, last_stream_id(), T2S_STREAM_MULTIPATH, 2, 0);
  net_event(T2S_NET_LINK_DOWN, 2, 100 * MS);
  net_event(T2S_NET_LINK_UP, 2, 300 * MS);
  run_until(T2S_SECONDS);
  CU_ASSERT_EQUAL(stats().route_updates, 1);
  CU_ASSERT_EQUAL(stats().flows_reset, 0);
  CU_ASSERT_EQUAL(stats().flows_survived, 0);
  teardown();
}

/* With icmp_unreach_on_refuse, a REP 4 answer becomes an ICMP host unreachable quoting the
 * client's SYN; without it, a RST. */
static void refuse_with_rep4(bool icmp) {
  icmp_unreach_on_refuse = icmp;
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  icmp_unreach_on_refuse = false;
  size_t mark = F.npkts;
  send_syn(40001, 0);
  static const uint8_t rep4[] = {5, 4, 0, 1, 0, 0, 0, 0, 0, 0};
  answer_last_stream(rep4, sizeof(rep4), 0);
  CU_ASSERT_EQUAL_FATAL(F.npkts, mark + 1);
  t2s_pkt p;
  CU_ASSERT_EQUAL_FATAL(t2s_pkt_parse(F.pkts[mark].data, F.pkts[mark].len, &p), 0);
  if (icmp) {
    CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_ICMP);
    CU_ASSERT_EQUAL(p.l4.icmp.type, 3);
    CU_ASSERT_EQUAL(p.l4.icmp.code, 1);
    char buf[64];
    CU_ASSERT_STRING_EQUAL(t2s_addr_format(&p.src, false, buf, sizeof(buf)), "203.0.113.10");
    /* The quote holds the client's SYN: its ports sit 28 bytes into the ICMP message. */
    CU_ASSERT(p.payload_len >= 28);
    CU_ASSERT_EQUAL(t2s_get16(p.payload + 20), 40001);
  } else {
    CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_TCP);
    CU_ASSERT(p.l4.tcp.flags & T2S_TCP_RST);
  }
  CU_ASSERT_EQUAL(stats().tcp_flows_active, 0);
  CU_ASSERT_EQUAL(stats().tcp_pending_syn, 0);
  teardown();
}

/* Past the memory budget a new SYN gets a RST (never a silent drop), established flows live
 * on, and a SYN is accepted again once memory is freed. */
static void test_memory_budget_refuses_new_syns_with_rst(void) {
  /* One flow carrying a download (its send ring is allocated by the first byte): what it
   * holds at its peak sets the budget, with less room left than a new SYN needs. */
  static const uint8_t down[100] = {1};
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  t2s_engine_stats st0 = stats();
  open_flow(40001, 0);
  t2s_engine_stream_recv(E, F.streams[0].id, down, sizeof(down), 0);
  uint64_t budget = stats().mem_peak_bytes + 256;
  teardown();
  memory_budget = budget;
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  memory_budget = 0;
  open_flow(40001, 0);
  CU_ASSERT(t2s_engine_stream_recv(E, F.streams[0].id, down, sizeof(down), 0) == sizeof(down));
  size_t mark = F.npkts;
  send_syn(40002, 10 * MS);
  CU_ASSERT(last_flags_to(40002, mark) & T2S_TCP_RST);
  CU_ASSERT(stats().mem_refused > 0);
  CU_ASSERT(stats().drops[T2S_DROP_TCP_FLOW_LIMIT] == 1);
  CU_ASSERT_EQUAL(stats().tcp_flows_active, 1); /* the first flow lives on */
  CU_ASSERT(stats().mem_bytes <= budget);
  CU_ASSERT(st0.mem_bytes < budget);
  teardown();
}

/* While settling, a new flow leaves the way the kernel routes to the proxy now; when the burst
 * ends back where it started, only the flow opened on the short-lived path is reset. */
static void test_new_flows_follow_the_route_while_settling(void) {
  setup(T2S_NETCHANGE_RESET_AFFECTED);
  open_flow(40001, 0);
  set_route(3, "eth0", "198.51.100.10", false);
  net_event(T2S_NET_ROUTE_CHANGED, 3, 100 * MS);
  open_flow(40002, 200 * MS);
  CU_ASSERT_EQUAL(F.streams[F.nstreams - 1].egress.ifindex, 3);
  set_route(2, "wlan0", "192.0.2.10", false);
  net_event(T2S_NET_ROUTE_CHANGED, 2, 300 * MS);
  size_t mark = F.npkts;
  run_until(T2S_SECONDS);
  CU_ASSERT_EQUAL(stats().route_updates, 1);
  CU_ASSERT_EQUAL(stats().flows_reset, 1);
  CU_ASSERT(last_flags_to(40002, mark) & T2S_TCP_RST);
  CU_ASSERT_EQUAL(last_flags_to(40001, mark), -1);
  CU_ASSERT_EQUAL(t2s_engine_get_egress(E)->ifindex, 2);
  teardown();
}

static void test_rep4_is_a_rst_by_default(void) {
  refuse_with_rep4(false);
}

static void test_rep4_is_icmp_unreachable_when_configured(void) {
  refuse_with_rep4(true);
}

int t2s_test_register_engine_net(void) {
  CU_pSuite s = CU_add_suite("engine_net", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "reset_all ends every kind once", test_reset_all_ends_every_kind_once) ||
      !CU_add_test(s, "flap ending where it started resets nothing",
                   test_flap_that_ends_where_it_started_resets_nothing) ||
      !CU_add_test(s, "new default interface resets affected flows once",
                   test_new_default_interface_resets_affected_flows_once) ||
      !CU_add_test(s, "unaffected flows keep running", test_unaffected_flows_keep_running) ||
      !CU_add_test(s, "no route refuses new flows at once",
                   test_no_route_refuses_new_flows_at_once) ||
      !CU_add_test(s, "resume resets every flow at once", test_resume_resets_every_flow_at_once) ||
      !CU_add_test(s, "local proxy: default change resets everything",
                   test_local_proxy_default_change_resets_everything) ||
      !CU_add_test(s, "policy none keeps flows, moves the egress",
                   test_policy_none_keeps_flows_but_moves_the_egress) ||
      !CU_add_test(s, "REP 4 is a RST by default", test_rep4_is_a_rst_by_default) ||
      !CU_add_test(s, "new flows follow the route while settling",
                   test_new_flows_follow_the_route_while_settling) ||
      !CU_add_test(s, "memory budget refuses new SYNs with RST",
                   test_memory_budget_refuses_new_syns_with_rst) ||
      !CU_add_test(s, "multipath: reports are counted", test_multipath_reports_are_counted) ||
      !CU_add_test(s, "multipath: a flow survives a change of path",
                   test_multipath_flow_survives_a_change_of_path) ||
      !CU_add_test(s, "multipath: stall measured when bytes resumed before the decision",
                   test_survivor_stall_measured_when_bytes_resumed_before_the_decision) ||
      !CU_add_test(s, "multipath: a silent survivor is reset after the grace",
                   test_silent_survivor_is_reset_after_the_grace) ||
      !CU_add_test(s, "multipath: an idle survivor has no stall",
                   test_idle_survivor_has_no_stall) ||
      !CU_add_test(s, "multipath: reset without route, on resume, with reset-all",
                   test_multipath_flows_reset_without_route_on_resume_and_reset_all) ||
      !CU_add_test(s, "REP 4 is ICMP unreachable when configured",
                   test_rep4_is_icmp_unreachable_when_configured)) {
    return -1;
  }
  return 0;
}
