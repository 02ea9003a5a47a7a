/* sim_check.c: invariant checkers outside the code under test (sim_check.h). */
#include "sim_check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_client.h"

/* One TCP flow as the engine announced it (T2S_EV_TCP_SYN): its id names its upstream
 * stream. */
typedef struct flowrec {
  uint64_t id;
  t2s_addr src, dst;
  bool ended_by_reset; /* T2S_EV_TCP_RESET or _REFUSED: the engine sent its client a RST */
} flowrec;

struct sim_check {
  t2s_mem mem; /* the engine's allocations (t2s_engine_config.mem) */
  bool have_baseline;
  uint64_t baseline;
  flowrec *flows;
  size_t nflows, capflows;
  bool stream_leak_reported;
};

int sim_check_new(sim_world *w) {
  w->check = calloc(1, sizeof(*w->check));
  if (w->check == NULL) {
    return T2S_ERR_NOMEM;
  }
  w->cfg.mem = &w->check->mem;
  return 0;
}

void sim_check_del(sim_world *w) {
  if (w->check) {
    free(w->check->flows);
    free(w->check);
    w->check = NULL;
  }
}

void sim_check_mem(const sim_world *w, uint64_t *live, uint64_t *baseline) {
  *live = w->check ? w->check->mem.live : 0;
  *baseline = w->check ? w->check->baseline : 0;
}

void sim_check_on_event(sim_world *w, const t2s_engine_event *ev) {
  struct sim_check *k = w->check;
  if (k == NULL) {
    return;
  }
  if (ev->type == T2S_EV_TCP_RESET || ev->type == T2S_EV_TCP_REFUSED) {
    for (size_t i = k->nflows; i-- > 0;) {
      if (k->flows[i].id == ev->flow_id) {
        k->flows[i].ended_by_reset = true;
        break;
      }
    }
    return;
  }
  if (ev->type != T2S_EV_TCP_SYN && ev->type != T2S_EV_TCP_RETRY) { /* a retry: a new id */
    return;
  }
  if (k->nflows == k->capflows) {
    size_t cap = k->capflows ? k->capflows * 2 : 64;
    flowrec *v = realloc(k->flows, cap * sizeof(*v));
    if (v == NULL) {
      return;
    }
    k->flows = v;
    k->capflows = cap;
  }
  flowrec *f = &k->flows[k->nflows++];
  f->id = ev->flow_id;
  f->src = ev->src;
  f->dst = ev->dst;
  f->ended_by_reset = false;
}

__attribute__((format(printf, 3, 4))) static void fail(sim_world *w, t2s_tstamp now,
                                                       const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  sim_world_invariant(w, now, msg);
}

void sim_check_step(sim_world *w, t2s_tstamp now) {
  struct sim_check *k = w->check;
  if (k == NULL || w->engine == NULL) {
    return;
  }
  if (!k->have_baseline) {
    k->have_baseline = true;
    k->baseline = k->mem.live;
  }
  if (k->stream_leak_reported) {
    return;
  }
  t2s_engine_stats st;
  t2s_engine_get_stats(w->engine, &st);
  uint64_t streams = sim_upstream_open_streams(w->up);
  uint64_t owners = st.tcp_flows_active + st.tcp_pending_syn + st.udp_sessions_active;
  if (streams > owners) {
    k->stream_leak_reported = true;
    fail(w, now,
         "%" PRIu64 " upstream streams are open but the engine holds only %" PRIu64
         " TCP flows, %" PRIu64 " pending SYNs and %" PRIu64 " UDP sessions",
         streams, st.tcp_flows_active, st.tcp_pending_syn, st.udp_sessions_active);
  }
}

static bool stream_by_id(const sim_world *w, uint64_t id, sim_up_stream_info *out) {
  size_t n = sim_upstream_nstreams(w->up);
  for (size_t i = 0; i < n; i++) {
    sim_upstream_stream_info(w->up, i, out);
    if (out->id == id) {
      return true;
    }
  }
  return false;
}

/* The upstream stream of the client's connection. The engine may have opened several flows
 * for its address pair: a refusal whose RST was lost (the client's SYN comes again), or a
 * stray duplicate SYN after the connection ended. The one that carried the bytes wins (the
 * latest among equals). */
static bool stream_of(const sim_world *w, const sim_client_spec *spec, sim_up_stream_info *out) {
  const struct sim_check *k = w->check;
  bool found = false;
  for (size_t i = 0; i < k->nflows; i++) {
    sim_up_stream_info s;
    if (!t2s_addr_eq(&k->flows[i].src, &spec->local) ||
        !t2s_addr_eq(&k->flows[i].dst, &spec->remote) || !stream_by_id(w, k->flows[i].id, &s)) {
      continue;
    }
    if (!found || s.rx + s.tx >= out->rx + out->tx) {
      *out = s;
      found = true;
    }
  }
  return found;
}

/* Every byte a client sent and the engine took reaches the upstream once and in order, and
 * the reverse: checked per client against the stream of its flow. */
