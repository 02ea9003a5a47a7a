/*
 * tcp_in.c: TCP input for one connection (RFC 9293 3.10.7), with PAWS (RFC 7323), SACK
 * (RFC 2018), challenge ACKs (RFC 5961) and NewReno fast retransmit/recovery (RFC 5681/6582).
 */
#include <string.h>

#include "tcp_internal.h"

/* Negotiates options from the peer's SYN (passive) or SYN-ACK (active). */
static void negotiate(t2s_tcp_conn *c, const t2s_tcp_opts *o, bool active) {
  t2s_tcp_stack *st = c->stack;
  uint16_t def_mss = c->local.family == T2S_AF_INET ? 536 : 1220;
  c->peer_mss = o->has_mss && o->mss > 0 ? o->mss : def_mss;
  c->ws_ok = st->cfg.wscale && o->has_wscale;
  c->snd.wscale = c->ws_ok ? (uint8_t)T2S_MIN(o->wscale, 14) : 0;
  if (!c->ws_ok) {
    c->rcv.wscale = 0;
  }
  c->sack_ok = st->cfg.sack && o->sack_permitted;
  c->ts_ok = st->cfg.timestamps && o->has_ts;
  if (c->ts_ok) {
    c->ts_recent = o->ts_val;
    c->ts_recent_at = st->now;
  }
  uint32_t ours = st->cfg.mtu - (uint32_t)t2s_ip_hdrlen(c->local.family) - 20;
  uint32_t mss = T2S_MIN((uint32_t)c->peer_mss, ours);
  if (c->ts_ok) {
    /* Room for the timestamp option; a peer MSS below 12 must not wrap around to ~64 KiB. */
    mss = mss > 12 ? mss - 12 : 0;
  }
  c->mss = (uint16_t)T2S_MAX(mss, 64u);
  (void)active;
}

/* The receiver's ACK state on entering ESTABLISHED: quick-acks for the first segments, and a
 * full-sized segment assumed to be the default MSS until larger ones arrive. */
static void ack_init(t2s_tcp_conn *c) {
  c->quickacks = TCP_QUICKACKS;
  c->rcv_data_at = T2S_TSTAMP_MAX;
  c->rcv_mss = (uint16_t)T2S_MIN(536u, (uint32_t)c->mss);
}

static void cc_init(t2s_tcp_conn *c) {
  /* RFC 6928: IW = min(10 * MSS, max(2 * MSS, 14600)). */
  c->cwnd = T2S_MIN(TCP_INITIAL_WINDOW * (uint32_t)c->mss, T2S_MAX(2u * c->mss, 14600u));
  c->ssthresh = UINT32_MAX / 2;
}

static void enter_time_wait(t2s_tcp_conn *c, t2s_tstamp now) {
  t2s_tcp_stack *st = c->stack;
  c->state = T2S_TCP_TIME_WAIT;
  c->rto_at = c->persist_at = c->keepalive_at = c->tlp_at = c->reo_at = T2S_TSTAMP_MAX;
  c->timewait_at = now + st->cfg.time_wait;
  t2s_tcp_timer_update(c);
  if (!c->closed_notified) {
    c->closed_notified = true;
    if (st->cbs.on_closed) {
      st->cbs.on_closed(st->arg, c, 0);
    }
  }
}

/* Starts the keepalive timer on entering ESTABLISHED (nothing else ever armed it, so
 * keepalive_idle had no effect); on_keepalive re-arms it from last_activity. */
static void keepalive_arm(t2s_tcp_conn *c, t2s_tstamp now) {
  if (c->stack->cfg.keepalive_idle != 0) {
    c->keepalive_at = now + c->stack->cfg.keepalive_idle;
  }
}

bool t2s_tcp_challenge_allowed(t2s_tcp_stack *st, t2s_tstamp now) {
  if (now - st->challenge_window_start >= T2S_SECONDS || now < st->challenge_window_start) {
    st->challenge_window_start = now;
    st->challenge_count = 0;
  }
  if (st->challenge_count >= TCP_CHALLENGE_ACK_LIMIT) {
    return false;
  }
  st->challenge_count++;
  st->stats.challenge_acks++;
  return true;
}

static void challenge_ack(t2s_tcp_conn *c, t2s_tstamp now) {
  if (t2s_tcp_challenge_allowed(c->stack, now)) {
    t2s_tcp_send_ctl(c, c->snd.max, T2S_TCP_ACK, now);
  }
}

