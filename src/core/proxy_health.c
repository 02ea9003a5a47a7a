/*
 * proxy_health.c: per-proxy health and the failover policy (docs/proxies.md).
 *
 * Evidence is counted in a row: a success (a real handshake, or a probe) clears it. The first
 * failure makes a proxy SUSPECT and asks for a probe at once, so a proxy that died is found
 * even when a single client retries slowly; down_after failures in a row (real or probe) make
 * it DOWN, which is reported once per transition (the host resets its flows). A DOWN proxy is
 * probed after probe_interval, then at doubling waits up to probe_interval_max; one good
 * probe makes it UP again, and new flows prefer it from then on (nothing is reset).
 */
#include <string.h>

#include "proxy_health.h"

static const char *const state_names[] = {"UP", "SUSPECT", "DOWN", "UNRESOLVED"};
_Static_assert(T2S_ARRAY_LEN(state_names) == T2S_PROXY_STATE_COUNT, "state names");
static const char *const cause_names[] = {"refused", "timeout", "unreachable",
                                          "reset",   "auth",    "protocol"};
static const char *const cause_texts[] = {
    "connection refused",      "timed out",     "unreachable", "reset during the handshake",
    "authentication rejected", "protocol error"};

_Static_assert(T2S_ARRAY_LEN(cause_names) == T2S_PROXY_CAUSE_COUNT, "cause names");
_Static_assert(T2S_ARRAY_LEN(cause_texts) == T2S_PROXY_CAUSE_COUNT, "cause texts");

const char *t2s_proxy_state_name(t2s_proxy_state s) {
  return (size_t)s < T2S_ARRAY_LEN(state_names) ? state_names[s] : "?";
}

const char *t2s_proxy_cause_name(t2s_proxy_cause c) {
  return (size_t)c < T2S_ARRAY_LEN(cause_names) ? cause_names[c] : "?";
}

const char *t2s_proxy_cause_text(t2s_proxy_cause c) {
  return (size_t)c < T2S_ARRAY_LEN(cause_texts) ? cause_texts[c] : "?";
}

int t2s_proxy_cause_from_err(int err) {
  switch (err) {
  case T2S_ERR_REFUSED:
    return T2S_PROXY_CAUSE_REFUSED;
  case T2S_ERR_TIMEOUT:
    return T2S_PROXY_CAUSE_TIMEOUT;
  case T2S_ERR_UNREACHABLE:
  case T2S_ERR_PERMISSION: /* a firewall's EACCES/EPERM on connect */
    return T2S_PROXY_CAUSE_UNREACHABLE;
  case T2S_ERR_RESET:
  case T2S_ERR_CLOSED:
    return T2S_PROXY_CAUSE_RESET;
  case T2S_ERR_AUTH:
    return T2S_PROXY_CAUSE_AUTH;
  case T2S_ERR_MALFORMED:
  case T2S_ERR_PROTO:
  case T2S_ERR_UNSUPPORTED:
    return T2S_PROXY_CAUSE_PROTOCOL;
  default:
    return -1;
  }
}

void t2s_proxy_health_config_default(t2s_proxy_health_config *cfg) {
  cfg->down_after = 3;
  cfg->probe_interval = 1 * T2S_SECONDS;
  cfg->probe_interval_max = 30 * T2S_SECONDS;
  cfg->report_interval = 10 * T2S_SECONDS;
}

int t2s_proxy_set_init(t2s_proxy_set *set, size_t n, const t2s_proxy_health_config *cfg,
                       t2s_proxy_action_cb cb, void *cb_arg, t2s_tstamp now) {
  if (set == NULL || n == 0 || n > T2S_PROXY_MAX) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  memset(set, 0, sizeof(*set));
  t2s_proxy_health_config def;
  t2s_proxy_health_config_default(&def);
  set->cfg = cfg != NULL ? *cfg : def;
  if (set->cfg.down_after < 2) {
    set->cfg.down_after = 2;
  }
  if (set->cfg.probe_interval == 0) {
    set->cfg.probe_interval = def.probe_interval;
  }
  if (set->cfg.probe_interval_max < set->cfg.probe_interval) {
    set->cfg.probe_interval_max = set->cfg.probe_interval;
  }
  if (set->cfg.report_interval == 0) {
    set->cfg.report_interval = def.report_interval;
  }
  set->n = n;
  set->cb = cb;
  set->cb_arg = cb_arg;
  for (size_t i = 0; i < n; i++) {
    t2s_proxy_health *p = &set->p[i];
    p->state = T2S_PROXY_UP;
    p->changed_at = now;
    p->last_success_at = T2S_TSTAMP_MAX;
    p->last_failure_at = T2S_TSTAMP_MAX;
    p->probe_at = T2S_TSTAMP_MAX;
    for (size_t c = 0; c < T2S_PROXY_CAUSE_COUNT; c++) {
      p->report_until[c] = T2S_TSTAMP_MAX;
    }
  }
  return 0;
}

