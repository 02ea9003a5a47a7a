/* test_proxy_health.c: the proxy health state machine and the failover policy
 * (src/core/proxy_health.c, docs/proxies.md). Each test drives its own clock. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "engine.h"
#include "engine_fake.h"
#include "metrics.h"
#include "packet.h"
#include "proxy_health.h"
#include "test_util.h"

#define S T2S_SECONDS
#define MS T2S_MILLISECONDS

typedef struct acts {
  size_t n;
  t2s_proxy_action a[64];
  t2s_tstamp at[64];
} acts;

static void record(void *arg, const t2s_proxy_action *act, t2s_tstamp now) {
  acts *r = arg;
  if (r->n < T2S_ARRAY_LEN(r->a)) {
    r->a[r->n] = *act;
    r->at[r->n] = now;
    r->n++;
  }
}

static size_t count_kind(const acts *r, t2s_proxy_action_kind kind, uint32_t proxy) {
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++) {
    if (r->a[i].kind == kind && r->a[i].proxy == proxy) {
      n++;
    }
  }
  return n;
}

static void setup(t2s_proxy_set *set, acts *r, size_t n) {
  memset(r, 0, sizeof(*r));
  CU_ASSERT_EQUAL_FATAL(t2s_proxy_set_init(set, n, NULL, record, r, 0), 0);
}

/* Runs the expiry if it is due at or before now; returns whether it ran. */
static bool run_expiry(t2s_proxy_set *set, t2s_tstamp now) {
  if (t2s_proxy_set_get_expiry(set) > now) {
    return false;
  }
  t2s_proxy_set_handle_expiry(set, now);
  return true;
}

/* One failure makes the proxy SUSPECT and asks for a probe at once; it never takes it down,
 * and a lone proxy that is SUSPECT still takes new flows. */
static void test_one_failure_does_not_take_down(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 1);
  t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_REFUSED, 5 * S);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_SUSPECT);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_DOWN, 0), 0);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 0);
  CU_ASSERT_EQUAL(t2s_proxy_set_get_expiry(&set), 5 * S);
  t2s_proxy_set_handle_expiry(&set, 5 * S);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_PROBE, 0), 1);
  /* The probe succeeds: UP again, and no UP action (it never was DOWN). */
  t2s_proxy_set_probe_result(&set, 0, true, 0, 5 * S + 3 * MS);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_UP);
  CU_ASSERT_EQUAL(set.p[0].fails_in_row, 0);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_UP, 0), 0);
  CU_ASSERT_EQUAL(t2s_proxy_set_get_expiry(&set) > 5 * S + 3 * MS, true);
}

/* down_after (3) failures in a row make DOWN, reported once however many failures follow:
 * the host resets the proxy's flows exactly once. */
static void test_down_after_evidence_reported_once(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 2);
  t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_REFUSED, 1 * S);
  t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_REFUSED, 1 * S + 1 * MS);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_SUSPECT);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_DOWN, 0), 0);
  t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_TIMEOUT, 1 * S + 2 * MS);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_DOWN);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_DOWN, 0), 1);
  CU_ASSERT_EQUAL(set.p[0].changed_at, 1 * S + 2 * MS);
  CU_ASSERT_EQUAL(set.p[0].last_cause, T2S_PROXY_CAUSE_TIMEOUT);
  for (int k = 0; k < 20; k++) {
    t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_REFUSED, 1 * S + (3 + (t2s_tstamp)k) * MS);
  }
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_DOWN, 0), 1);
  CU_ASSERT_EQUAL(set.p[0].downs, 1);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_DOWN, 1), 0);
  CU_ASSERT_EQUAL(set.p[0].failures[T2S_PROXY_CAUSE_REFUSED], 22);
  CU_ASSERT_EQUAL(set.p[0].failures[T2S_PROXY_CAUSE_TIMEOUT], 1);
}

/* A success between failures clears the evidence: failures that are not in a row never take
 * the proxy down (no flapping on a flaky path). */
static void test_success_clears_evidence(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 1);
  t2s_tstamp now = 0;
  for (int k = 0; k < 10; k++) {
    t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_RESET, now += 100 * MS);
    t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_RESET, now += 100 * MS);
    t2s_proxy_set_success(&set, 0, now += 100 * MS);
    CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_UP);
  }
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_DOWN, 0), 0);
  CU_ASSERT_EQUAL(set.p[0].last_success_at, now);
}

/* Probes of a SUSPECT proxy count as evidence: one real failure and two failed probes (at once,
 * then probe_interval later) make DOWN about 1 s after the first failure. */
static void test_failed_probes_take_suspect_down(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 1);
  t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_REFUSED, 10 * S);
  CU_ASSERT_TRUE(run_expiry(&set, 10 * S));
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_PROBE, 0), 1);
  /* No second probe while one is out. */
  CU_ASSERT_FALSE(run_expiry(&set, 10 * S + 500 * MS));
  t2s_proxy_set_probe_result(&set, 0, false, T2S_PROXY_CAUSE_REFUSED, 10 * S + 1 * MS);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_SUSPECT);
  CU_ASSERT_EQUAL(t2s_proxy_set_get_expiry(&set), 11 * S + 1 * MS);
  CU_ASSERT_TRUE(run_expiry(&set, 11 * S + 1 * MS));
  t2s_proxy_set_probe_result(&set, 0, false, T2S_PROXY_CAUSE_REFUSED, 11 * S + 2 * MS);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_DOWN);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_DOWN, 0), 1);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), -1);
  /* A result with no probe out is ignored. */
  t2s_proxy_set_probe_result(&set, 0, true, 0, 11 * S + 3 * MS);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_DOWN);
}

/* While DOWN the probe waits double from probe_interval up to probe_interval_max. */
static void test_probe_backoff_while_down(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 1);
  t2s_tstamp now = 0;
  for (int k = 0; k < 3; k++) {
    t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_TIMEOUT, now);
  }
  CU_ASSERT_EQUAL_FATAL(set.p[0].state, T2S_PROXY_DOWN);
  const t2s_tstamp waits[] = {1 * S, 2 * S, 4 * S, 8 * S, 16 * S, 30 * S, 30 * S};
  for (size_t k = 0; k < T2S_ARRAY_LEN(waits); k++) {
    t2s_tstamp due = set.p[0].probe_at; /* the expiry also ends report windows */
    CU_ASSERT_EQUAL(due, now + waits[k]);
    CU_ASSERT_TRUE(t2s_proxy_set_get_expiry(&set) <= due);
    run_expiry(&set, due - 1);
    CU_ASSERT_FALSE(set.p[0].probing); /* not a nanosecond early */
    now = due;
    CU_ASSERT_TRUE(run_expiry(&set, now));
    CU_ASSERT_EQUAL(set.p[0].probing, true);
    t2s_proxy_set_probe_result(&set, 0, false, T2S_PROXY_CAUSE_TIMEOUT, now);
  }
  CU_ASSERT_EQUAL(set.p[0].probes, T2S_ARRAY_LEN(waits));
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_DOWN, 0), 1);
}

