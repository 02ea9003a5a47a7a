/* runner.c: the libevent loop around the engine (see runner.h). */
#include "runner.h"

#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "autoroute_linux.h"
#include "caps_linux.h"
#include "clock_linux.h"
#include "log.h"
#include "metrics.h"
#include "monitor_linux.h"
#include "route_linux.h"
#include "sleep_logind.h"
#include "tun_linux.h"
#include "upstream_sock.h"

struct t2s_runner {
  t2s_cli_opts opts;
  t2s_addr proxy;
  char username[T2S_PROXY_FIELD_MAX];
  char password[T2S_PROXY_FIELD_MAX];
  bool have_auth;
  struct event_base *base;
  t2s_tun tun;
  t2s_device dev;
  t2s_clock_linux clk;
  bool clk_ready;
  t2s_upstream_sock *up;
  t2s_upstream upops;
  t2s_engine *engine;
  t2s_egress_choice egress;
  t2s_metrics *metrics;
  struct event *tun_ev;
  struct event *sig_ev[5];
  int stop_fd; /* eventfd written by t2s_runner_stop */
  struct event *stop_ev;
  int exit_code;
  bool stopping;
  /* The network monitor (monitor_linux.h) and what the runner measures around decisions. */
  t2s_monitor_linux *mon;
  t2s_monitor monops;
  t2s_clock clkops;
  bool mon_started;
  t2s_runner_listener listener; /* the embedder's (tun2sock.h); fields may be NULL */
  bool decided;                 /* a decision (NET_DECISION) happened in the current call */
  t2s_tstamp last_reset_ns;     /* wall-clock time of the engine call that reset flows */
  uint64_t recovery_seen;       /* recovery observations already summed */
  double recovery_sum_s;        /* sum of the recovery times (the histogram's _sum) */
  char default_ifname[T2S_IFNAMSIZ];
  bool default_known; /* the listener was told once */
  uint32_t default_ifindex;
  t2s_tstamp started;
  t2s_autoroute *autoroute; /* --auto-route */
  struct event *ar_ev;      /* its rtnetlink notifications */
  struct event *ar_timer;   /* debounce before re-applying */
  /* systemd-logind's PrepareForSleep (sleep_logind.h), beside the monitor's clock detector;
   * gaps are CLOCK_BOOTTIME - CLOCK_MONOTONIC readings (they grow by the time slept). */
  t2s_sleep_logind *logind;
  bool logind_paused;       /* PrepareForSleep(true) delivered, no false yet */
  bool resumed_since_pause; /* the clock detector reported the wake first */
  bool logind_resumed;      /* the last wake came from logind: the clocks' report repeats it */
  int64_t gap_at_pause;
  int64_t gap_at_resume;
  uint8_t pkt[65536 + 256]; /* one IP packet (a TSO super-packet is at most 64 KiB) */
};

/* ---------------- after every callback ---------------- */

static void rearm(t2s_runner *r) {
  if (!r->engine) {
    return;
  }
  t2s_upstream_sock_poll(r->up);
  t2s_clock_linux_arm(&r->clk, t2s_engine_get_expiry(r->engine));
}

static void after_cb(void *arg) {
  rearm(arg);
}

static void fatal(t2s_runner *r, const char *what, int err) {
  T2S_ERROR("%s: %s; stopping", what, t2s_strerror(err));
  r->exit_code = T2S_EXIT_FAILURE;
  event_base_loopbreak(r->base);
}

/* An engine call that may take a network decision: its wall-clock duration is the reset
 * duration when it did (the engine resets synchronously inside it). */
static void decision_call_end(t2s_runner *r, t2s_tstamp started) {
  if (r->decided) {
    r->decided = false;
    r->last_reset_ns = t2s_clock_monotonic_ns() - started;
  }
}

static void timer_fired(void *arg, t2s_tstamp now) {
  t2s_runner *r = arg;
  int rv = t2s_engine_handle_expiry(r->engine, now);
  decision_call_end(r, now);
  if (t2s_err_is_fatal(rv)) {
    fatal(r, "engine timers", rv);
    return;
  }
  rearm(r);
}