static void check_streams(sim_world *w, t2s_tstamp now) {
  const sim_client_spec *spec;
  const sim_client_result *res;
  bool pattern;
  for (size_t i = 0; sim_clients_get(w->clients, i, &spec, &res, &pattern); i++) {
    sim_up_stream_info s;
    if (!stream_of(w, spec, &s)) {
      continue; /* not a TCP client, or refused before an upstream stream was opened */
    }
    bool done = res->state == SIM_CLIENT_DONE;
    const char *name = spec->name;
    if (pattern && s.rx_bad > 0) {
      fail(w, now,
           "client %s: %" PRIu64 " of the %" PRIu64 " bytes upstream stream %" PRIu64
           " received differ from what the client sent at their offset (lost, duplicated or "
           "reordered)",
           name, s.rx_bad, s.rx, s.id);
    }
    if (s.rx > res->sent) {
      fail(w, now,
           "client %s: upstream stream %" PRIu64 " received %" PRIu64
           " bytes but the client sent only %" PRIu64,
           name, s.id, s.rx, res->sent);
    } else if (done && s.rx != res->sent) {
      fail(w, now,
           "client %s finished cleanly but upstream stream %" PRIu64 " received %" PRIu64
           " of the %" PRIu64 " bytes it sent",
           name, s.id, s.rx, res->sent);
    }
    if (res->received > s.tx) {
      fail(w, now,
           "client %s read %" PRIu64 " bytes but upstream stream %" PRIu64 " sent only %" PRIu64,
           name, res->received, s.id, s.tx);
    } else if (done && res->received != s.tx) {
      fail(w, now,
           "client %s finished cleanly after %" PRIu64 " bytes but upstream stream %" PRIu64
           " sent %" PRIu64,
           name, res->received, s.id, s.tx);
    }
  }
}

/* True when the engine's last flow for this client ended with a RST to it. */
static bool reset_by_engine(const struct sim_check *k, const sim_client_spec *spec) {
  for (size_t i = k->nflows; i-- > 0;) {
    if (t2s_addr_eq(&k->flows[i].src, &spec->local) &&
        t2s_addr_eq(&k->flows[i].dst, &spec->remote)) {
      return k->flows[i].ended_by_reset;
    }
  }
  return false;
}

/* The liveness phase: after the last fault, everything converged. */
static void check_liveness(sim_world *w, t2s_tstamp now) {
  struct sim_check *k = w->check;
  const sim_client_spec *spec;
  const sim_client_result *res;
  bool pattern;
  for (size_t i = 0; sim_clients_get(w->clients, i, &spec, &res, &pattern); i++) {
    if (res->state != SIM_CLIENT_CONNECTING && res->state != SIM_CLIENT_OPEN) {
      continue;
    }
    if (reset_by_engine(k, spec)) {
      /* The engine reset the flow and its RST was lost or corrupted: TCP never repeats a RST,
       * and a client with nothing left to send (half-closed, waiting to read) never learns.
       * That is the client host's limit, not the engine's: noted, not failed. */
      sim_log_begin(&w->log, now, "liveness_note");
      sim_log_str(&w->log, "client", spec->name);
      sim_log_str(&w->log, "note", "open after the engine reset its flow (RST lost)");
      sim_log_end(&w->log);
      continue;
    }
    fail(w, now, "liveness: client %s is still %s (sent %" PRIu64 ", received %" PRIu64 ")",
         spec->name, sim_client_state_name(res->state), res->sent, res->received);
  }
  if (w->engine == NULL) {
    return;
  }
  t2s_engine_stats st;
  t2s_engine_get_stats(w->engine, &st);
  if (st.tcp_flows_active || st.tcp_pending_syn || st.udp_sessions_active) {
    fail(w, now,
         "liveness: the engine still holds %" PRIu64 " TCP flows, %" PRIu64
         " pending SYNs and %" PRIu64 " UDP sessions",
         st.tcp_flows_active, st.tcp_pending_syn, st.udp_sessions_active);
  }
  uint64_t open = sim_upstream_open_streams(w->up);
  if (open) {
    fail(w, now, "liveness: %" PRIu64 " upstream streams are still open", open);
  }
  if (k->have_baseline && k->mem.live != k->baseline) {
    fail(w, now,
         "liveness: the engine holds %" PRIu64 " heap blocks, %" PRIu64
         " after it was created (leak or unbounded cache)",
         k->mem.live, k->baseline);
  }
}

void sim_check_end(sim_world *w) {
  if (w->check == NULL) {
    return;
  }
  t2s_tstamp now = w->loop.now;
  check_streams(w, now);
  if (w->dev.faults.until != 0) {
    check_liveness(w, now);
  }
}

void sim_check_teardown(sim_world *w) {
  if (w->engine == NULL) {
    return;
  }
  t2s_engine_del(w->engine);
  w->engine = NULL;
  if (w->check && w->check->mem.live != 0) {
    fail(w, w->loop.now, "t2s_engine_del left %" PRIu64 " heap blocks allocated (leak)",
         w->check->mem.live);
  }
}