static void take_down(t2s_proxy_set *set, size_t i, t2s_tstamp now) {
  for (uint32_t k = 0; k < set->cfg.down_after; k++) {
    t2s_proxy_set_failure(set, i, T2S_PROXY_CAUSE_REFUSED, now);
  }
  CU_ASSERT_EQUAL(set->p[i].state, T2S_PROXY_DOWN);
}

/* New flows go to the most preferred healthy proxy; a DOWN one is skipped; when it comes back
 * (a good probe) new flows return to it, and nothing is reset for the flows on the second. */
static void test_failover_and_preference_restored(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 3);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 0);
  take_down(&set, 0, 1 * S);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 1);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 1);
  CU_ASSERT_TRUE(run_expiry(&set, 2 * S));
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_PROBE, 0), 1);
  size_t before = r.n;
  t2s_proxy_set_probe_result(&set, 0, true, 0, 2 * S + 5 * MS);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_UP);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_UP, 0), 1);
  /* The only action of the comeback is UP for proxy 0: no DOWN (reset) of anyone. */
  CU_ASSERT_EQUAL(r.n, before + 1);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_DOWN, 1), 0);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 0);
  CU_ASSERT_EQUAL(set.p[0].picks, 2);
  CU_ASSERT_EQUAL(set.p[1].picks, 2);
  CU_ASSERT_EQUAL(set.p[1].state, T2S_PROXY_UP);
  /* No more probes once UP. */
  CU_ASSERT_EQUAL(set.p[0].probe_at, T2S_TSTAMP_MAX);
  CU_ASSERT_FALSE(set.p[0].probing);
}

/* With every proxy DOWN the pick is -1 (refuse at once); the first one back takes flows. */
static void test_all_down_refuses(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 2);
  take_down(&set, 0, 1 * S);
  take_down(&set, 1, 1 * S);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), -1);
  CU_ASSERT_EQUAL(t2s_proxy_set_next(&set, -1), -1);
  t2s_proxy_set_handle_expiry(&set, 2 * S);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_PROBE, 0), 1);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_PROBE, 1), 1);
  t2s_proxy_set_probe_result(&set, 1, true, 0, 2 * S);
  t2s_proxy_set_probe_result(&set, 0, false, T2S_PROXY_CAUSE_REFUSED, 2 * S);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 1);
}

/* An UP proxy lower in preference is chosen over a SUSPECT one; with none UP, the SUSPECT one.
 * _next() after a failed connect skips DOWN ones and looks only further down the list. */
static void test_suspect_yields_to_up(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 3);
  t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_RESET, 1 * S);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 1);
  t2s_proxy_set_failure(&set, 1, T2S_PROXY_CAUSE_RESET, 1 * S);
  t2s_proxy_set_failure(&set, 2, T2S_PROXY_CAUSE_RESET, 1 * S);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 0);
  take_down(&set, 1, 1 * S);
  CU_ASSERT_EQUAL(t2s_proxy_set_next(&set, 0), 2);
  CU_ASSERT_EQUAL(t2s_proxy_set_next(&set, 2), -1);
}

/* One line per proxy and cause: the first failure of a quiet time at once, then one line per
 * report_interval with the count ("37 flows refused in the last 10 s"), then quiet. */
static void test_failure_report_rate_limited(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 2);
  t2s_tstamp t0 = 100 * S;
  for (int k = 0; k < 38; k++) {
    t2s_proxy_set_failure(&set, 1, T2S_PROXY_CAUSE_REFUSED, t0 + (t2s_tstamp)k * 200 * MS);
    t2s_proxy_set_success(&set, 1, t0 + (t2s_tstamp)k * 200 * MS + 1); /* stays UP */
  }
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_LOG_FAILURE, 1), 1);
  CU_ASSERT_EQUAL(r.a[0].count, 1);
  CU_ASSERT_EQUAL(r.a[0].cause, T2S_PROXY_CAUSE_REFUSED);
  CU_ASSERT_FALSE(run_expiry(&set, t0 + 10 * S - 1));
  CU_ASSERT_TRUE(run_expiry(&set, t0 + 10 * S));
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_LOG_FAILURE, 1), 2);
  CU_ASSERT_EQUAL(r.a[r.n - 1].count, 37);
  CU_ASSERT_EQUAL(r.a[r.n - 1].period, 10 * S);
  /* A quiet window closes the report: nothing more is logged, and nothing is due. */
  CU_ASSERT_TRUE(run_expiry(&set, t0 + 20 * S));
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_LOG_FAILURE, 1), 2);
  CU_ASSERT_EQUAL(t2s_proxy_set_get_expiry(&set), T2S_TSTAMP_MAX);
  /* The next failure is news at once; another cause has its own line. */
  t2s_proxy_set_failure(&set, 1, T2S_PROXY_CAUSE_REFUSED, t0 + 30 * S);
  t2s_proxy_set_failure(&set, 1, T2S_PROXY_CAUSE_AUTH, t0 + 30 * S);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_LOG_FAILURE, 1), 4);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_LOG_FAILURE, 0), 0);
}

/* A scripted run (proxy 0 dies, refuses, comes back) gives the same actions at the same times
 * twice: the set holds no hidden state. */
static void script(acts *r) {
  t2s_proxy_set set;
  setup(&set, r, 2);
  t2s_tstamp now = 0;
  for (int step = 0; step < 200; step++) {
    now += 50 * MS;
    if (step < 100) {
      if (step % 7 == 0) {
        t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_REFUSED, now);
      }
    }
    run_expiry(&set, now);
    if (set.p[0].probing) {
      t2s_proxy_set_probe_result(&set, 0, step >= 100, T2S_PROXY_CAUSE_REFUSED, now);
    }
  }
}

