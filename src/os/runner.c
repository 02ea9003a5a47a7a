/*
 * runner.c: the composition root (see runner.h): options -> drivers -> engine. It builds each
 * driver from the options, hands their ops to the engine and to the loop, and takes them down
 * in the reverse order. What runs lives elsewhere:
 *
 *   runner_loop.c      the loop: device reads, the engine's timer, housekeeping, signals, stop
 *   netwatch.c         the monitor and logind in, the engine's decisions out (log, listener)
 *   sleep_merge.c      which sleep source reports a wake (a pure function)
 *   autoroute_watch.c  when --auto-route re-applies
 *   runner_report.c    counters to the log and the metrics
 *
 * The wiring, in one place (t2s_runner_new): the TUN driver gives `dev` (its ops; the only
 * concrete-TUN calls are the small tun_linux.h API for its name, index and settings at start,
 * its fd for the loop, its counters for the metrics, and close); the connector gives `upops`,
 * the network monitor `monops`, the clock driver `clkops` (wrapped by the test hook when its
 * environment variable is set). The engine gets &dev, &upops and &monops; the loop gets dev,
 * clkops and the connector; the network watch gets monops and clkops. An interface wrapper
 * (a recorder, a fault injector) goes between a driver's ops and these three users, here.
 */
#include "runner.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "autoroute_watch.h"
#include "caps_linux.h"
#include "clock_linux.h"
#include "clock_test_offset.h"
#include "embed_packets.h"
#include "log.h"
#include "fakedns_host.h"
#include "metrics.h"
#include "host_monitor.h"
#include "monitor_linux.h"
#include "mptcp_pm_linux.h"
#include "netwatch.h"
#include "proxy_host.h"
#include "record_linux.h"
#include "route_linux.h"
#include "runner_loop.h"
#include "runner_reload.h"
#include "runner_report.h"
#include "tun_linux.h"
#include "upstream_sock.h"

struct t2s_runner {
  t2s_cli_opts opts;
  char cmdline[2048]; /* for --record's header */
  t2s_addr proxy;
  char username[T2S_PROXY_FIELD_MAX];
  char password[T2S_PROXY_FIELD_MAX];
  bool have_auth;
  struct event_base *base;
  /* The drivers and the ops the engine, the loop and the network watch are given. */
  t2s_tun *tun;
  t2s_embed_packets *packets; /* packets through the embedder's callbacks instead of a TUN */
  t2s_tun_info tun_info;      /* at start */
  t2s_device dev;
  t2s_clock_linux clk;
  bool clk_ready;
  t2s_clock_test_offset clk_test; /* the test hook's wrapper, when its variable is set */
  t2s_clock clkops;
  t2s_upstream_sock *up;
  t2s_upstream upops;
  t2s_monitor_linux *mon;
  t2s_host_monitor *host; /* the embedder's network events (host_monitor.h), or NULL */
  t2s_monitor monops;
  t2s_autoroute_watch *autoroute; /* --auto-route */
  struct t2s_mptcp_pm *mptcp_pm;  /* --mptcp: our subflow endpoints (mptcp_pm_linux.h) */
  t2s_egress_choice egress;
  t2s_engine *engine;
  t2s_os_record rec;     /* --record, --pcap, --device-fault: wrappers between drivers and users */
  t2s_fakedns *fake_dns; /* --fake-dns: the table the engine borrows (fakedns_host.h) */
  t2s_proxy_host *proxies; /* several --proxy: health, probes, their log (docs/proxies.md) */
  /* SIGHUP with --config (docs/config.md): the options read again; NULL = SIGHUP stops. */
  int (*reload)(void *arg, t2s_cli_opts *opts, char *password, size_t passlen, char *why,
                size_t whylen);
  void *reload_arg;
  uint64_t reloads_applied, reloads_failed; /* for /metrics */
  bool last_reload_failed;
  /* What runs. */
  t2s_loop loop;
  bool loop_ready;
  t2s_netwatch net;
  t2s_metrics *metrics;
  t2s_report_sources report;
};