static void tun_readable(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_runner *r = arg;
  for (int i = 0; i < T2S_RUNNER_BATCH; i++) {
    t2s_ssize n = r->dev.ops->recv(r->dev.self, r->pkt, sizeof(r->pkt));
    if (n == T2S_ERR_WOULDBLOCK) {
      break;
    }
    if (n < 0) {
      if (t2s_err_is_fatal((int)n)) {
        fatal(r, "reading the TUN", (int)n);
        return;
      }
      T2S_WARN("reading the TUN %s: %s", r->tun.ifname, strerror(errno));
      break;
    }
    unsigned flags = r->dev.ops->rx_flags ? r->dev.ops->rx_flags(r->dev.self) : 0;
    int rv = t2s_engine_input_ex(r->engine, r->pkt, (size_t)n, flags, t2s_clock_monotonic_ns());
    if (t2s_err_is_fatal(rv)) {
      fatal(r, "engine input", rv);
      return;
    }
  }
  rearm(r);
}

/* ---------------- log lines ---------------- */

static void log_stats(t2s_runner *r) {
  t2s_engine_stats st;
  t2s_engine_get_stats(r->engine, &st);
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
    uint64_t c = t2s_upstream_sock_error_count(r->up, i);
    if (c) {
      T2S_INFO("stats: upstream error %s %llu", t2s_upstream_sock_error_name(i),
               (unsigned long long)c);
    }
  }
}

/* ---------------- network changes: the log and the listener ---------------- */

static void set_default_interface(t2s_runner *r, const char *name, uint32_t index) {
  if (r->default_known && index == r->default_ifindex && strcmp(name, r->default_ifname) == 0) {
    return;
  }
  r->default_known = true;
  snprintf(r->default_ifname, sizeof(r->default_ifname), "%s", name);
  r->default_ifindex = index;
  if (index) {
    T2S_INFO("network: upstream traffic now leaves through %s (index %u)", name, index);
  } else {
    T2S_INFO("network: upstream sockets unbound (the proxy is local, or there is no route)");
  }
  if (r->listener.on_default_interface_changed) {
    r->listener.on_default_interface_changed(r->listener.arg, name, index);
  }
}

/* The engine's network events become log lines and listener calls. */
static void on_net_engine_event(t2s_runner *r, const t2s_engine_event *ev) {
  t2s_engine_stats st;
  switch (ev->type) {
  case T2S_EV_NET_STATE: {
    t2s_net_state s = (t2s_net_state)ev->reason;
    T2S_INFO("network: state %s", t2s_net_state_name(s));
    if (s == T2S_NET_STATE_SUSPENDED && r->listener.on_network_paused) {
      r->listener.on_network_paused(r->listener.arg);
    }
    if (s == T2S_NET_STATE_NO_ROUTE) {
      T2S_WARN("network: no route to the proxy: new connections are refused until one returns");
      set_default_interface(r, "", 0);
    }
    if (s == T2S_NET_STATE_UP) {
      const t2s_egress *eg = t2s_engine_get_egress(r->engine);
      set_default_interface(r, eg->ifindex ? eg->ifname : "", eg->ifindex);
    }
    break;
  }
  case T2S_EV_NET_DECISION:
    r->decided = true;
    t2s_engine_get_stats(r->engine, &st);
    T2S_INFO("network: decision after %.0f ms: %d flows reset (changes %llu, route updates %llu)",
             (double)st.last_detect_ns / 1e6, ev->reason, (unsigned long long)st.network_changes,
             (unsigned long long)st.route_updates);
    if (r->listener.on_routes_changed) {
      r->listener.on_routes_changed(r->listener.arg);
    }
    break;
  case T2S_EV_EGRESS: {
    const t2s_egress *eg = t2s_engine_get_egress(r->engine);
    set_default_interface(r, eg->ifindex ? eg->ifname : "", eg->ifindex);
    break;
  }
  case T2S_EV_ROUTE_UPDATE:
    T2S_DEBUG("network: the path to the proxy did not change");
    break;
  case T2S_EV_TCP_ESTABLISHED: {
    /* The histogram's sum: each new recovery observation adds the last recovery time. */
    t2s_engine_get_stats(r->engine, &st);
    uint64_t n = 0;
    for (size_t i = 0; i < T2S_RECOVERY_BUCKETS; i++) {
      n += st.recovery_hist[i];
    }
    if (n > r->recovery_seen) {
      r->recovery_seen = n;
      r->recovery_sum_s += (double)st.last_recovery_ns / 1e9;
      T2S_INFO("network: recovered: first new connection %.0f ms after the decision",
               (double)st.last_recovery_ns / 1e6);
    }
    break;
  }
  default:
    break;
  }
}

static void autoroute_schedule(t2s_runner *r);

/* ---------------- sleep: the clocks and logind ---------------- */

/* A wake that logind reported is one the clock detector reports too (when the sleep exceeded
 * its threshold), and the other way round: each sleep resets the flows once. */