static void test_scripted_run_is_deterministic(void) {
  static acts a, b;
  script(&a);
  script(&b);
  CU_ASSERT_EQUAL(a.n, b.n);
  CU_ASSERT_EQUAL(memcmp(a.a, b.a, sizeof(a.a)), 0);
  CU_ASSERT_EQUAL(memcmp(a.at, b.at, sizeof(a.at)), 0);
  CU_ASSERT_EQUAL(count_kind(&a, T2S_PROXY_ACT_DOWN, 0), 1);
  CU_ASSERT_EQUAL(count_kind(&a, T2S_PROXY_ACT_UP, 0), 1);
}

static void test_cause_from_err(void) {
  CU_ASSERT_EQUAL(t2s_proxy_cause_from_err(T2S_ERR_REFUSED), T2S_PROXY_CAUSE_REFUSED);
  CU_ASSERT_EQUAL(t2s_proxy_cause_from_err(T2S_ERR_TIMEOUT), T2S_PROXY_CAUSE_TIMEOUT);
  CU_ASSERT_EQUAL(t2s_proxy_cause_from_err(T2S_ERR_UNREACHABLE), T2S_PROXY_CAUSE_UNREACHABLE);
  CU_ASSERT_EQUAL(t2s_proxy_cause_from_err(T2S_ERR_RESET), T2S_PROXY_CAUSE_RESET);
  CU_ASSERT_EQUAL(t2s_proxy_cause_from_err(T2S_ERR_AUTH), T2S_PROXY_CAUSE_AUTH);
  CU_ASSERT_EQUAL(t2s_proxy_cause_from_err(T2S_ERR_MALFORMED), T2S_PROXY_CAUSE_PROTOCOL);
  CU_ASSERT_EQUAL(t2s_proxy_cause_from_err(T2S_ERR_NETWORK_CHANGED), -1);
  CU_ASSERT_EQUAL(t2s_proxy_cause_from_err(T2S_ERR_LIMIT), -1);
  CU_ASSERT_STRING_EQUAL(t2s_proxy_state_name(T2S_PROXY_SUSPECT), "SUSPECT");
  CU_ASSERT_STRING_EQUAL(t2s_proxy_cause_name(T2S_PROXY_CAUSE_PROTOCOL), "protocol");
  t2s_proxy_set set;
  CU_ASSERT_EQUAL(t2s_proxy_set_init(&set, 0, NULL, NULL, NULL, 0), T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_proxy_set_init(&set, T2S_PROXY_MAX + 1, NULL, NULL, NULL, 0),
                  T2S_ERR_INVALID_ARGUMENT);
  t2s_proxy_health_config cfg = {.down_after = 1};
  CU_ASSERT_EQUAL(t2s_proxy_set_init(&set, 1, &cfg, NULL, NULL, 0), 0);
  CU_ASSERT_EQUAL(set.cfg.down_after, 2); /* one failure never takes a proxy down */
  CU_ASSERT_EQUAL(set.cfg.probe_interval, 1 * S);
}

/* A proxy whose name has no address yet takes no flows and is not probed; evidence about it
 * (stragglers) changes nothing; its first address makes it UP and it takes flows. */
static void test_unresolved_takes_no_flows_until_addressed(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 2);
  t2s_proxy_set_unresolved(&set, 0, 0);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_UNRESOLVED);
  CU_ASSERT_FALSE(t2s_proxy_set_usable(&set, 0));
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 1);
  t2s_proxy_set_unresolved(&set, 1, 0);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), -1); /* the engine refuses at once */
  CU_ASSERT_EQUAL(t2s_proxy_set_next(&set, -1), -1);
  CU_ASSERT_EQUAL(t2s_proxy_set_get_expiry(&set), T2S_TSTAMP_MAX); /* nothing to probe */
  t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_REFUSED, 1 * S);
  t2s_proxy_set_success(&set, 0, 1 * S);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_UNRESOLVED);
  t2s_proxy_set_readdressed(&set, 0, 2 * S);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_UP);
  CU_ASSERT_EQUAL(set.p[0].changed_at, 2 * S);
  CU_ASSERT_EQUAL(set.p[0].readdressed, 1);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 0);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_DOWN, 0), 0);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_UP, 0), 0);
  CU_ASSERT_STRING_EQUAL(t2s_proxy_state_name(T2S_PROXY_UNRESOLVED), "UNRESOLVED");
}

/* A DOWN proxy whose name now leads elsewhere is UP at the new address: the evidence against
 * the old one is forgotten, its probe schedule dropped, nothing reported (nothing is reset). */
static void test_new_address_forgets_evidence(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 2);
  for (int k = 0; k < 3; k++) {
    t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_TIMEOUT, 0);
  }
  CU_ASSERT_EQUAL_FATAL(set.p[0].state, T2S_PROXY_DOWN);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 1);
  size_t before = r.n;
  t2s_proxy_set_readdressed(&set, 0, 5 * S);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_UP);
  CU_ASSERT_EQUAL(set.p[0].fails_in_row, 0);
  CU_ASSERT_EQUAL(set.p[0].probe_at, T2S_TSTAMP_MAX);
  CU_ASSERT_EQUAL(r.n, before);
  CU_ASSERT_EQUAL(t2s_proxy_set_pick(&set), 0);
  /* One failure at the new address does not take it down again. */
  t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_TIMEOUT, 6 * S);
  CU_ASSERT_EQUAL(set.p[0].state, T2S_PROXY_SUSPECT);
}

/* After a network change a DOWN proxy is probed at once and its backoff starts again (1 s,
 * 2 s, ...), instead of waiting out a wait grown on the old network. UP proxies are untouched. */
static void test_network_change_probes_down_at_once(void) {
  t2s_proxy_set set;
  acts r;
  setup(&set, &r, 2);
  t2s_tstamp now = 0;
  for (int k = 0; k < 3; k++) {
    t2s_proxy_set_failure(&set, 0, T2S_PROXY_CAUSE_REFUSED, now);
  }
  for (int k = 0; k < 4; k++) { /* probes at 1, 3, 7, 15 s: the next wait is 16 s */
    now = set.p[0].probe_at;
    CU_ASSERT_TRUE(run_expiry(&set, now));
    t2s_proxy_set_probe_result(&set, 0, false, T2S_PROXY_CAUSE_REFUSED, now);
  }
  CU_ASSERT_EQUAL(set.p[0].probe_at, now + 16 * S);
  now += 2 * S;
  t2s_proxy_set_network_changed(&set, now);
  CU_ASSERT_EQUAL(set.p[0].probe_at, now);
  CU_ASSERT_EQUAL(set.p[1].probe_at, T2S_TSTAMP_MAX);
  CU_ASSERT_TRUE(run_expiry(&set, now));
  CU_ASSERT_TRUE(set.p[0].probing);
  t2s_proxy_set_probe_result(&set, 0, false, T2S_PROXY_CAUSE_REFUSED, now);
  CU_ASSERT_EQUAL(set.p[0].probe_at, now + 1 * S);
  CU_ASSERT_EQUAL(count_kind(&r, T2S_PROXY_ACT_DOWN, 0), 1);
}

