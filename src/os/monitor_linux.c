/* monitor_linux.c: the Linux monitor's driver: the rtnetlink socket and dumps, the overrun,
 * the sleep detector and its timer, the t2s_monitor ops (monitor_linux.h); the translation of
 * messages into events is monitor_linux_state.c. */
#include "monitor_linux.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "monitor_linux_internal.h"
#include "netlink_linux.h"
#include "os_error.h"
#include "route_linux.h"

#define RCVBUF_BYTES (1 << 20)
#define READS_PER_WAKEUP 64 /* datagrams read per wakeup (each holds several messages) */
#define DUMP_ROUNDS 4096    /* bound on the datagrams of one dump */
#define DRAIN_ROUNDS 4096   /* bound on the datagrams dropped after an overrun */

/* ---------------- sleep detector ---------------- */

void t2s_sleep_detector_init(t2s_sleep_detector *d, t2s_tstamp threshold) {
  memset(d, 0, sizeof(*d));
  d->threshold = threshold ? threshold : 2 * T2S_SECONDS;
}

t2s_tstamp t2s_sleep_detector_check(t2s_sleep_detector *d, t2s_tstamp mono, t2s_tstamp boot) {
  t2s_tstamp gap = boot > mono ? boot - mono : 0;
  if (!d->primed) {
    d->primed = true;
    d->gap = gap;
    return 0;
  }
  t2s_tstamp grown = gap > d->gap ? gap - d->gap : 0;
  /* The gap never shrinks in reality; a test hook lowering its offset just re-bases. */
  d->gap = gap;
  return grown > d->threshold ? grown : 0;
}

uint64_t t2s_monitor_linux_overruns(const t2s_monitor_linux *m) {
  return m->overruns;
}

/* ---------------- sockets ---------------- */

/* errno read at a socket call: logged with what was being done, then translated. */
static int err_from_errno(int err, const char *what) {
  T2S_WARN("network monitor: %s: %s", what, strerror(err));
  return t2s_err_from_errno(err);
}

static int dump_msg_cb(const struct nlmsghdr *nlh, void *arg) {
  t2s_monitor_linux_feed(arg, nlh, nlh->nlmsg_len);
  return MNL_CB_OK;
}

/* One dump (RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE or RTM_GETRULE) on its own socket, fed as
 * it arrives. Returns 0 or a T2S_ERR_* code. */
static int dump(t2s_monitor_linux *m, uint16_t type) {
  struct mnl_socket *nl = t2s_nl_socket_open(0, 0);
  if (!nl) {
    return err_from_errno(errno, "opening an rtnetlink socket for a dump");
  }
  char req[256];
  memset(req, 0, sizeof(req));
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  /* The family (AF_UNSPEC: all) is the first byte of each request's header; a full header:
   * some kernels read beyond rtgenmsg. */
  size_t hdr = type == RTM_GETROUTE  ? sizeof(struct rtmsg)
               : type == RTM_GETRULE ? sizeof(struct fib_rule_hdr)
               : type == RTM_GETADDR ? sizeof(struct ifaddrmsg)
                                     : sizeof(struct ifinfomsg);
  mnl_nlmsg_put_extra_header(nlh, hdr);
  int rv = t2s_nl_talk(nl, nlh, (unsigned)time(NULL), m->buf, sizeof(m->buf), DUMP_ROUNDS,
                       dump_msg_cb, m);
  mnl_socket_close(nl);
  if (rv < 0) {
    return err_from_errno(-rv, "dumping the kernel's network state");
  }
  return 0;
}

static int dump_all(t2s_monitor_linux *m) {
  static const uint16_t types[] = {RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE, RTM_GETRULE};
  for (size_t i = 0; i < T2S_ARRAY_LEN(types); i++) {
    int rv = dump(m, types[i]);
    if (rv != 0) {
      return rv;
    }
  }
  return 0;
}

/* Events were lost (the receive buffer overran): drop what is queued (it predates the dump),
 * dump everything again and report what differs from what we knew, then one ROUTE_CHANGED for
 * what is not tracked (nexthop objects). Changes after the dump began are queued again and
 * come next (at worst twice, never not at all). */
static void overrun(t2s_monitor_linux *m) {
  m->overruns++;
  int fd = mnl_socket_get_fd(m->nl);
  int dropped = 0;
  for (int i = 0; i < DRAIN_ROUNDS; i++) {
    ssize_t n = recv(fd, m->buf, sizeof(m->buf), MSG_DONTWAIT);
    if (n < 0 && errno != ENOBUFS && errno != EINTR) {
      break;
    }
    dropped++;
  }
  t2s_monitor_linux_resync_begin(m);
  int rv = dump_all(m);
  int changes = t2s_monitor_linux_resync_end(m);
  if (rv != 0) {
    /* A partial dump: nothing known proves a later message redundant. */
    for (size_t i = 0; i < m->nroutes; i++) {
      m->routes[i].unsure = true;
    }
    T2S_WARN("network monitor: rtnetlink events were lost (receive buffer overrun) and the "
             "fresh dump failed (%s): re-checking the routes",
             t2s_strerror(rv));
  } else {
    T2S_WARN("network monitor: rtnetlink events were lost (receive buffer overrun, %d "
             "datagrams dropped after it): resynchronised from a fresh dump, %d changes "
             "(%zu links, %zu addresses, %zu routes, %zu rules known)",
             dropped, changes, m->nlinks, m->naddrs, m->nroutes, m->nrules);
  }
  t2s_monitor_linux_deliver_type(m, T2S_NET_ROUTE_CHANGED, 0, 0);
}