/* Records SACK blocks from the peer in the scoreboard. */
static void sack_update(t2s_tcp_conn *c, const t2s_tcp_opts *o) {
  for (uint8_t b = 0; b < o->nsack; b++) {
    uint32_t l = o->sack[b].left, r = o->sack[b].right;
    if (!t2s_seq_lt(l, r) || t2s_seq_leq(r, c->snd.una) || t2s_seq_gt(r, c->snd.max)) {
      continue;
    }
    l = t2s_seq_max(l, c->snd.una);
    /* Merge with every overlapping or adjacent range. */
    for (uint8_t i = 0; i < c->nsacked;) {
      tcp_range *x = &c->sacked[i];
      if (t2s_seq_leq(x->left, r) && t2s_seq_leq(l, x->right)) {
        l = t2s_seq_min(l, x->left);
        r = t2s_seq_max(r, x->right);
        c->sacked[i] = c->sacked[--c->nsacked];
        continue;
      }
      i++;
    }
    if (c->nsacked < TCP_MAX_SACKED) {
      c->sacked[c->nsacked].left = l;
      c->sacked[c->nsacked].right = r;
      c->nsacked++;
    }
  }
}

static void sack_prune(t2s_tcp_conn *c) {
  for (uint8_t i = 0; i < c->nsacked;) {
    tcp_range *x = &c->sacked[i];
    if (t2s_seq_leq(x->right, c->snd.una)) {
      c->sacked[i] = c->sacked[--c->nsacked];
      continue;
    }
    x->left = t2s_seq_max(x->left, c->snd.una);
    i++;
  }
}

static uint32_t sacked_bytes(const t2s_tcp_conn *c) {
  uint32_t n = 0;
  for (uint8_t i = 0; i < c->nsacked; i++) {
    n += c->sacked[i].right - c->sacked[i].left;
  }
  return n;
}

/* Processes the ACK field of an acceptable segment in a synchronized state. Returns false when
 * the segment must be dropped. Sets *freed when send-buffer space was released. */
