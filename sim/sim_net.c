/* sim_net.c: the simulated host's interfaces, routes and sleep (see sim_net.h). */
#include "sim_net.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "sim_world.h"

#define LO_IFINDEX 1

typedef struct link {
  char name[T2S_IFNAMSIZ];
  uint32_t ifindex;
  bool up;
  sim_cidr addrs[SIM_NET_MAX_ADDRS];
  size_t naddrs;
  t2s_addr gw[2]; /* per family: [0] v4, [1] v6 */
  t2s_tstamp latency;
} link;

typedef struct route {
  sim_cidr prefix;
  uint32_t ifindex;
} route;

struct sim_net {
  sim_world *w;
  link links[SIM_NET_MAX_LINKS];
  size_t nlinks;
  uint32_t def[2]; /* default route per family ([0] v4, [1] v6): ifindex, 0 = none */
  route routes[SIM_NET_MAX_ROUTES];
  size_t nroutes;
  bool suspended;
  t2s_tstamp suspended_at;
  t2s_net_event_cb cb;
  void *cb_arg;
};

static int fam_idx(uint8_t family) {
  return family == T2S_AF_INET6 ? 1 : 0;
}

static size_t ip_len(uint8_t family) {
  return family == T2S_AF_INET6 ? 16 : 4;
}

int sim_cidr_parse(const char *s, sim_cidr *out) {
  const char *slash = strrchr(s, '/');
  char buf[64];
  if (slash == NULL || (size_t)(slash - s) >= sizeof(buf)) {
    return -1;
  }
  memcpy(buf, s, (size_t)(slash - s));
  buf[slash - s] = 0;
  /* "[v6]" is not an address here; t2s_addr_parse takes a bare v6 literal. */
  memset(out, 0, sizeof(*out));
  if (t2s_addr_parse(buf, &out->addr) != 0 || out->addr.port != 0) {
    return -1;
  }
  char *end;
  unsigned long len = strtoul(slash + 1, &end, 10);
  if (slash[1] == 0 || *end != 0 || len > ip_len(out->addr.family) * 8) {
    return -1;
  }
  out->len = (uint8_t)len;
  return 0;
}

/* True when a is inside prefix (same family). */
static bool in_prefix(const sim_cidr *prefix, const t2s_addr *a) {
  if (prefix->addr.family != a->family) {
    return false;
  }
  unsigned bits = prefix->len;
  for (unsigned i = 0; i < ip_len(a->family) && bits > 0; i++) {
    uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
    if ((prefix->addr.ip[i] & mask) != (a->ip[i] & mask)) {
      return false;
    }
    bits = bits >= 8 ? bits - 8 : 0;
  }
  return true;
}

static link *find_link(sim_net *n, const char *name) {
  for (size_t i = 0; i < n->nlinks; i++) {
    if (strcmp(n->links[i].name, name) == 0) {
      return &n->links[i];
    }
  }
  return NULL;
}

static const link *link_by_index(const sim_net *n, uint32_t ifindex) {
  for (size_t i = 0; i < n->nlinks; i++) {
    if (n->links[i].ifindex == ifindex) {
      return &n->links[i];
    }
  }
  return NULL;
}

const char *sim_net_ifname(const sim_net *n, uint32_t ifindex) {
  if (ifindex == 0) {
    return "none";
  }
  if (ifindex == LO_IFINDEX) {
    return "lo";
  }
  const link *l = link_by_index(n, ifindex);
  return l ? l->name : "?";
}

/* The first address of family on l, or NULL. */
static const sim_cidr *first_addr(const link *l, uint8_t family) {
  for (size_t i = 0; i < l->naddrs; i++) {
    if (l->addrs[i].addr.family == family) {
      return &l->addrs[i];
    }
  }
  return NULL;
}

static bool has_addr(const link *l, const t2s_addr *a) {
  for (size_t i = 0; i < l->naddrs; i++) {
    if (t2s_addr_ip_eq(&l->addrs[i].addr, a)) {
      return true;
    }
  }
  return false;
}

