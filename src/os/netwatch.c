/* netwatch.c: network changes in, decisions out (see netwatch.h). */
#include "netwatch.h"

#include <string.h>

#include "log.h"

void t2s_netwatch_init(t2s_netwatch *nw, struct event_base *base, t2s_engine *engine,
                       const t2s_monitor *monitor, const t2s_monitor_linux *mon,
                       const t2s_clock *clock, t2s_loop *loop, t2s_autoroute_watch *autoroute) {
  memset(nw, 0, sizeof(*nw));
  nw->base = base;
  nw->engine = engine;
  nw->monitor = *monitor;
  nw->mon = mon;
  nw->clock = *clock;
  nw->loop = loop;
  nw->autoroute = autoroute;
  t2s_sleep_merge_init(&nw->sleep);
}

void t2s_netwatch_set_listener(t2s_netwatch *nw, const t2s_runner_listener *l) {
  if (l) {
    nw->listener = *l;
  } else {
    memset(&nw->listener, 0, sizeof(nw->listener));
  }
}

void t2s_netwatch_call_end(t2s_netwatch *nw, t2s_tstamp started) {
  if (nw->decided) {
    nw->decided = false;
    nw->last_reset_ns = nw->clock.ops->now(nw->clock.self) - started;
  }
}

/* ---------------- the engine's network events: the log and the listener ---------------- */

static void set_default_interface(t2s_netwatch *nw, const char *name, uint32_t index) {
  if (nw->default_known && index == nw->default_ifindex && strcmp(name, nw->default_ifname) == 0) {
    return;
  }
  nw->default_known = true;
  snprintf(nw->default_ifname, sizeof(nw->default_ifname), "%s", name);
  nw->default_ifindex = index;
  if (index) {
    T2S_INFO("network: upstream traffic now leaves through %s (index %u)", name, index);
  } else {
    T2S_INFO("network: upstream sockets unbound (the proxy is local, or there is no route)");
  }
  if (nw->listener.on_default_interface_changed) {
    nw->listener.on_default_interface_changed(nw->listener.arg, name, index);
  }
}

static void set_default_from_engine(t2s_netwatch *nw) {
  const t2s_egress *eg = t2s_engine_get_egress(nw->engine);
  set_default_interface(nw, eg->ifindex ? eg->ifname : "", eg->ifindex);
}

bool t2s_netwatch_is_net_event(t2s_engine_event_type t) {
  return t == T2S_EV_NET_EVENT || t == T2S_EV_NET_STATE || t == T2S_EV_NET_DECISION ||
         t == T2S_EV_EGRESS || t == T2S_EV_ROUTE_UPDATE;
}

void t2s_netwatch_engine_event(t2s_netwatch *nw, const t2s_engine_event *ev) {
  t2s_engine_stats st;
  switch (ev->type) {
  case T2S_EV_NET_STATE: {
    t2s_net_state s = (t2s_net_state)ev->reason;
    T2S_INFO("network: state %s", t2s_net_state_name(s));
    if (s == T2S_NET_STATE_SUSPENDED && nw->listener.on_network_paused) {
      nw->listener.on_network_paused(nw->listener.arg);
    }
    if (s == T2S_NET_STATE_NO_ROUTE) {
      T2S_WARN("network: no route to the proxy: new connections are refused until one returns");
      set_default_interface(nw, "", 0);
    }
    if (s == T2S_NET_STATE_UP) {
      set_default_from_engine(nw);
    }
    break;
  }
  case T2S_EV_NET_DECISION:
    nw->decided = true;
    t2s_engine_get_stats(nw->engine, &st);
    T2S_INFO("network: decision after %.0f ms: %d flows reset (changes %llu, route updates %llu)",
             (double)st.last_detect_ns / 1e6, ev->reason, (unsigned long long)st.network_changes,
             (unsigned long long)st.route_updates);
    if (nw->listener.on_routes_changed) {
      nw->listener.on_routes_changed(nw->listener.arg);
    }
    break;
  case T2S_EV_EGRESS:
    set_default_from_engine(nw);
    break;
  case T2S_EV_ROUTE_UPDATE:
    T2S_DEBUG("network: the path to the proxy did not change");
    break;
  case T2S_EV_TCP_ESTABLISHED: {
    /* The histogram's sum: each new recovery observation adds the last recovery time. */
    t2s_engine_get_stats(nw->engine, &st);
    uint64_t n = 0;
    for (size_t i = 0; i < T2S_RECOVERY_BUCKETS; i++) {
      n += st.recovery_hist[i];
    }
    if (n > nw->recovery_seen) {
      nw->recovery_seen = n;
      nw->recovery_sum_s += (double)st.last_recovery_ns / 1e9;
      T2S_INFO("network: recovered: first new connection %.0f ms after the decision",
               (double)st.last_recovery_ns / 1e6);
    }
    break;
  }
  default:
    break;
  }
}

/* ---------------- changes in: the monitor and logind ---------------- */