static bool process_ack(t2s_tcp_conn *c, const t2s_pkt *pkt, t2s_tstamp now, bool *freed) {
  const t2s_tcp_hdr *th = &pkt->l4.tcp;
  uint32_t ack = th->ack;
  uint32_t wnd = c->ws_ok ? (uint32_t)th->wnd << c->snd.wscale : th->wnd;
  if (t2s_seq_gt(ack, c->snd.max)) {
    /* Acks something not yet sent: ACK and drop (RFC 9293). */
    c->need_ack = true;
    return false;
  }
  bool sack_new = false; /* the scoreboard grew */
  if (c->sack_ok && th->opts.nsack > 0) {
    uint32_t before = sacked_bytes(c);
    sack_update(c, &th->opts);
    sack_new = sacked_bytes(c) > before;
  }
  bool is_dup = false;
  bool una_before = t2s_seq_lt(ack, c->snd.una); /* an old ACK */
  bool advanced = t2s_seq_gt(ack, c->snd.una);
  if (advanced) {
    uint32_t acked = ack - c->snd.una;
    uint32_t data_acked = T2S_MIN(acked, c->sbuf_len);
    if (data_acked > 0) { /* the ring may be unallocated: no data ever queued */
      c->sbuf.head = (uint32_t)(((uint64_t)c->sbuf.head + data_acked) % c->sbuf.cap);
    }
    c->sbuf_len -= data_acked;
    c->snd.una = ack;
    if (t2s_seq_lt(c->snd.nxt, ack)) {
      c->snd.nxt = ack;
    }
    if (data_acked > 0) {
      *freed = true;
    }
    /* RTT sample: from the echoed timestamp, or the timed segment (Karn: never a
     * retransmitted one, since timing stops on a retransmission timeout). */
    if (c->ts_ok && th->opts.has_ts && th->opts.ts_ecr != 0) {
      uint32_t ms = t2s_tcp_now_ts(c, now) - th->opts.ts_ecr;
      if (ms < 60000) {
        t2s_tcp_rtt_sample(c, (t2s_tstamp)ms * T2S_MILLISECONDS + T2S_MILLISECONDS / 2);
      }
    } else if (c->rtt_timing && t2s_seq_gt(ack, c->rtt_seq)) {
      c->rtt_timing = false;
      t2s_tcp_rtt_sample(c, now - c->rtt_start);
    }
    c->retries = 0;
    c->persist_backoff = 0;
    sack_prune(c);
    if (c->rto_recovery && t2s_seq_geq(ack, c->recover)) {
      c->rto_recovery = false;
    }
    if (c->tlp_out && t2s_seq_geq(ack, c->tlp_high)) {
      c->tlp_out = false; /* the probe's episode ends (RFC 8985 7.4) */
    }
    if (c->nsacked == 0) {
      c->reo_at = T2S_TSTAMP_MAX; /* the hole filled: it was reordering */
    }
    /* Congestion control. */
    if (c->in_recovery) {
      if (t2s_seq_geq(ack, c->recover)) {
        c->in_recovery = false; /* full ACK: deflate (RFC 6582) */
        c->cwnd = c->ssthresh;
      } else if (!c->sack_ok) {
        /* Partial ACK: retransmit the next hole, deflate by what was acked. With SACK the
         * pipe shrank instead, and t2s_tcp_output() fills the holes it leaves room for. */
        c->cwnd = c->cwnd > acked ? c->cwnd - acked + c->mss : c->mss;
        t2s_tcp_retransmit_hole(c, now);
      }
    } else if (c->cwnd < c->ssthresh) {
      c->cwnd += T2S_MIN(acked, 2u * c->mss); /* slow start, RFC 3465 L = 2 */
    } else {
      uint32_t inc = (uint32_t)((uint64_t)c->mss * c->mss / T2S_MAX(c->cwnd, 1u));
      c->cwnd += T2S_MAX(inc, 1u);
    }
    c->dupacks = 0;
    if (c->snd.una == c->snd.max) {
      c->rto_at = T2S_TSTAMP_MAX;
      t2s_tcp_timer_update(c);
    } else {
      t2s_tcp_rto_arm(c, now);
    }
    t2s_tcp_tlp_arm(c, now);
  } else if (ack == c->snd.una && c->snd.una != c->snd.max &&
             !(th->flags & (T2S_TCP_SYN | T2S_TCP_FIN)) &&
             ((pkt->payload_len == 0 && (wnd == c->snd.wnd || th->opts.nsack > 0)) || sack_new)) {
    /* A duplicate ACK (RFC 5681 2), or any ACK that SACKs new data, data-bearing too (RFC
     * 6675 2): in a transfer both ways every ACK rides on data, and without this a loss was
     * repaired only by the retransmission timer. */
    is_dup = true;
  }
  /* Window update: from an ACK that advances SND.UNA (Linux's tcp_may_update_window), else by
   * RFC 9293's rule (SND.WL1 < SEG.SEQ, or WL1 = SEQ and WL2 =< SEG.ACK); never from an ACK
   * below SND.UNA. The window is an offer from SEG.ACK on: a retransmission of the peer's
   * carries an older SEG.SEQ but may carry a newer ACK, and keeping the old window at the new
   * SND.UNA moved the right edge beyond anything the peer offered. Data sent there was dropped,
   * and the pure ACKs that followed (at SND.MAX, beyond the peer's now shut window) were not
   * acceptable to it, so it never read their ACK fields: an echo through the engine stalled
   * for good with both windows full (issue 13). */
  if (!una_before && (advanced || t2s_seq_lt(c->snd.wl1, th->seq) ||
                      (c->snd.wl1 == th->seq && t2s_seq_leq(c->snd.wl2, ack)))) {
    c->snd.wnd = wnd;
    c->snd.max_wnd = T2S_MAX(c->snd.max_wnd, wnd);
    c->snd.wl1 = th->seq;
    c->snd.wl2 = ack;
    if (wnd > 0 && c->persist_at != T2S_TSTAMP_MAX) {
      c->persist_at = T2S_TSTAMP_MAX;
      c->persist_backoff = 0;
      t2s_tcp_timer_update(c);
    }
  }
  /* A lost retransmission (RFC 8985 6.2, on sequence ranges): in SACK recovery, data sent
   * after this round of hole retransmissions began is SACKed more than an RTT and a
   * reordering window after it, while a hole it retransmitted is still missing: the round
   * starts again from snd.una. Without this each lost retransmission waited for the RTO. */
  if (c->in_recovery && c->sack_ok && sack_new && t2s_seq_gt(c->rtx_next, c->snd.una) &&
      t2s_seq_gt(t2s_tcp_high_sacked(c), c->rtx_mark) &&
      now - c->rtx_mark_at >= c->srtt + T2S_MAX(c->srtt / 4, TCP_REO_WND_MIN)) {
    c->rtx_next = c->snd.una;
    c->rtx_mark = c->snd.max;
    c->rtx_mark_at = now;
  }
  if (is_dup) {
    c->dupacks++;
    if (!c->in_recovery && !c->rto_recovery &&
        (c->dupacks >= TCP_DUPACK_THRESH ||
         (c->sack_ok && sacked_bytes(c) >= TCP_DUPACK_THRESH * c->mss))) {
      /* Fast retransmit (RFC 5681 3.2, RFC 6675 5). */
      t2s_tcp_enter_recovery(c, now);
    } else if (c->in_recovery && !c->sack_ok) {
      c->cwnd += c->mss; /* NewReno inflation; with SACK the pipe shrank instead */
      t2s_tcp_retransmit_hole(c, now);
    }
  }
  /* SACKed data above a hole outside recovery: if the hole is still there a reordering window
   * later, it is lost (RFC 8985 6.2 on sequence ranges: what was sent after the hole arrived,
   * and within one window all is sent in sequence order). This repairs a loss that leaves
   * fewer than three duplicate ACKs behind it, such as the segment before a tail probe. */
  if (c->sack_ok && c->nsacked > 0 && !c->in_recovery && !c->rto_recovery &&
      c->snd.una != c->snd.max && c->reo_at == T2S_TSTAMP_MAX) {
    c->reo_at = now + T2S_MAX(c->srtt / 4, TCP_REO_WND_MIN);
    t2s_tcp_timer_update(c);
  }
  return true;
}

