/* scn_check.c: the expectation checker (scn_check.h): after the run, each expectation is
 * evaluated against the world, logged as an `expect` event, and a failure is written as
 * "FILE:LINE: expectation failed: EXPECTATION (actual: WHAT WAS FOUND)". */
#include "scn_check.h"

#include "scn_fakedns.h"

#include <stdio.h>
#include <string.h>

/* "1.5s", "250ms", "0s": the shortest exact form. */
static char *fmt_time(t2s_tstamp t, char *buf, size_t len) {
  if (t % T2S_SECONDS == 0) {
    snprintf(buf, len, "%llus", (unsigned long long)(t / T2S_SECONDS));
  } else if (t % T2S_MILLISECONDS == 0) {
    snprintf(buf, len, "%llums", (unsigned long long)(t / T2S_MILLISECONDS));
  } else if (t % T2S_MICROSECONDS == 0) {
    snprintf(buf, len, "%lluus", (unsigned long long)(t / T2S_MICROSECONDS));
  } else {
    snprintf(buf, len, "%lluns", (unsigned long long)t);
  }
  return buf;
}

static bool compare(uint64_t actual, scn_cmp op, uint64_t want) {
  switch (op) {
  case SCN_EQ:
    return actual == want;
  case SCN_NE:
    return actual != want;
  case SCN_LT:
    return actual < want;
  case SCN_LE:
    return actual <= want;
  case SCN_GT:
    return actual > want;
  case SCN_GE:
    return actual >= want;
  }
  return false;
}

bool scn_compare(uint64_t actual, scn_cmp op, uint64_t want) {
  return compare(actual, op, want);
}

static uint64_t counter_value(const scn_expect *e, sim_world *w, const t2s_engine_stats *st) {
  switch (e->ctr) {
  case SCN_C_PACKETS_OUT:
    return w->counts.out;
  case SCN_C_PACKETS_IN:
    return w->counts.in_by_origin[SIM_ORIGIN_PCAP] + w->counts.in_by_origin[SIM_ORIGIN_INJECT] +
           w->counts.in_by_origin[SIM_ORIGIN_CLIENT];
  case SCN_C_ECHO_REPLIES:
    return st->icmp_echo_replies;
  case SCN_C_DROPS:
    return st->drops[e->drop_reason];
  case SCN_C_DROPS_TOTAL: {
    uint64_t n = 0;
    for (int r = 1; r < T2S_DROP_MAX; r++) {
      n += st->drops[r];
    }
    return n;
  }
  case SCN_C_STAT:
    return *(const uint64_t *)((const char *)st + e->stat_off);
  case SCN_C_UP_OPEN:
    return sim_upstream_open_streams(w->up);
  case SCN_C_CLIENTS_UNFINISHED:
    return sim_clients_unfinished(w->clients);
  case SCN_C_INVARIANTS:
    return w->invariant_failures;
  }
  return 0;
}

/* "STATE at T (sent N, received N)" of a client that ended, or its state so far. */
static void client_actual(const sim_client_result *r, char *actual, size_t alen) {
  char tb[32];
  snprintf(actual, alen, "%s at %s (sent %llu, received %llu)", sim_client_state_name(r->state),
           fmt_time(r->ended_at, tb, sizeof(tb)), (unsigned long long)r->sent,
           (unsigned long long)r->received);
}

/* NAME done|reset|refused [before T]: reset also accepts refused. */
static bool eval_client(const scn_expect *e, sim_world *w, char *actual, size_t alen) {
  const sim_client_result *r = sim_clients_result(w->clients, e->name);
  if (r == NULL) {
    snprintf(actual, alen, "never started");
    return false;
  }
  if (r->state == SIM_CLIENT_CONNECTING || r->state == SIM_CLIENT_OPEN ||
      r->state == SIM_CLIENT_IDLE) {
    snprintf(actual, alen, "%s (sent %llu, received %llu)", sim_client_state_name(r->state),
             (unsigned long long)r->sent, (unsigned long long)r->received);
    return false;
  }
  client_actual(r, actual, alen);
  bool state_ok =
      r->state == e->want || (e->want == SIM_CLIENT_RESET && r->state == SIM_CLIENT_REFUSED);
  return state_ok && (!e->has_before || r->ended_at <= e->before);
}

