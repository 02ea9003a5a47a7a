/* sim_loop.c: the event queue (a binary heap ordered by time, kind, sequence). */
#include "sim_loop.h"

#include <stdlib.h>
#include <string.h>

const char *sim_end_reason_name(sim_end_reason r) {
  switch (r) {
  case SIM_END_IDLE:
    return "idle";
  case SIM_END_UNTIL:
    return "until";
  case SIM_END_STEPS:
    return "steps";
  case SIM_END_STOPPED:
    return "stopped";
  }
  return "unknown";
}

void sim_loop_init(sim_loop *loop) {
  memset(loop, 0, sizeof(*loop));
  loop->deadline = T2S_TSTAMP_MAX;
}

void sim_loop_free(sim_loop *loop) {
  for (size_t i = 0; i < loop->nheap; i++) {
    free(loop->heap[i].data);
  }
  free(loop->heap);
  loop->heap = NULL;
  loop->nheap = loop->capheap = 0;
}

/* Strict order: time, then kind, then sequence. */
static bool ev_before(const sim_event *a, const sim_event *b) {
  if (a->at != b->at) {
    return a->at < b->at;
  }
  if (a->kind != b->kind) {
    return a->kind < b->kind;
  }
  return a->seq < b->seq;
}

static void heap_up(sim_event *h, size_t i) {
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!ev_before(&h[i], &h[parent])) {
      break;
    }
    sim_event tmp = h[i];
    h[i] = h[parent];
    h[parent] = tmp;
    i = parent;
  }
}

static void heap_down(sim_event *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && ev_before(&h[l], &h[m])) {
      m = l;
    }
    if (r < n && ev_before(&h[r], &h[m])) {
      m = r;
    }
    if (m == i) {
      break;
    }
    sim_event tmp = h[i];
    h[i] = h[m];
    h[m] = tmp;
    i = m;
  }
}

int sim_loop_schedule(sim_loop *loop, t2s_tstamp at, sim_ev_kind kind, sim_ev_fn fn, void *arg,
                      uint64_t u64a, uint64_t u64b, const uint8_t *data, size_t len) {
  if (loop->nheap == loop->capheap) {
    size_t cap = loop->capheap ? loop->capheap * 2 : 256;
    sim_event *h = realloc(loop->heap, cap * sizeof(*h));
    if (h == NULL) {
      return T2S_ERR_NOMEM;
    }
    loop->heap = h;
    loop->capheap = cap;
  }
  sim_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.at = at < loop->now ? loop->now : at;
  ev.kind = (uint8_t)kind;
  ev.seq = loop->next_seq++;
  ev.fn = fn;
  ev.arg = arg;
  ev.u64a = u64a;
  ev.u64b = u64b;
  if (data != NULL) {
    ev.data = malloc(len ? len : 1);
    if (ev.data == NULL) {
      return T2S_ERR_NOMEM;
    }
    memcpy(ev.data, data, len);
    ev.len = len;
  }
  loop->heap[loop->nheap] = ev;
  heap_up(loop->heap, loop->nheap);
  loop->nheap++;
  return 0;
}

int sim_loop_add_timer(sim_loop *loop, const sim_timer_src *src) {
  if (loop->ntimers >= SIM_MAX_TIMER_SRCS) {
    return T2S_ERR_LIMIT;
  }
  loop->timers[loop->ntimers++] = *src;
  return 0;
}

/* The earliest timer source: its index in *pidx, its deadline returned (MAX: none). */
static t2s_tstamp earliest_timer(const sim_loop *loop, size_t *pidx) {
  t2s_tstamp best = T2S_TSTAMP_MAX;
  *pidx = SIZE_MAX;
  for (size_t i = 0; i < loop->ntimers; i++) {
    t2s_tstamp t = loop->timers[i].get_expiry(loop->timers[i].arg);
    if (t < best) {
      best = t;
      *pidx = i;
    }
  }
  return best;
}

bool sim_loop_idle(const sim_loop *loop) {
  size_t idx;
  return loop->nheap == 0 && earliest_timer(loop, &idx) == T2S_TSTAMP_MAX;
}

void sim_loop_stop(sim_loop *loop) {
  loop->stop = true;
}

sim_end_reason sim_loop_run(sim_loop *loop, t2s_tstamp until, uint64_t max_steps) {
  loop->stop = false;
  for (uint64_t n = 0;; n++) {
    if (loop->stop) {
      return SIM_END_STOPPED;
    }
    if (n >= max_steps) {
      return SIM_END_STEPS;
    }
    size_t tidx;
    t2s_tstamp tt = earliest_timer(loop, &tidx);
    /* A timer is an event of kind SIM_EV_TIMER, ordered after every queued kind at the same
     * time; it runs first only when strictly earlier than the heap's top. */
    bool use_timer = tidx != SIZE_MAX && (loop->nheap == 0 || tt < loop->heap[0].at);
    if (!use_timer && loop->nheap == 0) {
      return SIM_END_IDLE;
    }
    t2s_tstamp at = use_timer ? tt : loop->heap[0].at;
    if (at > until) {
      return SIM_END_UNTIL;
    }
    if (at > loop->now) {
      loop->now = at;
    }
    loop->steps++;
    if (use_timer) {
      loop->timers[tidx].handle_expiry(loop->timers[tidx].arg, loop->now);
    } else {
      sim_event ev = loop->heap[0];
      loop->nheap--;
      if (loop->nheap > 0) {
        loop->heap[0] = loop->heap[loop->nheap];
        heap_down(loop->heap, loop->nheap, 0);
      }
      ev.fn(ev.arg, &ev, loop->now);
      free(ev.data);
    }
    if (loop->after_step) {
      loop->after_step(loop->after_step_arg, loop->now);
    }
  }
}