#define SLEEP_REPEAT_NS ((int64_t)(2 * T2S_SECONDS)) /* the clock detector's threshold */

/* Signed: the two readings are not simultaneous, so without a sleep the gap may be a few
 * microseconds below 0. */
static int64_t sleep_gap(const t2s_runner *r) {
  t2s_tstamp boot = r->clkops.ops->boottime(r->clkops.self);
  return (int64_t)(boot - r->clkops.ops->now(r->clkops.self));
}

/* For a RESUMED from the clock detector: false when it is the sleep logind reported. */
static bool clock_resume_is_new(t2s_runner *r) {
  int64_t gap = sleep_gap(r);
  if (r->logind_resumed) {
    r->logind_resumed = false;
    if (gap - r->gap_at_resume < SLEEP_REPEAT_NS) {
      return false;
    }
  }
  if (r->logind_paused) {
    r->resumed_since_pause = true;
  }
  r->gap_at_resume = gap;
  return true;
}

static void net_event(t2s_runner *r, const t2s_net_event *ev);

/* PrepareForSleep: true -> PAUSED; false -> RESUMED with the time slept (the growth of
 * boottime - monotonic since the pause), unless the clocks reported this wake already. */
static void on_logind_sleep(void *arg, bool sleeping) {
  t2s_runner *r = arg;
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  if (sleeping) {
    if (r->logind_paused && !r->resumed_since_pause) {
      return; /* a repeat; after a wake the clocks saw (its false lost), a new pause */
    }
    T2S_INFO("network: logind: the machine is about to sleep");
    r->logind_paused = true;
    r->resumed_since_pause = false;
    r->gap_at_pause = sleep_gap(r);
    ev.type = T2S_NET_PAUSED;
    net_event(r, &ev);
    return;
  }
  if (!r->logind_paused) {
    T2S_DEBUG("logind: PrepareForSleep(false) without a pause: ignored");
    return;
  }
  r->logind_paused = false;
  if (r->resumed_since_pause) {
    T2S_DEBUG("logind: the wake was already reported by the clocks");
    return;
  }
  int64_t gap = sleep_gap(r);
  T2S_INFO("network: logind: the machine woke");
  ev.type = T2S_NET_RESUMED;
  ev.slept_ns = gap > r->gap_at_pause ? (t2s_tstamp)(gap - r->gap_at_pause) : 0;
  r->logind_resumed = true;
  r->gap_at_resume = gap;
  net_event(r, &ev);
}

static void logind_start(t2s_runner *r) {
  char why[256];
  int rv = t2s_sleep_logind_new(&r->logind, r->base, on_logind_sleep, r, why, sizeof(why));
  if (rv < 0) {
    T2S_INFO("logind: %s: sleep is noticed by the clocks only", why);
  }
}

/* Monitor (and logind) events: the initial dump only sets what the listener knows; changes go
 * to the engine. */