/* ---------------- the engine's events and the loop's hooks ---------------- */

static void on_engine_event(void *arg, const t2s_engine_event *ev) {
  t2s_runner *r = arg;
  if (t2s_proxy_host_is_event(ev->type)) {
    t2s_proxy_host_event(r->proxies, ev);
    return;
  }
  if (t2s_netwatch_is_net_event(ev->type) || ev->type == T2S_EV_TCP_ESTABLISHED) {
    t2s_netwatch_engine_event(&r->net, ev);
  }
  if (ev->type == T2S_EV_NET_DECISION) {
    t2s_proxy_host_network_changed(r->proxies); /* names resolved again (docs/proxies.md) */
  }
  if (!t2s_netwatch_is_net_event(ev->type)) {
    t2s_report_engine_event(ev);
  }
}

static void on_engine_call_end(void *arg, t2s_tstamp started) {
  t2s_runner *r = arg;
  t2s_netwatch_call_end(&r->net, started);
}

static void on_stats_signal(void *arg) {
  t2s_runner *r = arg;
  t2s_report_stats(&r->report);
}

static void collect(void *arg, t2s_metrics_snapshot *snap) {
  t2s_runner *r = arg;
  t2s_report_collect(&r->report, snap);
  snap->reloads_applied = r->reloads_applied;
  snap->reloads_failed = r->reloads_failed;
  snap->last_reload_ok = !r->last_reload_failed;
  t2s_proxy_host_collect(r->proxies, snap);
  if (r->fake_dns) {
    snap->fake_dns_on = 1;
    t2s_fakedns_get_stats(r->fake_dns, &snap->fake_dns);
  }
}

/* ---------------- SIGHUP: the config file read again (docs/config.md) ---------------- */

/* Carries out the plan's proxies (proxy_host.c): the engine's list and the host's replaced;
 * the flows of a proxy removed, changed or moved in the order are reset. */
static void reload_proxies(t2s_runner *r, const t2s_cli_opts *o, const char *password) {
  const char *user = o->proxy.has_user ? o->proxy.user : NULL;
  t2s_ssize reset = t2s_proxy_host_replace(&r->proxies, r->base, o, user, password);
  if (reset < 0) {
    return; /* logged; the running proxies stay */
  }
  r->have_auth = user != NULL;
  snprintf(r->username, sizeof(r->username), "%s", user ? user : "");
  snprintf(r->password, sizeof(r->password), "%s", user ? password : "");
  T2S_INFO("reload: %zd flows reset (on proxies removed, changed or moved in the order); the "
           "others keep running",
           reset);
}

