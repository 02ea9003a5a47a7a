/*
 * proxy_host.c: the proxies in the binary (proxy_host.h, docs/proxies.md): the list the engine
 * gets, the probes it asks for, the names resolved again when it matters (proxy_resolve.c), and
 * the log lines of their health at the default level.
 */
#include "proxy_host.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxy_probe.h"
#include "proxy_resolve.h"
#include "rec.h"
#include "runner_loop.h"

#define RESOLVE_TIMEOUT (5 * T2S_SECONDS)      /* one lookup's bound */
#define RESOLVE_BACKOFF_MAX (30 * T2S_SECONDS) /* the retries of a name that does not resolve */

typedef struct ph_proxy {
  char label[T2S_PROXY_LABEL_MAX]; /* "proxy.test:1080" or "192.0.2.2:1080": log and metrics */
  char host[T2S_PROXY_FIELD_MAX];  /* as given */
  uint16_t port;
  bool is_name;       /* host needs a lookup */
  bool has_addr;      /* addr is known (a literal, or a name that resolved) */
  t2s_addr addr;      /* where its sockets go */
  char addr_text[64]; /* "192.0.2.2:1080"; "" while it has no address */
  bool has_auth;
  char username[T2S_PROXY_FIELD_MAX];
  char password[T2S_PROXY_FIELD_MAX];
  struct event *retry;   /* the next lookup of a name that failed */
  t2s_tstamp backoff;    /* the wait after the next failed lookup */
  uint32_t lookup_fails; /* lookups failed in a row */
  uint64_t lookups;      /* lookups started */
} ph_proxy;

typedef struct ph_retry_ref {
  t2s_proxy_host *ph;
  size_t i;
} ph_retry_ref;

struct t2s_proxy_host {
  t2s_engine *engine;
  struct t2s_loop *loop;
  t2s_clock clock;
  t2s_proxy_prober *prober;
  t2s_proxy_resolver *resolver;
  t2s_tstamp backoff_min; /* --proxy-probe-interval */
  size_t n;
  ph_proxy p[T2S_PROXY_MAX];
  ph_retry_ref ref[T2S_PROXY_MAX];
};

bool t2s_proxy_host_is_event(t2s_engine_event_type t) {
  return t == T2S_EV_PROXY_PROBE || t == T2S_EV_PROXY_DOWN || t == T2S_EV_PROXY_UP ||
         t == T2S_EV_PROXY_FAILURES;
}

static t2s_tstamp now_of(const t2s_proxy_host *ph) {
  return ph->clock.ops->now(ph->clock.self);
}

static void on_probe_done(void *arg, size_t index, int err) {
  t2s_proxy_host *ph = arg;
  if (ph->engine == NULL || index >= ph->n) {
    return;
  }
  if (err != 0) {
    T2S_DEBUG("proxy %s: probe failed: %s", ph->p[index].label, t2s_strerror(err));
  }
  t2s_rec_proxy_probe_result(ph->loop->rec, ph->engine, index, err, now_of(ph));
  t2s_loop_rearm(ph->loop);
}

/* ---------------- names ---------------- */

/* Starts a lookup of proxy i's name now (a lookup still out is abandoned: the network it asked
 * on may be gone). */
static void resolve_now(t2s_proxy_host *ph, size_t i, const char *why) {
  ph_proxy *p = &ph->p[i];
  if (!p->is_name || ph->resolver == NULL) {
    return;
  }
  evtimer_del(p->retry);
  int rv = t2s_proxy_resolver_start(ph->resolver, i, p->host, p->port, RESOLVE_TIMEOUT);
  if (rv != 0) {
    T2S_WARN("proxy %s: cannot start resolving %s: %s", p->label, p->host, t2s_strerror(rv));
    struct timeval tv = {.tv_sec = 1};
    evtimer_add(p->retry, &tv);
    return;
  }
  p->lookups++;
  T2S_DEBUG("proxy %s: resolving %s (%s)", p->label, p->host, why);
}

static void on_retry(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  const ph_retry_ref *ref = arg;
  resolve_now(ref->ph, ref->i, "retry");
}