static void net_event(t2s_runner *r, const t2s_net_event *ev) {
  char a[64];
  t2s_addr_format(&ev->addr, false, a, sizeof(a));
  static const char *const names[] = {
      "?",     "link up", "link down", "address added", "address removed", "default route",
      "route", "paused",  "resumed"};
  const char *name = (size_t)ev->type < T2S_ARRAY_LEN(names) ? names[ev->type] : "?";
  if (t2s_monitor_linux_dumping(r->mon)) {
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
  t2s_tstamp now = t2s_clock_monotonic_ns();
  t2s_engine_network_event(r->engine, ev, now);
  decision_call_end(r, now);
  autoroute_schedule(r); /* --auto-route: re-apply after the burst */
  if (ev->type == T2S_NET_RESUMED && r->listener.on_network_resumed) {
    r->listener.on_network_resumed(r->listener.arg, ev->slept_ns / T2S_MILLISECONDS);
  }
  rearm(r);
}

/* The monitor's events; a wake its clocks saw after logind reported it is not news. */
static void on_monitor_event(void *arg, const t2s_net_event *ev) {
  t2s_runner *r = arg;
  if (ev->type == T2S_NET_RESUMED && !t2s_monitor_linux_dumping(r->mon) &&
      !clock_resume_is_new(r)) {
    T2S_DEBUG("network: the clocks saw the sleep logind already reported (%.1f s)",
              (double)ev->slept_ns / 1e9);
    return;
  }
  net_event(r, ev);
}

void t2s_runner_set_listener(t2s_runner *r, const t2s_runner_listener *l) {
  if (l) {
    r->listener = *l;
  } else {
    memset(&r->listener, 0, sizeof(r->listener));
  }
}

static bool is_net_event(t2s_engine_event_type t) {
  return t == T2S_EV_NET_EVENT || t == T2S_EV_NET_STATE || t == T2S_EV_NET_DECISION ||
         t == T2S_EV_EGRESS || t == T2S_EV_ROUTE_UPDATE;
}

static void on_engine_event(void *arg, const t2s_engine_event *ev) {
  t2s_runner *r = arg;
  if (is_net_event(ev->type) || ev->type == T2S_EV_TCP_ESTABLISHED) {
    on_net_engine_event(r, ev);
  }
  if (!t2s_log_enabled(T2S_LOG_DEBUG) || is_net_event(ev->type)) {
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

/* ---------------- auto-route ---------------- */

/* Re-applies the --auto-route rules and routes after a network change. Also the hook for the
 * network monitor's events. */
static void autoroute_refresh(t2s_runner *r) {
  if (r->autoroute) {
    t2s_autoroute_refresh(r->autoroute);
  }
}

static void autoroute_timer_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  autoroute_refresh(arg);
}

/* Re-applies --auto-route 200 ms after the last of a burst of changes (monitor events and our
 * own rtnetlink notifications, which also cover rule changes, share the timer). */
static void autoroute_schedule(t2s_runner *r) {
  if (r->autoroute && r->ar_timer) {
    struct timeval tv = {0, 200 * 1000};
    evtimer_add(r->ar_timer, &tv);
  }
}

static void autoroute_event_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_runner *r = arg;
  if (t2s_autoroute_drain(r->autoroute)) {
    autoroute_schedule(r);
  }
}

static int autoroute_start(t2s_runner *r) {
  const t2s_cli_opts *o = &r->opts;
  t2s_uid_range uids[T2S_CLI_MAX_UIDS];
  const char *cgroups[T2S_CLI_MAX_CGROUPS];
  for (size_t i = 0; i < o->nexclude_uid; i++) {
    uids[i].start = o->exclude_uid[i][0];
    uids[i].end = o->exclude_uid[i][1];
  }
  for (size_t i = 0; i < o->nexclude_cgroup; i++) {
    cgroups[i] = o->exclude_cgroup[i];
  }
  t2s_autoroute_config ac = {
      .tun_ifindex = r->tun.ifindex,
      .table = o->route_table,
      .priority = o->route_priority,
      .fwmark = o->fwmark,
      .proxy = r->proxy,
      .exclude = o->route_exclude,
      .nexclude = o->nroute_exclude,
      .include = o->route_include,
      .ninclude = o->nroute_include,
      .uids = uids,
      .nuids = o->nexclude_uid,
      .cgroups = cgroups,
      .ncgroups = o->nexclude_cgroup,
  };
  char why[512];
  int rv = t2s_autoroute_start(&r->autoroute, &ac, why, sizeof(why));
  if (rv < 0) {
    T2S_ERROR("%s", why);
    return rv;
  }
  int fd = t2s_autoroute_event_fd(r->autoroute);
  r->ar_timer = evtimer_new(r->base, autoroute_timer_cb, r);
  if (fd >= 0) {
    r->ar_ev = event_new(r->base, fd, EV_READ | EV_PERSIST, autoroute_event_cb, r);
    if (r->ar_ev) {
      event_add(r->ar_ev, NULL);
    }
  }
  if (!r->ar_ev) {
    T2S_WARN("auto-route: no rtnetlink notifications: rules are not re-applied after changes");
  }
  return 0;
}

/* ---------------- signals and stop ---------------- */

static void signal_cb(evutil_socket_t sig, short what, void *arg) {
  (void)what;
  t2s_runner *r = arg;
  if (sig == SIGUSR1) {
    log_stats(r);
    return;
  }
  /* SIGHUP (the terminal or the session went away) and SIGQUIT would otherwise kill the
   * process and leave --auto-route's rules behind: every stop signal stops cleanly. */
  T2S_INFO("%s: stopping", sig == SIGINT    ? "SIGINT"
                           : sig == SIGHUP  ? "SIGHUP"
                           : sig == SIGQUIT ? "SIGQUIT"
                                            : "SIGTERM");
  r->stopping = true;
  event_base_loopbreak(r->base);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  t2s_runner *r = arg;
  uint64_t v;
  if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
    T2S_DEBUG("stop eventfd: %s", strerror(errno));
  }
  r->stopping = true;
  event_base_loopbreak(r->base);
}