static void on_reload_signal(void *arg) {
  t2s_runner *r = arg;
  t2s_cli_opts *fresh = calloc(1, sizeof(*fresh));
  t2s_reload_plan *plan = calloc(1, sizeof(*plan));
  char password[T2S_PROXY_FIELD_MAX] = "";
  char why[512], names[1024];
  const char *path = r->opts.config_path;
  if (fresh == NULL || plan == NULL) {
    T2S_ERROR("reload: out of memory; nothing changed");
    goto out;
  }
  if (r->reload(r->reload_arg, fresh, password, sizeof(password), why, sizeof(why)) != 0) {
    T2S_WARN("reload: %s; nothing changed", why);
    r->reloads_failed++;
    r->last_reload_failed = true;
    goto out;
  }
  r->reloads_applied++;
  r->last_reload_failed = false;
  t2s_reload_plan_make(&r->opts, r->password, fresh, password, plan);
  if (plan->nrestart > 0) {
    T2S_WARN("reload: %s: %s changed, which needs a restart: running as before", path,
             t2s_reload_join(plan->restart, plan->nrestart, names, sizeof(names)));
  }
  if (plan->nchanged == 0) {
    T2S_INFO("reload: %s: nothing to change", path);
    goto out;
  }
  t2s_log_set_level(plan->next.log_level);
  t2s_engine_config ecfg;
  t2s_engine_config_default(&ecfg);
  ecfg.tcp_connect_timeout = plan->next.tcp_connect_timeout_ns;
  ecfg.udp_timeout = plan->next.udp_timeout_ns;
  ecfg.dns_timeout = plan->next.dns_timeout_ns;
  ecfg.on_network_change = (t2s_netchange_policy)plan->next.on_network_change;
  ecfg.network_debounce = plan->next.network_debounce_ns;
  ecfg.icmp_unreach_on_refuse = plan->next.icmp_unreachable;
  ecfg.socks5_pipelined = plan->next.socks5_pipeline;
  t2s_rec_set_runtime(r->rec.rec, r->engine, &ecfg, t2s_clock_monotonic_ns());
  if (plan->proxies) {
    reload_proxies(r, &plan->next, password);
  }
  r->opts = plan->next;
  T2S_INFO("reload: %s: applied %s", path,
           t2s_reload_join(plan->changed, plan->nchanged, names, sizeof(names)));
out:
  explicit_bzero(password, sizeof(password));
  if (fresh) {
    explicit_bzero(fresh, sizeof(*fresh));
  }
  if (plan) {
    explicit_bzero(plan, sizeof(*plan));
  }
  free(fresh);
  free(plan);
}

/* ---------------- setup: the TUN ---------------- */

/* The message for a TUN that cannot be opened; returns the error for the caller
 * (T2S_ERR_INVALID_ARGUMENT when the option is wrong). */
static int tun_failure_message(const t2s_runner *r, t2s_tun_failure fail, int err) {
  const char *dev = r->opts.ifname[0] ? r->opts.ifname : "the TUN";
  switch (fail) {
  case T2S_TUN_FAIL_NODEV:
    T2S_ERROR("cannot open /dev/net/tun: %s. Load the tun module (modprobe tun) or create the "
              "node (mknod /dev/net/tun c 10 200); in a container, pass the device in.",
              strerror(err));
    return T2S_ERR_NOT_FOUND;
  case T2S_TUN_FAIL_DEVPERM:
    T2S_ERROR("cannot open /dev/net/tun: %s. Run as root, or as a user holding CAP_NET_ADMIN "
              "who may open /dev/net/tun (it is normally mode 0666; here it is not: chmod 0666 "
              "/dev/net/tun, or a udev rule, or DeviceAllow=/dev/net/tun rw in a systemd unit).",
              strerror(err));
    return T2S_ERR_PERMISSION;
  case T2S_TUN_FAIL_PRIVILEGE:
    T2S_ERROR("cannot create or attach %s: %s. tun2sock needs CAP_NET_ADMIN: run it as root, "
              "or grant the capability (setcap cap_net_admin,cap_net_raw+ep tun2sock, or "
              "AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW in its systemd unit), or create "
              "a persistent TUN owned by this user (ip tuntap add dev %s mode tun user USER).",
              dev, strerror(err), dev);
    return T2S_ERR_PERMISSION;
  case T2S_TUN_FAIL_BUSY:
    T2S_ERROR("cannot attach %s: %s (another process holds it, or it is not a TUN with the "
              "same flags)",
              dev, strerror(err));
    return T2S_ERR_EXISTS;
  case T2S_TUN_FAIL_BADFD:
    T2S_ERROR("--device fd://%d: not an open TUN file descriptor opened with IFF_TUN|IFF_NO_PI "
              "(%s)",
              r->opts.device_fd, strerror(err));
    return T2S_ERR_INVALID_ARGUMENT;
  default:
    T2S_ERROR("cannot open %s: %s", dev, strerror(err));
    return T2S_ERR_INTERNAL;
  }
}

/* The transmit queue length to set on the TUN, 0 = leave it: an fd://N is not ours to
 * configure; --txqueuelen N is set as given; by default the queue is raised to
 * T2S_CLI_DEFAULT_TXQUEUELEN when it is shorter (a TUN's own is 500), never lowered. */