static void emit(t2s_proxy_set *set, t2s_proxy_action_kind kind, size_t i, t2s_proxy_cause cause,
                 uint32_t count, t2s_tstamp period, t2s_tstamp now) {
  if (set->cb == NULL) {
    return;
  }
  t2s_proxy_action a = {
      .kind = kind, .proxy = (uint32_t)i, .cause = cause, .count = count, .period = period};
  set->cb(set->cb_arg, &a, now);
}

int t2s_proxy_set_pick(t2s_proxy_set *set) {
  int suspect = -1;
  for (size_t i = 0; i < set->n; i++) {
    if (set->p[i].state == T2S_PROXY_UP) {
      set->p[i].picks++;
      return (int)i;
    }
    if (set->p[i].state == T2S_PROXY_SUSPECT && suspect < 0) {
      suspect = (int)i;
    }
  }
  if (suspect >= 0) {
    set->p[suspect].picks++;
  }
  return suspect;
}

bool t2s_proxy_set_usable(const t2s_proxy_set *set, size_t i) {
  return i < set->n && (set->p[i].state == T2S_PROXY_UP || set->p[i].state == T2S_PROXY_SUSPECT);
}

int t2s_proxy_set_next(t2s_proxy_set *set, int after) {
  for (size_t i = after < 0 ? 0 : (size_t)after + 1; i < set->n; i++) {
    if (t2s_proxy_set_usable(set, i)) {
      set->p[i].picks++;
      return (int)i;
    }
  }
  return -1;
}

static void go_down(t2s_proxy_set *set, size_t i, t2s_proxy_cause cause, t2s_tstamp now) {
  t2s_proxy_health *p = &set->p[i];
  p->state = T2S_PROXY_DOWN;
  p->changed_at = now;
  p->downs++;
  p->probe_at = now + set->cfg.probe_interval;
  p->backoff = set->cfg.probe_interval * 2;
  if (p->backoff > set->cfg.probe_interval_max) {
    p->backoff = set->cfg.probe_interval_max;
  }
  emit(set, T2S_PROXY_ACT_DOWN, i, cause, 0, 0, now);
}

/* Counts one failure (real or probe) and moves the state. Returns true when it went DOWN. */
static bool count_failure(t2s_proxy_set *set, size_t i, t2s_proxy_cause cause, t2s_tstamp now) {
  t2s_proxy_health *p = &set->p[i];
  p->failures[cause]++;
  p->last_failure_at = now;
  p->last_cause = cause;
  if (p->fails_in_row < UINT32_MAX) {
    p->fails_in_row++;
  }
  switch (p->state) {
  case T2S_PROXY_UP:
    p->state = T2S_PROXY_SUSPECT;
    p->changed_at = now;
    if (!p->probing) {
      p->probe_at = now; /* find out at once whether it was the proxy or one flow */
    }
    return false;
  case T2S_PROXY_SUSPECT:
    if (p->fails_in_row >= set->cfg.down_after) {
      go_down(set, i, cause, now);
      return true;
    }
    if (!p->probing && p->probe_at == T2S_TSTAMP_MAX) {
      p->probe_at = now + set->cfg.probe_interval;
    }
    return false;
  case T2S_PROXY_DOWN:
  case T2S_PROXY_UNRESOLVED:
  case T2S_PROXY_STATE_COUNT:
    return false; /* already reported; a straggler of a flow opened before */
  }
  return false;
}

/* Counts a real failure in the rate-limited report: the first of a quiet time is reported at
 * once, the rest at the end of each report_interval window. */
static void report_failure(t2s_proxy_set *set, size_t i, t2s_proxy_cause cause, t2s_tstamp now) {
  t2s_proxy_health *p = &set->p[i];
  if (p->report_until[cause] == T2S_TSTAMP_MAX) {
    p->report_started[cause] = now;
    p->report_until[cause] = now + set->cfg.report_interval;
    p->report_count[cause] = 0;
    emit(set, T2S_PROXY_ACT_LOG_FAILURE, i, cause, 1, 0, now);
    return;
  }
  if (p->report_count[cause] < UINT32_MAX) {
    p->report_count[cause]++;
  }
}

void t2s_proxy_set_failure(t2s_proxy_set *set, size_t i, t2s_proxy_cause cause, t2s_tstamp now) {
  T2S_ASSERT(i < set->n && (size_t)cause < T2S_PROXY_CAUSE_COUNT);
  if (i >= set->n || (size_t)cause >= T2S_PROXY_CAUSE_COUNT) {
    return;
  }
  report_failure(set, i, cause, now);
  count_failure(set, i, cause, now);
}

