/*
 * engine_net.c: the network-change state machine (docs/network-change.md).
 *
 * Monitor events open or extend a debounce (SETTLING). When it ends, the engine asks the
 * monitor how the proxy is reached now (route_get with our mark, as `ip route get` does) and
 * compares that with the path in use before the burst: a burst that ends where it started
 * resets nothing (a route update); one that ends elsewhere resets once. PAUSED suspends at
 * once; RESUMED resets every flow at once (what was open before a sleep is dead) and settles.
 */
#include <string.h>

#include "engine_internal.h"

static const char *const net_state_names[] = {"UP", "SETTLING", "NO_ROUTE", "SUSPENDED"};

const char *t2s_net_state_name(t2s_net_state s) {
  return (size_t)s < T2S_ARRAY_LEN(net_state_names) ? net_state_names[s] : "?";
}

static void set_state(t2s_engine *e, t2s_net_state s, t2s_tstamp now) {
  if (e->net.state == s) {
    return;
  }
  e->net.state = s;
  e->stats.net_state = (uint32_t)s;
  t2s_engine_emit(e, T2S_EV_NET_STATE, now, 0, NULL, NULL, (int)s);
}

static int family_slot(uint8_t family) {
  return family == T2S_AF_INET6 ? 1 : 0;
}

/* The target whose route decides the egress: the proxy. Without a proxy (the simulator's direct
 * mode) there is none and the default routes decide. */
static const t2s_addr *route_target(const t2s_engine *e) {
  return e->cfg.proxy_kind == T2S_PROXY_SOCKS5 ? &e->cfg.proxy : NULL;
}

/* Asks the monitor for the path to the proxy. Returns 0 or an error (no route). */
static int query_path(t2s_engine *e, t2s_route *out) {
  const t2s_addr *target = route_target(e);
  if (!e->net.has_monitor || target == NULL) {
    return T2S_ERR_NOT_FOUND;
  }
  memset(out, 0, sizeof(*out));
  return e->net.monitor.ops->route_get(e->net.monitor.self, target, e->cfg.fwmark, out);
}

static void egress_from_route(t2s_engine *e, const t2s_route *r, t2s_egress *eg) {
  memset(eg, 0, sizeof(*eg));
  eg->mark = e->cfg.fwmark;
  if (r->local) {
    return; /* a proxy on this host is reached unbound */
  }
  eg->ifindex = r->ifindex;
  memcpy(eg->ifname, r->ifname, sizeof(eg->ifname));
  eg->ifname[T2S_IFNAMSIZ - 1] = 0;
  eg->src = r->src;
  eg->src.port = 0;
}

void t2s_engine_set_monitor(t2s_engine *e, const t2s_monitor *monitor) {
  if (monitor == NULL || monitor->ops == NULL) {
    e->net.has_monitor = false;
    return;
  }
  e->net.monitor = *monitor;
  e->net.has_monitor = true;
  t2s_route r;
  if (query_path(e, &r) == 0) {
    e->net.path = r;
    e->net.have_path = true;
    if (!e->cfg.egress_pinned) {
      egress_from_route(e, &r, &e->cfg.egress);
    }
  }
}

t2s_net_state t2s_engine_net_state(const t2s_engine *e) {
  return e->net.state;
}

const t2s_egress *t2s_engine_get_egress(const t2s_engine *e) {
  return &e->cfg.egress;
}

bool t2s_engine_offline(const t2s_engine *e) {
  return e->net.state == T2S_NET_STATE_NO_ROUTE || e->net.state == T2S_NET_STATE_SUSPENDED ||
         t2s_engine_proxies_all_down(e); /* docs/proxies.md: every proxy DOWN */
}

bool t2s_engine_egress_differs(const t2s_egress *a, const t2s_egress *b) {
  if (a->ifindex != b->ifindex) {
    return true;
  }
  if (a->src.family == 0 || b->src.family == 0) {
    return a->src.family != b->src.family;
  }
  return !t2s_addr_ip_eq(&a->src, &b->src);
}

size_t t2s_engine_reset_flows(t2s_engine *e, const t2s_egress *keep, t2s_tstamp now) {
  size_t n = 0;
  t2s_flow_iter it = T2S_FLOW_ITER_INIT;
  /* A reset removes ids and adds none: bounded by the number of flows. */
  for (t2s_flow *f; (f = t2s_flow_iter_next(&e->flows, &it)) != NULL;) {
    if (keep == NULL || t2s_engine_egress_differs(f->egress, keep)) {
      n += f->ops->reset(e, f, now);
    }
  }
  e->stats.flows_reset += n;
  return n;
}