static uint32_t tun_txqlen(const t2s_runner *r, uint32_t current) {
  if (r->opts.device_fd >= 0) {
    return 0;
  }
  if (r->opts.txqueuelen_given || current < r->opts.txqueuelen) {
    return r->opts.txqueuelen;
  }
  return 0;
}

static int tun_start(t2s_runner *r, bool owns_fd) {
  t2s_tun_failure tfail;
  int terr;
  int rv = t2s_tun_open(&r->tun, r->opts.ifname, r->opts.device_fd, owns_fd, !r->opts.no_offload,
                        &tfail, &terr);
  if (rv != 0) {
    return tun_failure_message(r, tfail, terr);
  }
  t2s_tun_get_info(r->tun, &r->tun_info);
  const char *step = "";
  rv = t2s_tun_configure(r->tun, r->opts.mtu, tun_txqlen(r, r->tun_info.txqlen), r->opts.addresses,
                         r->opts.naddresses, &step, &terr);
  t2s_tun_get_info(r->tun, &r->tun_info);
  const char *name = r->tun_info.ifname;
  if (rv != 0) {
    if ((terr == EPERM || terr == EACCES) && !t2s_caps_have(CAP_NET_ADMIN)) {
      T2S_ERROR("%s on %s: %s. Configuring the TUN needs CAP_NET_ADMIN (run as root or grant "
                "the capability), or configure it beforehand and start without --address "
                "and --mtu.",
                step, name, strerror(terr));
    } else if (terr == EACCES) {
      T2S_ERROR("%s on %s: %s (is IPv6 disabled? see sysctl net.ipv6.conf.all.disable_ipv6)", step,
                name, strerror(terr));
    } else {
      T2S_ERROR("%s on %s: %s", step, name, strerror(terr));
    }
    return rv;
  }
  t2s_tun_device(r->tun, &r->dev);
  return 0;
}

/* The embedder's packet callbacks as the device: no TUN, no fd of ours but an eventfd. */
static int packets_start(t2s_runner *r, const t2s_runner_config *cfg) {
  uint32_t mtu = r->opts.mtu ? r->opts.mtu : 1500;
  int rv = t2s_embed_packets_new(&r->packets, mtu, cfg->packet_output, cfg->packet_output_arg);
  if (rv != 0) {
    T2S_ERROR("packet callbacks: %s", t2s_strerror(rv));
    return rv;
  }
  snprintf(r->tun_info.ifname, sizeof(r->tun_info.ifname), "callbacks");
  r->tun_info.mtu = mtu;
  r->tun_info.outlives = true;
  t2s_embed_packets_device(r->packets, &r->dev);
  return 0;
}

/* ---------------- setup: --auto-route ---------------- */

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
      .tun_ifindex = r->tun_info.ifindex,
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
  t2s_autoroute *ar;
  int rv = t2s_autoroute_start(&ar, &ac, why, sizeof(why));
  if (rv < 0) {
    T2S_ERROR("%s", why);
    return rv;
  }
  rv = t2s_autoroute_watch_new(&r->autoroute, r->base, ar);
  if (rv != 0) {
    T2S_ERROR("out of memory");
  }
  return rv;
}

/* ---------------- setup: the engine ---------------- */

static uint64_t random_seed(void) {
  uint64_t seed = 0;
  if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
    seed = t2s_clock_monotonic_ns() ^ ((uint64_t)getpid() << 32);
  }
  return seed;
}

/* SIGUSR2: --record and --pcap to their files. */
static void on_flush_signal(void *arg) {
  t2s_runner *r = arg;
  t2s_os_record_flush(&r->rec, t2s_clock_monotonic_ns(), "SIGUSR2");
}