static void schedule_retry(t2s_proxy_host *ph, size_t i) {
  ph_proxy *p = &ph->p[i];
  t2s_tstamp wait = p->backoff;
  p->backoff = p->backoff * 2 > RESOLVE_BACKOFF_MAX ? RESOLVE_BACKOFF_MAX : p->backoff * 2;
  struct timeval tv = {.tv_sec = (time_t)(wait / T2S_SECONDS),
                       .tv_usec = (suseconds_t)(wait % T2S_SECONDS / 1000)};
  evtimer_add(p->retry, &tv);
}

static void on_resolved(void *arg, size_t i, int err, const t2s_addr *addr, const char *why) {
  t2s_proxy_host *ph = arg;
  if (i >= ph->n || ph->engine == NULL) {
    return;
  }
  ph_proxy *p = &ph->p[i];
  if (err != 0) {
    p->lookup_fails++;
    t2s_tstamp wait = p->backoff;
    const t2s_proxy_set *set = t2s_engine_proxy_health(ph->engine);
    bool down = set != NULL && set->p[i].state == T2S_PROXY_DOWN;
    if (!p->has_addr) {
      /* The documented UNRESOLVED state: new flows are refused at once until it resolves. */
      if (p->lookup_fails == 1) {
        T2S_WARN("proxy %s: cannot resolve %s (%s): new flows are refused at once; retrying in "
                 "%.1f s, backing off to %.0f s",
                 p->label, p->host, why[0] ? why : t2s_strerror(err), (double)wait / 1e9,
                 (double)RESOLVE_BACKOFF_MAX / 1e9);
      } else {
        T2S_DEBUG("proxy %s: cannot resolve %s (%s), attempt %u", p->label, p->host,
                  why[0] ? why : t2s_strerror(err), p->lookup_fails);
      }
      schedule_retry(ph, i);
    } else {
      if (p->lookup_fails == 1) {
        T2S_WARN("proxy %s: cannot resolve %s again (%s): keeping %s", p->label, p->host,
                 why[0] ? why : t2s_strerror(err), p->addr_text);
      }
      if (down) {
        schedule_retry(ph, i); /* a DOWN proxy's name is worth asking again */
      }
    }
    return;
  }
  p->lookup_fails = 0;
  p->backoff = ph->backoff_min;
  if (p->has_addr && t2s_addr_eq(&p->addr, addr)) {
    T2S_DEBUG("proxy %s: %s still resolves to %s", p->label, p->host, p->addr_text);
    return;
  }
  char before[64];
  snprintf(before, sizeof(before), "%s", p->has_addr ? p->addr_text : "");
  p->addr = *addr;
  p->has_addr = true;
  t2s_addr_format(addr, true, p->addr_text, sizeof(p->addr_text));
  int rv = t2s_rec_proxy_set_addr(ph->loop->rec, ph->engine, i, addr, now_of(ph));
  if (rv != 0) {
    T2S_ERROR("proxy %s: cannot use %s: %s", p->label, p->addr_text, t2s_strerror(rv));
    return;
  }
  if (before[0]) {
    T2S_INFO("proxy %s: %s now resolves to %s (was %s): new flows go there", p->label, p->host,
             p->addr_text, before);
  } else {
    T2S_INFO("proxy %s: %s resolved to %s: new flows are carried", p->label, p->host, p->addr_text);
  }
  t2s_loop_rearm(ph->loop);
}

void t2s_proxy_host_network_changed(t2s_proxy_host *ph) {
  if (ph == NULL) {
    return;
  }
  for (size_t i = 0; i < ph->n; i++) {
    ph->p[i].backoff = ph->backoff_min;
    resolve_now(ph, i, "the network changed");
  }
}

/* ---------------- setup ---------------- */

static void set_proxy(ph_proxy *p, const char *host, uint16_t port, const t2s_addr *addr,
                      const char *username, const char *password) {
  snprintf(p->host, sizeof(p->host), "%s", host);
  p->port = port;
  p->is_name = !t2s_proxy_host_is_literal(host);
  p->has_addr = addr != NULL && addr->family != 0;
  if (p->has_addr) {
    p->addr = *addr;
    t2s_addr_format(addr, true, p->addr_text, sizeof(p->addr_text));
  }
  if (p->is_name) {
    snprintf(p->label, sizeof(p->label), "%s:%u", host, port);
  } else {
    snprintf(p->label, sizeof(p->label), "%s", p->addr_text);
  }
  if (username != NULL) {
    p->has_auth = true;
    snprintf(p->username, sizeof(p->username), "%s", username);
    snprintf(p->password, sizeof(p->password), "%s", password ? password : "");
  }
}