void t2s_runner_stop(t2s_runner *r) {
  uint64_t one = 1;
  ssize_t n = write(r->stop_fd, &one, sizeof(one));
  (void)n;
}

/* ---------------- metrics ---------------- */

static void collect(void *arg, t2s_metrics_snapshot *snap) {
  t2s_runner *r = arg;
  memset(snap, 0, sizeof(*snap));
  t2s_engine_get_stats(r->engine, &snap->engine);
  size_t n = t2s_upstream_sock_error_kinds();
  if (n > T2S_METRICS_MAX_ERROR_KINDS) {
    n = T2S_METRICS_MAX_ERROR_KINDS;
  }
  snap->nerror_kinds = n;
  for (size_t i = 0; i < n; i++) {
    snap->error_names[i] = t2s_upstream_sock_error_name(i);
    snap->error_counts[i] = t2s_upstream_sock_error_count(r->up, i);
  }
  snap->network_changes = snap->engine.network_changes;
  snap->route_updates = snap->engine.route_updates;
  snap->last_reset_ns = r->last_reset_ns;
  snap->recovery_sum_s = r->recovery_sum_s;
  snap->tun_rx_packets = r->tun.rx_packets;
  snap->tun_tx_packets = r->tun.tx_packets;
  snap->tun_tx_errors = r->tun.tx_errors;
  t2s_upstream_sock_counts(r->up, &snap->upstream_streams, &snap->upstream_dgrams);
  snap->uptime_seconds = (double)(t2s_clock_monotonic_ns() - r->started) / 1e9;
}

/* ---------------- setup ---------------- */

static int tun_failure_message(const t2s_runner *r, t2s_tun_failure fail, int err) {
  const char *dev = r->opts.ifname[0] ? r->opts.ifname : "the TUN";
  switch (fail) {
  case T2S_TUN_FAIL_NODEV:
    T2S_ERROR("cannot open /dev/net/tun: %s. Load the tun module (modprobe tun) or create the "
              "node (mknod /dev/net/tun c 10 200); in a container, pass the device in.",
              strerror(err));
    return T2S_EXIT_FAILURE;
  case T2S_TUN_FAIL_DEVPERM:
    T2S_ERROR("cannot open /dev/net/tun: %s. Run as root, or as a user holding CAP_NET_ADMIN "
              "who may open /dev/net/tun (it is normally mode 0666; here it is not: chmod 0666 "
              "/dev/net/tun, or a udev rule, or DeviceAllow=/dev/net/tun rw in a systemd unit).",
              strerror(err));
    return T2S_EXIT_FAILURE;
  case T2S_TUN_FAIL_PRIVILEGE:
    T2S_ERROR("cannot create or attach %s: %s. tun2sock needs CAP_NET_ADMIN: run it as root, "
              "or grant the capability (setcap cap_net_admin,cap_net_raw+ep tun2sock, or "
              "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW in its systemd unit), or create "
              "a persistent TUN owned by this user (ip tuntap add dev %s mode tun user USER).",
              dev, strerror(err), dev);
    return T2S_EXIT_FAILURE;
  case T2S_TUN_FAIL_BUSY:
    T2S_ERROR("cannot attach %s: %s (another process holds it, or it is not a TUN with the "
              "same flags)",
              dev, strerror(err));
    return T2S_EXIT_FAILURE;
  case T2S_TUN_FAIL_BADFD:
    T2S_ERROR("--device fd://%d: not an open TUN file descriptor opened with IFF_TUN|IFF_NO_PI "
              "(%s)",
              r->opts.device_fd, strerror(err));
    return T2S_EXIT_USAGE;
  default:
    T2S_ERROR("cannot open %s: %s", dev, strerror(err));
    return T2S_EXIT_FAILURE;
  }
}

/* The transmit queue length to set on the TUN, 0 = leave it: an fd://N is not ours to
 * configure; --txqueuelen N is set as given; by default the queue is raised to
 * T2S_CLI_DEFAULT_TXQUEUELEN when it is shorter (a TUN's own is 500), never lowered. */
static uint32_t tun_txqlen(const t2s_runner *r) {
  if (r->opts.device_fd >= 0) {
    return 0;
  }
  if (r->opts.txqueuelen_given || r->tun.txqlen < r->opts.txqueuelen) {
    return r->opts.txqueuelen;
  }
  return 0;
}

static uint64_t random_seed(void) {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
    seed = t2s_clock_monotonic_ns() ^ ((uint64_t)getpid() << 32);
  }
  return seed;
}

