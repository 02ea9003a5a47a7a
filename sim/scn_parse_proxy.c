/* scn_parse_proxy.c: the proxies' health and failures in a scenario (docs/scenarios.md, "Proxy
 * failures"): `proxy-health ...`, the timed `at T proxy ADDR:PORT MODE` and `expect proxy
 * ADDR:PORT ...`. (`proxy socks5 ...` itself, repeatable, is scn_parse.c's.) */
#include <stdio.h>
#include <string.h>

#include "scn_parse.h"

/* The index of the proxy declared at ADDR:PORT (token i), or a failure. */
static int proxy_ref(scn_line *p, int i, size_t *pindex, const char *what) {
  t2s_addr a;
  int rv = scn_addr(p, i, &a, true, what);
  if (rv != 0) {
    return rv;
  }
  for (size_t k = 0; k < scn_nproxies(p->scn); k++) {
    if (t2s_addr_eq(&a, &scn_proxy_at(p->scn, k)->addr)) {
      *pindex = k;
      return 0;
    }
  }
  return scn_fail(p, "%s: no proxy line declares %s", what, p->t[i].s);
}

/* proxy-health [down-after N] [probe-interval T] [probe-interval-max T] [report-interval T] */
int scn_cmd_proxy_health(scn_line *p) {
  sim_scenario *scn = p->scn;
  if (scn->has_health) {
    return scn_fail(p, "proxy-health: given twice");
  }
  t2s_proxy_health_config_default(&scn->health);
  int rv = 0;
  int i = 1;
  while (rv == 0 && i < p->n) {
    if (scn_is(p, i, "down-after")) {
      uint64_t n = 0;
      rv = scn_count(p, i + 1, &n, "proxy-health down-after");
      if (rv == 0 && (n < 2 || n > 100)) {
        rv = scn_fail(p, "proxy-health down-after: 2..100 (one failure never takes a proxy down)");
      }
      scn->health.down_after = (uint32_t)n;
      i += 2;
    } else if (scn_is(p, i, "probe-interval") || scn_is(p, i, "probe-interval-max") ||
               scn_is(p, i, "report-interval")) {
      const char *what = p->t[i].s;
      t2s_tstamp *d = scn_is(p, i, "probe-interval")       ? &scn->health.probe_interval
                      : scn_is(p, i, "probe-interval-max") ? &scn->health.probe_interval_max
                                                           : &scn->health.report_interval;
      i++;
      rv = scn_duration(p, &i, d, what);
      if (rv == 0 && *d == 0) {
        rv = scn_fail(p, "proxy-health %s: must be more than 0", what);
      }
    } else {
      rv = scn_fail(p,
                    "proxy-health: unknown option '%s' (expected down-after N, probe-interval T, "
                    "probe-interval-max T, report-interval T)",
                    p->t[i].s);
    }
  }
  scn->has_health = rv == 0;
  return rv;
}

int scn_parse_proxy_act(scn_line *p, int i, scn_proxy_act *a) {
  int rv = proxy_ref(p, i, &a->index, "at ... proxy");
  if (rv != 0) {
    return rv;
  }
  for (int m = 0; m < SIM_PROXY_MODE_MAX; m++) {
    if (scn_is(p, i + 1, sim_proxy_mode_name((sim_proxy_mode)m))) {
      a->mode = (sim_proxy_mode)m;
      return scn_end(p, i + 2, "at ... proxy");
    }
  }
  return scn_fail(p, "at ... proxy: expected die, refuse, blackhole, hang or back but found %s",
                  scn_word(p, i + 1));
}

/* expect proxy ADDR:PORT state STATE [after T] | downs|ups|flows-reset|probes|streams [OP] N |
 * down between T1 and T2 */
int scn_expect_proxy(scn_line *p, scn_expect *e) {
  int rv = proxy_ref(p, 2, &e->proxy, "expect proxy");
  if (rv != 0) {
    return rv;
  }
  int i = 4;
  if (scn_is(p, 3, "state")) {
    e->kind = SCN_EXP_PROXY_STATE;
    bool found = false;
    for (int st = 0; st < T2S_PROXY_STATE_COUNT; st++) {
      if (scn_is(p, i, t2s_proxy_state_name((t2s_proxy_state)st))) {
        e->px_state = (t2s_proxy_state)st;
        found = true;
      }
    }
    if (!found) {
      return scn_fail(p,
                      "expect proxy state: expected UP, SUSPECT, DOWN or UNRESOLVED but found %s",
                      scn_word(p, i));
    }
    i++;
    if (scn_is(p, i, "after")) {
      i++;
      e->has_after = true;
      rv = scn_duration(p, &i, &e->after, "expect proxy ... after");
    }
    return rv == 0 ? scn_end(p, i, "expect proxy") : rv;
  }
  if (scn_is(p, 3, "down")) {
    e->kind = SCN_EXP_PROXY_DOWN;
    if (!scn_is(p, i, "between")) {
      return scn_fail(p, "expect proxy down: expected 'between T1 and T2' but found %s",
                      scn_word(p, i));
    }
    i++;
    rv = scn_duration(p, &i, &e->from, "expect proxy down between");
    if (rv == 0 && !scn_is(p, i, "and")) {
      rv = scn_fail(p, "expect proxy down between T1: expected 'and T2' but found %s",
                    scn_word(p, i));
    }
    if (rv == 0) {
      i++;
      rv = scn_duration(p, &i, &e->until, "expect proxy down between ... and");
    }
    return rv == 0 ? scn_end(p, i, "expect proxy down") : rv;
  }
  static const char *const words[] = {"downs", "ups", "flows-reset", "probes", "streams"};
  for (size_t k = 0; k < T2S_ARRAY_LEN(words); k++) {
    if (scn_is(p, 3, words[k])) {
      e->kind = SCN_EXP_PROXY_COUNT;
      e->px_count = (scn_proxy_count)k;
      scn_op(p, &i, &e->op);
      rv = scn_count(p, i, &e->value, "expect proxy");
      return rv == 0 ? scn_end(p, i + 1, "expect proxy") : rv;
    }
  }
  return scn_fail(p,
                  "expect proxy ADDR:PORT: expected state, down between, downs, ups, flows-reset, "
                  "probes or streams but found %s",
                  scn_word(p, 3));
}