/* ---- the engine with two proxies (engine_proxy.c), a fake device and upstream ---- */

static engine_fake EF;
static t2s_engine *EE;
static t2s_engine_event evs[256];
static size_t nevs;

static void on_event(void *arg, const t2s_engine_event *ev) {
  (void)arg;
  if (nevs < T2S_ARRAY_LEN(evs)) {
    evs[nevs++] = *ev;
  }
}

static size_t count_ev(t2s_engine_event_type type, uint64_t proxy) {
  size_t n = 0;
  for (size_t i = 0; i < nevs; i++) {
    if (evs[i].type == type && evs[i].flow_id == proxy) {
      n++;
    }
  }
  return n;
}

static t2s_addr PA, PB;

static void engine_setup(size_t nproxies) {
  engine_fake_init(&EF);
  engine_fake_set_route(&EF, 2, "eth0", "192.0.2.10", false);
  nevs = 0;
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  t2s_engine_hooks hooks = {.on_event = on_event, .arg = NULL};
  CU_ASSERT_EQUAL_FATAL(t2s_engine_new(&EE, &cfg, &EF.dev, &EF.up, &hooks), 0);
  t2s_addr_parse("192.0.2.2:1080", &PA);
  t2s_addr_parse("192.0.2.3:1080", &PB);
  t2s_engine_proxy list[2] = {{.addr = PA, .username = "alice", .password = "a-pass"},
                              {.addr = PB, .username = "bob", .password = "b-pass"}};
  CU_ASSERT_EQUAL_FATAL(t2s_engine_set_proxies(EE, list, nproxies, NULL, 0), 0);
}

static void engine_teardown(void) {
  t2s_engine_del(EE);
  EE = NULL;
}

static void run_to(t2s_tstamp t) {
  engine_fake_run_to(EE, t);
}

static void syn(uint16_t sport, t2s_tstamp now) {
  CU_ASSERT_FATAL(engine_fake_syn(EE, sport, now) != T2S_ERR_NOBUF);
}

/* The flags of the last packet toward client port sport since packet `from`, or -1. */
static int flags_to(uint16_t sport, size_t from) {
  int flags = -1;
  for (size_t i = from; i < EF.npkts; i++) {
    t2s_pkt p;
    if (t2s_pkt_parse(EF.pkts[i].data, EF.pkts[i].len, &p) == T2S_DROP_NONE &&
        p.proto == T2S_IPPROTO_TCP && p.dst.port == sport) {
      flags = p.l4.tcp.flags;
    }
  }
  return flags;
}

static size_t rsts_to(uint16_t sport) {
  size_t n = 0;
  for (size_t i = 0; i < EF.npkts; i++) {
    t2s_pkt p;
    if (t2s_pkt_parse(EF.pkts[i].data, EF.pkts[i].len, &p) == T2S_DROP_NONE &&
        p.proto == T2S_IPPROTO_TCP && p.dst.port == sport && (p.l4.tcp.flags & T2S_TCP_RST)) {
      n++;
    }
  }
  return n;
}

static engine_fake_stream *last_stream(void) {
  CU_ASSERT_FATAL(EF.nstreams > 0);
  return &EF.streams[EF.nstreams - 1];
}

/* Opens a flow through whichever proxy the engine picks; the proxy answers with success. */
static engine_fake_stream *flow_ok(uint16_t sport, t2s_tstamp now) {
  syn(sport, now);
  engine_fake_stream *st = last_stream();
  static const uint8_t method[] = {5, 2}, auth[] = {1, 0};
  static const uint8_t reply[] = {5, 0, 0, 1, 203, 0, 113, 10, 0, 80};
  t2s_engine_stream_opened(EE, st->id, 0, now);
  t2s_engine_stream_recv(EE, st->id, method, sizeof(method), now);
  t2s_engine_stream_recv(EE, st->id, auth, sizeof(auth), now);
  t2s_engine_stream_recv(EE, st->id, reply, sizeof(reply), now);
  return st;
}

/* Opens a flow whose connect to the proxy is refused. */
static void flow_refused(uint16_t sport, t2s_tstamp now) {
  size_t before = EF.nstreams;
  syn(sport, now);
  CU_ASSERT_EQUAL_FATAL(EF.nstreams, before + 1);
  t2s_engine_stream_opened(EE, last_stream()->id, T2S_ERR_REFUSED, now);
}

/* Flows use the first proxy with its own credentials; refused connects take it DOWN (a probe at
 * once, reported to the host as an event); its established flow is reset exactly once; new
 * flows go to the second proxy with the second's credentials. */
static void test_engine_fails_over_and_resets_once(void) {
  engine_setup(2);
  engine_fake_stream *a = flow_ok(40001, 0);
  CU_ASSERT_TRUE(t2s_addr_eq(&a->dst, &PA));
  CU_ASSERT_EQUAL(a->written[3], 2); /* the greeting 5 2 0 2 offers user/password */
  CU_ASSERT_EQUAL(memcmp(a->written + 4 + 2, "alice", 5), 0);
  flow_refused(40002, 1 * S);
  run_to(1 * S);
  CU_ASSERT_EQUAL(count_ev(T2S_EV_PROXY_PROBE, 0), 1);
  t2s_engine_proxy_probe_result(EE, 0, T2S_ERR_REFUSED, 1 * S + 1 * MS);
  CU_ASSERT_EQUAL(count_ev(T2S_EV_PROXY_DOWN, 0), 0);
  /* One SUSPECT failure: new flows already prefer the healthy second proxy. */
  engine_fake_stream *b = flow_ok(40003, 1 * S + 2 * MS);
  CU_ASSERT_TRUE(t2s_addr_eq(&b->dst, &PB));
  CU_ASSERT_EQUAL(memcmp(b->written + 4 + 2, "bob", 3), 0);
  run_to(2 * S + 1 * MS);
  CU_ASSERT_EQUAL(count_ev(T2S_EV_PROXY_PROBE, 0), 2);
  t2s_engine_proxy_probe_result(EE, 0, T2S_ERR_REFUSED, 2 * S + 1 * MS);
  run_to(2 * S + 1 * MS);
  CU_ASSERT_EQUAL(t2s_engine_proxy_health(EE)->p[0].state, T2S_PROXY_DOWN);
  CU_ASSERT_EQUAL(count_ev(T2S_EV_PROXY_DOWN, 0), 1);
  CU_ASSERT_EQUAL(evs[nevs - 1].bytes_up, 1); /* one flow reset */
  CU_ASSERT(rsts_to(40001) >= 1);
  CU_ASSERT_EQUAL(rsts_to(40003), 0);
  t2s_engine_stats st;
  t2s_engine_get_stats(EE, &st);
  CU_ASSERT_EQUAL(st.flows_reset, 1);
  /* More time and more expiries reset nothing more. */
  size_t rst_a = rsts_to(40001);
  run_to(2 * S + 500 * MS);
  CU_ASSERT_EQUAL(rsts_to(40001), rst_a);
  CU_ASSERT_EQUAL(count_ev(T2S_EV_PROXY_DOWN, 0), 1);
  engine_teardown();
}

