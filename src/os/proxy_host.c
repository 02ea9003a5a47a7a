/*
 * proxy_host.c: several proxies in the binary (proxy_host.h, docs/proxies.md).
 */
#include "proxy_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "proxy_probe.h"
#include "resolve.h"
#include "runner_loop.h"

struct t2s_proxy_host {
  t2s_engine *engine;
  struct t2s_loop *loop;
  t2s_clock clock;
  t2s_proxy_prober *prober;
  size_t n;
  t2s_addr addr[T2S_PROXY_MAX];
  bool has_auth[T2S_PROXY_MAX];
  char username[T2S_PROXY_MAX][T2S_PROXY_FIELD_MAX];
  char password[T2S_PROXY_MAX][T2S_PROXY_FIELD_MAX];
  char name[T2S_PROXY_MAX][80]; /* "192.0.2.2:1080" for the log */
};

bool t2s_proxy_host_is_event(t2s_engine_event_type t) {
  return t == T2S_EV_PROXY_PROBE || t == T2S_EV_PROXY_DOWN || t == T2S_EV_PROXY_UP ||
         t == T2S_EV_PROXY_FAILURES;
}

static void on_probe_done(void *arg, size_t index, int err) {
  t2s_proxy_host *ph = arg;
  if (ph->engine == NULL || index >= ph->n) {
    return;
  }
  if (err != 0) {
    T2S_DEBUG("proxy %s: probe failed: %s", ph->name[index], t2s_strerror(err));
  }
  t2s_engine_proxy_probe_result(ph->engine, index, err, ph->clock.ops->now(ph->clock.self));
  t2s_loop_rearm(ph->loop);
}

int t2s_proxy_host_start(t2s_proxy_host **pph, struct event_base *base, struct t2s_loop *loop,
                         t2s_engine *engine, const t2s_clock *clock, const t2s_cli_opts *opts,
                         const t2s_addr *first, const char *username, const char *password) {
  *pph = NULL;
  if (opts->nmore_proxies == 0) {
    return 0;
  }
  t2s_proxy_host *ph = calloc(1, sizeof(*ph));
  if (ph == NULL) {
    T2S_ERROR("out of memory");
    return T2S_ERR_NOMEM;
  }
  ph->engine = engine;
  ph->loop = loop;
  ph->clock = *clock;
  ph->n = 1 + opts->nmore_proxies;
  ph->addr[0] = *first;
  if (username != NULL) {
    ph->has_auth[0] = true;
    snprintf(ph->username[0], sizeof(ph->username[0]), "%s", username);
    snprintf(ph->password[0], sizeof(ph->password[0]), "%s", password ? password : "");
  }
  for (size_t i = 1; i < ph->n; i++) {
    const t2s_proxy_url *u = &opts->more_proxies[i - 1];
    int rv = t2s_resolve_host(u->host, u->port, &ph->addr[i], "--proxy");
    if (rv != 0) {
      free(ph);
      return rv;
    }
    if (u->has_user) {
      ph->has_auth[i] = true;
      snprintf(ph->username[i], sizeof(ph->username[i]), "%s", u->user);
      snprintf(ph->password[i], sizeof(ph->password[i]), "%s", u->has_pass ? u->pass : "");
    }
  }
  t2s_engine_proxy list[T2S_PROXY_MAX];
  for (size_t i = 0; i < ph->n; i++) {
    t2s_addr_format(&ph->addr[i], true, ph->name[i], sizeof(ph->name[i]));
    list[i].addr = ph->addr[i];
    list[i].username = ph->has_auth[i] ? ph->username[i] : NULL;
    list[i].password = ph->has_auth[i] ? ph->password[i] : NULL;
  }
  t2s_proxy_health_config hcfg;
  t2s_proxy_health_config_default(&hcfg);
  hcfg.probe_interval = opts->proxy_probe_interval_ns;
  int rv = t2s_proxy_prober_new(&ph->prober, base, opts->proxy_probe_host, opts->proxy_probe_port,
                                opts->tcp_connect_timeout_ns, on_probe_done, ph);
  if (rv == 0) {
    rv = t2s_engine_set_proxies(engine, list, ph->n, &hcfg, clock->ops->now(clock->self));
  }
  if (rv != 0) {
    T2S_ERROR("cannot set up the proxies: %s", t2s_strerror(rv));
    t2s_proxy_host_del(ph);
    return rv;
  }
  for (size_t i = 0; i < ph->n; i++) {
    T2S_INFO("proxy %zu of %zu: %s%s", i + 1, ph->n, ph->name[i],
             ph->has_auth[i] ? " with user/password" : "");
  }
  *pph = ph;
  return 0;
}