int t2s_runner_new(t2s_runner **prunner, const t2s_runner_config *cfg) {
  t2s_runner *r = calloc(1, sizeof(*r));
  if (!r) {
    T2S_ERROR("out of memory");
    return T2S_EXIT_FAILURE;
  }
  r->opts = *cfg->opts;
  r->proxy = cfg->proxy;
  r->stop_fd = -1;
  r->tun.fd = -1;
  r->started = t2s_clock_monotonic_ns();
  if (cfg->username && cfg->username[0]) {
    snprintf(r->username, sizeof(r->username), "%s", cfg->username);
    snprintf(r->password, sizeof(r->password), "%s", cfg->password ? cfg->password : "");
    r->have_auth = true;
  }
  int code = T2S_EXIT_FAILURE;

  /* The event base: precise timers (the engine's deadlines are in nanoseconds). */
  struct event_config *ec = event_config_new();
  if (ec) {
    event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
    r->base = event_base_new_with_config(ec);
    event_config_free(ec);
  }
  if (!r->base) {
    T2S_ERROR("cannot create the event loop");
    goto fail;
  }

  /* The TUN. */
  t2s_tun_failure tfail;
  int terr;
  if (t2s_tun_open(&r->tun, r->opts.ifname, r->opts.device_fd, cfg->owns_fd, !r->opts.no_offload,
                   &tfail, &terr) != 0) {
    code = tun_failure_message(r, tfail, terr);
    goto fail;
  }
  const char *step = "";
  int rv = t2s_tun_configure(&r->tun, r->opts.mtu, tun_txqlen(r), r->opts.addresses,
                             r->opts.naddresses, &step);
  if (rv < 0) {
    if ((rv == -EPERM || rv == -EACCES) && !t2s_caps_have(CAP_NET_ADMIN)) {
      T2S_ERROR("%s on %s: %s. Configuring the TUN needs CAP_NET_ADMIN (run as root or grant "
                "the capability), or configure it beforehand and start without --address "
                "and --mtu.",
                step, r->tun.ifname, strerror(-rv));
    } else if (rv == -EACCES) {
      T2S_ERROR("%s on %s: %s (is IPv6 disabled? see sysctl net.ipv6.conf.all.disable_ipv6)", step,
                r->tun.ifname, strerror(-rv));
    } else {
      T2S_ERROR("%s on %s: %s", step, r->tun.ifname, strerror(-rv));
    }
    goto fail;
  }
  t2s_tun_device(&r->tun, &r->dev);

  /* --auto-route: before the egress choice, which then checks that marked sockets do not
   * loop into the TUN. */
  if (r->opts.auto_route && autoroute_start(r) != 0) {
    goto fail;
  }

  /* Where upstream sockets leave from. */
  char why[256];
  rv = t2s_egress_select(&r->proxy, r->opts.fwmark, r->opts.interface, r->tun.ifindex, &r->egress,
                         why, sizeof(why));
  if (rv != 0) {
    T2S_ERROR("%s", why);
    code = rv == T2S_ERR_NOT_FOUND ? T2S_EXIT_USAGE : T2S_EXIT_FAILURE;
    goto fail;
  }
  T2S_INFO("egress: %s%s%s", why, r->egress.egress.ifindex ? ": upstream sockets bound to " : "",
           r->egress.egress.ifindex ? r->egress.egress.ifname : "");
  if (r->egress.no_route) {
    T2S_WARN("%s", why);
  }

  /* Clock, connector, engine. */
  if (t2s_clock_linux_init(&r->clk, r->base, timer_fired, r) != 0) {
    T2S_ERROR("cannot create the timer");
    goto fail;
  }
  r->clk_ready = true;
  t2s_upstream_sock_config ucfg;
  t2s_upstream_sock_config_default(&ucfg);
  if (t2s_upstream_sock_new(&r->up, r->base, &ucfg) != 0) {
    T2S_ERROR("out of memory");
    goto fail;
  }
  t2s_upstream_sock_ops(r->up, &r->upops);

  t2s_engine_config ecfg;
  t2s_engine_config_default(&ecfg);
  ecfg.seed = random_seed();
  ecfg.mtu = r->tun.mtu;
  /* 1 MiB each way per TCP flow by default (the rings grow on demand, so an idle flow does not
   * pay for it): with 256 KiB a single download through a 64 KiB-segment TUN ran at about half
   * the plain relay's rate and twice its CPU per GB (docs/benchmarks.md). */
  ecfg.tcp_sndbuf = r->opts.tcp_sndbuf;
  ecfg.tcp_rcvbuf = r->opts.tcp_rcvbuf;
  ecfg.proxy_kind = T2S_PROXY_SOCKS5;
  ecfg.proxy = r->proxy;
  ecfg.username = r->have_auth ? r->username : NULL;
  ecfg.password = r->have_auth ? r->password : NULL;
  ecfg.egress = r->egress.egress;
  ecfg.fwmark = r->opts.fwmark; /* re-selected egresses keep the mark */
  ecfg.dns_hijack = r->opts.dns_hijack;
  ecfg.on_network_change = (t2s_netchange_policy)r->opts.on_network_change;
  ecfg.network_debounce = r->opts.network_debounce_ns;
  ecfg.egress_pinned = r->egress.pinned;
  ecfg.tcp_connect_timeout = r->opts.tcp_connect_timeout_ns;
  ecfg.udp_timeout = r->opts.udp_timeout_ns;
  ecfg.dns_timeout = r->opts.dns_timeout_ns;
  ecfg.memory_budget = r->opts.memory_budget;
  ecfg.max_tcp_flows = r->opts.max_tcp_flows;
  ecfg.max_pending_syn = r->opts.max_pending_syn;
  ecfg.max_udp_sessions = r->opts.max_udp_sessions;
  ecfg.icmp_unreach_on_refuse = r->opts.icmp_unreachable;
  ecfg.socks5_pipelined = r->opts.socks5_pipeline;
  t2s_engine_hooks hooks = {.on_event = on_engine_event, .arg = r};
  rv = t2s_engine_new(&r->engine, &ecfg, &r->dev, &r->upops, &hooks);
  if (rv != 0) {
    T2S_ERROR("cannot create the engine: %s", t2s_strerror(rv));
    r->engine = NULL;
    goto fail;
  }
  t2s_upstream_sock_set_engine(r->up, r->engine, after_cb, r);

  /* The network monitor: its route_get is the engine's at the end of every debounce (the
   * engine takes the current path from it now); it starts in t2s_runner_run. */
  t2s_clock_linux_ops(&r->clk, &r->clkops);
  t2s_monitor_linux_config mcfg = {.ignore_ifindex = r->tun.ifindex,
                                   .own_table = r->opts.auto_route ? r->opts.route_table : 0,
                                   .own_priority = r->opts.route_priority,
                                   .clock = &r->clkops};
  if (t2s_monitor_linux_new(&r->mon, r->base, &mcfg) != 0) {
    T2S_ERROR("out of memory");
    goto fail;
  }
  t2s_monitor_linux_ops(r->mon, &r->monops);
  t2s_engine_set_monitor(r->engine, &r->monops);

  /* Events. */
  r->tun_ev = event_new(r->base, r->tun.fd, EV_READ | EV_PERSIST, tun_readable, r);
  r->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (!r->tun_ev || r->stop_fd < 0) {
    T2S_ERROR("cannot create the loop's events: %s", strerror(errno));
    goto fail;
  }
  r->stop_ev = event_new(r->base, r->stop_fd, EV_READ | EV_PERSIST, stop_cb, r);
  if (!r->stop_ev || event_add(r->tun_ev, NULL) != 0 || event_add(r->stop_ev, NULL) != 0) {
    T2S_ERROR("cannot register the loop's events");
    goto fail;
  }
  if (cfg->handle_signals) {
    static const int sigs[T2S_ARRAY_LEN(r->sig_ev)] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1};
    for (size_t i = 0; i < T2S_ARRAY_LEN(sigs); i++) {
      r->sig_ev[i] = evsignal_new(r->base, sigs[i], signal_cb, r);
      if (!r->sig_ev[i] || event_add(r->sig_ev[i], NULL) != 0) {
        T2S_ERROR("cannot install the signal handlers");
        goto fail;
      }
    }
    signal(SIGPIPE, SIG_IGN);
  }

  /* Metrics. */
  if (r->opts.metrics) {
    rv = t2s_metrics_new(&r->metrics, r->base, r->opts.metrics_host, r->opts.metrics_port, collect,
                         r);
    if (rv != 0) {
      T2S_ERROR("--metrics %s:%u: cannot listen: %s", r->opts.metrics_host, r->opts.metrics_port,
                strerror(-rv));
      goto fail;
    }
    T2S_INFO("metrics on http://%s%s%s:%u/metrics and /stats",
             strchr(r->opts.metrics_host, ':') ? "[" : "",
             r->opts.metrics_host[0] ? r->opts.metrics_host : "0.0.0.0",
             strchr(r->opts.metrics_host, ':') ? "]" : "", r->opts.metrics_port);
  }

  char pbuf[64];
  T2S_INFO("tun2sock running: %s (ifindex %u, mtu %u, txqueuelen %u, %s, offloads %s) -> "
           "socks5 %s%s",
           r->tun.ifname, r->tun.ifindex, r->tun.mtu, r->tun.txqlen,
           r->tun.created ? "created" : "attached",
           !r->tun.vnet                                  ? "off"
           : (r->tun.offloads & T2S_DEVICE_OFFLOAD_TSO)  ? "csum+tso"
           : (r->tun.offloads & T2S_DEVICE_OFFLOAD_CSUM) ? "csum"
                                                         : "none",
           t2s_addr_format(&r->proxy, true, pbuf, sizeof(pbuf)),
           r->have_auth ? " with user/password" : "");
  *prunner = r;
  return 0;

