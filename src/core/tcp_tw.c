/*
 * tcp_tw.c: TIME-WAIT as a compact record. A connection that reaches TIME-WAIT has told its
 * owner (on_closed) and will never carry data again, so its control block (hundreds of bytes)
 * and both rings (8 KiB or more each) are freed; what TIME-WAIT still needs (RFC 9293
 * 3.10.7.4: acknowledge a retransmitted FIN, PAWS, RST and SYN handling, its four-tuple kept
 * off limits until it expires) lives in a tcp_tw of about a hundred bytes, in a hash table of
 * its own and a list in expiry order (every TIME-WAIT lasts cfg.time_wait, so appending keeps
 * the list sorted; the stack's expiry is the minimum of the heap's top and the list's head).
 */
#include <string.h>

#include "tcp_internal.h"

/* Sends an ACK (flags ACK, or with a D-SACK block dl..dr when dr != dl) from TIME-WAIT. */
static void tw_send_ack(t2s_tcp_stack *st, const tcp_tw *tw, uint32_t dl, uint32_t dr,
                        t2s_tstamp now) {
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  if (tw->ts_ok) {
    o.has_ts = true;
    o.ts_val = (uint32_t)(now / T2S_MILLISECONDS) + tw->ts_offset;
    o.ts_ecr = tw->ts_recent;
  }
  if (tw->sack_ok && dl != dr) {
    o.sack[0].left = dl;
    o.sack[0].right = dr;
    o.nsack = 1;
  }
  t2s_ssize n = t2s_build_tcp(st->outbuf, sizeof(st->outbuf), &tw->local, &tw->remote, tw->snd_max,
                              tw->rcv_nxt, T2S_TCP_ACK, tw->wnd16, &o, NULL, 0, NULL, 0);
  if (n < 0) {
    return;
  }
  st->stats.segs_out++;
  st->cbs.output(st->arg, st->outbuf, (size_t)n);
}

static void tw_unlink(t2s_tcp_stack *st, tcp_tw *tw) {
  tcp_tw **pp = &st->tw_table[t2s_tcp_bucket(st, &tw->local, &tw->remote)];
  while (*pp && *pp != tw) {
    pp = &(*pp)->hnext;
  }
  T2S_ASSERT(*pp == tw);
  if (*pp) {
    *pp = tw->hnext;
  }
  if (tw->prev) {
    tw->prev->next = tw->next;
  } else {
    st->tw_head = tw->next;
  }
  if (tw->next) {
    tw->next->prev = tw->prev;
  } else {
    st->tw_tail = tw->prev;
  }
  T2S_ASSERT(st->nconns > 0);
  st->nconns--;
  t2s_free(st->mem, tw);
  if (st->tw_head == NULL) {
    /* The last record: the table goes too, so an idle stack holds what it held when created
     * (the simulator's liveness check counts the engine's blocks). */
    t2s_free(st->mem, st->tw_table);
    st->tw_table = NULL;
  }
}

bool t2s_tcp_tw_enter(t2s_tcp_conn *c, t2s_tstamp now) {
  t2s_tcp_stack *st = c->stack;
  T2S_ASSERT(c->state == T2S_TCP_TIME_WAIT && c->closed_notified && !c->dead);
  T2S_ASSERT(c->snd.una == c->snd.max && c->fin_rcvd);
  if (st->tw_table == NULL) {
    st->tw_table = t2s_calloc(st->mem, st->table_size, sizeof(*st->tw_table));
    if (st->tw_table == NULL) {
      return false; /* the full control block keeps the TIME-WAIT */
    }
  }
  tcp_tw *tw = t2s_calloc(st->mem, 1, sizeof(*tw));
  if (tw == NULL) {
    return false;
  }
  tw->local = c->local;
  tw->remote = c->remote;
  tw->at = c->timewait_at != T2S_TSTAMP_MAX ? c->timewait_at : now + st->cfg.time_wait;
  tw->ts_recent_at = c->ts_recent_at;
  tw->snd_max = c->snd.max;
  tw->max_wnd = c->snd.max_wnd;
  tw->rcv_nxt = c->rcv.nxt;
  tw->rcv_wnd = t2s_tcp_rcv_window(c);
  uint8_t shift = c->ws_ok ? c->rcv.wscale : 0;
  tw->wnd16 = (uint16_t)T2S_MIN(tw->rcv_wnd >> shift, 65535u); /* as send_segment() */
  tw->ts_recent = c->ts_recent;
  tw->ts_offset = c->ts_offset;
  tw->ts_ok = c->ts_ok;
  tw->sack_ok = c->sack_ok;
  /* The control block goes (no callback: on_closed came on entering TIME-WAIT); the record
   * takes its place in the count of connections. */
  t2s_tcp_conn_finish(c, 0, false);
  size_t b = t2s_tcp_bucket(st, &tw->local, &tw->remote);
  tw->hnext = st->tw_table[b];
  st->tw_table[b] = tw;
  tw->prev = st->tw_tail;
  if (st->tw_tail) {
    st->tw_tail->next = tw;
  } else {
    st->tw_head = tw;
  }
  st->tw_tail = tw;
  st->nconns++;
  return true;
}