static void nl_readable(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_monitor_linux *m = arg;
  for (int i = 0; i < READS_PER_WAKEUP && m->nl; i++) {
    ssize_t n = recv(mnl_socket_get_fd(m->nl), m->buf, sizeof(m->buf), MSG_DONTWAIT);
    if (n < 0) {
      if (errno == ENOBUFS) {
        overrun(m);
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        T2S_WARN("network monitor: reading rtnetlink: %s", strerror(errno));
      }
      return;
    }
    if (t2s_monitor_linux_feed(m, m->buf, (size_t)n) < 0) {
      T2S_DEBUG("network monitor: a truncated rtnetlink message");
    }
  }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_monitor_linux *m = arg;
  const t2s_clock *c = m->cfg.clock;
  t2s_tstamp mono = c->ops->now(c->self);
  t2s_tstamp boot = c->ops->boottime(c->self);
  t2s_tstamp slept = t2s_sleep_detector_check(&m->sleep, mono, boot);
  if (slept) {
    t2s_net_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = T2S_NET_RESUMED;
    ev.slept_ns = slept;
    t2s_monitor_linux_deliver(m, &ev);
  }
}

static int mon_start(void *self, t2s_net_event_cb cb, void *arg) {
  t2s_monitor_linux *m = self;
  m->cb = cb;
  m->cb_arg = arg;
  if (m->base == NULL) {
    return 0;
  }
  /* Subscribe first, then dump: a change between the two shows up twice, never not at all.
   * Groups above RTNLGRP_IPV4_RULE have no RTMGRP_ macro: bit (group - 1). */
  unsigned groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE |
                    RTMGRP_IPV6_ROUTE | RTMGRP_IPV4_RULE | (1u << (RTNLGRP_IPV6_RULE - 1)) |
                    (1u << (RTNLGRP_NEXTHOP - 1));
  m->nl = t2s_nl_socket_open(SOCK_NONBLOCK, groups);
  if (!m->nl) {
    return err_from_errno(errno, "subscribing to rtnetlink");
  }
  int rcvbuf = RCVBUF_BYTES;
  if (getenv("TUN2SOCK_TEST_MONITOR_RCVBUF")) {
    rcvbuf = atoi(getenv("TUN2SOCK_TEST_MONITOR_RCVBUF")); /* tests: force an overrun */
  }
  setsockopt(mnl_socket_get_fd(m->nl), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  m->dumping = true;
  int rv = dump_all(m);
  m->dumping = false;
  if (rv != 0) {
    return rv;
  }
  m->nl_ev = event_new(m->base, mnl_socket_get_fd(m->nl), EV_READ | EV_PERSIST, nl_readable, m);
  if (!m->nl_ev || event_add(m->nl_ev, NULL) != 0) {
    return T2S_ERR_NOMEM;
  }
  if (m->cfg.clock && m->cfg.sleep_check_interval) {
    const t2s_clock *c = m->cfg.clock;
    t2s_sleep_detector_check(&m->sleep, c->ops->now(c->self), c->ops->boottime(c->self));
    m->tick = event_new(m->base, -1, EV_PERSIST, tick_cb, m);
    uint64_t us = m->cfg.sleep_check_interval / 1000;
    struct timeval tv = {.tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000)};
    if (!m->tick || event_add(m->tick, &tv) != 0) {
      return T2S_ERR_NOMEM;
    }
  }
  return 0;
}

static void mon_stop(void *self) {
  t2s_monitor_linux *m = self;
  m->cb = NULL;
  if (m->nl_ev) {
    event_free(m->nl_ev);
    m->nl_ev = NULL;
  }
  if (m->tick) {
    event_free(m->tick);
    m->tick = NULL;
  }
  if (m->nl) {
    mnl_socket_close(m->nl);
    m->nl = NULL;
  }
}

static int mon_route_get(void *self, const t2s_addr *dst, uint32_t mark, t2s_route *out) {
  t2s_monitor_linux *m = self;
  int rv = t2s_route_query(dst, mark, out);
  if (rv == 0 && m->cfg.ignore_ifindex && out->ifindex == m->cfg.ignore_ifindex) {
    char b[64];
    T2S_WARN("the route to the proxy %s goes through our own TUN %s (a loop): treated as no "
             "route; add a route to the proxy through the real interface, or use --fwmark",
             t2s_addr_format(dst, false, b, sizeof(b)), out->ifname);
    return T2S_ERR_UNREACHABLE;
  }
  return rv;
}

static const t2s_monitor_ops monitor_linux_ops = {
    .start = mon_start,
    .stop = mon_stop,
    .route_get = mon_route_get,
};

int t2s_monitor_linux_new(t2s_monitor_linux **pm, struct event_base *base,
                          const t2s_monitor_linux_config *cfg) {
  t2s_monitor_linux *m = calloc(1, sizeof(*m));
  if (!m) {
    return T2S_ERR_NOMEM;
  }
  m->base = base;
  if (cfg) {
    m->cfg = *cfg;
  }
  if (m->cfg.sleep_check_interval == 0) {
    m->cfg.sleep_check_interval = T2S_SECONDS;
  }
  t2s_sleep_detector_init(&m->sleep, m->cfg.sleep_threshold);
  *pm = m;
  return 0;
}

void t2s_monitor_linux_del(t2s_monitor_linux *m) {
  if (!m) {
    return;
  }
  mon_stop(m);
  free(m);
}

void t2s_monitor_linux_ops(t2s_monitor_linux *m, t2s_monitor *out) {
  out->ops = &monitor_linux_ops;
  out->self = m;
}

bool t2s_monitor_linux_dumping(const t2s_monitor_linux *m) {
  return m->dumping;
}