/* The host for opts' proxies (the first at `first`, NULL or family 0: parsed here when a
 * literal, else its name is looked up later), with its prober and resolver; the engine is not
 * told (start and replace do). */
static int host_build(t2s_proxy_host **pph, struct event_base *base, struct t2s_loop *loop,
                      t2s_engine *engine, const t2s_clock *clock, const t2s_cli_opts *opts,
                      const t2s_addr *first, const char *username, const char *password) {
  *pph = NULL;
  t2s_proxy_host *ph = calloc(1, sizeof(*ph));
  if (ph == NULL) {
    T2S_ERROR("out of memory");
    return T2S_ERR_NOMEM;
  }
  ph->engine = engine;
  ph->loop = loop;
  ph->clock = *clock;
  ph->n = 1 + opts->nmore_proxies;
  ph->backoff_min = opts->proxy_probe_interval_ns ? opts->proxy_probe_interval_ns : T2S_SECONDS;
  for (size_t i = 0; i < ph->n; i++) {
    const t2s_proxy_url *u = i == 0 ? &opts->proxy : &opts->more_proxies[i - 1];
    t2s_addr a;
    memset(&a, 0, sizeof(a));
    if (i == 0 && first != NULL) {
      a = *first;
    }
    if (a.family == 0 && t2s_proxy_host_is_literal(u->host)) {
      /* A literal needs no lookup: parsed here, on the loop's thread. */
      char why[96];
      if (t2s_proxy_resolve_bounded(u->host, u->port, &a, T2S_SECONDS, why, sizeof(why)) != 0) {
        memset(&a, 0, sizeof(a));
      }
    }
    if (i == 0) {
      set_proxy(&ph->p[0], u->host, u->port, &a, username, password);
    } else {
      set_proxy(&ph->p[i], u->host, u->port, &a, u->has_user ? u->user : NULL,
                u->has_pass ? u->pass : "");
    }
  }
  int rv = t2s_proxy_resolver_new(&ph->resolver, base, on_resolved, ph);
  for (size_t i = 0; rv == 0 && i < ph->n; i++) {
    ph->p[i].backoff = ph->backoff_min;
    ph->ref[i] = (ph_retry_ref){.ph = ph, .i = i};
    ph->p[i].retry = evtimer_new(base, on_retry, &ph->ref[i]);
    if (ph->p[i].retry == NULL) {
      rv = T2S_ERR_NOMEM;
    }
  }
  if (rv == 0) {
    rv = t2s_proxy_prober_new(&ph->prober, base, opts->proxy_probe_host, opts->proxy_probe_port,
                              opts->tcp_connect_timeout_ns, on_probe_done, ph);
  }
  if (rv == 0 && loop != NULL) {
    t2s_proxy_prober_set_upstream(ph->prober, loop->up); /* protect, egress: as upstream */
  }
  if (rv != 0) {
    T2S_ERROR("cannot set up the proxies: %s", t2s_strerror(rv));
    t2s_proxy_host_del(ph);
    return rv;
  }
  *pph = ph;
  return 0;
}

/* The engine's list: family 0 for a name without an address yet (UNRESOLVED). */
static void host_list(const t2s_proxy_host *ph, t2s_engine_proxy *list) {
  for (size_t i = 0; i < ph->n; i++) {
    memset(&list[i], 0, sizeof(list[i]));
    if (ph->p[i].has_addr) {
      list[i].addr = ph->p[i].addr;
    }
    list[i].username = ph->p[i].has_auth ? ph->p[i].username : NULL;
    list[i].password = ph->p[i].has_auth ? ph->p[i].password : NULL;
  }
}

/* The proxies to the log (prefix "" or "reload: "), and the lookups of names without an
 * address. */
static void host_announce(t2s_proxy_host *ph, const char *prefix) {
  for (size_t i = 0; i < ph->n; i++) {
    const ph_proxy *p = &ph->p[i];
    char at[96] = "";
    if (p->is_name) {
      snprintf(at, sizeof(at), p->has_addr ? " at %s" : " (not resolved yet)", p->addr_text);
    }
    T2S_INFO("%sproxy %zu of %zu: %s%s%s", prefix, i + 1, ph->n, p->label, at,
             p->has_auth ? " with user/password" : "");
    if (p->is_name && !p->has_addr) {
      resolve_now(ph, i, "start");
    }
  }
}