/* A DOWN proxy that answers its probe is UP again: new flows return to it, the flow on the
 * second proxy keeps running (no RST), nothing is counted as reset. */
static void test_engine_preference_restored_for_new_flows_only(void) {
  engine_setup(2);
  flow_refused(40010, 0);
  run_to(0);
  t2s_engine_proxy_probe_result(EE, 0, T2S_ERR_TIMEOUT, 0);
  run_to(1 * S);
  t2s_engine_proxy_probe_result(EE, 0, T2S_ERR_TIMEOUT, 1 * S);
  CU_ASSERT_EQUAL_FATAL(t2s_engine_proxy_health(EE)->p[0].state, T2S_PROXY_DOWN);
  engine_fake_stream *b = flow_ok(40020, 1 * S + 10 * MS);
  CU_ASSERT_TRUE(t2s_addr_eq(&b->dst, &PB));
  run_to(2 * S);
  CU_ASSERT_EQUAL(count_ev(T2S_EV_PROXY_PROBE, 0), 3); /* twice SUSPECT, once DOWN */
  t2s_engine_proxy_probe_result(EE, 0, 0, 2 * S);
  CU_ASSERT_EQUAL(count_ev(T2S_EV_PROXY_UP, 0), 1);
  engine_fake_stream *a = flow_ok(40021, 2 * S + 1 * MS);
  CU_ASSERT_TRUE(t2s_addr_eq(&a->dst, &PA));
  CU_ASSERT_EQUAL(rsts_to(40020), 0);
  CU_ASSERT_FALSE(b->closed);
  engine_teardown();
}

/* A held SYN whose proxy refused is tried on the next proxy: no RST, the client's handshake
 * completes through the second proxy; a proxy that answered about the destination (REP 5) is
 * not retried elsewhere: the client gets its RST. */
static void test_engine_held_syn_retried_on_next_proxy(void) {
  engine_setup(2);
  size_t mark = EF.npkts;
  syn(40070, 0);
  engine_fake_stream *a = last_stream();
  CU_ASSERT_TRUE(t2s_addr_eq(&a->dst, &PA));
  t2s_engine_stream_opened(EE, a->id, T2S_ERR_REFUSED, 1 * MS);
  CU_ASSERT_EQUAL(rsts_to(40070), 0);
  engine_fake_stream *b = last_stream();
  CU_ASSERT_TRUE(t2s_addr_eq(&b->dst, &PB));
  CU_ASSERT_NOT_EQUAL(b->id, a->id);
  /* Observers are told the flow's new id (T2S_EV_TCP_RETRY): the new one, the old one, the
   * proxy it goes to. */
  CU_ASSERT_EQUAL_FATAL(count_ev(T2S_EV_TCP_RETRY, b->id), 1);
  for (size_t k = 0; k < nevs; k++) {
    if (evs[k].type == T2S_EV_TCP_RETRY) {
      CU_ASSERT_EQUAL(evs[k].bytes_up, a->id);
      CU_ASSERT_EQUAL(evs[k].reason, 1);
      CU_ASSERT_STRING_EQUAL(t2s_engine_event_name(evs[k].type), "tcp_retry");
    }
  }
  static const uint8_t method[] = {5, 2}, auth[] = {1, 0};
  static const uint8_t reply[] = {5, 0, 0, 1, 203, 0, 113, 10, 0, 80};
  t2s_engine_stream_opened(EE, b->id, 0, 2 * MS);
  t2s_engine_stream_recv(EE, b->id, method, sizeof(method), 2 * MS);
  CU_ASSERT_EQUAL(memcmp(b->written + 4 + 2, "bob", 3), 0);
  t2s_engine_stream_recv(EE, b->id, auth, sizeof(auth), 2 * MS);
  t2s_engine_stream_recv(EE, b->id, reply, sizeof(reply), 2 * MS);
  CU_ASSERT_EQUAL(flags_to(40070, mark) & (T2S_TCP_SYN | T2S_TCP_ACK), T2S_TCP_SYN | T2S_TCP_ACK);
  CU_ASSERT_EQUAL(rsts_to(40070), 0);
  /* REP 5 from the first proxy (it is UP again after its probe): RST, no retry. */
  run_to(2 * MS);
  t2s_engine_proxy_probe_result(EE, 0, 0, 3 * MS);
  CU_ASSERT_EQUAL_FATAL(t2s_engine_proxy_health(EE)->p[0].state, T2S_PROXY_UP);
  syn(40071, 4 * MS);
  engine_fake_stream *c = last_stream();
  CU_ASSERT_TRUE(t2s_addr_eq(&c->dst, &PA));
  static const uint8_t rep5[] = {5, 5, 0, 1, 0, 0, 0, 0, 0, 0};
  t2s_engine_stream_opened(EE, c->id, 0, 4 * MS);
  t2s_engine_stream_recv(EE, c->id, method, sizeof(method), 4 * MS);
  t2s_engine_stream_recv(EE, c->id, auth, sizeof(auth), 4 * MS);
  size_t streams = EF.nstreams;
  t2s_engine_stream_recv(EE, c->id, rep5, sizeof(rep5), 4 * MS);
  CU_ASSERT(rsts_to(40071) >= 1);
  CU_ASSERT_EQUAL(EF.nstreams, streams);
  engine_teardown();
}