/* A link can carry traffic of family: up, with an address of that family. */
static bool usable(const link *l, uint8_t family) {
  return l != NULL && l->up && first_addr(l, family) != NULL;
}

sim_net *sim_net_new(sim_world *w) {
  sim_net *n = calloc(1, sizeof(*n));
  if (n != NULL) {
    n->w = w;
  }
  return n;
}

void sim_net_del(sim_net *n) {
  free(n);
}

/* ---------------- routing ---------------- */

static bool is_loopback_addr(const t2s_addr *a) {
  if (a->family == T2S_AF_INET) {
    return a->ip[0] == 127;
  }
  static const uint8_t one[16] = {[15] = 1};
  return a->family == T2S_AF_INET6 && memcmp(a->ip, one, 16) == 0;
}

static void fill_route(const sim_net *n, uint32_t ifindex, const t2s_addr *src, bool local,
                       t2s_route *out) {
  memset(out, 0, sizeof(*out));
  out->ifindex = ifindex;
  snprintf(out->ifname, sizeof(out->ifname), "%s", sim_net_ifname(n, ifindex));
  out->src = *src;
  out->src.port = 0;
  out->local = local;
}

/*
 * The lookup: one of our own addresses (or loopback) is local; otherwise the longest prefix
 * among prefix routes, connected prefixes and the default route of dst's family, each only
 * through an interface that is up and holds an address of that family. only_ifindex != 0
 * restricts the lookup to routes through that interface (SO_BINDTODEVICE).
 */
static int lookup(const sim_net *n, const t2s_addr *dst, uint32_t only_ifindex, t2s_route *out) {
  if (is_loopback_addr(dst)) {
    fill_route(n, LO_IFINDEX, dst, true, out);
    return 0;
  }
  for (size_t i = 0; i < n->nlinks; i++) {
    if (has_addr(&n->links[i], dst)) {
      fill_route(n, LO_IFINDEX, dst, true, out);
      return 0;
    }
  }
  int best_len = -1;
  const link *best = NULL;
  const t2s_addr *best_src = NULL;
  for (size_t i = 0; i < n->nroutes; i++) {
    const route *r = &n->routes[i];
    const link *l = link_by_index(n, r->ifindex);
    if ((only_ifindex && r->ifindex != only_ifindex) || !usable(l, dst->family) ||
        !in_prefix(&r->prefix, dst) || (int)r->prefix.len <= best_len) {
      continue;
    }
    best_len = r->prefix.len;
    best = l;
    best_src = &first_addr(l, dst->family)->addr;
  }
  for (size_t i = 0; i < n->nlinks; i++) {
    const link *l = &n->links[i];
    if ((only_ifindex && l->ifindex != only_ifindex) || !l->up) {
      continue;
    }
    for (size_t k = 0; k < l->naddrs; k++) {
      if (in_prefix(&l->addrs[k], dst) && (int)l->addrs[k].len > best_len) {
        best_len = l->addrs[k].len;
        best = l;
        best_src = &l->addrs[k].addr;
      }
    }
  }
  uint32_t d = n->def[fam_idx(dst->family)];
  if (best == NULL && d != 0 && (!only_ifindex || d == only_ifindex)) {
    const link *l = link_by_index(n, d);
    if (usable(l, dst->family)) {
      best = l;
      best_src = &first_addr(l, dst->family)->addr;
    }
  }
  if (best == NULL) {
    return T2S_ERR_UNREACHABLE;
  }
  fill_route(n, best->ifindex, best_src, false, out);
  return 0;
}

int sim_net_route_get(const sim_net *n, const t2s_addr *dst, t2s_route *out) {
  if (dst->family != T2S_AF_INET && dst->family != T2S_AF_INET6) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  return lookup(n, dst, 0, out);
}