/* A multipath flow is active at a change when its last bytes came less than this before the
 * burst began: only those have a stall to measure (an idle flow's silence is no stall). */
#define T2S_STALL_ACTIVE_NS (1 * T2S_SECONDS)
/* A survivor that was receiving when the change began and could take bytes, but got none this
 * long after the decision, has no working subflow left (no endpoint or no route on the uplink
 * that remains): it is reset then. MPTCP sockets have no TCP_USER_TIMEOUT, so the kernel alone
 * would keep it for its whole retransmission schedule (many minutes). */
#define T2S_SURVIVOR_GRACE_NS (10 * T2S_SECONDS)

static void record_stall(t2s_engine *e, t2s_tstamp d) {
  e->stats.survived_stall_sum_ns += d;
  size_t i = 0;
  while (i + 1 < T2S_RECOVERY_BUCKETS && d > t2s_engine_recovery_bucket_bound(i)) {
    i++;
  }
  e->stats.survived_stall_hist[i]++;
}

/* Flow f was spared by a change (docs/network-change.md, "Multipath TCP"): counted, and its
 * stall measured: the silence from its last bytes before the burst began to its first bytes
 * after, now if those already came, else at its next bytes (t2s_engine_net_flow_rx). */
static void survive(t2s_engine *e, t2s_flow *f, t2s_tstamp now) {
  e->stats.flows_survived++;
  if (f->gap_burst == e->net.burst) {
    if (f->rx_gap != 0) {
      record_stall(e, f->rx_gap);
    }
  } else if (f->rx_at != 0 && f->rx_at <= e->net.first_event_at &&
             e->net.first_event_at - f->rx_at <= T2S_STALL_ACTIVE_NS) {
    f->stall_pending = true;
    e->net.survivor_check = now + T2S_SURVIVOR_GRACE_NS; /* 0: none */
  }
}

/* The grace after a decision with survivors ended: a survivor still silent (no bytes since it
 * was active before the change) while its client could take bytes is reset. */
static void check_survivors(t2s_engine *e, t2s_tstamp now) {
  e->net.survivor_check = 0;
  size_t n = 0;
  t2s_flow_iter it = T2S_FLOW_ITER_INIT;
  for (t2s_flow *f; (f = t2s_flow_iter_next(&e->flows, &it)) != NULL;) {
    if (!f->stall_pending ||
        (f->ops->stream_recv_space != NULL && f->ops->stream_recv_space(e, f) == 0)) {
      continue; /* bytes came, or the client is not reading: nothing to tell */
    }
    f->stall_pending = false;
    n += f->ops->reset(e, f, now);
  }
  e->stats.flows_reset += n;
  e->stats.survivors_reset += n;
}

void t2s_engine_net_flow_rx(t2s_engine *e, t2s_flow *f, t2s_tstamp now) {
  if (f->stall_pending) {
    f->stall_pending = false;
    f->gap_burst = e->net.burst;
    f->rx_gap = 0;
    record_stall(e, now - f->rx_at);
  } else if (e->net.burst != 0 && f->gap_burst != e->net.burst && f->rx_at != 0 &&
             f->rx_at < e->net.first_event_at) {
    /* Its first bytes since the current (or last) burst began: the silence that spans the
     * start of the burst, when it was active then. */
    f->gap_burst = e->net.burst;
    f->rx_gap =
        e->net.first_event_at - f->rx_at <= T2S_STALL_ACTIVE_NS ? now - f->rx_at : (t2s_tstamp)0;
  }
  f->rx_at = now;
}

/* The reset of a change with a route to the proxy (reset-affected): as t2s_engine_reset_flows,
 * but a flow whose upstream is multipath is spared and counted as survived: its connection
 * moves its bytes to a subflow on a path that still reaches the proxy (docs/mptcp.md). Two
 * passes, so that a session with several ids (a UDP session: a multipath control stream and a
 * datagram socket) is reset as a whole and not counted. */
static size_t reset_affected(t2s_engine *e, const t2s_egress *keep, t2s_tstamp now) {
  size_t n = 0;
  t2s_flow_iter it = T2S_FLOW_ITER_INIT;
  for (t2s_flow *f; (f = t2s_flow_iter_next(&e->flows, &it)) != NULL;) {
    if ((keep == NULL || t2s_engine_egress_differs(f->egress, keep)) &&
        f->mp != T2S_STREAM_MULTIPATH) {
      n += f->ops->reset(e, f, now);
    }
  }
  e->stats.flows_reset += n;
  t2s_flow_iter it2 = T2S_FLOW_ITER_INIT;
  for (t2s_flow *f; (f = t2s_flow_iter_next(&e->flows, &it2)) != NULL;) {
    if ((keep == NULL || t2s_engine_egress_differs(f->egress, keep)) &&
        f->mp == T2S_STREAM_MULTIPATH) {
      survive(e, f, now);
    }
  }
  return n;
}