/* NAME untouched: never reset, refused nor failed. */
static bool eval_untouched(const scn_expect *e, sim_world *w, char *actual, size_t alen) {
  const sim_client_result *r = sim_clients_result(w->clients, e->name);
  if (r == NULL) {
    snprintf(actual, alen, "never started");
    return false;
  }
  client_actual(r, actual, alen);
  return r->state != SIM_CLIENT_RESET && r->state != SIM_CLIENT_REFUSED &&
         r->state != SIM_CLIENT_FAILED;
}

/* upstream ADDR received SIZE [intact] | streams [OP] N | via IFNAME */
static bool eval_upstream(const scn_expect *e, sim_world *w, char *actual, size_t alen) {
  sim_up_dst_stats ds;
  if (e->kind == SCN_EXP_UP_VIA) {
    char list[256];
    size_t n = sim_upstream_dst_ifaces(w->up, &e->dst, list, sizeof(list));
    snprintf(actual, alen, "%llu sockets via %.200s", (unsigned long long)n, n ? list : "nothing");
    return n > 0 && strcmp(list, e->ifname) == 0;
  }
  sim_upstream_dst_stats(w->up, &e->dst, &ds);
  if (e->kind == SCN_EXP_UP_STREAMS) {
    snprintf(actual, alen, "%llu", (unsigned long long)ds.streams);
    return compare(ds.streams, e->op, e->value);
  }
  snprintf(actual, alen, "%llu bytes in %llu streams, %llu differing from the pattern",
           (unsigned long long)ds.rx_bytes, (unsigned long long)ds.streams,
           (unsigned long long)ds.rx_bad_pattern);
  return ds.rx_bytes == e->value && (!e->intact || ds.rx_bad_pattern == 0);
}

void scn_take_sample(const scn_expect *e, sim_world *w, scn_sample *sm) {
  sm->taken = true;
  if (w->engine == NULL) {
    return;
  }
  if (e->kind == SCN_EXP_PROXY_STATE) {
    const t2s_proxy_set *set = t2s_engine_proxy_health(w->engine);
    /* Without the health (a single proxy, no proxy-health line) a proxy is always UP. */
    sm->value = set != NULL && e->proxy < set->n ? (uint64_t)set->p[e->proxy].state : 0;
  } else if (e->kind == SCN_EXP_EGRESS) {
    const t2s_egress *eg = t2s_engine_get_egress(w->engine);
    snprintf(sm->ifname, sizeof(sm->ifname), "%s", eg->ifindex ? eg->ifname : "none");
  } else if (e->kind == SCN_EXP_NET_STATE) {
    sm->value = (uint64_t)t2s_engine_net_state(w->engine);
  } else {
    t2s_engine_stats st;
    t2s_engine_get_stats(w->engine, &st);
    sm->value = st.udp_sessions_active;
  }
}

/* egress, net-state, udp-sessions: on the sample taken after T, or one taken now. */
static bool eval_sampled(const scn_expect *e, const scn_sample *taken, sim_world *w, char *actual,
                         size_t alen) {
  scn_sample end;
  const scn_sample *sm = taken;
  if (!e->has_after) {
    memset(&end, 0, sizeof(end));
    scn_take_sample(e, w, &end); /* at the end of the run */
    sm = &end;
  }
  if (!sm->taken) {
    snprintf(actual, alen, "never sampled: the run ended before then");
    return false;
  }
  if (e->kind == SCN_EXP_EGRESS) {
    snprintf(actual, alen, "%s", sm->ifname);
    return strcmp(sm->ifname, e->ifname) == 0;
  }
  if (e->kind == SCN_EXP_NET_STATE) {
    snprintf(actual, alen, "%s", t2s_net_state_name((t2s_net_state)sm->value));
    return sm->value == (uint64_t)e->state;
  }
  if (e->kind == SCN_EXP_PROXY_STATE) {
    snprintf(actual, alen, "%s", t2s_proxy_state_name((t2s_proxy_state)sm->value));
    return sm->value == (uint64_t)e->px_state;
  }
  snprintf(actual, alen, "%llu", (unsigned long long)sm->value);
  return compare(sm->value, e->op, e->value);
}