int sim_net_path_open(const sim_net *n, const t2s_addr *dst, const t2s_egress *egress,
                      sim_net_path *out) {
  memset(out, 0, sizeof(*out));
  t2s_route r;
  int rv = lookup(n, dst, egress ? egress->ifindex : 0, &r);
  if (rv != 0) {
    return rv;
  }
  out->ifindex = r.ifindex;
  snprintf(out->ifname, sizeof(out->ifname), "%s", r.ifname);
  out->src = r.src;
  if (egress && egress->src.family == dst->family) {
    out->src = egress->src;
    out->src.port = 0;
  }
  const link *l = link_by_index(n, r.ifindex);
  out->latency = l ? l->latency : 0;
  return 0;
}

bool sim_net_path_alive(const sim_net *n, const sim_net_path *p) {
  if (n->suspended) {
    return false;
  }
  if (p->ifindex == LO_IFINDEX) {
    return true;
  }
  const link *l = link_by_index(n, p->ifindex);
  return l != NULL && l->up && has_addr(l, &p->src);
}

/* ---------------- the monitor ---------------- */

static int mon_start(void *self, t2s_net_event_cb cb, void *arg) {
  sim_net *n = self;
  /* The initial state is the scenario's configuration, which the engine's egress already
   * reflects: the simulated monitor reports changes only. */
  n->cb = cb;
  n->cb_arg = arg;
  return 0;
}

static void mon_stop(void *self) {
  sim_net *n = self;
  n->cb = NULL;
}

static int mon_route_get(void *self, const t2s_addr *dst, uint32_t mark, t2s_route *out) {
  (void)mark; /* the simulated host has no policy rules */
  return sim_net_route_get(self, dst, out);
}

static const t2s_monitor_ops sim_monitor_ops = {
    .start = mon_start,
    .stop = mon_stop,
    .route_get = mon_route_get,
};

t2s_monitor sim_net_monitor(sim_net *n) {
  return (t2s_monitor){&sim_monitor_ops, n};
}

/* ---------------- changes ---------------- */

static const char *net_event_name(t2s_net_event_type t) {
  switch (t) {
  case T2S_NET_LINK_UP:
    return "link_up";
  case T2S_NET_LINK_DOWN:
    return "link_down";
  case T2S_NET_ADDR_ADDED:
    return "addr_added";
  case T2S_NET_ADDR_REMOVED:
    return "addr_removed";
  case T2S_NET_DEFAULT_ROUTE_CHANGED:
    return "default_route_changed";
  case T2S_NET_ROUTE_CHANGED:
    return "route_changed";
  case T2S_NET_PAUSED:
    return "paused";
  case T2S_NET_RESUMED:
    return "resumed";
  }
  return "?";
}

/* Logs the event and hands it to the engine (through the callback given to start). */
static void emit(sim_net *n, const t2s_net_event *ev, t2s_tstamp now) {
  sim_log *log = &n->w->log;
  sim_log_begin(log, now, "monitor");
  sim_log_str(log, "kind", net_event_name(ev->type));
  if (ev->ifname[0]) {
    sim_log_str(log, "dev", ev->ifname);
  }
  if (ev->addr.family) {
    sim_log_addr(log, ev->type == T2S_NET_DEFAULT_ROUTE_CHANGED ? "gateway" : "addr", &ev->addr);
  }
  if (ev->type == T2S_NET_ADDR_ADDED || ev->type == T2S_NET_ADDR_REMOVED) {
    sim_log_u64(log, "prefixlen", ev->prefixlen);
  }
  if (ev->type == T2S_NET_DEFAULT_ROUTE_CHANGED || ev->type == T2S_NET_ROUTE_CHANGED) {
    sim_log_str(log, "family", ev->family == T2S_AF_INET6 ? "inet6" : "inet");
  }
  if (ev->type == T2S_NET_DEFAULT_ROUTE_CHANGED) {
    sim_log_bool(log, "removed", ev->removed);
  }
  if (ev->type == T2S_NET_RESUMED) {
    sim_log_u64(log, "slept_ns", ev->slept_ns);
  }
  sim_log_end(log);
  if (n->cb != NULL) {
    n->cb(n->cb_arg, ev); /* the loop's clock shows now */
  }
}