static void start_debounce(t2s_engine *e, t2s_tstamp now) {
  if (e->net.debounce_at == T2S_TSTAMP_MAX) {
    e->net.first_event_at = now;
    e->net.burst++;
  }
  e->net.debounce_at = now + e->cfg.network_debounce;
  if (e->net.state != T2S_NET_STATE_SUSPENDED) {
    set_state(e, T2S_NET_STATE_SETTLING, now);
  }
}

/* While settling, new flows already leave the way the kernel routes to the proxy now (a socket
 * bound to an interface that just lost the default route would not get out). Nothing is reset
 * here; the decision at the end of the debounce compares with the path before the burst, and a
 * flow opened meanwhile keeps running if the burst ends on the path it took. */
static void follow_route_now(t2s_engine *e) {
  t2s_route r;
  if (e->cfg.egress_pinned || e->net.state == T2S_NET_STATE_SUSPENDED || query_path(e, &r) != 0) {
    return;
  }
  egress_from_route(e, &r, &e->cfg.egress);
}

void t2s_engine_net_event(t2s_engine *e, const t2s_net_event *ev, t2s_tstamp now) {
  e->stats.net_events++;
  t2s_engine_emit(e, T2S_EV_NET_EVENT, now, ev->ifindex, &ev->addr, NULL, (int)ev->type);
  if (e->cfg.egress_pinned && ev->ifindex != 0 && ev->ifindex == e->cfg.egress.ifindex &&
      (ev->type == T2S_NET_LINK_DOWN || ev->type == T2S_NET_ADDR_REMOVED)) {
    e->net.pinned_lost = true;
  }
  switch (ev->type) {
  case T2S_NET_PAUSED:
    /* About to sleep: refuse new flows; keep the rest until we know how long we slept. */
    e->net.debounce_at = T2S_TSTAMP_MAX;
    set_state(e, T2S_NET_STATE_SUSPENDED, now);
    break;
  case T2S_NET_RESUMED: {
    /* What was open before a sleep is dead (NAT and proxy state are gone): reset at once, so
     * no client hangs and no retransmission burst follows; then settle and re-select. */
    e->stats.resumes++;
    size_t n = t2s_engine_reset_flows(e, NULL, now);
    e->stats.network_changes++;
    t2s_engine_emit(e, T2S_EV_NET_DECISION, now, 0, NULL, NULL, (int)n);
    e->net.decided_at = now;
    e->net.awaiting_first_flow = true;
    set_state(e, T2S_NET_STATE_SETTLING, now);
    e->net.debounce_at = T2S_TSTAMP_MAX;
    start_debounce(e, now);
    break;
  }
  case T2S_NET_DEFAULT_ROUTE_CHANGED:
    e->net.default_ifindex[family_slot(ev->family)] = ev->removed ? 0 : ev->ifindex;
    start_debounce(e, now);
    break;
  default:
    start_debounce(e, now);
    break;
  }
  follow_route_now(e);
}

void t2s_engine_net_retarget(t2s_engine *e, t2s_tstamp now) {
  if (!e->net.has_monitor || route_target(e) == NULL || e->net.state == T2S_NET_STATE_SUSPENDED) {
    return; /* no route queries, or decided after the resume */
  }
  if (e->net.debounce_at != T2S_TSTAMP_MAX) {
    follow_route_now(e); /* the decision at the end of the debounce uses the new target */
    return;
  }
  t2s_route r;
  if (query_path(e, &r) != 0) {
    e->net.have_path = false;
    set_state(e, T2S_NET_STATE_NO_ROUTE, now);
    return;
  }
  if (!e->cfg.egress_pinned) {
    t2s_egress eg;
    egress_from_route(e, &r, &eg);
    if (t2s_engine_egress_differs(&e->cfg.egress, &eg)) {
      t2s_engine_emit(e, T2S_EV_EGRESS, now, eg.ifindex, &eg.src, NULL, (int)eg.ifindex);
    }
    e->cfg.egress = eg;
  }
  e->net.path = r;
  e->net.have_path = true;
  set_state(e, T2S_NET_STATE_UP, now);
}