fail:
  t2s_runner_del(r);
  return code;
}

int t2s_runner_run(t2s_runner *r) {
  r->exit_code = T2S_EXIT_OK;
  if (!r->mon_started) {
    /* The dump at start tells the log (and the listener) where traffic leaves now. */
    r->mon_started = true;
    int rv = r->monops.ops->start(r->monops.self, on_monitor_event, r);
    if (rv != 0) {
      T2S_WARN("network monitor: cannot subscribe to rtnetlink (%s): network changes will not "
               "be noticed",
               t2s_strerror(rv));
    }
    const t2s_egress *eg = t2s_engine_get_egress(r->engine);
    set_default_interface(r, eg->ifindex ? eg->ifname : "", eg->ifindex);
    if (!r->opts.no_logind) {
      logind_start(r);
    }
  }
  rearm(r);
  /* Bounded by the loop's own life: it returns on loopbreak (stop, signal, fatal error). */
  while (!r->stopping && r->exit_code == T2S_EXIT_OK) {
    int rv = event_base_loop(r->base, EVLOOP_NO_EXIT_ON_EMPTY);
    if (rv < 0) {
      T2S_ERROR("event loop failed");
      r->exit_code = T2S_EXIT_FAILURE;
      break;
    }
    if (event_base_got_break(r->base) || rv == 1) {
      break;
    }
  }
  return r->exit_code;
}