static void link_event(sim_net *n, const link *l, t2s_net_event_type type, t2s_tstamp now) {
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = type;
  ev.ifindex = l->ifindex;
  snprintf(ev.ifname, sizeof(ev.ifname), "%s", l->name);
  emit(n, &ev, now);
}

static void addr_event(sim_net *n, const link *l, const sim_cidr *c, bool added, t2s_tstamp now) {
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = added ? T2S_NET_ADDR_ADDED : T2S_NET_ADDR_REMOVED;
  ev.ifindex = l->ifindex;
  snprintf(ev.ifname, sizeof(ev.ifname), "%s", l->name);
  ev.family = c->addr.family;
  ev.addr = c->addr;
  ev.prefixlen = c->len;
  emit(n, &ev, now);
}

/* The default route of a family as the kernel would show it: the configured one when its
 * interface can carry that family (a route through a down interface or one without an
 * address of the family is gone). Returns its ifindex or 0. */
static uint32_t active_default(const sim_net *n, int fi) {
  uint32_t d = n->def[fi];
  const link *l = d ? link_by_index(n, d) : NULL;
  return usable(l, fi ? T2S_AF_INET6 : T2S_AF_INET) ? d : 0;
}

static void default_events(sim_net *n, const uint32_t before[2], t2s_tstamp now) {
  for (int fi = 0; fi < 2; fi++) {
    uint32_t after = active_default(n, fi);
    if (after == before[fi]) {
      continue;
    }
    t2s_net_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = T2S_NET_DEFAULT_ROUTE_CHANGED;
    ev.family = fi ? T2S_AF_INET6 : T2S_AF_INET;
    ev.removed = after == 0;
    const link *l = link_by_index(n, after ? after : before[fi]);
    if (l != NULL) {
      ev.ifindex = l->ifindex;
      snprintf(ev.ifname, sizeof(ev.ifname), "%s", l->name);
      if (after) {
        ev.addr = l->gw[fi];
      }
    }
    emit(n, &ev, now);
  }
}

static link *add_link(sim_net *n, const char *name) {
  link *l = find_link(n, name);
  if (l != NULL || n->nlinks == SIM_NET_MAX_LINKS) {
    return l;
  }
  l = &n->links[n->nlinks];
  memset(l, 0, sizeof(*l));
  snprintf(l->name, sizeof(l->name), "%s", name);
  l->ifindex = (uint32_t)(LO_IFINDEX + 1 + n->nlinks);
  n->nlinks++;
  return l;
}

static int find_addr(const link *l, const sim_cidr *c) {
  for (size_t i = 0; i < l->naddrs; i++) {
    if (t2s_addr_ip_eq(&l->addrs[i].addr, &c->addr)) {
      return (int)i;
    }
  }
  return -1;
}

int sim_net_check(const sim_net *n, const sim_net_action *a, char *err, size_t errlen) {
  switch (a->op) {
  case SIM_NET_LINK: {
    const link *l = NULL;
    for (size_t i = 0; i < n->nlinks; i++) {
      if (strcmp(n->links[i].name, a->link) == 0) {
        l = &n->links[i];
      }
    }
    if (l == NULL && n->nlinks == SIM_NET_MAX_LINKS) {
      snprintf(err, errlen, "link: at most %d links", SIM_NET_MAX_LINKS);
      return T2S_ERR_LIMIT;
    }
    if ((l ? l->naddrs : 0) + a->naddrs > SIM_NET_MAX_ADDRS) {
      snprintf(err, errlen, "link %s: at most %d addresses", a->link, SIM_NET_MAX_ADDRS);
      return T2S_ERR_LIMIT;
    }
    return 0;
  }
  case SIM_NET_ADDR_ADD:
  case SIM_NET_ADDR_DEL:
  case SIM_NET_DEFAULT_VIA:
  case SIM_NET_ROUTE_VIA:
    for (size_t i = 0; i < n->nlinks; i++) {
      if (strcmp(n->links[i].name, a->link) == 0) {
        return 0;
      }
    }
    snprintf(err, errlen, "no link is called '%s' (declare it first: link %s up ...)", a->link,
             a->link);
    return T2S_ERR_NOT_FOUND;
  default:
    return 0;
  }
}