/* Removes ooo[i], keeping the others in their order (most recent first). */
static void ooo_remove(t2s_tcp_conn *c, uint8_t i) {
  memmove(&c->ooo[i], &c->ooo[i + 1], (size_t)(c->nooo - i - 1) * sizeof(c->ooo[0]));
  c->nooo--;
}

/* Inserts out-of-order range [l, r) into the receiver's list, merged with the ranges it
 * overlaps or touches, at the front: the block holding the most recent segment is reported
 * first and the others follow in the order they last changed (RFC 2018 section 4). Returns
 * false if the list is full. */
static bool ooo_insert(t2s_tcp_conn *c, uint32_t l, uint32_t r) {
  for (uint8_t i = 0; i < c->nooo;) {
    tcp_range *x = &c->ooo[i];
    if (t2s_seq_leq(x->left, r) && t2s_seq_leq(l, x->right)) {
      l = t2s_seq_min(l, x->left);
      r = t2s_seq_max(r, x->right);
      ooo_remove(c, i);
      continue;
    }
    i++;
  }
  if (c->nooo >= TCP_MAX_OOO) {
    return false;
  }
  memmove(&c->ooo[1], &c->ooo[0], (size_t)c->nooo * sizeof(c->ooo[0]));
  c->ooo[0].left = l;
  c->ooo[0].right = r;
  c->nooo++;
  return true;
}

/* Moves out-of-order data that now continues the in-order stream into it. */
static void ooo_advance(t2s_tcp_conn *c) {
  for (uint8_t i = 0; i < c->nooo;) {
    tcp_range *x = &c->ooo[i];
    if (t2s_seq_leq(x->left, c->rcv.nxt)) {
      if (t2s_seq_gt(x->right, c->rcv.nxt)) {
        c->rbuf_ready += x->right - c->rcv.nxt;
        c->rcv.nxt = x->right;
      }
      ooo_remove(c, i);
      i = 0; /* rcv.nxt moved: an earlier range may continue it now */
      continue;
    }
    i++;
  }
}

/* Records [l, r) as data the peer sent twice, for a D-SACK block in the next ACK (RFC 2883
 * section 4): the first duplicate since the last ACK is the one reported. */
static void dsack_note(t2s_tcp_conn *c, uint32_t l, uint32_t r) {
  if (!c->sack_ok || !t2s_seq_lt(l, r) || c->dsack_pending) {
    return;
  }
  c->dsack.left = l;
  c->dsack.right = r;
  c->dsack_pending = true;
}

/* The part of [l, r) that a held out-of-order range already covers: a duplicate. */
static void dsack_note_ooo(t2s_tcp_conn *c, uint32_t l, uint32_t r) {
  for (uint8_t i = 0; i < c->nooo; i++) {
    uint32_t dl = t2s_seq_max(l, c->ooo[i].left), dr = t2s_seq_min(r, c->ooo[i].right);
    if (t2s_seq_lt(dl, dr)) {
      dsack_note(c, dl, dr);
      return;
    }
  }
}

/* The ACK policy for in-order data (RFC 9293 3.8.6.3, RFC 1122 4.2.3.2, RFC 5681 4.2): at
 * once for the first TCP_QUICKACKS segments of a connection and again after the peer was
 * silent for longer than the RTO (so the peer's slow start, or its restart after idle, RFC
 * 5681 4.1, is not held back: Linux's quick-ack), for a segment that fills a hole or was cut
 * short, and when two full-sized segments are unacknowledged; otherwise within
 * TCP_DELACK_TIMEOUT. Data we send in the meantime carries the ACK. */