static t2s_proxy_health_config host_health_config(const t2s_cli_opts *opts) {
  t2s_proxy_health_config hcfg;
  t2s_proxy_health_config_default(&hcfg);
  hcfg.probe_interval = opts->proxy_probe_interval_ns;
  return hcfg;
}

int t2s_proxy_host_start(t2s_proxy_host **pph, struct event_base *base, struct t2s_loop *loop,
                         t2s_engine *engine, const t2s_clock *clock, const t2s_cli_opts *opts,
                         const t2s_addr *first, const char *username, const char *password) {
  t2s_proxy_host *ph;
  int rv = host_build(&ph, base, loop, engine, clock, opts, first, username, password);
  if (rv != 0) {
    return rv;
  }
  t2s_engine_proxy list[T2S_PROXY_MAX];
  host_list(ph, list);
  t2s_proxy_health_config hcfg = host_health_config(opts);
  rv = t2s_rec_set_proxies(loop->rec, engine, list, ph->n, &hcfg, now_of(ph));
  if (rv != 0) {
    T2S_ERROR("cannot set up the proxies: %s", t2s_strerror(rv));
    t2s_proxy_host_del(ph);
    return rv;
  }
  host_announce(ph, "");
  *pph = ph;
  return 0;
}

t2s_ssize t2s_proxy_host_replace(t2s_proxy_host **pph, struct event_base *base,
                                 const t2s_cli_opts *opts, const char *username,
                                 const char *password) {
  t2s_proxy_host *old = *pph;
  if (old == NULL) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  t2s_proxy_host *ph;
  int rv =
      host_build(&ph, base, old->loop, old->engine, &old->clock, opts, NULL, username, password);
  if (rv != 0) {
    return rv;
  }
  /* A name the old list had keeps the address it resolved to (looked up again below only
   * when it had none). */
  for (size_t i = 0; i < ph->n; i++) {
    ph_proxy *p = &ph->p[i];
    for (size_t j = 0; j < old->n && p->is_name && !p->has_addr; j++) {
      const ph_proxy *q = &old->p[j];
      if (q->is_name && q->has_addr && q->port == p->port && strcmp(q->host, p->host) == 0) {
        p->has_addr = true;
        p->addr = q->addr;
        snprintf(p->addr_text, sizeof(p->addr_text), "%s", q->addr_text);
        p->lookups = q->lookups;
      }
    }
  }
  t2s_engine_proxy list[T2S_PROXY_MAX];
  host_list(ph, list);
  t2s_proxy_health_config hcfg = host_health_config(opts);
  t2s_ssize reset =
      t2s_rec_replace_proxies(ph->loop->rec, ph->engine, list, ph->n, &hcfg, now_of(ph));
  if (reset < 0) {
    T2S_ERROR("reload: cannot give the engine the proxies: %s", t2s_strerror((int)reset));
    t2s_proxy_host_del(ph);
    return reset;
  }
  t2s_proxy_host_del(old); /* its probes and lookups still out are dropped with it */
  *pph = ph;
  host_announce(ph, "reload: ");
  t2s_loop_rearm(ph->loop);
  return reset;
}

void t2s_proxy_host_del(t2s_proxy_host *ph) {
  if (ph == NULL) {
    return;
  }
  t2s_proxy_resolver_del(ph->resolver);
  t2s_proxy_prober_del(ph->prober);
  for (size_t i = 0; i < ph->n; i++) {
    if (ph->p[i].retry) {
      event_free(ph->p[i].retry);
    }
    explicit_bzero(ph->p[i].password, sizeof(ph->p[i].password));
  }
  free(ph);
}

/* ---------------- /stats and /metrics ---------------- */

static double ago_s(t2s_tstamp now, t2s_tstamp then) {
  if (then == T2S_TSTAMP_MAX) {
    return -1.0;
  }
  return now > then ? (double)(now - then) / 1e9 : 0.0;
}