static int engine_start(t2s_runner *r) {
  t2s_engine_config ecfg;
  t2s_engine_config_default(&ecfg);
  ecfg.seed = random_seed();
  ecfg.mtu = r->tun_info.mtu;
  /* 1 MiB each way per TCP flow by default (the rings grow on demand, so an idle flow does not
   * pay for it): with 256 KiB a single download through a 64 KiB-segment TUN ran at about half
   * the plain relay's rate and twice its CPU per GB (docs/benchmarks.md). */
  ecfg.tcp_sndbuf = r->opts.tcp_sndbuf;
  ecfg.tcp_rcvbuf = r->opts.tcp_rcvbuf;
  ecfg.proxy_kind = T2S_PROXY_SOCKS5;
  ecfg.proxy = r->proxy;
  if (ecfg.proxy.family == 0) { /* a name not resolved yet: UNRESOLVED (proxy_host.c) */
    ecfg.proxy.family = T2S_AF_INET;
    ecfg.proxy.port = r->opts.proxy.port;
  }
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
  int rv = t2s_fakedns_host_start(&r->fake_dns, &r->opts, ecfg.seed ^ 0x66616b65);
  if (rv != 0) {
    return rv;
  }
  ecfg.fake_dns = r->fake_dns;
  t2s_engine_hooks hooks = {.on_event = on_engine_event, .arg = r};
  char err[512];
  if (t2s_os_record_open(&r->rec, &r->opts, r->cmdline, &ecfg, &r->clkops, err, sizeof(err)) != 0) {
    T2S_ERROR("%s", err);
    return T2S_ERR_INTERNAL;
  }
  t2s_os_record_wrap(&r->rec, &r->dev, &r->upops, &r->clkops, &hooks);
  t2s_upstream_sock_set_recorder(r->up, r->rec.rec);
  rv = t2s_engine_new(&r->engine, &ecfg, &r->dev, &r->upops, &hooks);
  if (rv != 0) {
    T2S_ERROR("cannot create the engine: %s", t2s_strerror(rv));
    r->engine = NULL;
  }
  return rv;
}

/* ---------------- the runner ---------------- */

/* A driver's failure: T2S_ERR_INVALID_ARGUMENT from a driver means the kernel refused a value
 * (or our bug), not an option the user should change; that answer is reserved for the two
 * cases runner_build names (a --device fd:// that is not a TUN, an --interface not found). */
static int runtime_failure(int rv) {
  return rv == T2S_ERR_INVALID_ARGUMENT ? T2S_ERR_INTERNAL : rv;
}

static void start_line(const t2s_runner *r) {
  const t2s_tun_info *ti = &r->tun_info;
  char pbuf[64];
  T2S_INFO("tun2sock running: %s (ifindex %u, mtu %u, txqueuelen %u, %s, offloads %s) -> "
           "socks5 %s%s",
           ti->ifname, ti->ifindex, ti->mtu, ti->txqlen, ti->created ? "created" : "attached",
           !ti->vnet                                  ? "off"
           : (ti->offloads & T2S_DEVICE_OFFLOAD_TSO)  ? "csum+tso"
           : (ti->offloads & T2S_DEVICE_OFFLOAD_CSUM) ? "csum"
                                                      : "none",
           r->proxy.family ? t2s_addr_format(&r->proxy, true, pbuf, sizeof(pbuf))
                           : r->opts.proxy.host,
           r->have_auth ? " with user/password" : "");
}

static int metrics_start(t2s_runner *r) {
  int err = 0;
  int rv = t2s_metrics_new(&r->metrics, r->base, r->opts.metrics_host, r->opts.metrics_port,
                           collect, r, &err);
  if (rv != 0) {
    T2S_ERROR("--metrics %s:%u: cannot listen: %s", r->opts.metrics_host, r->opts.metrics_port,
              strerror(err));
    return rv;
  }
  T2S_INFO("metrics on http://%s%s%s:%u/metrics and /stats",
           strchr(r->opts.metrics_host, ':') ? "[" : "",
           r->opts.metrics_host[0] ? r->opts.metrics_host : "0.0.0.0",
           strchr(r->opts.metrics_host, ':') ? "]" : "", r->opts.metrics_port);
  return 0;
}