/* Changes the state; `now` is only used for suspend. Returns the link touched (or NULL). */
static link *change(sim_net *n, const sim_net_action *a, t2s_tstamp now, bool *pwas_up) {
  link *l = NULL;
  *pwas_up = false;
  switch (a->op) {
  case SIM_NET_LINK:
    l = add_link(n, a->link);
    if (l == NULL) {
      return NULL;
    }
    *pwas_up = l->up;
    l->up = a->up;
    for (int fi = 0; fi < 2; fi++) {
      if (a->gateways[fi].family) {
        l->gw[fi] = a->gateways[fi];
      }
    }
    if (a->has_latency) {
      l->latency = a->latency;
    }
    break;
  case SIM_NET_ADDR_ADD:
  case SIM_NET_ADDR_DEL:
  case SIM_NET_DEFAULT_VIA:
  case SIM_NET_ROUTE_VIA:
    l = find_link(n, a->link);
    if (l == NULL) {
      return NULL;
    }
    *pwas_up = l->up;
    if (a->op == SIM_NET_DEFAULT_VIA) {
      if (a->family != T2S_AF_INET6) {
        n->def[0] = l->ifindex;
      }
      if (a->family != T2S_AF_INET) {
        n->def[1] = l->ifindex;
      }
    } else if (a->op == SIM_NET_ROUTE_VIA) {
      size_t k = 0;
      while (k < n->nroutes && !(n->routes[k].prefix.len == a->prefix.len &&
                                 t2s_addr_ip_eq(&n->routes[k].prefix.addr, &a->prefix.addr))) {
        k++;
      }
      if (k == n->nroutes && n->nroutes < SIM_NET_MAX_ROUTES) {
        n->nroutes++;
      }
      if (k < n->nroutes) {
        n->routes[k].prefix = a->prefix;
        n->routes[k].ifindex = l->ifindex;
      }
    }
    break;
  case SIM_NET_DEFAULT_NONE:
    if (a->family != T2S_AF_INET6) {
      n->def[0] = 0;
    }
    if (a->family != T2S_AF_INET) {
      n->def[1] = 0;
    }
    break;
  case SIM_NET_ROUTE_DEL:
    for (size_t k = 0; k < n->nroutes; k++) {
      if (n->routes[k].prefix.len == a->prefix.len &&
          t2s_addr_ip_eq(&n->routes[k].prefix.addr, &a->prefix.addr)) {
        n->routes[k] = n->routes[--n->nroutes];
        break;
      }
    }
    break;
  case SIM_NET_SUSPEND:
    n->suspended = true;
    n->suspended_at = now;
    break;
  case SIM_NET_RESUME:
    n->suspended = false;
    break;
  }
  return l;
}

int sim_net_configure(sim_net *n, const sim_net_action *a, char *err, size_t errlen) {
  int rv = sim_net_check(n, a, err, errlen);
  if (rv != 0) {
    return rv;
  }
  bool was_up;
  link *l = change(n, a, 0, &was_up);
  if (a->op == SIM_NET_LINK && l != NULL) {
    for (size_t i = 0; i < a->naddrs; i++) {
      if (find_addr(l, &a->addrs[i]) < 0 && l->naddrs < SIM_NET_MAX_ADDRS) {
        l->addrs[l->naddrs++] = a->addrs[i];
      }
    }
  } else if (a->op == SIM_NET_ADDR_ADD && l != NULL) {
    if (find_addr(l, &a->addrs[0]) < 0 && l->naddrs < SIM_NET_MAX_ADDRS) {
      l->addrs[l->naddrs++] = a->addrs[0];
    }
  } else if (a->op == SIM_NET_ADDR_DEL && l != NULL) {
    int k = find_addr(l, &a->addrs[0]);
    if (k >= 0) {
      l->addrs[k] = l->addrs[--l->naddrs];
    }
  }
  return 0;
}

