/* scn_exec.c: the executor of a parsed scenario: applies the world's lines to the simulated
 * world before the engine starts, then puts each timed action and each "expect ... after T"
 * sample on the event loop, and runs the actions when they are due. */
#include <stdlib.h>
#include <string.h>

#include "scn_check.h"
#include "scn_model.h"
#include "sim_client.h"
#include "sim_fakedns.h"
#include "sim_net.h"
#include "sim_proxy.h"

int sim_scenario_configure(sim_scenario *scn, sim_world *w, char *err, size_t errlen) {
  if (scn->has_mtu) {
    w->dev.mtu = scn->mtu;
  }
  w->dev.faults = scn->faults;
  for (size_t i = 0; i < scn->nrules; i++) {
    const scn_up_rule *r = &scn->rules[i];
    if (r->is_default) {
      sim_upstream_set_default(w->up, &r->beh);
    } else if (sim_upstream_add_rule(w->up, &r->dst, &r->beh) != 0) {
      snprintf(err, errlen, "out of memory");
      return T2S_ERR_NOMEM;
    }
  }
  w->cfg.network_debounce = scn->debounce;
  if (scn->udp_timeout) {
    w->cfg.udp_timeout = scn->udp_timeout;
  }
  if (scn->dns_timeout) {
    w->cfg.dns_timeout = scn->dns_timeout;
  }
  if (scn->max_udp_sessions) {
    w->cfg.max_udp_sessions = (uint32_t)scn->max_udp_sessions;
  }
  if (scn->has_policy) {
    w->cfg.on_network_change = scn->policy;
  }
  if (scn->has_net) {
    w->net = sim_net_new(w);
    if (w->net == NULL) {
      snprintf(err, errlen, "out of memory");
      return T2S_ERR_NOMEM;
    }
    for (size_t i = 0; i < scn->nnetcfg; i++) {
      int rv = sim_net_configure(w->net, &scn->netcfg[i], err, errlen);
      if (rv != 0) {
        return rv;
      }
    }
  }
  if (scn->has_fake_dns) {
    int rv = sim_fakedns_install(w, &scn->fake_dns);
    if (rv != 0) {
      snprintf(err, errlen, "fake-dns: %s", t2s_strerror(rv));
      return rv;
    }
  }
  for (size_t i = 0; i < scn_nproxies(scn); i++) { /* order = preference */
    if (sim_proxy_install(w, scn_proxy_at(scn, i)) != 0) {
      snprintf(err, errlen, "out of memory");
      return T2S_ERR_NOMEM;
    }
  }
  if (scn->has_health) {
    sim_proxy_set_health(w, &scn->health);
  }
  sim_upstream_set_mptcp(w->up, scn->mptcp,
                         scn->has_proxy && scn->proxy.mptcp ? &scn->proxy.addr : NULL);
  if (sim_scenario_has_clients(scn)) {
    int rv = sim_clients_new(w);
    if (rv != 0) {
      snprintf(err, errlen, "cannot create the client hosts: %s", t2s_strerror(rv));
      return rv;
    }
  }
  return 0;
}

static const char *act_name(scn_action_kind kind) {
  switch (kind) {
  case SCN_ACT_REPLAY:
    return "replay";
  case SCN_ACT_INJECT_ECHO:
    return "inject-echo";
  case SCN_ACT_CLIENT:
    return "client";
  case SCN_ACT_NET:
    return "net";
  case SCN_ACT_PROXY:
    return "proxy";
  }
  return "?";
}

/* The k-th echo request of an inject-echo action enters the engine. */
static void run_inject_echo(sim_world *w, const scn_inject_echo *a, uint64_t k, t2s_tstamp now) {
  uint8_t *buf = malloc(65536 + 64);
  if (buf == NULL) {
    return;
  }
  t2s_ssize n = sim_build_echo_request(buf, 65536 + 64, &a->src, &a->dst, a->id,
                                       (uint16_t)(a->seq + k), (size_t)a->size);
  if (n > 0) {
    sim_world_to_engine(w, buf, (size_t)n, SIM_ORIGIN_INJECT, now);
  }
  free(buf);
}

static void run_client(sim_world *w, const scn_client *a, t2s_tstamp now) {
  sim_client_spec spec = a->spec;
  spec.text = a->text;
  if (a->qname[0]) {
    sim_fakedns_lookup(w, &spec, a->qname, a->qfamily, &a->resolver, now); /* then starts */
  } else if (w->clients) {
    sim_clients_start(w->clients, &spec, now);
  }
}