static int runner_build(t2s_runner *r, const t2s_runner_config *cfg) {
  /* The event base, without EVENT_BASE_FLAG_PRECISE_TIMER: with it libevent's epoll backend
   * sets a timerfd before every epoll_wait (two system calls per UDP round trip). The engine's
   * nanosecond deadlines have their own timerfd, set only when a deadline moves earlier
   * (clock_linux.h); libevent's own timers (probes, retries: 100 ms and more) are fine with
   * its coarse clock. */
  r->base = event_base_new();
  if (!r->base) {
    T2S_ERROR("cannot create the event loop");
    return T2S_ERR_NOMEM;
  }

  /* The TUN: the device. */
  int rv = cfg->packet_output ? packets_start(r, cfg) : tun_start(r, cfg->owns_fd);
  if (rv != 0) {
    return rv; /* INVALID_ARGUMENT only for fd:// */
  }

  /* --auto-route: before the egress choice, which then checks that marked sockets do not
   * loop into the TUN. */
  if (r->opts.auto_route && (rv = autoroute_start(r)) != 0) {
    return runtime_failure(rv);
  }

  /* Where upstream sockets leave from. */
  char why[256];
  if (r->proxy.family == 0 && !r->opts.interface[0]) {
    memset(&r->egress, 0, sizeof(r->egress)); /* the engine follows the route once it resolves */
    r->egress.egress.mark = r->opts.fwmark;
    snprintf(why, sizeof(why), "the proxy's name does not resolve yet: sockets left unbound");
    rv = 0;
  } else {
    rv = t2s_egress_select(&r->proxy, r->opts.fwmark, r->opts.interface, r->tun_info.ifindex,
                           &r->egress, why, sizeof(why));
  }
  if (rv != 0) {
    T2S_ERROR("%s", why);
    return rv == T2S_ERR_NOT_FOUND ? T2S_ERR_INVALID_ARGUMENT : runtime_failure(rv);
  }
  T2S_INFO("egress: %s%s%s", why, r->egress.egress.ifindex ? ": upstream sockets bound to " : "",
           r->egress.egress.ifindex ? r->egress.egress.ifname : "");
  if (r->egress.no_route) {
    T2S_WARN("%s", why);
  }

  /* The clock (the loop fires the engine's timer), the connector, the engine. */
  rv = t2s_loop_init(&r->loop, r->base);
  r->loop_ready = true;
  if (rv != 0) {
    return rv;
  }
  t2s_loop_set_busy_poll(&r->loop, r->opts.busy_poll_us); /* --busy-poll (runner_loop.h) */
  if ((rv = t2s_clock_linux_init(&r->clk, r->base, t2s_loop_on_timer, &r->loop)) != 0) {
    T2S_ERROR("cannot create the timer");
    return rv;
  }
  r->clk_ready = true;
  t2s_clock_linux_ops(&r->clk, &r->clkops);
  if (t2s_clock_test_offset_from_env(&r->clk_test, &r->clkops)) {
    T2S_DEBUG("clock: boottime offset from %s (%s)", r->clk_test.path, T2S_CLOCK_TEST_OFFSET_ENV);
  }
  t2s_upstream_sock_config ucfg;
  t2s_upstream_sock_config_default(&ucfg);
  ucfg.mptcp = r->opts.mptcp; /* docs/mptcp.md */
  if (ucfg.mptcp) {
    T2S_INFO("--mptcp: streams to the proxy use Multipath TCP, not bound to an interface "
             "(datagram sockets still are)");
    if (!cfg->host_monitor) { /* an embedder owns its host's network: no endpoints from us */
      t2s_mptcp_pm_new(&r->mptcp_pm, r->base, r->tun_info.ifindex); /* failure logged */
    }
  }
  if ((rv = t2s_upstream_sock_new(&r->up, r->base, &ucfg)) != 0) {
    T2S_ERROR("out of memory");
    return rv;
  }
  t2s_upstream_sock_ops(r->up, &r->upops);
  t2s_upstream_sock_set_protect(r->up, cfg->protect, cfg->protect_arg);
  if ((rv = engine_start(r)) != 0) {
    return runtime_failure(rv);
  }
  t2s_upstream_sock_set_engine(r->up, r->engine, t2s_loop_after, &r->loop);
  r->report.engine = r->engine;
  r->report.up = r->up;
  r->report.tun = r->tun;
  r->report.net = &r->net;

  /* The network monitor: its route_get is the engine's at the end of every debounce (the
   * engine takes the current path from it now); it starts in t2s_runner_run. */
  t2s_monitor_linux_config mcfg = {.ignore_ifindex = r->tun_info.ifindex,
                                   .own_table = r->opts.auto_route ? r->opts.route_table : 0,
                                   .own_priority = r->opts.route_priority,
                                   .clock = &r->clkops};
  if ((rv = t2s_monitor_linux_new(&r->mon, r->base, &mcfg)) != 0) {
    T2S_ERROR("out of memory");
    return rv;
  }
  t2s_monitor_linux_ops(r->mon, &r->monops);
  if (cfg->host_monitor) { /* the embedder's events instead: the rtnetlink one never starts */
    if ((rv = t2s_host_monitor_new(&r->host, r->base, &r->proxy, &r->egress.egress)) != 0) {
      T2S_ERROR("host network monitor: %s", t2s_strerror(rv));
      return rv;
    }
    t2s_host_monitor_set_route(r->host, cfg->host_route, cfg->host_route_arg);
    t2s_host_monitor_ops(r->host, &r->monops);
  }
  t2s_os_record_wrap_monitor(&r->rec, &r->monops);
  t2s_engine_set_monitor(r->engine, &r->monops);
  t2s_netwatch_init(&r->net, r->base, r->engine, &r->monops, r->mon, &r->clkops, &r->loop,
                    r->autoroute);
  r->net.rec = r->rec.rec;

  /* The loop: what it reads, fires and reports. */
  t2s_loop_hooks lh = {.engine_call_end = on_engine_call_end,
                       .stats = on_stats_signal,
                       .flush = on_flush_signal,
                       .reload = r->reload ? on_reload_signal : NULL,
                       .arg = r};
  t2s_loop_attach(&r->loop, r->engine, &r->dev, &r->clkops, r->up, &lh);
  r->loop.rec = r->rec.rec;
  if ((rv = t2s_proxy_host_start(&r->proxies, r->base, &r->loop, r->engine, &r->clkops, &r->opts,
                                 &r->proxy, r->have_auth ? r->username : NULL,
                                 r->have_auth ? r->password : NULL)) != 0) {
    return rv;
  }
  t2s_loop_set_tun(&r->loop, r->tun); /* NULL with the embedder's packet callbacks */
  if ((rv = t2s_loop_watch_device(&r->loop, r->packets ? t2s_embed_packets_fd(r->packets)
                                                       : t2s_tun_fd(r->tun))) != 0) {
    return rv;
  }
  if (cfg->handle_signals && (rv = t2s_loop_handle_signals(&r->loop)) != 0) {
    return rv;
  }

  if (r->opts.metrics && (rv = metrics_start(r)) != 0) {
    return rv;
  }
  start_line(r);
  return 0;
}