t2s_tstamp t2s_engine_net_expiry(const t2s_engine *e) {
  t2s_tstamp check = e->net.survivor_check != 0 ? e->net.survivor_check : T2S_TSTAMP_MAX;
  return T2S_MIN(e->net.debounce_at, check);
}

/* True when the default interface of either family moved since the last decision. */
static bool default_changed(const t2s_engine *e) {
  return e->net.default_ifindex[0] != e->net.decided_default[0] ||
         e->net.default_ifindex[1] != e->net.decided_default[1];
}

/* True when the path to the proxy differs between the egress in use and the new route. */
static bool path_changed(const t2s_engine *e, const t2s_route *r) {
  if (!e->net.have_path) {
    return true;
  }
  const t2s_route *old = &e->net.path;
  if (old->local != r->local) {
    return true;
  }
  if (r->local) {
    /* A proxy on this host: its own traffic went out the default interface, so a change of
     * the default interface (either family) affects every flow. */
    return default_changed(e);
  }
  return old->ifindex != r->ifindex || !t2s_addr_ip_eq(&old->src, &r->src);
}

/* Counts a decision: a change (the recovery time runs from now) or a mere route update. */
static void count_decision(t2s_engine *e, bool changed, t2s_tstamp now) {
  if (changed) {
    e->stats.network_changes++;
    e->net.decided_at = now;
    e->net.awaiting_first_flow = true;
  } else {
    e->stats.route_updates++;
    t2s_engine_emit(e, T2S_EV_ROUTE_UPDATE, now, 0, NULL, NULL, 0);
  }
}

/* Ends a decision: remembers the default interfaces it saw, reports it, enters state. */
static void end_decision(t2s_engine *e, size_t nreset, t2s_net_state state, t2s_tstamp now) {
  memcpy(e->net.decided_default, e->net.default_ifindex, sizeof(e->net.decided_default));
  t2s_engine_proxy_net_decision(e, now); /* docs/proxies.md: DOWN proxies probed again */
  t2s_engine_emit(e, T2S_EV_NET_DECISION, now, 0, NULL, NULL, (int)nreset);
  set_state(e, state, now);
}

/* The end of a debounce: compare, decide, act. */
static void decide(t2s_engine *e, t2s_tstamp now) {
  e->net.debounce_at = T2S_TSTAMP_MAX;
  e->stats.last_detect_ns = now - e->net.first_event_at;
  t2s_route r;
  int rv = query_path(e, &r);
  bool no_proxy_target = route_target(e) == NULL || !e->net.has_monitor;
  size_t nreset = 0;
  if (no_proxy_target) {
    /* Without a route query the default interfaces decide, as for a local proxy. */
    bool changed = default_changed(e);
    bool offline = e->net.default_ifindex[0] == 0 && e->net.default_ifindex[1] == 0 &&
                   (e->net.decided_default[0] != 0 || e->net.decided_default[1] != 0);
    if (changed && e->cfg.on_network_change != T2S_NETCHANGE_NONE) {
      nreset = t2s_engine_reset_flows(e, NULL, now);
    }
    count_decision(e, changed, now);
    end_decision(e, nreset, offline ? T2S_NET_STATE_NO_ROUTE : T2S_NET_STATE_UP, now);
    return;
  }
  if (rv != 0) {
    /* No route to the proxy: nothing can work; every flow is affected. */
    bool was_up = e->net.have_path;
    if (e->cfg.on_network_change != T2S_NETCHANGE_NONE) {
      nreset = t2s_engine_reset_flows(e, NULL, now);
    }
    if (was_up) {
      e->stats.network_changes++;
    }
    e->net.have_path = false;
    end_decision(e, nreset, T2S_NET_STATE_NO_ROUTE, now);
    return;
  }
  bool changed = path_changed(e, &r);
  if (e->cfg.egress_pinned) {
    /* --interface: the egress never moves; only the pinned interface's loss resets. */
    changed = e->net.pinned_lost;
    e->net.pinned_lost = false;
    if (changed && e->cfg.on_network_change != T2S_NETCHANGE_NONE) {
      nreset = e->cfg.on_network_change == T2S_NETCHANGE_RESET_AFFECTED
                   ? reset_affected(e, NULL, now)
                   : t2s_engine_reset_flows(e, NULL, now);
    }
  } else {
    t2s_egress eg;
    egress_from_route(e, &r, &eg);
    if (changed) {
      switch (e->cfg.on_network_change) {
      case T2S_NETCHANGE_RESET_ALL:
        nreset = t2s_engine_reset_flows(e, NULL, now);
        break;
      case T2S_NETCHANGE_RESET_AFFECTED:
        /* A local proxy: every flow went out the old default interface (multipath to the
         * proxy does not help: the proxy's own traffic left through it). Otherwise the flows
         * on the old path, but a multipath one survives (its proxy is still reachable). */
        nreset = r.local ? t2s_engine_reset_flows(e, NULL, now) : reset_affected(e, &eg, now);
        break;
      case T2S_NETCHANGE_NONE:
        break;
      }
    } else if (e->cfg.on_network_change != T2S_NETCHANGE_NONE) {
      /* Back where it started: only flows opened during the burst through a path that did not
       * last (follow_route_now) are on another egress; they cannot get out (a multipath one
       * can: spared, as in reset-affected). */
      nreset = e->cfg.on_network_change == T2S_NETCHANGE_RESET_AFFECTED
                   ? reset_affected(e, &eg, now)
                   : t2s_engine_reset_flows(e, &eg, now);
    }
    if (changed || t2s_engine_egress_differs(&e->cfg.egress, &eg)) {
      t2s_engine_emit(e, T2S_EV_EGRESS, now, eg.ifindex, &eg.src, NULL, (int)eg.ifindex);
    }
    e->cfg.egress = eg;
  }
  e->net.path = r;
  e->net.have_path = true;
  count_decision(e, changed, now);
  end_decision(e, nreset, T2S_NET_STATE_UP, now);
}