/* proxy ADDR:PORT downs|ups|flows-reset|probes|streams [OP] N | down between T1 and T2 */
static bool eval_proxy(const scn_expect *e, sim_world *w, char *actual, size_t alen) {
  sim_proxy_seen seen;
  if (!sim_proxy_get_seen(w, e->proxy, &seen)) {
    snprintf(actual, alen, "no such proxy");
    return false;
  }
  if (e->kind == SCN_EXP_PROXY_DOWN) {
    char tb[32];
    if (seen.first_down_at == T2S_TSTAMP_MAX) {
      snprintf(actual, alen, "never down");
      return false;
    }
    snprintf(actual, alen, "first down at %s", fmt_time(seen.first_down_at, tb, sizeof(tb)));
    return seen.first_down_at >= e->from && seen.first_down_at <= e->until;
  }
  const uint64_t v[] = {seen.downs, seen.ups, seen.flows_reset, seen.probes, seen.streams};
  uint64_t x = (size_t)e->px_count < T2S_ARRAY_LEN(v) ? v[e->px_count] : 0;
  snprintf(actual, alen, "%llu", (unsigned long long)x);
  return compare(x, e->op, e->value);
}

/* Evaluates expectation i of scn; writes what was found into actual. */
static bool eval(const sim_scenario *scn, size_t i, sim_world *w, const t2s_engine_stats *st,
                 char *actual, size_t alen) {
  const scn_expect *e = &scn->exps[i];
  switch (e->kind) {
  case SCN_EXP_COUNTER: {
    uint64_t v = counter_value(e, w, st);
    snprintf(actual, alen, "%llu", (unsigned long long)v);
    return compare(v, e->op, e->value);
  }
  case SCN_EXP_CLIENT:
    return eval_client(e, w, actual, alen);
  case SCN_EXP_UNTOUCHED:
    return eval_untouched(e, w, actual, alen);
  case SCN_EXP_UP_RECEIVED:
  case SCN_EXP_UP_STREAMS:
  case SCN_EXP_UP_VIA:
    return eval_upstream(e, w, actual, alen);
  case SCN_EXP_EGRESS:
  case SCN_EXP_NET_STATE:
  case SCN_EXP_UDP_AFTER:
  case SCN_EXP_PROXY_STATE:
    return eval_sampled(e, &scn->samples[i], w, actual, alen);
  case SCN_EXP_FAKEDNS:
    return scn_fakedns_eval(e, w, actual, alen);
  case SCN_EXP_PROXY_COUNT:
  case SCN_EXP_PROXY_DOWN:
    return eval_proxy(e, w, actual, alen);
  }
  return false;
}

int sim_scenario_check(const sim_scenario *scn, sim_world *w, FILE *out, int *ppassed) {
  t2s_engine_stats st;
  memset(&st, 0, sizeof(st));
  if (w->engine) {
    t2s_engine_get_stats(w->engine, &st);
  }
  int failed = 0, passed = 0;
  for (size_t i = 0; i < scn->nexps; i++) {
    const scn_expect *e = &scn->exps[i];
    char actual[256];
    bool ok = eval(scn, i, w, &st, actual, sizeof(actual));
    sim_log_begin(&w->log, w->loop.now, "expect");
    sim_log_u64(&w->log, "line", (uint64_t)e->line);
    sim_log_str(&w->log, "expect", e->text);
    sim_log_bool(&w->log, "ok", ok);
    sim_log_str(&w->log, "actual", actual);
    sim_log_end(&w->log);
    if (ok) {
      passed++;
    } else {
      failed++;
      if (out) {
        fprintf(out, "%s:%d: expectation failed: %s (actual: %s)\n", scn->name, e->line, e->text,
                actual);
      }
    }
  }
  if (ppassed) {
    *ppassed = passed;
  }
  return failed;
}