int t2s_runner_new(t2s_runner **prunner, const t2s_runner_config *cfg) {
  t2s_runner *r = calloc(1, sizeof(*r));
  if (!r) {
    T2S_ERROR("out of memory");
    return T2S_ERR_NOMEM;
  }
  r->opts = *cfg->opts;
  snprintf(r->cmdline, sizeof(r->cmdline), "%s", cfg->cmdline ? cfg->cmdline : "");
  r->rec.rec_fd = -1;
  r->proxy = cfg->proxy;
  r->reload = cfg->reload;
  r->reload_arg = cfg->reload_arg;
  r->report.started = t2s_clock_monotonic_ns();
  if (cfg->username && cfg->username[0]) {
    snprintf(r->username, sizeof(r->username), "%s", cfg->username);
    snprintf(r->password, sizeof(r->password), "%s", cfg->password ? cfg->password : "");
    r->have_auth = true;
  }
  int rv = runner_build(r, cfg);
  if (rv != 0) {
    t2s_runner_del(r);
    return rv == T2S_ERR_INVALID_ARGUMENT ? rv : runtime_failure(rv);
  }
  *prunner = r;
  return 0;
}

int t2s_runner_run(t2s_runner *r) {
  t2s_netwatch_start(&r->net, !r->opts.no_logind);
  return t2s_loop_run(&r->loop);
}