/* Signed: the two readings are not simultaneous (sleep_merge.h). */
static int64_t sleep_gap(const t2s_netwatch *nw) {
  t2s_tstamp boot = nw->clock.ops->boottime(nw->clock.self);
  return (int64_t)(boot - nw->clock.ops->now(nw->clock.self));
}

/* A change for the engine (the initial dump only goes to the debug log). */
static void net_event(t2s_netwatch *nw, const t2s_net_event *ev) {
  char a[64];
  t2s_addr_format(&ev->addr, false, a, sizeof(a));
  static const char *const names[] = {
      "?",     "link up", "link down", "address added", "address removed", "default route",
      "route", "paused",  "resumed"};
  const char *name = (size_t)ev->type < T2S_ARRAY_LEN(names) ? names[ev->type] : "?";
  if (t2s_monitor_linux_dumping(nw->mon)) {
    T2S_DEBUG("network at start: %s %s %s", name, ev->ifname, ev->addr.family ? a : "");
    return;
  }
  if (ev->type == T2S_NET_RESUMED) {
    T2S_INFO("network: the machine slept %.1f s: resetting every flow", (double)ev->slept_ns / 1e9);
  } else if (ev->type == T2S_NET_DEFAULT_ROUTE_CHANGED) {
    T2S_INFO("network: default route (%s) %s%s%s%s", ev->family == T2S_AF_INET6 ? "IPv6" : "IPv4",
             ev->removed ? "removed" : "via ", ev->removed ? "" : ev->ifname,
             ev->addr.family && !ev->removed ? " gateway " : "",
             ev->addr.family && !ev->removed ? a : "");
  } else {
    T2S_DEBUG("network: %s %s %s", name, ev->ifname, ev->addr.family ? a : "");
  }
  t2s_tstamp now = nw->clock.ops->now(nw->clock.self);
  t2s_rec_network_event(nw->rec, nw->engine, ev, now);
  t2s_netwatch_call_end(nw, now);
  t2s_autoroute_watch_kick(nw->autoroute); /* --auto-route: re-apply after the burst */
  if (ev->type == T2S_NET_RESUMED && nw->listener.on_network_resumed) {
    nw->listener.on_network_resumed(nw->listener.arg, ev->slept_ns / T2S_MILLISECONDS);
  }
  t2s_loop_rearm(nw->loop);
}

/* The monitor's events; a wake its clocks saw after logind reported it is not news. */
static void on_monitor_event(void *arg, const t2s_net_event *ev) {
  t2s_netwatch *nw = arg;
  if (ev->type == T2S_NET_RESUMED && !t2s_monitor_linux_dumping(nw->mon) &&
      t2s_sleep_merge_clock_resumed(&nw->sleep, sleep_gap(nw)) == T2S_SLEEP_IGNORE_LOGIND_SAW) {
    T2S_DEBUG("network: the clocks saw the sleep logind already reported (%.1f s)",
              (double)ev->slept_ns / 1e9);
    return;
  }
  net_event(nw, ev);
}

/* PrepareForSleep: true -> PAUSED; false -> RESUMED with the time slept (the growth of
 * boottime - monotonic since the pause), unless the clocks reported this wake already. */
static void on_logind_sleep(void *arg, bool sleeping) {
  t2s_netwatch *nw = arg;
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  t2s_tstamp slept = 0;
  switch (t2s_sleep_merge_logind(&nw->sleep, sleeping, sleep_gap(nw), &slept)) {
  case T2S_SLEEP_REPORT_PAUSED:
    T2S_INFO("network: logind: the machine is about to sleep");
    ev.type = T2S_NET_PAUSED;
    break;
  case T2S_SLEEP_REPORT_RESUMED:
    T2S_INFO("network: logind: the machine woke");
    ev.type = T2S_NET_RESUMED;
    ev.slept_ns = slept;
    break;
  case T2S_SLEEP_IGNORE_NO_PAUSE:
    T2S_DEBUG("logind: PrepareForSleep(false) without a pause: ignored");
    return;
  case T2S_SLEEP_IGNORE_CLOCKS_SAW:
    T2S_DEBUG("logind: the wake was already reported by the clocks");
    return;
  default:
    return; /* a repeated PrepareForSleep(true) */
  }
  net_event(nw, &ev);
}

void t2s_netwatch_start(t2s_netwatch *nw, bool logind) {
  if (nw->started) {
    return;
  }
  nw->started = true;
  /* The dump at start tells the log (and the listener) where traffic leaves now. */
  int rv = nw->monitor.ops->start(nw->monitor.self, on_monitor_event, nw);
  if (rv != 0) {
    T2S_WARN("network monitor: cannot subscribe to rtnetlink (%s): network changes will not "
             "be noticed",
             t2s_strerror(rv));
  }
  set_default_from_engine(nw);
  if (logind) {
    char why[256];
    if (t2s_sleep_logind_new(&nw->logind, nw->base, on_logind_sleep, nw, why, sizeof(why)) != 0) {
      T2S_INFO("logind: %s: sleep is noticed by the clocks only", why);
    }
  }
}

void t2s_netwatch_free(t2s_netwatch *nw) {
  t2s_sleep_logind_del(nw->logind);
  nw->logind = NULL;
}
