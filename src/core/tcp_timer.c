/*
 * tcp_timer.c: deadlines and RTT. Each connection keeps its timers (retransmission, persist,
 * held SYN, TIME-WAIT, keepalive); its deadline is their minimum and the stack keeps the
 * connections in a binary min-heap by deadline, so the stack's expiry is the heap's top.
 * RTT estimation and RTO follow RFC 6298.
 */
#include <stdlib.h>

#include "tcp_internal.h"

static void heap_swap(t2s_tcp_stack *st, size_t a, size_t b) {
  t2s_tcp_conn *t = st->heap[a];
  st->heap[a] = st->heap[b];
  st->heap[b] = t;
  st->heap[a]->heap_idx = a;
  st->heap[b]->heap_idx = b;
}

static void sift_up(t2s_tcp_stack *st, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (st->heap[p]->deadline <= st->heap[i]->deadline) {
      break;
    }
    heap_swap(st, p, i);
    i = p;
  }
}

static void sift_down(t2s_tcp_stack *st, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < st->heap_len && st->heap[l]->deadline < st->heap[m]->deadline) {
      m = l;
    }
    if (r < st->heap_len && st->heap[r]->deadline < st->heap[m]->deadline) {
      m = r;
    }
    if (m == i) {
      return;
    }
    heap_swap(st, i, m);
    i = m;
  }
}

void t2s_tcp_heap_remove(t2s_tcp_stack *st, t2s_tcp_conn *c) {
  size_t i = c->heap_idx;
  if (i == SIZE_MAX) {
    return;
  }
  T2S_ASSERT(i < st->heap_len && st->heap[i] == c);
  c->heap_idx = SIZE_MAX;
  st->heap_len--;
  if (i == st->heap_len) {
    return;
  }
  st->heap[i] = st->heap[st->heap_len];
  st->heap[i]->heap_idx = i;
  sift_up(st, i);
  sift_down(st, st->heap[i]->heap_idx);
}

static bool heap_insert(t2s_tcp_stack *st, t2s_tcp_conn *c) {
  if (st->heap_len == st->heap_cap) {
    size_t ncap = st->heap_cap ? st->heap_cap * 2 : 64;
    t2s_tcp_conn **nh = t2s_realloc(st->mem, st->heap, ncap * sizeof(*nh));
    if (nh == NULL) {
      return false;
    }
    st->heap = nh;
    st->heap_cap = ncap;
  }
  c->heap_idx = st->heap_len;
  st->heap[st->heap_len++] = c;
  sift_up(st, c->heap_idx);
  return true;
}

void t2s_tcp_timer_update(t2s_tcp_conn *c) {
  t2s_tcp_stack *st = c->stack;
  t2s_tstamp d = c->rto_at;
  d = T2S_MIN(d, c->persist_at);
  d = T2S_MIN(d, c->pending_at);
  d = T2S_MIN(d, c->timewait_at);
  d = T2S_MIN(d, c->keepalive_at);
  d = T2S_MIN(d, c->delack_at);
  d = T2S_MIN(d, c->tlp_at);
  d = T2S_MIN(d, c->reo_at);
  if (c->dead) {
    d = T2S_TSTAMP_MAX;
  }
  c->deadline = d;
  if (d == T2S_TSTAMP_MAX) {
    t2s_tcp_heap_remove(st, c);
    return;
  }
  if (c->heap_idx == SIZE_MAX) {
    if (!heap_insert(st, c)) {
      /* Out of memory for the heap: the connection cannot keep time; end it. */
      t2s_tcp_conn_finish(c, T2S_ERR_NOMEM, true);
    }
    return;
  }
  sift_up(st, c->heap_idx);
  sift_down(st, c->heap_idx);
}