void t2s_proxy_set_success(t2s_proxy_set *set, size_t i, t2s_tstamp now) {
  T2S_ASSERT(i < set->n);
  if (i >= set->n) {
    return;
  }
  t2s_proxy_health *p = &set->p[i];
  p->last_success_at = now;
  p->fails_in_row = 0;
  if (p->state == T2S_PROXY_UP || p->state == T2S_PROXY_UNRESOLVED) {
    return; /* UNRESOLVED: a straggler on an address it no longer has */
  }
  bool was_down = p->state == T2S_PROXY_DOWN;
  p->state = T2S_PROXY_UP;
  p->changed_at = now;
  p->probe_at = T2S_TSTAMP_MAX;
  if (was_down) {
    emit(set, T2S_PROXY_ACT_UP, i, p->last_cause, 0, 0, now);
  }
}

void t2s_proxy_set_probe_result(t2s_proxy_set *set, size_t i, bool ok, t2s_proxy_cause cause,
                                t2s_tstamp now) {
  if (i >= set->n || !set->p[i].probing) {
    return;
  }
  t2s_proxy_health *p = &set->p[i];
  p->probing = false;
  if (p->state == T2S_PROXY_UNRESOLVED) {
    return;
  }
  if (ok) {
    t2s_proxy_set_success(set, i, now);
    return;
  }
  if ((size_t)cause >= T2S_PROXY_CAUSE_COUNT) {
    cause = T2S_PROXY_CAUSE_PROTOCOL;
  }
  t2s_proxy_state before = p->state;
  if (count_failure(set, i, cause, now)) {
    return; /* went DOWN: go_down scheduled the first probe */
  }
  if (p->state == T2S_PROXY_SUSPECT) {
    p->probe_at = now + set->cfg.probe_interval;
  } else if (before == T2S_PROXY_DOWN) {
    p->probe_at = now + p->backoff;
    p->backoff *= 2;
    if (p->backoff > set->cfg.probe_interval_max) {
      p->backoff = set->cfg.probe_interval_max;
    }
  }
}

void t2s_proxy_set_unresolved(t2s_proxy_set *set, size_t i, t2s_tstamp now) {
  T2S_ASSERT(i < set->n);
  if (i >= set->n) {
    return;
  }
  t2s_proxy_health *p = &set->p[i];
  if (p->state != T2S_PROXY_UNRESOLVED) {
    p->state = T2S_PROXY_UNRESOLVED;
    p->changed_at = now;
  }
  p->fails_in_row = 0;
  p->probing = false; /* a late result is ignored */
  p->probe_at = T2S_TSTAMP_MAX;
}

void t2s_proxy_set_readdressed(t2s_proxy_set *set, size_t i, t2s_tstamp now) {
  T2S_ASSERT(i < set->n);
  if (i >= set->n) {
    return;
  }
  t2s_proxy_health *p = &set->p[i];
  p->readdressed++;
  p->fails_in_row = 0;
  p->probing = false; /* a probe of the old address says nothing of the new one */
  p->probe_at = T2S_TSTAMP_MAX;
  if (p->state != T2S_PROXY_UP) {
    p->state = T2S_PROXY_UP;
    p->changed_at = now;
  }
}

void t2s_proxy_set_network_changed(t2s_proxy_set *set, t2s_tstamp now) {
  for (size_t i = 0; i < set->n; i++) {
    t2s_proxy_health *p = &set->p[i];
    if (p->state != T2S_PROXY_DOWN) {
      continue;
    }
    p->backoff = set->cfg.probe_interval; /* now, then 1, 2, 4, ... x probe_interval */
    if (!p->probing) {
      p->probe_at = now;
    }
  }
}

t2s_tstamp t2s_proxy_set_get_expiry(const t2s_proxy_set *set) {
  t2s_tstamp at = T2S_TSTAMP_MAX;
  for (size_t i = 0; i < set->n; i++) {
    const t2s_proxy_health *p = &set->p[i];
    if (!p->probing && p->probe_at < at) {
      at = p->probe_at;
    }
    for (size_t c = 0; c < T2S_PROXY_CAUSE_COUNT; c++) {
      if (p->report_until[c] < at) {
        at = p->report_until[c];
      }
    }
  }
  return at;
}

void t2s_proxy_set_handle_expiry(t2s_proxy_set *set, t2s_tstamp now) {
  for (size_t i = 0; i < set->n; i++) {
    t2s_proxy_health *p = &set->p[i];
    for (size_t c = 0; c < T2S_PROXY_CAUSE_COUNT; c++) {
      if (p->report_until[c] > now) {
        continue;
      }
      if (p->report_count[c] == 0) {
        p->report_until[c] = T2S_TSTAMP_MAX; /* a quiet window: the next failure is news */
        continue;
      }
      uint32_t count = p->report_count[c];
      p->report_count[c] = 0;
      p->report_started[c] = now;
      p->report_until[c] = now + set->cfg.report_interval;
      emit(set, T2S_PROXY_ACT_LOG_FAILURE, i, (t2s_proxy_cause)c, count, set->cfg.report_interval,
           now);
    }
    if (!p->probing && p->probe_at <= now) {
      p->probing = true;
      p->probe_at = T2S_TSTAMP_MAX;
      p->probes++;
      emit(set, T2S_PROXY_ACT_PROBE, i, p->last_cause, 0, 0, now);
    }
  }
}