void t2s_runner_stop(t2s_runner *r) {
  t2s_loop_stop(&r->loop);
}

void t2s_runner_set_listener(t2s_runner *r, const t2s_runner_listener *l) {
  t2s_netwatch_set_listener(&r->net, l);
}

void t2s_runner_get_stats(const t2s_runner *r, t2s_engine_stats *stats) {
  t2s_engine_get_stats(r->engine, stats);
}

t2s_embed_packets *t2s_runner_packets(t2s_runner *r) {
  return r->packets;
}

t2s_host_monitor *t2s_runner_host_monitor(t2s_runner *r) {
  return r->host;
}

void t2s_runner_protect_counts(const t2s_runner *r, uint64_t *popened, uint64_t *pcalls,
                               uint64_t *pfailures) {
  t2s_upstream_sock_protect_counts(r->up, popened, pcalls, pfailures);
}

uint32_t t2s_runner_tun_ifindex(const t2s_runner *r) {
  return r->tun_info.ifindex;
}

bool t2s_runner_needs_net_admin(const t2s_runner *r) {
  return r->egress.egress.mark != 0 || (r->tun_info.outlives && r->tun_info.naddrs_added > 0) ||
         r->autoroute != NULL || r->mptcp_pm != NULL; /* our endpoints come and go */
}

void t2s_runner_del(t2s_runner *r) {
  if (!r) {
    return;
  }
  if (r->engine) {
    t2s_report_stats(&r->report);
  }
  if (r->metrics) {
    t2s_metrics_del(r->metrics);
  }
  t2s_proxy_host_del(r->proxies); /* its probes call into the engine */
  r->proxies = NULL;
  if (r->engine) {
    /* closes every flow through the connector (recorded: the stop's outputs) */
    t2s_rec_engine_del(r->rec.rec, r->engine, t2s_clock_monotonic_ns());
    r->engine = NULL;
    r->loop.engine = NULL; /* a late callback re-arms nothing */
  }
  t2s_os_record_close(&r->rec);                 /* the end record, flushed */
  t2s_fakedns_host_stop(r->fake_dns, &r->opts); /* after the engine: no flow pins it now */
  r->fake_dns = NULL;
  t2s_netwatch_free(&r->net);
  t2s_monitor_linux_del(r->mon);
  t2s_host_monitor_del(r->host);
  if (r->up) {
    t2s_upstream_sock_del(r->up);
  }
  t2s_mptcp_pm_del(r->mptcp_pm);         /* our subflow endpoints removed */
  t2s_autoroute_watch_del(r->autoroute); /* before the TUN goes: rules first, then the table */
  if (r->loop_ready) {
    t2s_loop_free(&r->loop);
  }
  if (r->clk_ready) {
    t2s_clock_linux_free(&r->clk);
  }
  t2s_embed_packets_del(r->packets);
  if (r->tun) {
    t2s_tun_close(r->tun);
    T2S_INFO("%s %s",
             r->tun_info.created && !r->tun_info.outlives ? "deleted the TUN" : "released the TUN",
             r->tun_info.ifname);
  }
  if (r->base) {
    event_base_free(r->base);
  }
  explicit_bzero(r->password, sizeof(r->password));
  free(r);
}