static void ack_policy(t2s_tcp_conn *c, uint32_t len, bool ack_now, t2s_tstamp now) {
  /* A full-sized segment is the largest the peer has sent, up to the MSS we announced
   * (computed only when a segment is larger than any before: not per segment). */
  if (len > c->rcv_mss) {
    uint32_t adv_mss = c->stack->cfg.mtu - (uint32_t)t2s_ip_hdrlen(c->local.family) - 20;
    c->rcv_mss = (uint16_t)T2S_MIN(len, adv_mss);
  }
  if (c->rcv_data_at != T2S_TSTAMP_MAX && now - c->rcv_data_at > c->rto) {
    c->quickacks = TCP_QUICKACKS; /* idle longer than the RTO (Linux: tcp_event_data_recv) */
  }
  c->rcv_data_at = now;
  if (c->quickacks > 0) {
    c->quickacks--;
    ack_now = true;
  }
  if (ack_now || c->rcv.nxt - c->last_ack_sent >= 2u * c->rcv_mss) {
    c->need_ack = true;
  } else if (c->delack_at == T2S_TSTAMP_MAX) {
    c->delack_at = now + TCP_DELACK_TIMEOUT;
    t2s_tcp_timer_update(c);
  }
}

/* Takes the payload of an acceptable segment. Returns true if in-order data was added. */
static bool process_data(t2s_tcp_conn *c, const t2s_pkt *pkt, t2s_tstamp now,
                         t2s_drop_reason *drop) {
  uint32_t seq = pkt->l4.tcp.seq;
  const uint8_t *data = pkt->payload;
  uint32_t len = (uint32_t)pkt->payload_len;
  bool ack_now = false; /* a duplicate, a hole filled or data cut short: ACK at once */
  if (t2s_seq_lt(seq, c->rcv.nxt)) {
    ack_now = true;
    c->quickacks = TCP_QUICKACKS; /* RFC 5681 4.2 (as Linux): ACK at once for a while */
    uint32_t skip = c->rcv.nxt - seq;
    dsack_note(c, seq, seq + T2S_MIN(skip, len));
    if (skip >= len) {
      c->need_ack = true;
      return false;
    }
    seq += skip;
    data += skip;
    len -= skip;
  }
  uint32_t wnd = t2s_tcp_rcv_window(c);
  uint32_t off = seq - c->rcv.nxt;
  if (off >= wnd) {
    c->need_ack = true;
    *drop = T2S_DROP_TCP_RCVBUF_FULL;
    return false;
  }
  /* Grow the ring to hold it (up to the configured buffer plus the scaling slack); if memory
   * is short, take what the ring already holds. */
  t2s_tcp_ring_reserve(c->stack, &c->rbuf, c->rbuf_ready + off + T2S_MIN(len, wnd - off),
                       c->stack->cfg.rcvbuf + (1u << c->rcv.wscale));
  /* Physical room in the ring after the readable bytes. */
  uint32_t room = c->rbuf.cap - c->rbuf_ready;
  if (off >= room) {
    c->need_ack = true;
    *drop = T2S_DROP_TCP_RCVBUF_FULL;
    return false;
  }
  ack_now |= len > room - off || len > wnd - off;
  len = T2S_MIN(len, T2S_MIN(room, wnd) - off);
  if (off == 0) {
    t2s_tcp_ring_write(&c->rbuf, c->rbuf_ready, data, len);
    c->rbuf_ready += len;
    c->rcv.nxt += len;
    if (c->nooo) {
      ack_now = true; /* the segment fills (part of) a hole */
      ooo_advance(c);
      c->quickacks = TCP_QUICKACKS; /* RFC 5681 4.2 (as Linux): ACK at once for a while */
    }
    ack_policy(c, len, ack_now, now);
    return true;
  }
  c->need_ack = true; /* out-of-order: a duplicate ACK at once (RFC 5681 4.2) */
  dsack_note_ooo(c, seq, seq + len);
  if (!ooo_insert(c, seq, seq + len)) {
    *drop = T2S_DROP_TCP_RCVBUF_FULL;
    return false;
  }
  t2s_tcp_ring_write(&c->rbuf, c->rbuf_ready + off, data, len);
  return false;
}

/* The peer's SYN at isn: the receive sequence space starts after it, and nothing has been
 * advertised yet, so the window's right edge starts there too. */
static void rcv_start(t2s_tcp_conn *c, uint32_t isn) {
  c->rcv.irs = isn;
  c->rcv.nxt = isn + 1;
  c->rcv.adv = c->rcv.nxt;
}