void t2s_engine_net_handle_expiry(t2s_engine *e, t2s_tstamp now) {
  if (e->net.survivor_check != 0 && e->net.survivor_check <= now) {
    check_survivors(e, now);
  }
  if (e->net.debounce_at > now) {
    return;
  }
  if (e->net.state == T2S_NET_STATE_SUSPENDED) {
    e->net.debounce_at = T2S_TSTAMP_MAX; /* decided after the resume */
    return;
  }
  decide(e, now);
}

void t2s_engine_net_flow_established(t2s_engine *e, t2s_tstamp now) {
  if (!e->net.awaiting_first_flow) {
    return;
  }
  e->net.awaiting_first_flow = false;
  t2s_tstamp d = now - e->net.decided_at;
  e->stats.last_recovery_ns = d;
  size_t i = 0;
  while (i + 1 < T2S_RECOVERY_BUCKETS && d > t2s_engine_recovery_bucket_bound(i)) {
    i++;
  }
  e->stats.recovery_hist[i]++;
}

t2s_tstamp t2s_engine_recovery_bucket_bound(size_t i) {
  static const t2s_tstamp bounds[T2S_RECOVERY_BUCKETS] = {
      10 * T2S_MILLISECONDS,  50 * T2S_MILLISECONDS,  100 * T2S_MILLISECONDS,
      250 * T2S_MILLISECONDS, 500 * T2S_MILLISECONDS, 1 * T2S_SECONDS,
      2 * T2S_SECONDS,        5 * T2S_SECONDS,        T2S_TSTAMP_MAX,
  };
  return i < T2S_RECOVERY_BUCKETS ? bounds[i] : T2S_TSTAMP_MAX;
}

/* ---------------- Multipath TCP (docs/mptcp.md) ---------------- */

void t2s_engine_net_stream_multipath(t2s_engine *e, t2s_flow *f, t2s_stream_mp mp,
                                     uint32_t subflows, t2s_tstamp now) {
  if (mp != T2S_STREAM_MULTIPATH && mp != T2S_STREAM_FALLBACK) {
    return;
  }
  uint8_t sf = (uint8_t)T2S_MIN(subflows, 255u);
  if (f->mp == T2S_STREAM_MULTIPATH && mp == T2S_STREAM_MULTIPATH) {
    /* A later report: the kernel added or removed subflows since the last one. */
    if (sf > f->subflows) {
      e->stats.mptcp_subflows_added += (uint64_t)(sf - f->subflows);
    } else {
      e->stats.mptcp_subflows_removed += (uint64_t)(f->subflows - sf);
    }
  } else if (mp != f->mp) {
    /* The first report: a connection starts with one subflow, so any more were added already
     * (the kernel may join them before the connector asks). A multipath stream may still fall
     * back later. */
    if (mp == T2S_STREAM_MULTIPATH) {
      e->stats.mptcp_multipath++;
      e->stats.mptcp_subflows_added += sf > 1 ? (uint64_t)(sf - 1) : 0;
      f->rx_at = now; /* connected now: its silence counts from here */
    } else {
      e->stats.mptcp_fallback++;
    }
  }
  f->mp = (uint8_t)mp;
  f->subflows = sf;
}