void t2s_tcp_rtt_sample(t2s_tcp_conn *c, t2s_tstamp rtt) {
  if (c->srtt == 0) {
    c->srtt = rtt;
    c->rttvar = rtt / 2;
  } else {
    t2s_tstamp diff = c->srtt > rtt ? c->srtt - rtt : rtt - c->srtt;
    c->rttvar = (3 * c->rttvar + diff) / 4; /* beta = 1/4 */
    c->srtt = (7 * c->srtt + rtt) / 8;      /* alpha = 1/8 */
  }
  t2s_tstamp rto = c->srtt + T2S_MAX(4 * c->rttvar, T2S_MILLISECONDS);
  c->rto = T2S_MIN(T2S_MAX(rto, TCP_RTO_MIN), TCP_RTO_MAX);
}

void t2s_tcp_rto_arm(t2s_tcp_conn *c, t2s_tstamp now) {
  c->rto_at = now + c->rto;
  t2s_tcp_timer_update(c);
}

uint32_t t2s_tcp_now_ts(const t2s_tcp_conn *c, t2s_tstamp now) {
  return (uint32_t)(now / T2S_MILLISECONDS) + c->ts_offset;
}

static void on_rto(t2s_tcp_conn *c, t2s_tstamp now) {
  t2s_tcp_stack *st = c->stack;
  c->rto_at = T2S_TSTAMP_MAX;
  uint32_t limit = (c->state == T2S_TCP_SYN_SENT || c->state == T2S_TCP_SYN_RECEIVED)
                       ? TCP_SYN_RETRIES
                       : st->cfg.max_retries;
  if (c->retries >= limit) {
    t2s_tcp_conn_finish(c, T2S_ERR_TIMEOUT, true);
    return;
  }
  c->retries++;
  c->rto = T2S_MIN(c->rto * 2, TCP_RTO_MAX); /* RFC 6298 5.5 */
  switch (c->state) {
  case T2S_TCP_SYN_SENT:
    /* Counted here; data retransmissions are counted where they are sent (t2s_tcp_output), so
     * counting every expiry too counted each one twice. */
    st->stats.retransmits++;
    t2s_tcp_send_ctl(c, c->snd.iss, T2S_TCP_SYN, now);
    t2s_tcp_rto_arm(c, now);
    break;
  case T2S_TCP_SYN_RECEIVED:
    st->stats.retransmits++;
    t2s_tcp_send_ctl(c, c->snd.iss, T2S_TCP_SYN | T2S_TCP_ACK, now);
    t2s_tcp_rto_arm(c, now);
    break;
  default:
    t2s_tcp_retransmit_timeout(c, now);
    break;
  }
}

/* The probe timeout (RFC 8985 7.3): no ACK for 2 SRTT with data in flight. */
static void on_tlp(t2s_tcp_conn *c, t2s_tstamp now) {
  c->tlp_at = T2S_TSTAMP_MAX;
  if (c->snd.una == c->snd.max || c->in_recovery || c->rto_recovery || c->tlp_out ||
      c->state < T2S_TCP_ESTABLISHED || c->state == T2S_TCP_TIME_WAIT) {
    t2s_tcp_timer_update(c);
    return;
  }
  t2s_tcp_tlp_send(c, now);
  t2s_tcp_timer_update(c);
}

/* The reordering window ended (RFC 8985 6.2, on sequence ranges): data above snd.una was
 * SACKed a reordering window ago and snd.una has not reached it: the hole is lost. */
static void on_reo(t2s_tcp_conn *c, t2s_tstamp now) {
  c->reo_at = T2S_TSTAMP_MAX;
  if (!c->in_recovery && !c->rto_recovery && c->nsacked > 0 && c->snd.una != c->snd.max &&
      c->state >= T2S_TCP_ESTABLISHED && c->state != T2S_TCP_TIME_WAIT) {
    t2s_tcp_enter_recovery(c, now);
    t2s_tcp_output(c, now);
  }
  t2s_tcp_timer_update(c);
}