tcp_tw *t2s_tcp_tw_lookup(const t2s_tcp_stack *st, const t2s_addr *local, const t2s_addr *remote) {
  if (st->tw_table == NULL) {
    return NULL;
  }
  for (tcp_tw *tw = st->tw_table[t2s_tcp_bucket(st, local, remote)]; tw; tw = tw->hnext) {
    if (t2s_addr_eq(&tw->local, local) && t2s_addr_eq(&tw->remote, remote)) {
      return tw;
    }
  }
  return NULL;
}

/* The TIME-WAIT part of t2s_tcp_input_conn(), in the same order: PAWS, acceptability, RST,
 * SYN, the ACK field (RFC 5961 5.2), TS.Recent; a FIN in the window is acknowledged. */
t2s_drop_reason t2s_tcp_tw_input(t2s_tcp_stack *st, tcp_tw *tw, const t2s_pkt *pkt,
                                 t2s_tstamp now) {
  const t2s_tcp_hdr *th = &pkt->l4.tcp;
  uint32_t seglen = (uint32_t)pkt->payload_len + ((th->flags & T2S_TCP_SYN) ? 1 : 0) +
                    ((th->flags & T2S_TCP_FIN) ? 1 : 0);
  if (tw->ts_ok && th->opts.has_ts && !(th->flags & T2S_TCP_RST) &&
      t2s_seq_lt(th->opts.ts_val, tw->ts_recent) &&
      now - tw->ts_recent_at < 24ULL * 24 * 3600 * T2S_SECONDS) {
    tw_send_ack(st, tw, 0, 0, now);
    return T2S_DROP_TCP_PAWS;
  }
  if (!t2s_tcp_acceptable(tw->rcv_nxt, th->seq, seglen, tw->rcv_wnd)) {
    if (!(th->flags & T2S_TCP_RST)) {
      uint32_t dl = 0, dr = 0;
      if (pkt->payload_len > 0 && t2s_seq_lt(th->seq, tw->rcv_nxt)) {
        dl = th->seq; /* data sent before: a D-SACK block (RFC 2883) */
        dr = t2s_seq_min(th->seq + (uint32_t)pkt->payload_len, tw->rcv_nxt);
      }
      tw_send_ack(st, tw, dl, dr, now);
    }
    return T2S_DROP_TCP_OUT_OF_WINDOW;
  }
  if (th->flags & T2S_TCP_RST) {
    if (th->seq == tw->rcv_nxt) {
      tw_unlink(st, tw);
    } else if (t2s_tcp_challenge_allowed(st, now)) {
      tw_send_ack(st, tw, 0, 0, now);
    }
    return T2S_DROP_NONE;
  }
  if (th->flags & T2S_TCP_SYN) {
    if (t2s_tcp_challenge_allowed(st, now)) {
      tw_send_ack(st, tw, 0, 0, now);
    }
    return T2S_DROP_NONE;
  }
  if (!(th->flags & T2S_TCP_ACK)) {
    return T2S_DROP_TCP_BAD_FLAGS;
  }
  if (t2s_seq_gt(th->ack, tw->snd_max) || t2s_seq_lt(th->ack, tw->snd_max - tw->max_wnd)) {
    if (t2s_tcp_challenge_allowed(st, now)) {
      tw_send_ack(st, tw, 0, 0, now);
    }
    return T2S_DROP_TCP_OUT_OF_WINDOW;
  }
  if (tw->ts_ok && th->opts.has_ts && t2s_seq_leq(th->seq, tw->rcv_nxt) &&
      t2s_seq_leq(tw->rcv_nxt, th->seq + seglen)) {
    tw->ts_recent = th->opts.ts_val;
    tw->ts_recent_at = now;
  }
  if (th->flags & T2S_TCP_FIN) {
    tw_send_ack(st, tw, 0, 0, now); /* acknowledged; TIME-WAIT stays bounded (not extended) */
  }
  return T2S_DROP_NONE;
}

t2s_tstamp t2s_tcp_tw_expiry(const t2s_tcp_stack *st) {
  return st->tw_head ? st->tw_head->at : T2S_TSTAMP_MAX;
}

void t2s_tcp_tw_expire(t2s_tcp_stack *st, t2s_tstamp now) {
  /* Bounded: each record is removed at most once. */
  for (size_t budget = st->nconns + 1; st->tw_head && st->tw_head->at <= now && budget > 0;
       budget--) {
    tw_unlink(st, st->tw_head);
  }
}

void t2s_tcp_tw_free_all(t2s_tcp_stack *st) {
  while (st->tw_head) {
    tw_unlink(st, st->tw_head);
  }
  t2s_free(st->mem, st->tw_table);
  st->tw_table = NULL;
}