static t2s_drop_reason input_pending(t2s_tcp_conn *c, const t2s_pkt *pkt) {
  const t2s_tcp_hdr *th = &pkt->l4.tcp;
  if (th->flags & T2S_TCP_RST) {
    t2s_tcp_conn_finish(c, T2S_ERR_RESET, false);
    return T2S_DROP_NONE;
  }
  if ((th->flags & (T2S_TCP_SYN | T2S_TCP_ACK)) != T2S_TCP_SYN) {
    return T2S_DROP_TCP_OUT_OF_WINDOW;
  }
  if (c->rcv.nxt == 0 && c->rcv.irs == 0 && c->peer_mss == 0) {
    /* The first SYN. */
    rcv_start(c, th->seq);
    c->snd.wnd = th->wnd; /* never scaled in a SYN */
    c->snd.max_wnd = th->wnd;
    c->snd.wl1 = th->seq;
    negotiate(c, &th->opts, false);
    return T2S_DROP_NONE;
  }
  /* A retransmitted SYN while the upstream is being opened: absorbed. A SYN with another ISN
   * replaces the attempt's sequence numbers. */
  if (th->seq != c->rcv.irs) {
    rcv_start(c, th->seq);
    c->snd.wl1 = th->seq;
    negotiate(c, &th->opts, false);
  }
  return T2S_DROP_NONE;
}

static t2s_drop_reason input_syn_sent(t2s_tcp_conn *c, const t2s_pkt *pkt, t2s_tstamp now) {
  t2s_tcp_stack *st = c->stack;
  const t2s_tcp_hdr *th = &pkt->l4.tcp;
  bool ack_ok = false;
  if (th->flags & T2S_TCP_ACK) {
    if (t2s_seq_leq(th->ack, c->snd.iss) || t2s_seq_gt(th->ack, c->snd.max)) {
      if (!(th->flags & T2S_TCP_RST)) {
        t2s_tcp_send_reset_for(st, pkt);
      }
      return T2S_DROP_TCP_OUT_OF_WINDOW;
    }
    ack_ok = true;
  }
  if (th->flags & T2S_TCP_RST) {
    if (ack_ok) {
      t2s_tcp_conn_finish(c, T2S_ERR_REFUSED, false);
    }
    return T2S_DROP_NONE;
  }
  if (!(th->flags & T2S_TCP_SYN) || !ack_ok) {
    return T2S_DROP_TCP_OUT_OF_WINDOW; /* simultaneous open is not supported */
  }
  rcv_start(c, th->seq);
  negotiate(c, &th->opts, true);
  c->snd.una = th->ack;
  c->snd.wnd = th->wnd;
  c->snd.max_wnd = th->wnd;
  c->snd.wl1 = th->seq;
  c->snd.wl2 = th->ack;
  cc_init(c);
  ack_init(c);
  c->state = T2S_TCP_ESTABLISHED;
  if (c->retries == 0) {
    t2s_tcp_rtt_sample(c, now - c->last_activity);
  }
  c->retries = 0;
  c->rto_at = T2S_TSTAMP_MAX;
  keepalive_arm(c, now);
  t2s_tcp_timer_update(c);
  c->last_activity = now;
  c->need_ack = true;
  t2s_tcp_output(c, now);
  if (st->cbs.on_established) {
    st->cbs.on_established(st->arg, c);
  }
  if (!c->dead) {
    t2s_tcp_output(c, now);
  }
  return T2S_DROP_NONE;
}

/* The RFC 9293 acceptability test. */
bool t2s_tcp_acceptable(uint32_t rcv_nxt, uint32_t seq, uint32_t seglen, uint32_t wnd) {
  if (seglen == 0) {
    if (wnd == 0) {
      return seq == rcv_nxt;
    }
    return t2s_seq_leq(rcv_nxt, seq) && t2s_seq_lt(seq, rcv_nxt + wnd);
  }
  if (wnd == 0) {
    return seq == rcv_nxt; /* ACK, RST and FIN fields still count; data is dropped */
  }
  uint32_t last = seq + seglen - 1;
  return (t2s_seq_leq(rcv_nxt, seq) && t2s_seq_lt(seq, rcv_nxt + wnd)) ||
         (t2s_seq_leq(rcv_nxt, last) && t2s_seq_lt(last, rcv_nxt + wnd));
}