static void on_persist(t2s_tcp_conn *c, t2s_tstamp now) {
  c->persist_at = T2S_TSTAMP_MAX;
  if (c->snd.wnd != 0 || (c->sbuf_len == 0 && !c->fin_queued)) {
    t2s_tcp_timer_update(c);
    return;
  }
  /* Zero-window probe: a segment one below snd.una elicits an ACK with the current window. */
  t2s_tcp_send_ctl(c, c->snd.una - 1, T2S_TCP_ACK, now);
  /* An ACK of new data resets the backoff to 0 while the window stays shut and the timer armed:
   * start again from the first interval (doubling 0 re-armed the timer at now, for ever). */
  c->persist_backoff = c->persist_backoff == 0 ? T2S_MAX(c->rto, TCP_PERSIST_MIN)
                                               : T2S_MIN(c->persist_backoff * 2, TCP_PERSIST_MAX);
  c->persist_at = now + c->persist_backoff;
  t2s_tcp_timer_update(c);
}

static void on_keepalive(t2s_tcp_conn *c, t2s_tstamp now) {
  t2s_tcp_stack *st = c->stack;
  c->keepalive_at = T2S_TSTAMP_MAX;
  if (st->cfg.keepalive_idle == 0 || c->state != T2S_TCP_ESTABLISHED) {
    t2s_tcp_timer_update(c);
    return;
  }
  t2s_tstamp idle_until = c->last_activity + st->cfg.keepalive_idle;
  if (now < idle_until) {
    c->keepalive_at = idle_until;
  } else {
    /* Probes every idle/4; after 9 unanswered probes the peer is gone. */
    t2s_tstamp interval = T2S_MAX(st->cfg.keepalive_idle / 4, T2S_SECONDS);
    if (now >= idle_until + 9 * interval) {
      t2s_tcp_conn_finish(c, T2S_ERR_TIMEOUT, true);
      return;
    }
    t2s_tcp_send_ctl(c, c->snd.una - 1, T2S_TCP_ACK, now);
    c->keepalive_at = now + interval;
  }
  t2s_tcp_timer_update(c);
}

void t2s_tcp_handle_expiry(t2s_tcp_stack *st, t2s_tstamp now) {
  st->now = now;
  t2s_tcp_enter(st);
  t2s_tcp_tw_expire(st, now);
  /* Bounded: each connection is handled at most once per call for each timer kind. */
  size_t budget = st->heap_len * 7 + 16;
  while (st->heap_len && st->heap[0]->deadline <= now && budget-- > 0) {
    t2s_tcp_conn *c = st->heap[0];
    if (c->pending_at <= now) {
      c->pending_at = T2S_TSTAMP_MAX;
      t2s_tcp_conn_finish(c, T2S_ERR_TIMEOUT, true);
      continue;
    }
    if (c->timewait_at <= now) {
      c->timewait_at = T2S_TSTAMP_MAX;
      t2s_tcp_conn_finish(c, 0, false);
      continue;
    }
    if (c->rto_at <= now) {
      on_rto(c, now);
      if (!c->dead) {
        tcp_check(c);
      }
      continue;
    }
    if (c->persist_at <= now) {
      on_persist(c, now);
      if (!c->dead) {
        tcp_check(c);
      }
      continue;
    }
    if (c->delack_at <= now) {
      c->delack_at = T2S_TSTAMP_MAX; /* the ACK clears it; a state without ACKs leaves it */
      c->need_ack = true;
      t2s_tcp_output(c, now);
      t2s_tcp_timer_update(c);
      continue;
    }
    if (c->reo_at <= now) {
      on_reo(c, now);
      if (!c->dead) {
        tcp_check(c);
      }
      continue;
    }
    if (c->tlp_at <= now) {
      on_tlp(c, now);
      if (!c->dead) {
        tcp_check(c);
      }
      continue;
    }
    if (c->keepalive_at <= now) {
      on_keepalive(c, now);
      if (!c->dead) {
        tcp_check(c);
      }
      continue;
    }
    t2s_tcp_timer_update(c); /* stale deadline */
    tcp_check(c);
  }
  t2s_tcp_leave(st);
}