/* A UDP session opens its association through the proxy in use when it starts, with that
 * proxy's credentials: the second one while the first is DOWN. */
static void test_engine_udp_uses_the_proxy_in_use(void) {
  engine_setup(2);
  flow_refused(40060, 0);
  run_to(0);
  t2s_engine_proxy_probe_result(EE, 0, T2S_ERR_REFUSED, 0);
  run_to(1 * S);
  t2s_engine_proxy_probe_result(EE, 0, T2S_ERR_REFUSED, 1 * S);
  CU_ASSERT_EQUAL_FATAL(t2s_engine_proxy_health(EE)->p[0].state, T2S_PROXY_DOWN);
  t2s_addr src, dst;
  t2s_addr_parse("198.18.0.2:5000", &src);
  t2s_addr_parse("203.0.113.53:53", &dst);
  static const uint8_t q[] = {0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1};
  uint8_t buf[128];
  t2s_ssize n = t2s_build_udp(buf, sizeof(buf), &src, &dst, q, sizeof(q));
  CU_ASSERT_FATAL(n > 0);
  size_t before = EF.nstreams;
  t2s_engine_input(EE, buf, (size_t)n, 1 * S + 1 * MS);
  CU_ASSERT_EQUAL_FATAL(EF.nstreams, before + 1);
  engine_fake_stream *st = last_stream();
  CU_ASSERT_TRUE(t2s_addr_eq(&st->dst, &PB));
  static const uint8_t method[] = {5, 2};
  t2s_engine_stream_opened(EE, st->id, 0, 1 * S + 1 * MS);
  t2s_engine_stream_recv(EE, st->id, method, sizeof(method), 1 * S + 1 * MS);
  CU_ASSERT_EQUAL(memcmp(st->written + 4 + 2, "bob", 3), 0);
  /* The association completes; the query goes to the relay and is counted on B. */
  static const uint8_t auth[] = {1, 0}, rep[] = {5, 0, 0, 1, 192, 0, 2, 3, 0x13, 0x88};
  t2s_engine_stream_recv(EE, st->id, auth, sizeof(auth), 1 * S + 2 * MS);
  t2s_engine_stream_recv(EE, st->id, rep, sizeof(rep), 1 * S + 2 * MS);
  CU_ASSERT_EQUAL_FATAL(EF.ndgrams, 1);
  CU_ASSERT_EQUAL(EF.dgrams[0].sent, 1);
  const t2s_proxy_health *hb = &t2s_engine_proxy_health(EE)->p[1];
  CU_ASSERT_EQUAL(hb->bytes_up, sizeof(q));
  CU_ASSERT_EQUAL(t2s_engine_proxy_health(EE)->p[0].bytes_up, 0);
  engine_teardown();
}

/* With every proxy DOWN a new SYN is answered with a RST at once and no upstream is tried. */
static void test_engine_all_down_refuses_at_once(void) {
  engine_setup(1);
  for (uint16_t k = 0; k < 3; k++) {
    flow_refused((uint16_t)(40030 + k), 0);
  }
  run_to(0);
  CU_ASSERT_EQUAL_FATAL(t2s_engine_proxy_health(EE)->p[0].state, T2S_PROXY_DOWN);
  size_t streams = EF.nstreams, mark = EF.npkts;
  syn(40040, 1 * MS);
  CU_ASSERT(flags_to(40040, mark) & T2S_TCP_RST);
  CU_ASSERT_EQUAL(EF.nstreams, streams);
  /* A DNS query gets SERVFAIL at once, from the address it was sent to. */
  t2s_addr src, dst;
  t2s_addr_parse("198.18.0.2:5353", &src);
  t2s_addr_parse("203.0.113.53:53", &dst);
  static const uint8_t q[] = {0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1};
  uint8_t buf[128];
  t2s_ssize n = t2s_build_udp(buf, sizeof(buf), &src, &dst, q, sizeof(q));
  CU_ASSERT_FATAL(n > 0);
  mark = EF.npkts;
  t2s_engine_input(EE, buf, (size_t)n, 2 * MS);
  CU_ASSERT_EQUAL_FATAL(EF.npkts, mark + 1);
  t2s_pkt p;
  CU_ASSERT_EQUAL_FATAL(t2s_pkt_parse(EF.pkts[mark].data, EF.pkts[mark].len, &p), T2S_DROP_NONE);
  CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_UDP);
  CU_ASSERT_TRUE(t2s_addr_eq(&p.src, &dst));
  CU_ASSERT_TRUE(t2s_addr_eq(&p.dst, &src));
  CU_ASSERT_FATAL(p.payload_len >= 12);
  CU_ASSERT_EQUAL(p.payload[0], 0x12);
  CU_ASSERT_EQUAL(p.payload[2] & 0x80, 0x80); /* QR */
  CU_ASSERT_EQUAL(p.payload[3] & 0x0f, 2);    /* SERVFAIL */
  CU_ASSERT_EQUAL(EF.nstreams, streams);
  engine_teardown();
}

/* A proxy that accepts the connect and then says nothing: the SYN held for the connect timeout
 * counts as a timeout against the proxy. A SOCKS5 REP about the destination (5: refused) is
 * the proxy answering: not evidence. */
static void test_engine_handshake_timeout_counts_rep_does_not(void) {
  engine_setup(1);
  syn(40050, 0);
  t2s_engine_stream_opened(EE, last_stream()->id, 0, 0);
  run_to(11 * S);
  const t2s_proxy_health *h = &t2s_engine_proxy_health(EE)->p[0];
  CU_ASSERT_EQUAL(h->failures[T2S_PROXY_CAUSE_TIMEOUT], 1);
  CU_ASSERT_EQUAL(h->state, T2S_PROXY_SUSPECT);
  t2s_engine_stats es;
  t2s_engine_get_stats(EE, &es); /* in the global failure metrics too, by cause */
  CU_ASSERT_EQUAL(es.upstream_failures[T2S_PROXY_CAUSE_TIMEOUT], 1);
  CU_ASSERT_EQUAL(es.upstream_errors, 1);
  t2s_engine_proxy_probe_result(EE, 0, 0, 11 * S);
  CU_ASSERT_EQUAL(h->state, T2S_PROXY_UP);
  syn(40051, 12 * S);
  engine_fake_stream *st = last_stream();
  static const uint8_t method[] = {5, 2}, auth[] = {1, 0};
  static const uint8_t rep5[] = {5, 5, 0, 1, 0, 0, 0, 0, 0, 0};
  t2s_engine_stream_opened(EE, st->id, 0, 12 * S);
  t2s_engine_stream_recv(EE, st->id, method, sizeof(method), 12 * S);
  t2s_engine_stream_recv(EE, st->id, auth, sizeof(auth), 12 * S);
  t2s_engine_stream_recv(EE, st->id, rep5, sizeof(rep5), 12 * S);
  CU_ASSERT(rsts_to(40051) >= 1);
  CU_ASSERT_EQUAL(h->state, T2S_PROXY_UP);
  CU_ASSERT_EQUAL(h->last_success_at, 12 * S);
  t2s_engine_get_stats(EE, &es); /* a REP about the destination is not a proxy failure */
  CU_ASSERT_EQUAL(es.upstream_failures[T2S_PROXY_CAUSE_TIMEOUT], 1);
  CU_ASSERT_EQUAL(es.upstream_failures[T2S_PROXY_CAUSE_REFUSED], 0);
  engine_teardown();
}

