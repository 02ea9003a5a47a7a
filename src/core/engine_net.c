/*
 * engine_net.c: the network-change state machine (docs/network-change.md). Work in progress:
 * the decisions land in the next commit.
 */
#include "engine_internal.h"

static const char *const net_state_names[] = {"UP", "SETTLING", "NO_ROUTE", "SUSPENDED"};

const char *t2s_net_state_name(t2s_net_state s) {
  return (size_t)s < T2S_ARRAY_LEN(net_state_names) ? net_state_names[s] : "?";
}

void t2s_engine_set_monitor(t2s_engine *e, const t2s_monitor *monitor) {
  (void)e;
  (void)monitor;
}

void t2s_engine_network_event(t2s_engine *e, const t2s_net_event *ev, t2s_tstamp now) {
  (void)ev;
  e->stats.net_events++;
  (void)now;
}

t2s_net_state t2s_engine_net_state(const t2s_engine *e) {
  return (t2s_net_state)e->stats.net_state;
}

const t2s_egress *t2s_engine_get_egress(const t2s_engine *e) {
  return &e->cfg.egress;
}

size_t t2s_engine_reset_all(t2s_engine *e, t2s_tstamp now) {
  (void)e;
  (void)now;
  return 0;
}