void t2s_proxy_host_collect(const t2s_proxy_host *ph, t2s_metrics_snapshot *snap) {
  if (ph == NULL || ph->engine == NULL) {
    return;
  }
  const t2s_proxy_set *set = t2s_engine_proxy_health(ph->engine);
  if (set == NULL) {
    return;
  }
  t2s_tstamp now = now_of(ph);
  snap->nproxies = set->n;
  for (size_t i = 0; i < set->n && i < T2S_PROXY_MAX; i++) {
    const t2s_proxy_health *h = &set->p[i];
    t2s_metrics_proxy *m = &snap->proxies[i];
    snprintf(m->name, sizeof(m->name), "%s", ph->p[i].label);
    snprintf(m->address, sizeof(m->address), "%s", ph->p[i].addr_text);
    m->state = (uint32_t)h->state;
    m->since_change_s = ago_s(now, h->changed_at);
    m->last_success_ago_s = ago_s(now, h->last_success_at);
    m->last_failure_ago_s = ago_s(now, h->last_failure_at);
    m->last_cause = (uint32_t)h->last_cause;
    m->flows = h->picks;
    m->downs = h->downs;
    m->probes = h->probes;
    m->bytes_up = h->bytes_up;
    m->bytes_down = h->bytes_down;
    m->lookups = ph->p[i].lookups;
    memcpy(m->failures, h->failures, sizeof(m->failures));
  }
}

/* ---------------- the engine's events: probes and the log ---------------- */

/* The first proxy that takes new flows now, or -1. */
static int in_use(const t2s_proxy_host *ph) {
  const t2s_proxy_set *set = t2s_engine_proxy_health(ph->engine);
  int suspect = -1;
  for (size_t i = 0; set && i < set->n; i++) {
    if (set->p[i].state == T2S_PROXY_UP) {
      return (int)i;
    }
    if (set->p[i].state == T2S_PROXY_SUSPECT && suspect < 0) {
      suspect = (int)i;
    }
  }
  return suspect;
}

void t2s_proxy_host_event(t2s_proxy_host *ph, const t2s_engine_event *ev) {
  if (ph == NULL || ev->flow_id >= ph->n) {
    return;
  }
  size_t i = (size_t)ev->flow_id;
  ph_proxy *p = &ph->p[i];
  const char *cause = t2s_proxy_cause_text((t2s_proxy_cause)ev->reason);
  /* A name's label says which address it had: "proxy.test:1080 (192.0.2.2:1080)". */
  char who[T2S_PROXY_LABEL_MAX + 72];
  if (p->is_name && p->has_addr) {
    snprintf(who, sizeof(who), "%s (%s)", p->label, p->addr_text);
  } else {
    snprintf(who, sizeof(who), "%s", p->label);
  }
  switch (ev->type) {
  case T2S_EV_PROXY_PROBE: {
    if (!p->has_addr) {
      break; /* never asked: an UNRESOLVED proxy is not probed */
    }
    T2S_DEBUG("proxy %s: probing", who);
    const t2s_egress *eg = t2s_engine_get_egress(ph->engine);
    int rv = t2s_proxy_probe_start(ph->prober, i, &p->addr, eg, p->has_auth ? p->username : NULL,
                                   p->has_auth ? p->password : NULL);
    if (rv != 0) {
      T2S_WARN("proxy %s: cannot probe: %s", who, t2s_strerror(rv));
    }
    break;
  }
  case T2S_EV_PROXY_FAILURES:
    if (ev->bytes_down == 0) {
      T2S_WARN("proxy %s: %s (further failures are counted for 10 s)", who, cause);
    } else {
      T2S_WARN("proxy %s: %s, %llu flows refused in the last %.0f s", who, cause,
               (unsigned long long)ev->bytes_up, (double)ev->bytes_down / 1e9);
    }
    break;
  case T2S_EV_PROXY_DOWN: {
    int next = in_use(ph);
    if (next >= 0) {
      T2S_WARN("proxy %s: down (%s): %llu flows reset; new flows go to %s", who, cause,
               (unsigned long long)ev->bytes_up, ph->p[next].label);
    } else {
      T2S_WARN("proxy %s: down (%s): %llu flows reset; every proxy is down: new flows are "
               "refused at once until one answers a probe",
               who, cause, (unsigned long long)ev->bytes_up);
    }
    /* Its name may lead elsewhere now (dynamic DNS, split DNS). */
    p->backoff = ph->backoff_min;
    resolve_now(ph, i, "the proxy is down");
    break;
  }
  case T2S_EV_PROXY_UP:
    T2S_INFO("proxy %s: up again (a probe succeeded): new flows use it%s", who,
             in_use(ph) == (int)i ? "" : " when the proxies before it are down");
    break;
  default:
    break;
  }
}