/* A single proxy given by a name that does not resolve yet: a SYN gets a RST at once and no
 * upstream is tried; once the host gives it an address, new flows go there; a later new
 * address takes new flows while the flow on the old one keeps running (no RST). Bytes are
 * counted per proxy. */
static void test_engine_unresolved_refuses_then_carries(void) {
  engine_fake_init(&EF);
  engine_fake_set_route(&EF, 2, "eth0", "192.0.2.10", false);
  nevs = 0;
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  t2s_addr_parse("0.0.0.0:1080", &cfg.proxy); /* the binary's placeholder */
  t2s_engine_hooks hooks = {.on_event = on_event, .arg = NULL};
  CU_ASSERT_EQUAL_FATAL(t2s_engine_new(&EE, &cfg, &EF.dev, &EF.up, &hooks), 0);
  t2s_addr_parse("192.0.2.2:1080", &PA);
  t2s_addr_parse("192.0.2.3:1080", &PB);
  t2s_engine_proxy list[1] = {{.username = "alice", .password = "a-pass"}}; /* family 0 */
  CU_ASSERT_EQUAL_FATAL(t2s_engine_set_proxies(EE, list, 1, NULL, 0), 0);
  CU_ASSERT_EQUAL(t2s_engine_proxy_health(EE)->p[0].state, T2S_PROXY_UNRESOLVED);
  size_t mark = EF.npkts;
  syn(40060, 1 * MS);
  CU_ASSERT(flags_to(40060, mark) & T2S_TCP_RST);
  CU_ASSERT_EQUAL(EF.nstreams, 0);
  t2s_engine_stats st;
  t2s_engine_get_stats(EE, &st);
  CU_ASSERT_EQUAL(st.syn_refused_offline, 1);
  run_to(5 * S);
  CU_ASSERT_EQUAL(count_ev(T2S_EV_PROXY_PROBE, 0), 0); /* an unresolved proxy is not probed */
  CU_ASSERT_EQUAL(t2s_engine_proxy_set_addr(EE, 0, &PA, 5 * S), 0);
  CU_ASSERT_EQUAL(t2s_engine_proxy_health(EE)->p[0].state, T2S_PROXY_UP);
  engine_fake_stream *a = flow_ok(40061, 5 * S);
  CU_ASSERT_TRUE(t2s_addr_eq(&a->dst, &PA));
  CU_ASSERT_EQUAL(memcmp(a->written + 4 + 2, "alice", 5), 0);
  static const uint8_t hello[] = "hello";
  t2s_engine_stream_recv(EE, a->id, hello, 5, 5 * S + 1 * MS);
  CU_ASSERT_EQUAL(t2s_engine_proxy_health(EE)->p[0].bytes_down, 5);
  /* The name moves: new flows go to the new address, the old flow is not reset. */
  CU_ASSERT_EQUAL(t2s_engine_proxy_set_addr(EE, 0, &PB, 6 * S), 0);
  CU_ASSERT_EQUAL(t2s_engine_proxy_set_addr(EE, 0, &PB, 6 * S), 0); /* the same: nothing */
  CU_ASSERT_EQUAL(t2s_engine_proxy_health(EE)->p[0].readdressed, 2);
  engine_fake_stream *b = flow_ok(40062, 6 * S);
  CU_ASSERT_TRUE(t2s_addr_eq(&b->dst, &PB));
  run_to(7 * S);
  CU_ASSERT_EQUAL(rsts_to(40061), 0);
  t2s_addr none;
  memset(&none, 0, sizeof(none));
  CU_ASSERT_EQUAL(t2s_engine_proxy_set_addr(EE, 0, &none, 7 * S), T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_engine_proxy_set_addr(EE, 1, &PA, 7 * S), T2S_ERR_INVALID_ARGUMENT);
  engine_teardown();
}

/* A proxy that answers the greeting with garbage: a protocol error, counted against the proxy
 * and in the global failure counters by cause (as the binary's
 * tun2sock_upstream_proxy_failures_total{cause="protocol"}). */
static void test_engine_protocol_error_counted_by_cause(void) {
  engine_setup(1);
  syn(40080, 0);
  engine_fake_stream *st = last_stream();
  static const uint8_t garbage[] = {4, 0x5a};
  t2s_engine_stream_opened(EE, st->id, 0, 1 * MS);
  t2s_engine_stream_recv(EE, st->id, garbage, sizeof(garbage), 1 * MS);
  CU_ASSERT(rsts_to(40080) >= 1);
  t2s_engine_stats es;
  t2s_engine_get_stats(EE, &es);
  CU_ASSERT_EQUAL(es.upstream_failures[T2S_PROXY_CAUSE_PROTOCOL], 1);
  CU_ASSERT_EQUAL(t2s_engine_proxy_health(EE)->p[0].failures[T2S_PROXY_CAUSE_PROTOCOL], 1);
  CU_ASSERT_EQUAL(t2s_engine_proxy_health(EE)->p[0].last_cause, T2S_PROXY_CAUSE_PROTOCOL);
  engine_teardown();
}

/* /metrics and /stats show each proxy: state, time in it, last error and success, failures by
 * cause; nothing with a single proxy. */
static char *render(const t2s_metrics_snapshot *s, bool json) {
  struct evbuffer *b = evbuffer_new();
  if (json) {
    t2s_metrics_render_json(s, b);
  } else {
    t2s_metrics_render_prometheus(s, b);
  }
  size_t n = evbuffer_get_length(b);
  char *out = calloc(1, n + 1);
  evbuffer_remove(b, out, n);
  evbuffer_free(b);
  return out;
}