void t2s_proxy_host_del(t2s_proxy_host *ph) {
  if (ph == NULL) {
    return;
  }
  t2s_proxy_prober_del(ph->prober);
  explicit_bzero(ph->password, sizeof(ph->password));
  free(ph);
}

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
  t2s_tstamp now = ph->clock.ops->now(ph->clock.self);
  snap->nproxies = set->n;
  for (size_t i = 0; i < set->n && i < T2S_PROXY_MAX; i++) {
    const t2s_proxy_health *h = &set->p[i];
    t2s_metrics_proxy *m = &snap->proxies[i];
    snprintf(m->name, sizeof(m->name), "%s", ph->name[i]);
    m->state = (uint32_t)h->state;
    m->since_change_s = ago_s(now, h->changed_at);
    m->last_success_ago_s = ago_s(now, h->last_success_at);
    m->last_failure_ago_s = ago_s(now, h->last_failure_at);
    m->last_cause = (uint32_t)h->last_cause;
    m->flows = h->picks;
    m->downs = h->downs;
    m->probes = h->probes;
    memcpy(m->failures, h->failures, sizeof(m->failures));
  }
}

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
  const char *cause = t2s_proxy_cause_text((t2s_proxy_cause)ev->reason);
  switch (ev->type) {
  case T2S_EV_PROXY_PROBE: {
    T2S_DEBUG("proxy %s: probing", ph->name[i]);
    const t2s_egress *eg = t2s_engine_get_egress(ph->engine);
    int rv = t2s_proxy_probe_start(ph->prober, i, &ph->addr[i], eg,
                                   ph->has_auth[i] ? ph->username[i] : NULL,
                                   ph->has_auth[i] ? ph->password[i] : NULL);
    if (rv != 0) {
      T2S_WARN("proxy %s: cannot probe: %s", ph->name[i], t2s_strerror(rv));
    }
    break;
  }
  case T2S_EV_PROXY_FAILURES:
    if (ev->bytes_down == 0) {
      T2S_WARN("proxy %s: %s (further failures are counted for 10 s)", ph->name[i], cause);
    } else {
      T2S_WARN("proxy %s: %s, %llu flows refused in the last %.0f s", ph->name[i], cause,
               (unsigned long long)ev->bytes_up, (double)ev->bytes_down / 1e9);
    }
    break;
  case T2S_EV_PROXY_DOWN: {
    int next = in_use(ph);
    if (next >= 0) {
      T2S_WARN("proxy %s: down (%s): %llu flows reset; new flows go to %s", ph->name[i], cause,
               (unsigned long long)ev->bytes_up, ph->name[next]);
    } else {
      T2S_WARN("proxy %s: down (%s): %llu flows reset; every proxy is down: new flows are "
               "refused at once until one answers a probe",
               ph->name[i], cause, (unsigned long long)ev->bytes_up);
    }
    break;
  }
  case T2S_EV_PROXY_UP:
    T2S_INFO("proxy %s: up again (a probe succeeded): new flows use it%s", ph->name[i],
             in_use(ph) == (int)i ? "" : " when the proxies before it are down");
    break;
  default:
    break;
  }
}