/* The event of action ev->u64a (its repetition ev->u64b): logged once, then run. */
static void run_action(void *arg, sim_event *ev, t2s_tstamp now) {
  sim_scenario *scn = arg;
  sim_world *w = scn->w;
  const scn_action *a = &scn->acts[ev->u64a];
  uint64_t k = ev->u64b; /* repetition index (inject-echo count) */
  if (k == 0) {
    sim_log_begin(&w->log, now, "scenario");
    if (a->line > 0) {
      sim_log_u64(&w->log, "line", (uint64_t)a->line);
    }
    sim_log_str(&w->log, "action", act_name(a->kind));
    if (a->kind == SCN_ACT_CLIENT) {
      sim_log_str(&w->log, "client", a->u.client.spec.name);
    }
    sim_log_end(&w->log);
  }
  switch (a->kind) {
  case SCN_ACT_REPLAY:
    break; /* scheduled by sim_world_replay */
  case SCN_ACT_INJECT_ECHO:
    run_inject_echo(w, &a->u.echo, k, now);
    break;
  case SCN_ACT_CLIENT:
    run_client(w, &a->u.client, now);
    break;
  case SCN_ACT_NET:
    if (w->net) {
      sim_net_apply(w->net, &a->u.net, now);
    }
    break;
  case SCN_ACT_PROXY:
    sim_proxy_set_mode(w, a->u.proxy.index, a->u.proxy.mode, now);
    break;
  }
}

static void sample_event(void *arg, sim_event *ev, t2s_tstamp now) {
  sim_scenario *scn = arg;
  (void)now;
  scn_take_sample(&scn->exps[ev->u64a], scn->w, &scn->samples[ev->u64a]);
}

/* Puts action i of scn on w's event loop (a capture's records too). Returns 0 or an error. */
static int schedule_action(sim_scenario *scn, size_t i, sim_world *w, char *err, size_t errlen) {
  scn_action *a = &scn->acts[i];
  int rv = 0;
  switch (a->kind) {
  case SCN_ACT_REPLAY:
    rv = sim_world_replay(w, a->u.replay.path, a->at, err, errlen);
    if (rv == 0) {
      rv = sim_loop_schedule(&w->loop, a->at, SIM_EV_SCENARIO, run_action, scn, i, 0, NULL, 0);
    }
    break;
  case SCN_ACT_INJECT_ECHO: {
    scn_inject_echo *e = &a->u.echo;
    /* The echo id is drawn now, in file order, so it does not depend on timing. */
    if (!e->has_id) {
      e->id = (uint16_t)w->next_inject_id++;
    }
    for (uint64_t k = 0; rv == 0 && k < e->count; k++) {
      rv = sim_loop_schedule(&w->loop, a->at + k * e->interval, SIM_EV_SCENARIO, run_action, scn, i,
                             k, NULL, 0);
    }
    break;
  }
  case SCN_ACT_CLIENT:
  case SCN_ACT_NET:
  case SCN_ACT_PROXY:
    rv = sim_loop_schedule(&w->loop, a->at, SIM_EV_SCENARIO, run_action, scn, i, 0, NULL, 0);
    break;
  }
  return rv;
}

int sim_scenario_schedule(sim_scenario *scn, sim_world *w, char *err, size_t errlen) {
  scn->w = w;
  free(scn->samples);
  scn->samples = calloc(scn->nexps ? scn->nexps : 1, sizeof(*scn->samples));
  if (scn->samples == NULL) {
    snprintf(err, errlen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  for (size_t k = 0; k < scn->nexps; k++) {
    const scn_expect *e = &scn->exps[k];
    /* 1 ns after T: every event and timer due at T has run. */
    if (e->has_after && sim_loop_schedule(&w->loop, e->after + 1, SIM_EV_SCENARIO, sample_event,
                                          scn, k, 0, NULL, 0) != 0) {
      snprintf(err, errlen, "out of memory");
      return T2S_ERR_NOMEM;
    }
  }
  for (size_t i = 0; i < scn->nacts; i++) {
    int rv = schedule_action(scn, i, w, err, errlen);
    if (rv != 0) {
      if (err[0] == 0) {
        snprintf(err, errlen, "line %d: %s", scn->acts[i].line, t2s_strerror(rv));
      }
      return rv;
    }
  }
  return 0;
}