static void test_metrics_show_each_proxy(void) {
  static t2s_metrics_snapshot s;
  memset(&s, 0, sizeof(s));
  char *none = render(&s, true);
  CU_ASSERT_PTR_NULL(strstr(none, "proxies"));
  free(none);
  s.nproxies = 2;
  snprintf(s.proxies[0].name, sizeof(s.proxies[0].name), "192.0.2.1:1080");
  s.proxies[0].state = T2S_PROXY_DOWN;
  s.proxies[0].since_change_s = 2.5;
  s.proxies[0].last_success_ago_s = 10;
  s.proxies[0].last_failure_ago_s = 1;
  s.proxies[0].last_cause = T2S_PROXY_CAUSE_TIMEOUT;
  s.proxies[0].failures[T2S_PROXY_CAUSE_TIMEOUT] = 3;
  snprintf(s.proxies[1].name, sizeof(s.proxies[1].name), "192.0.2.2:1081");
  s.proxies[1].last_success_ago_s = -1;
  s.proxies[1].last_failure_ago_s = -1;
  s.proxies[1].flows = 7;
  s.proxies[1].bytes_down = 4096;
  snprintf(s.proxies[1].address, sizeof(s.proxies[1].address), "192.0.2.2:1081");
  s.engine.upstream_failures[T2S_PROXY_CAUSE_PROTOCOL] = 4;
  char *j = render(&s, true);
  CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"address\":null,")); /* the first: not resolved */
  CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"address\":\"192.0.2.2:1081\",\"bytes_up\":0,"
                                   "\"bytes_down\":4096,"));
  CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"upstream_failures_by_cause\":{\"refused\":0,"));
  CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"protocol\":4}"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(j, "\"proxies\":[{\"proxy\":\"192.0.2.1:1080\",\"state\":\"DOWN\""));
  CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"last_error\":\"timeout\",\"last_error_seconds_ago\":1.000"));
  CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"last_success_seconds_ago\":10.000"));
  CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"timeout\":3"));
  CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"state\":\"UP\",\"state_seconds\":0.000,\"flows\":7"));
  CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"last_error\":null"));
  CU_ASSERT_EQUAL(j[strlen(j) - 2], '}');
  free(j);
  char *p = render(&s, false);
  CU_ASSERT_PTR_NOT_NULL(
      strstr(p, "tun2sock_proxy_state{proxy=\"192.0.2.1:1080\",state=\"DOWN\"} 1\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(p, "tun2sock_proxy_state{proxy=\"192.0.2.1:1080\",state=\"UP\"} 0\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(p, "tun2sock_proxy_failures_total{proxy=\"192.0.2.1:1080\",cause=\"timeout\"} 3\n"));
  CU_ASSERT_PTR_NOT_NULL(strstr(p, "tun2sock_proxy_flows_total{proxy=\"192.0.2.2:1081\"} 7\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(p, "tun2sock_proxy_state_seconds{proxy=\"192.0.2.1:1080\"} 2.500\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(p, "tun2sock_proxy_bytes_total{proxy=\"192.0.2.2:1081\",direction=\"down\"} 4096\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(p, "tun2sock_proxy_info{proxy=\"192.0.2.2:1081\",address=\"192.0.2.2:1081\"} 1\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(p, "tun2sock_upstream_proxy_failures_total{cause=\"protocol\"} 4\n"));
  CU_ASSERT_PTR_NOT_NULL(
      strstr(p, "tun2sock_proxy_state{proxy=\"192.0.2.1:1080\",state=\"UNRESOLVED\"} 0\n"));
  free(p);
}

int t2s_test_register_proxy_health(void) {
  CU_pSuite s = CU_add_suite("proxy_health", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "one failure does not take a proxy down",
                   test_one_failure_does_not_take_down) ||
      !CU_add_test(s, "down after the evidence, reported once",
                   test_down_after_evidence_reported_once) ||
      !CU_add_test(s, "a success clears the evidence", test_success_clears_evidence) ||
      !CU_add_test(s, "failed probes take a suspect down", test_failed_probes_take_suspect_down) ||
      !CU_add_test(s, "probe backoff while down", test_probe_backoff_while_down) ||
      !CU_add_test(s, "failover, preference restored for new flows",
                   test_failover_and_preference_restored) ||
      !CU_add_test(s, "every proxy down refuses", test_all_down_refuses) ||
      !CU_add_test(s, "a suspect proxy yields to an up one", test_suspect_yields_to_up) ||
      !CU_add_test(s, "failure report rate-limited", test_failure_report_rate_limited) ||
      !CU_add_test(s, "scripted run is deterministic", test_scripted_run_is_deterministic) ||
      !CU_add_test(s, "causes, names and config bounds", test_cause_from_err) ||
      !CU_add_test(s, "engine: fails over, resets once", test_engine_fails_over_and_resets_once) ||
      !CU_add_test(s, "engine: preference restored for new flows only",
                   test_engine_preference_restored_for_new_flows_only) ||
      !CU_add_test(s, "engine: UDP uses the proxy in use", test_engine_udp_uses_the_proxy_in_use) ||
      !CU_add_test(s, "engine: a held SYN is retried on the next proxy",
                   test_engine_held_syn_retried_on_next_proxy) ||
      !CU_add_test(s, "metrics show each proxy", test_metrics_show_each_proxy) ||
      !CU_add_test(s, "an unresolved proxy takes no flows until it has an address",
                   test_unresolved_takes_no_flows_until_addressed) ||
      !CU_add_test(s, "a new address forgets the evidence", test_new_address_forgets_evidence) ||
      !CU_add_test(s, "a network change probes a down proxy at once",
                   test_network_change_probes_down_at_once) ||
      !CU_add_test(s, "engine: a protocol error counted by cause",
                   test_engine_protocol_error_counted_by_cause) ||
      !CU_add_test(s, "engine: unresolved refuses at once, then carries",
                   test_engine_unresolved_refuses_then_carries) ||
      !CU_add_test(s, "engine: every proxy down refuses at once",
                   test_engine_all_down_refuses_at_once) ||
      !CU_add_test(s, "engine: handshake timeout counts, a REP does not",
                   test_engine_handshake_timeout_counts_rep_does_not)) {
    return -1;
  }
  return 0;
}