void t2s_runner_get_stats(const t2s_runner *r, t2s_engine_stats *stats) {
  t2s_engine_get_stats(r->engine, stats);
}

uint32_t t2s_runner_tun_ifindex(const t2s_runner *r) {
  return r->tun.ifindex;
}

bool t2s_runner_needs_net_admin(const t2s_runner *r) {
  bool tun_outlives = !r->tun.created || !r->tun.owns_fd;
  return r->egress.egress.mark != 0 || (tun_outlives && r->tun.nadded > 0) || r->autoroute != NULL;
}

void t2s_runner_del(t2s_runner *r) {
  if (!r) {
    return;
  }
  if (r->engine) {
    log_stats(r);
  }
  if (r->metrics) {
    t2s_metrics_del(r->metrics);
  }
  if (r->engine) {
    t2s_engine_del(r->engine); /* closes every flow through the connector */
    r->engine = NULL;
  }
  t2s_sleep_logind_del(r->logind);
  t2s_monitor_linux_del(r->mon);
  if (r->up) {
    t2s_upstream_sock_del(r->up);
  }
  if (r->ar_ev) {
    event_free(r->ar_ev);
  }
  if (r->ar_timer) {
    event_free(r->ar_timer);
  }
  t2s_autoroute_stop(r->autoroute); /* before the TUN goes: rules first, then the table */
  for (size_t i = 0; i < T2S_ARRAY_LEN(r->sig_ev); i++) {
    if (r->sig_ev[i]) {
      event_free(r->sig_ev[i]);
    }
  }
  if (r->tun_ev) {
    event_free(r->tun_ev);
  }
  if (r->stop_ev) {
    event_free(r->stop_ev);
  }
  if (r->stop_fd >= 0) {
    close(r->stop_fd);
  }
  if (r->clk_ready) {
    t2s_clock_linux_free(&r->clk);
  }
  if (r->tun.fd >= 0) {
    bool created = r->tun.created && r->tun.owns_fd;
    t2s_tun_close(&r->tun);
    T2S_INFO("%s %s", created ? "deleted the TUN" : "released the TUN", r->tun.ifname);
  }
  if (r->base) {
    event_base_free(r->base);
  }
  explicit_bzero(r->password, sizeof(r->password));
  free(r);
}