void sim_net_apply(sim_net *n, const sim_net_action *a, t2s_tstamp now) {
  uint32_t before[2] = {active_default(n, 0), active_default(n, 1)};
  sim_world *w = n->w;
  bool was_up;
  link *l = change(n, a, now, &was_up);
  bool needs_link = a->op == SIM_NET_LINK || a->op == SIM_NET_ADDR_ADD ||
                    a->op == SIM_NET_ADDR_DEL || a->op == SIM_NET_DEFAULT_VIA ||
                    a->op == SIM_NET_ROUTE_VIA;
  if (needs_link && l == NULL) {
    sim_log_begin(&w->log, now, "monitor_error");
    sim_log_str(&w->log, "what", "no such link (or too many links)");
    sim_log_str(&w->log, "dev", a->link);
    sim_log_end(&w->log);
    return;
  }
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  switch (a->op) {
  case SIM_NET_LINK:
    if (was_up != l->up) {
      link_event(n, l, l->up ? T2S_NET_LINK_UP : T2S_NET_LINK_DOWN, now);
    }
    for (size_t i = 0; i < a->naddrs; i++) {
      if (find_addr(l, &a->addrs[i]) < 0 && l->naddrs < SIM_NET_MAX_ADDRS) {
        l->addrs[l->naddrs++] = a->addrs[i];
        addr_event(n, l, &a->addrs[i], true, now);
      }
    }
    break;
  case SIM_NET_ADDR_ADD:
    if (find_addr(l, &a->addrs[0]) < 0 && l->naddrs < SIM_NET_MAX_ADDRS) {
      l->addrs[l->naddrs++] = a->addrs[0];
      addr_event(n, l, &a->addrs[0], true, now);
    }
    break;
  case SIM_NET_ADDR_DEL: {
    int k = find_addr(l, &a->addrs[0]);
    if (k >= 0) {
      sim_cidr gone = l->addrs[k];
      l->addrs[k] = l->addrs[--l->naddrs];
      addr_event(n, l, &gone, false, now);
    }
    break;
  }
  case SIM_NET_ROUTE_VIA:
  case SIM_NET_ROUTE_DEL:
    ev.type = T2S_NET_ROUTE_CHANGED;
    ev.family = a->prefix.addr.family;
    ev.addr = a->prefix.addr;
    ev.prefixlen = a->prefix.len;
    if (l != NULL) {
      ev.ifindex = l->ifindex;
      snprintf(ev.ifname, sizeof(ev.ifname), "%s", l->name);
    }
    emit(n, &ev, now);
    break;
  case SIM_NET_SUSPEND:
    ev.type = T2S_NET_PAUSED;
    emit(n, &ev, now);
    break;
  case SIM_NET_RESUME:
    ev.type = T2S_NET_RESUMED;
    ev.slept_ns = a->has_slept ? a->slept : now - n->suspended_at;
    /* The machine slept: CLOCK_BOOTTIME moved on by that much while CLOCK_MONOTONIC did not
     * (the virtual monotonic clock is the loop's; boottime is loop time + slept). */
    w->loop.slept += ev.slept_ns;
    emit(n, &ev, now);
    break;
  case SIM_NET_DEFAULT_VIA:
  case SIM_NET_DEFAULT_NONE:
    break;
  }
  default_events(n, before, now);
  sim_upstream_paths_changed(w->up, now);
}