t2s_drop_reason t2s_tcp_input_conn(t2s_tcp_conn *c, const t2s_pkt *pkt, t2s_tstamp now) {
  t2s_tcp_stack *st = c->stack;
  const t2s_tcp_hdr *th = &pkt->l4.tcp;
  if (c->state == T2S_TCP_SYN_PENDING) {
    return input_pending(c, pkt);
  }
  if (c->state == T2S_TCP_SYN_SENT) {
    return input_syn_sent(c, pkt, now);
  }
  uint32_t seglen = (uint32_t)pkt->payload_len + ((th->flags & T2S_TCP_SYN) ? 1 : 0) +
                    ((th->flags & T2S_TCP_FIN) ? 1 : 0);
  /* PAWS (RFC 7323 5.3): a segment whose timestamp is older than TS.Recent is a duplicate
   * from an earlier wrap of the sequence space. */
  if (c->ts_ok && th->opts.has_ts && !(th->flags & T2S_TCP_RST) &&
      t2s_seq_lt(th->opts.ts_val, c->ts_recent) &&
      now - c->ts_recent_at < 24ULL * 24 * 3600 * T2S_SECONDS) {
    c->need_ack = true;
    t2s_tcp_output(c, now);
    return T2S_DROP_TCP_PAWS;
  }
  uint32_t wnd = t2s_tcp_rcv_window(c);
  if (c->state == T2S_TCP_SYN_RECEIVED && (th->flags & T2S_TCP_SYN) && !(th->flags & T2S_TCP_ACK) &&
      th->seq == c->rcv.irs) {
    /* The client retransmitted its SYN: our SYN-ACK was lost. */
    t2s_tcp_send_ctl(c, c->snd.iss, T2S_TCP_SYN | T2S_TCP_ACK, now);
    return T2S_DROP_NONE;
  }
  if (!t2s_tcp_acceptable(c->rcv.nxt, th->seq, seglen, wnd)) {
    if (pkt->payload_len > 0 && t2s_seq_lt(th->seq, c->rcv.nxt)) {
      /* Data the peer sent before: report it (a spurious retransmission, RFC 2883), and ACK
       * the next segments at once (Linux's tcp_send_dupack): the peer retransmitted because
       * our ACK was lost or its timer fired, so its window is small and it needs prompt ACKs,
       * as after a duplicate that overlaps new data (process_data). */
      dsack_note(c, th->seq, t2s_seq_min(th->seq + (uint32_t)pkt->payload_len, c->rcv.nxt));
      c->quickacks = TCP_QUICKACKS;
    }
    if (!(th->flags & T2S_TCP_RST)) {
      c->need_ack = true;
      t2s_tcp_output(c, now);
    }
    return T2S_DROP_TCP_OUT_OF_WINDOW;
  }
  /* RST (RFC 5961 3.2): only an exact match resets; an in-window one gets a challenge ACK. */
  if (th->flags & T2S_TCP_RST) {
    if (th->seq == c->rcv.nxt) {
      if (c->state == T2S_TCP_TIME_WAIT) {
        t2s_tcp_conn_finish(c, 0, false);
      } else {
        t2s_tcp_conn_finish(c, T2S_ERR_RESET, false);
      }
    } else {
      challenge_ack(c, now);
    }
    return T2S_DROP_NONE;
  }
  /* SYN in a synchronized state (RFC 5961 4.2): challenge ACK. */
  if (th->flags & T2S_TCP_SYN) {
    challenge_ack(c, now);
    return T2S_DROP_NONE;
  }
  if (!(th->flags & T2S_TCP_ACK)) {
    return T2S_DROP_TCP_BAD_FLAGS;
  }
  /* The ACK field (RFC 5961 5.2), before the segment may touch TS.Recent or any other state:
   * in SYN-RECEIVED it must acknowledge our SYN (else RST); later it must lie in
   * [SND.UNA - MAX.SND.WND, SND.MAX], else the segment is dropped with a (rate-limited) ACK.
   * A blind segment acknowledging data never sent must not move TS.Recent forward, after
   * which PAWS would drop every legitimate segment. */
  if (c->state == T2S_TCP_SYN_RECEIVED) {
    if (t2s_seq_leq(th->ack, c->snd.una) || t2s_seq_gt(th->ack, c->snd.max)) {
      t2s_tcp_send_reset_for(st, pkt);
      return T2S_DROP_TCP_OUT_OF_WINDOW;
    }
  } else if (t2s_seq_gt(th->ack, c->snd.max) || t2s_seq_lt(th->ack, c->snd.una - c->snd.max_wnd)) {
    challenge_ack(c, now);
    return T2S_DROP_TCP_OUT_OF_WINDOW;
  }
  /* Update TS.Recent (RFC 7323 4.3): when the segment covers the last ACK we sent. */
  if (c->ts_ok && th->opts.has_ts && t2s_seq_leq(th->seq, c->last_ack_sent) &&
      t2s_seq_leq(c->last_ack_sent, th->seq + seglen)) {
    c->ts_recent = th->opts.ts_val;
    c->ts_recent_at = now;
  }
  c->last_activity = now;
  bool established_now = false;
  if (c->state == T2S_TCP_SYN_RECEIVED) {
    c->state = T2S_TCP_ESTABLISHED;
    c->snd.una = c->snd.iss + 1; /* our SYN is acknowledged; data starts here */
    c->snd.wl1 = th->seq - 1;    /* force the window update below */
    cc_init(c);
    ack_init(c);
    if (c->retries == 0 && c->rto_at != T2S_TSTAMP_MAX) {
      t2s_tstamp sent_at = c->rto_at - c->rto;
      if (now >= sent_at) {
        t2s_tcp_rtt_sample(c, now - sent_at);
      }
    }
    c->retries = 0;
    c->rto_at = T2S_TSTAMP_MAX;
    keepalive_arm(c, now);
    t2s_tcp_timer_update(c);
    established_now = true;
  }
  bool freed = false;
  if (!process_ack(c, pkt, now, &freed)) {
    t2s_tcp_output(c, now);
    return T2S_DROP_TCP_OUT_OF_WINDOW;
  }
  if (established_now && st->cbs.on_established) {
    st->cbs.on_established(st->arg, c);
    if (c->dead) {
      return T2S_DROP_NONE;
    }
  }
  bool fin_acked = c->fin_sent && c->snd.una == c->snd.max && c->sbuf_len == 0;
  switch (c->state) {
  case T2S_TCP_FIN_WAIT_1:
    if (fin_acked) {
      c->state = T2S_TCP_FIN_WAIT_2;
    }
    break;
  case T2S_TCP_CLOSING:
    if (fin_acked) {
      enter_time_wait(c, now);
    }
    break;
  case T2S_TCP_LAST_ACK:
    if (fin_acked) {
      t2s_tcp_conn_finish(c, 0, false);
      return T2S_DROP_NONE;
    }
    break;
  case T2S_TCP_TIME_WAIT:
    if (th->flags & T2S_TCP_FIN) {
      c->need_ack = true;
      c->timewait_at = now + st->cfg.time_wait;
      t2s_tcp_timer_update(c);
      t2s_tcp_send_ctl(c, c->snd.nxt, T2S_TCP_ACK, now);
    }
    return T2S_DROP_NONE;
  default:
    break;
  }
  /* Data. */
  t2s_drop_reason drop = T2S_DROP_NONE;
  bool delivered = false;
  bool fin_now = false;
  if (!c->fin_rcvd && (c->state == T2S_TCP_ESTABLISHED || c->state == T2S_TCP_FIN_WAIT_1 ||
                       c->state == T2S_TCP_FIN_WAIT_2)) {
    if (pkt->payload_len > 0) {
      delivered = process_data(c, pkt, now, &drop);
    }
    if (th->flags & T2S_TCP_FIN) {
      c->fin_seq = th->seq + (uint32_t)pkt->payload_len;
      c->need_ack = true;
      if (c->fin_seq == c->rcv.nxt) {
        fin_now = true;
      } else if (t2s_seq_gt(c->fin_seq, c->rcv.nxt)) {
        c->fin_ooo = true; /* an out-of-order FIN: remember where it sits */
      }
    } else if (c->fin_ooo && c->fin_seq == c->rcv.nxt && delivered) {
      /* A flag, not fin_seq != 0: a FIN may sit at sequence 0 after the wrap. */
      fin_now = true; /* data filled the gap before an earlier out-of-order FIN */
    }
  }
  if (fin_now) {
    c->fin_rcvd = true;
    c->rcv.nxt++;
    c->need_ack = true;
    if (c->state == T2S_TCP_ESTABLISHED) {
      c->state = T2S_TCP_CLOSE_WAIT;
    } else if (c->state == T2S_TCP_FIN_WAIT_1) {
      c->state = fin_acked ? T2S_TCP_TIME_WAIT : T2S_TCP_CLOSING;
    } else if (c->state == T2S_TCP_FIN_WAIT_2) {
      c->state = T2S_TCP_TIME_WAIT;
    }
  }
  if (c->need_ack && (fin_now || c->nooo > 0 || drop != T2S_DROP_NONE)) {
    /* Out-of-order data, a FIN or a drop: acknowledge at once. */
    t2s_tcp_output(c, now);
  }
  if (delivered && st->cbs.on_recv) {
    st->cbs.on_recv(st->arg, c);
  }
  if (!c->dead && fin_now && st->cbs.on_fin) {
    st->cbs.on_fin(st->arg, c);
  }
  if (!c->dead && c->state == T2S_TCP_TIME_WAIT && c->timewait_at == T2S_TSTAMP_MAX) {
    enter_time_wait(c, now); /* the FIN was acknowledged above */
    return drop;
  }
  if (!c->dead && freed && c->sbuf_was_full && t2s_tcp_sbuf_space(c) > 0) {
    c->sbuf_was_full = false;
    if (st->cbs.on_sendable) {
      st->cbs.on_sendable(st->arg, c);
    }
  }
  if (!c->dead) {
    t2s_tcp_output(c, now);
  }
  return drop;
}
