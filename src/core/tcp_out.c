/*
 * tcp_out.c: TCP output. Writing only enqueues (tcp.c); t2s_tcp_output() sends what the peer's
 * window and the congestion window allow, a FIN after the last byte, and an ACK when one is
 * owed. No Nagle; sender-side silly-window avoidance; hole filling during SACK recovery.
 */
#include <string.h>

#include "tcp_internal.h"

uint32_t t2s_tcp_sbuf_space(const t2s_tcp_conn *c) {
  return c->stack->cfg.sndbuf - c->sbuf_len; /* the ring grows up to sndbuf on demand */
}

uint32_t t2s_tcp_rcv_window(const t2s_tcp_conn *c) {
  uint32_t cfgbuf = c->stack->cfg.rcvbuf;
  uint32_t free_bytes = cfgbuf > c->rbuf_ready ? cfgbuf - c->rbuf_ready : 0;
  /* Never move the right edge to the left (RFC 9293 3.8.6.2.2). */
  if (t2s_seq_gt(c->rcv.adv, c->rcv.nxt)) {
    free_bytes = T2S_MAX(free_bytes, c->rcv.adv - c->rcv.nxt);
  }
  return free_bytes;
}

static void fill_opts(t2s_tcp_conn *c, uint8_t flags, t2s_tstamp now, t2s_tcp_opts *o) {
  t2s_tcp_stack *st = c->stack;
  memset(o, 0, sizeof(*o));
  bool syn = flags & T2S_TCP_SYN;
  bool synack = syn && (flags & T2S_TCP_ACK);
  if (syn) {
    o->has_mss = true;
    o->mss = (uint16_t)(st->cfg.mtu - t2s_ip_hdrlen(c->local.family) - 20);
    if (synack ? c->ws_ok : st->cfg.wscale) {
      o->has_wscale = true;
      o->wscale = c->rcv.wscale;
    }
    if (synack ? c->sack_ok : st->cfg.sack) {
      o->sack_permitted = true;
    }
    if (synack ? c->ts_ok : st->cfg.timestamps) {
      o->has_ts = true;
      o->ts_val = t2s_tcp_now_ts(c, now);
      o->ts_ecr = synack ? c->ts_recent : 0;
    }
    return;
  }
  if (c->ts_ok) {
    o->has_ts = true;
    o->ts_val = t2s_tcp_now_ts(c, now);
    o->ts_ecr = c->ts_recent;
  }
  if (c->sack_ok && !(flags & T2S_TCP_RST)) {
    /* A D-SACK block first (once), then the held ranges, most recently changed first. */
    uint8_t max = c->ts_ok ? 3 : 4;
    if (c->dsack_pending) {
      o->sack[0].left = c->dsack.left;
      o->sack[0].right = c->dsack.right;
      o->nsack = 1;
      c->dsack_pending = false;
    }
    for (uint8_t i = 0; i < c->nooo && o->nsack < max; i++) {
      o->sack[o->nsack].left = c->ooo[i].left;
      o->sack[o->nsack].right = c->ooo[i].right;
      o->nsack++;
    }
  }
}

/* With offloads (a TSO device, cfg.tso) the peer's data arrives as GRO super-packets of up to
 * 44 full-sized segments, each over the TCP_BATCH_ACK_SEGS bound: inside a burst an ACK went
 * out for every one of them. At 64 segments it goes for every second one, as a receiver ACKs
 * every second full-sized segment with the super-packet as the unit; the burst's end still
 * ACKs what is left. Each ACK written to the TUN runs the client's ACK processing (and the
 * transmission it triggers) in our context: with 64, TUN writes per read went 1.01 -> 0.57
 * and the tunnel's CPU per GB on upload 1.02 -> 0.91 (up1) and 1.01 -> 0.98 (up4), medians of
 * 5 interleaved runs (scripts/bench --net, dante). Without offloads the bound is unchanged. */
#define TCP_BATCH_ACK_GSO_SEGS 64u

/* Full-sized segments an ACK may wait for inside a burst: 2 during quick-ack. */
static inline uint32_t batch_ack_segs(const t2s_tcp_conn *c) {
  if (c->quickacks > 0) {
    return 2u;
  }
  return c->stack->cfg.tso ? T2S_MAX(TCP_BATCH_ACK_SEGS, TCP_BATCH_ACK_GSO_SEGS)
                           : TCP_BATCH_ACK_SEGS;
}

/* Payload bytes a data segment may carry now: the MSS (which already leaves room for
 * timestamps) less the SACK blocks fill_opts() will add while we hold out-of-order data, so a
 * full-sized segment stays within the MTU. */
static uint32_t seg_payload_max(const t2s_tcp_conn *c) {
  uint32_t mss = c->mss;
  if (c->sack_ok && (c->nooo > 0 || c->dsack_pending)) {
    uint32_t blocks = T2S_MIN((uint32_t)c->nooo + c->dsack_pending, c->ts_ok ? 3u : 4u);
    uint32_t optlen = (2 + 8 * blocks + 3) & ~3u; /* NOP-padded to 4 */
    mss = mss > optlen + 64 ? mss - optlen : 64;
  }
  return mss;
}

/* A data segment through output_v: the headers built here, the payload straight from the send
 * ring (no copy). Kept out of send_segment, whose copying path it would otherwise slow by a
 * few instructions per packet (scripts/bench --sim). */
#if defined(__GNUC__)
#define TCP_NOINLINE __attribute__((noinline))
#else
#define TCP_NOINLINE
#endif
static TCP_NOINLINE void send_gathered(t2s_tcp_conn *c, uint32_t seq, uint32_t ack, uint8_t flags,
                                       uint16_t wnd16, const t2s_tcp_opts *opts, const uint8_t *p1,
                                       size_t l1, const uint8_t *p2, size_t l2) {
  t2s_tcp_stack *st = c->stack;
  t2s_ssize n = t2s_build_tcp_hdr(st->outbuf, sizeof(st->outbuf), &c->local, &c->remote, seq, ack,
                                  flags, wnd16, opts, p1, l1, p2, l2, st->cfg.partial_csum_over);
  if (n >= 0) {
    st->stats.segs_out++;
    st->cbs.output_v(st->arg, st->outbuf, (size_t)n, p1, l1, p2, l2);
  }
}

/* Sends one segment: seq, flags, and len payload bytes taken from the send buffer at offset
 * off from snd.una. */
static void send_segment(t2s_tcp_conn *c, uint32_t seq, uint8_t flags, uint32_t off, uint32_t len,
                         t2s_tstamp now) {
  t2s_tcp_stack *st = c->stack;
  t2s_tcp_opts opts;
  fill_opts(c, flags, now, &opts);
  uint32_t ack = 0;
  uint16_t wnd16 = 0;
  if (flags & T2S_TCP_ACK) {
    ack = c->rcv.nxt;
    uint32_t wnd = t2s_tcp_rcv_window(c);
    if (flags & T2S_TCP_SYN) {
      wnd16 = (uint16_t)T2S_MIN(wnd, 65535u);
      c->rcv.adv = c->rcv.nxt + wnd16;
    } else {
      /* Rounded down to the scale: rounding up promised up to 1 << wscale bytes beyond the
       * buffer in each ACK, and as the "never shrink" rule (t2s_tcp_rcv_window) kept each
       * promise, the excess grew with every segment received while the owner was not reading
       * (issue 13: 2 KiB after 300 segments). The peer then sent into a window the ring could
       * not hold, every such segment was dropped as rcvbuf_full and acknowledged with the
       * same small window, and its sender backed off its retransmission timer to tens of
       * seconds. Rounding down may show the right edge up to 1 << wscale - 1 bytes left of an
       * earlier one (RFC 7323 2.4 allows it); rcv.adv keeps the furthest promise, and data
       * up to it is still taken. */
      uint8_t shift = c->ws_ok ? c->rcv.wscale : 0;
      wnd16 = (uint16_t)T2S_MIN(wnd >> shift, 65535u);
      uint32_t advbytes = (uint32_t)wnd16 << shift;
      if (t2s_seq_gt(c->rcv.nxt + advbytes, c->rcv.adv)) {
        c->rcv.adv = c->rcv.nxt + advbytes;
      }
    }
    c->last_ack_sent = ack;
    c->need_ack = false;
    if (c->delack_at != T2S_TSTAMP_MAX) {
      c->delack_at = T2S_TSTAMP_MAX; /* this segment carries the owed ACK */
      t2s_tcp_timer_update(c);
    }
  }
  const uint8_t *p1 = NULL, *p2 = NULL;
  size_t l1 = 0, l2 = 0;
  if (len > 0) {
    t2s_tcp_ring_read(&c->sbuf, off, len, &p1, &l1, &p2, &l2);
    if (st->cbs.output_v != NULL) {
      send_gathered(c, seq, ack, flags, wnd16, &opts, p1, l1, p2, l2);
      return;
    }
  }
  t2s_ssize n = t2s_build_tcp_ex(st->outbuf, sizeof(st->outbuf), &c->local, &c->remote, seq, ack,
                                 flags, wnd16, &opts, p1, l1, p2, l2, st->cfg.partial_csum_over);
  if (n < 0) {
    return;
  }
  st->stats.segs_out++;
  if (flags & T2S_TCP_RST) {
    st->stats.rsts_sent++;
  }
  st->cbs.output(st->arg, st->outbuf, (size_t)n);
}

void t2s_tcp_send_ctl(t2s_tcp_conn *c, uint32_t seq, uint8_t flags, t2s_tstamp now) {
  send_segment(c, seq, flags, 0, 0, now);
}

void t2s_tcp_send_reset_for(t2s_tcp_stack *st, const t2s_pkt *pkt) {
  const t2s_tcp_hdr *th = &pkt->l4.tcp;
  uint32_t seq = 0, ack = 0;
  uint8_t flags = T2S_TCP_RST;
  if (th->flags & T2S_TCP_ACK) {
    seq = th->ack;
  } else {
    ack = th->seq + (uint32_t)pkt->payload_len + ((th->flags & T2S_TCP_SYN) ? 1 : 0) +
          ((th->flags & T2S_TCP_FIN) ? 1 : 0);
    flags |= T2S_TCP_ACK;
  }
  t2s_ssize n = t2s_build_tcp(st->outbuf, sizeof(st->outbuf), &pkt->dst, &pkt->src, seq, ack, flags,
                              0, NULL, NULL, 0, NULL, 0);
  if (n < 0) {
    return;
  }
  st->stats.segs_out++;
  st->stats.rsts_sent++;
  st->cbs.output(st->arg, st->outbuf, (size_t)n);
}

/* True when seq lies inside a range the peer has SACKed; *skip_to is that range's end. */
static bool is_sacked(const t2s_tcp_conn *c, uint32_t seq, uint32_t *skip_to) {
  for (uint8_t i = 0; i < c->nsacked; i++) {
    if (t2s_seq_geq(seq, c->sacked[i].left) && t2s_seq_lt(seq, c->sacked[i].right)) {
      *skip_to = c->sacked[i].right;
      return true;
    }
  }
  return false;
}

uint32_t t2s_tcp_sacked_in(const t2s_tcp_conn *c, uint32_t from, uint32_t to) {
  uint32_t n = 0;
  for (uint8_t i = 0; i < c->nsacked; i++) {
    uint32_t l = t2s_seq_max(c->sacked[i].left, from);
    uint32_t r = t2s_seq_min(c->sacked[i].right, to);
    if (t2s_seq_lt(l, r)) {
      n += r - l;
    }
  }
  return n;
}

uint32_t t2s_tcp_high_sacked(const t2s_tcp_conn *c) {
  uint32_t high = c->snd.una;
  for (uint8_t i = 0; i < c->nsacked; i++) {
    high = t2s_seq_max(high, c->sacked[i].right);
  }
  return high;
}

uint32_t t2s_tcp_pipe(const t2s_tcp_conn *c) {
  uint32_t out = c->snd.max - c->snd.una;
  uint32_t sacked = t2s_tcp_sacked_in(c, c->snd.una, c->snd.max);
  uint32_t pipe = out > sacked ? out - sacked : 0;
  uint32_t from = t2s_seq_max(c->rtx_next, c->snd.una);
  uint32_t high = t2s_tcp_high_sacked(c);
  if (t2s_seq_lt(from, high)) {
    uint32_t lost = (high - from) - t2s_tcp_sacked_in(c, from, high);
    pipe = pipe > lost ? pipe - lost : 0;
  }
  return pipe;
}

/* During recovery: retransmits the next segment the peer is missing. Returns true if sent. */
bool t2s_tcp_retransmit_hole(t2s_tcp_conn *c, t2s_tstamp now) {
  uint32_t seq = t2s_seq_max(c->rtx_next, c->snd.una);
  uint32_t data_end = c->snd.una + c->sbuf_len;
  uint32_t limit = t2s_seq_min(c->snd.max, data_end);
  /* Without SACK information only the segment at snd.una is known to be missing. */
  uint32_t high_sacked = c->snd.una;
  for (uint8_t i = 0; i < c->nsacked; i++) {
    high_sacked = t2s_seq_max(high_sacked, c->sacked[i].right);
  }
  if (c->nsacked == 0) {
    if (t2s_seq_gt(seq, c->snd.una)) {
      return false;
    }
    high_sacked = t2s_seq_min(c->snd.una + c->mss, limit);
  }
  for (int guard = 0; guard < TCP_MAX_SACKED + 2; guard++) {
    uint32_t skip;
    if (!is_sacked(c, seq, &skip)) {
      break;
    }
    seq = skip;
  }
  if (!t2s_seq_lt(seq, high_sacked) || !t2s_seq_lt(seq, limit)) {
    return false;
  }
  uint32_t len = T2S_MIN(seg_payload_max(c), limit - seq);
  /* Stop at the next SACKed range. */
  for (uint8_t i = 0; i < c->nsacked; i++) {
    if (t2s_seq_gt(c->sacked[i].left, seq) && t2s_seq_lt(c->sacked[i].left, seq + len)) {
      len = c->sacked[i].left - seq;
    }
  }
  if (len == 0) {
    return false;
  }
  send_segment(c, seq, T2S_TCP_ACK, seq - c->snd.una, len, now);
  c->stack->stats.retransmits++;
  c->rtx_next = seq + len;
  if (c->rto_at == T2S_TSTAMP_MAX) {
    t2s_tcp_rto_arm(c, now);
  }
  return true;
}

static bool can_send_data(const t2s_tcp_conn *c) {
  switch (c->state) {
  case T2S_TCP_ESTABLISHED:
  case T2S_TCP_CLOSE_WAIT:
  case T2S_TCP_FIN_WAIT_1:
  case T2S_TCP_CLOSING:
  case T2S_TCP_LAST_ACK:
    return true;
  default:
    return false;
  }
}

/* With TSO (cfg.tso): the largest payload of one data segment, as many whole MSS as fit a
 * 64 KiB IP packet; the device cuts it at the MTU into MSS-sized segments. Only when the MSS
 * fills the MTU exactly (so the device's cut is our MSS), no SACK blocks ride along, and not
 * during loss recovery; otherwise one segment's payload (seg_payload_max). */
static uint32_t seg_super_max(const t2s_tcp_conn *c, uint32_t smax) {
  const t2s_tcp_stack *st = c->stack;
  uint32_t iph = (uint32_t)t2s_ip_hdrlen(c->local.family);
  uint32_t hdrs = iph + 20 + (c->ts_ok ? 12 : 0);
  if (!st->cfg.tso || c->in_recovery || c->nooo > 0 || smax != c->mss ||
      c->mss + hdrs != st->cfg.mtu) {
    return smax;
  }
  uint32_t room = 65535 - iph - 60; /* the largest TCP header */
  return T2S_MAX(room / c->mss, 1u) * c->mss;
}

/* A read of 64 KiB into the send ring went out as a super-segment of 45 MSS (65,160 bytes)
 * and the 376 bytes left, sent at once as all there was: every other TUN write on download
 * carried 376 bytes (strace of the bench, down1). Rounding the in-place read so that the unsent
 * bytes end on a super-segment boundary makes each read one TUN write. */
size_t t2s_tcp_send_round(const t2s_tcp_conn *c, size_t n) {
  uint32_t smax = seg_payload_max(c);
  uint32_t super = seg_super_max(c, smax);
  uint32_t sent = c->snd.nxt - c->snd.una;
  if (super <= smax || !can_send_data(c) || sent > c->sbuf_len) {
    return n;
  }
  uint64_t total = (uint64_t)(c->sbuf_len - sent) + n;
  uint64_t cut = total % super;
  return total >= super && n > cut ? n - (size_t)cut : n;
}

void t2s_tcp_output(t2s_tcp_conn *c, t2s_tstamp now) {
  if (c->dead) {
    return;
  }
  bool sent = false, sent_new = false;
  if (can_send_data(c)) {
    uint32_t data_end = c->snd.una + c->sbuf_len;
    /* SACK recovery (RFC 6675 5 (C)): the holes first, as far as the pipe leaves room. */
    for (int guard = 0; c->in_recovery && c->sack_ok && guard < 1024; guard++) {
      if (t2s_tcp_pipe(c) + c->mss > c->cwnd || !t2s_tcp_retransmit_hole(c, now)) {
        break;
      }
      sent = true;
    }
    for (int guard = 0; guard < 4096; guard++) {
      if (!t2s_seq_lt(c->snd.nxt, data_end)) {
        break;
      }
      bool is_rtx = t2s_seq_lt(c->snd.nxt, c->snd.max);
      uint32_t sack_end = 0;
      if (is_rtx && c->nsacked > 0) {
        /* Resending after a timeout: what the peer SACKed is not sent again (the scoreboard
         * is kept across the timeout, RFC 6675 5.1). */
        for (int g = 0; g < TCP_MAX_SACKED + 2 && is_sacked(c, c->snd.nxt, &sack_end); g++) {
          c->snd.nxt = t2s_seq_min(sack_end, c->snd.max);
        }
        if (!t2s_seq_lt(c->snd.nxt, data_end)) {
          break;
        }
        is_rtx = t2s_seq_lt(c->snd.nxt, c->snd.max);
      }
      uint32_t off = c->snd.nxt - c->snd.una;
      uint32_t avail = c->sbuf_len - off;
      /* The peer's window counts from snd.una; the congestion window counts what is in the
       * network: with SACK recovery the pipe (RFC 6675), when resending after a timeout the
       * bytes sent less those SACKed, else the bytes sent. Limited transmit (RFC 3042): on the
       * first and second duplicate ACK one more segment each beyond cwnd, new data only. */
      uint32_t in_flight = c->snd.nxt - c->snd.una;
      uint32_t in_net = in_flight;
      uint32_t cwnd = c->cwnd;
      if (c->in_recovery && c->sack_ok) {
        in_net = t2s_tcp_pipe(c);
      } else if (is_rtx && c->nsacked > 0) {
        in_net -= T2S_MIN(in_net, t2s_tcp_sacked_in(c, c->snd.una, c->snd.nxt));
      } else if (!c->in_recovery && !is_rtx && c->dupacks > 0 && c->dupacks < TCP_DUPACK_THRESH) {
        cwnd += c->dupacks * (uint32_t)c->mss;
      }
      uint32_t usable = c->snd.wnd > in_flight ? c->snd.wnd - in_flight : 0;
      usable = T2S_MIN(usable, cwnd > in_net ? cwnd - in_net : 0);
      uint32_t smax = seg_payload_max(c);
      uint32_t len = T2S_MIN(avail, seg_super_max(c, smax));
      len = T2S_MIN(len, usable);
      if (is_rtx && c->nsacked > 0) {
        /* Stop at the next SACKed range. */
        for (uint8_t i = 0; i < c->nsacked; i++) {
          uint32_t l = c->sacked[i].left;
          if (t2s_seq_gt(l, c->snd.nxt) && t2s_seq_lt(l, c->snd.nxt + len)) {
            len = l - c->snd.nxt;
          }
        }
      }
      if (len > smax && len < avail) {
        /* A super-segment holds whole segments and the rest waits for more data; all that is
         * queued goes as one, its last segment short (the device cuts it so, as TSO does),
         * not as whole segments and then the short one in a TUN write of its own. */
        len -= len % smax;
      }
      if (len == 0) {
        break;
      }
      /* Sender SWS avoidance (RFC 9293 3.8.6.2.1): a short segment only when it is all we
       * have, or nothing is in flight. */
      if (len < smax && len < avail && in_flight > 0) {
        break;
      }
      uint8_t flags = T2S_TCP_ACK | (len == avail ? T2S_TCP_PSH : 0);
      if (!c->ts_ok && !c->rtt_timing && c->snd.nxt == c->snd.max) {
        c->rtt_timing = true;
        c->rtt_seq = c->snd.nxt;
        c->rtt_start = now;
      }
      send_segment(c, c->snd.nxt, flags, off, len, now);
      if (is_rtx) {
        c->stack->stats.retransmits++;
      } else {
        sent_new = true;
      }
      sent = true;
      c->snd.nxt += len;
      c->snd.max = t2s_seq_max(c->snd.max, c->snd.nxt);
      if (c->rto_at == T2S_TSTAMP_MAX) {
        t2s_tcp_rto_arm(c, now);
      }
    }
    /* FIN after the last byte; it needs no window. */
    if (c->fin_queued && c->snd.nxt == data_end) {
      send_segment(c, c->snd.nxt, T2S_TCP_FIN | T2S_TCP_ACK, 0, 0, now);
      sent = true;
      c->snd.nxt++;
      c->snd.max = t2s_seq_max(c->snd.max, c->snd.nxt);
      c->fin_sent = true;
      if (c->state == T2S_TCP_ESTABLISHED) {
        c->state = T2S_TCP_FIN_WAIT_1;
      } else if (c->state == T2S_TCP_CLOSE_WAIT) {
        c->state = T2S_TCP_LAST_ACK;
      }
      if (c->rto_at == T2S_TSTAMP_MAX) {
        t2s_tcp_rto_arm(c, now);
      }
    }
    if (sent_new) {
      t2s_tcp_tlp_arm(c, now);
    }
    /* Zero window with data waiting and nothing in flight: probe (persist timer). */
    if (c->snd.wnd == 0 && c->snd.nxt == c->snd.una && t2s_seq_lt(c->snd.nxt, data_end)) {
      if (c->persist_at == T2S_TSTAMP_MAX) {
        c->rto_at = T2S_TSTAMP_MAX;
        if (c->persist_backoff == 0) {
          c->persist_backoff = T2S_MAX(c->rto, TCP_PERSIST_MIN);
        }
        c->persist_at = now + c->persist_backoff;
        t2s_tcp_timer_update(c);
      }
    }
  }
  if (c->need_ack && !sent && c->state != T2S_TCP_SYN_PENDING && c->state != T2S_TCP_SYN_SENT) {
    /* A pure ACK carries snd.max, not snd.nxt (BSD's rule): after a retransmission timeout
     * rewound snd.nxt, a sequence number below the peer's rcv.nxt makes the ACK unacceptable
     * there, its ACK field is ignored, and two rewound peers answer each other's ACKs forever. */
    if (c->stack->batch && c->state == T2S_TCP_ESTABLISHED && c->nooo == 0 && !c->dsack_pending &&
        c->rcv.nxt - c->last_ack_sent < batch_ack_segs(c) * (uint32_t)c->rcv_mss) {
      /* Inside a burst an ACK for in-order data waits for its end (t2s_tcp_flush): one ACK
       * per connection per burst, as GRO gives a kernel. Out-of-order data, duplicates and
       * FINs are still answered at once (the peer counts duplicate ACKs). The bound is
       * TCP_BATCH_ACK_SEGS full-sized segments (TCP_BATCH_ACK_GSO_SEGS with offloads), 2
       * during quick-ack whatever it is. */
      t2s_tcp_ackq_add(c);
    } else {
      send_segment(c, c->snd.max, T2S_TCP_ACK, 0, 0, now);
    }
  }
  tcp_check(c);
}

void t2s_tcp_retransmit_timeout(t2s_tcp_conn *c, t2s_tstamp now) {
  uint32_t flight = c->snd.max - c->snd.una;
  if (flight == 0) {
    t2s_tcp_timer_update(c);
    return;
  }
  /* RFC 5681 (4): ssthresh = max(FlightSize / 2, 2 * SMSS), held on a second timeout in a
   * row (the flight is then what the first one left); cwnd = 1 segment. */
  if (c->retries <= 1) {
    c->ssthresh = T2S_MAX(flight / 2, 2u * c->mss);
  }
  c->cwnd = c->mss;
  c->in_recovery = false;
  c->dupacks = 0;
  /* The scoreboard is kept (RFC 6675 5.1): the resend from snd.una skips what the peer
   * SACKed. Only a second timeout in a row clears it, in case the peer reneged (RFC 2018 8):
   * a receiver that dropped SACKed data would otherwise never get it again. */
  if (c->retries > 1) {
    c->nsacked = 0;
  }
  /* No fast retransmit until what was sent before the timeout is acknowledged (RFC 6582 4):
   * the resent segments' duplicates would trigger one. */
  c->rto_recovery = true;
  c->recover = c->snd.max;
  c->tlp_out = false;
  c->tlp_at = c->reo_at = T2S_TSTAMP_MAX;
  c->rtt_timing = false;
  c->snd.nxt = c->snd.una;
  t2s_tcp_output(c, now);
  t2s_tcp_rto_arm(c, now);
}

void t2s_tcp_enter_recovery(t2s_tcp_conn *c, t2s_tstamp now) {
  uint32_t flight = c->snd.max - c->snd.una;
  c->in_recovery = true;
  c->recover = c->snd.max;
  c->ssthresh = T2S_MAX(flight / 2, 2u * c->mss);
  /* With SACK the pipe governs (RFC 6675 5: cwnd = ssthresh); NewReno inflates by the three
   * segments that left the network (RFC 6582). */
  c->cwnd = c->sack_ok ? c->ssthresh : c->ssthresh + TCP_DUPACK_THRESH * c->mss;
  c->rtx_next = c->snd.una;
  c->rtx_mark = c->snd.max;
  c->rtx_mark_at = now;
  c->rtt_timing = false;
  c->tlp_at = c->reo_at = T2S_TSTAMP_MAX;
  t2s_tcp_retransmit_hole(c, now); /* the first hole whatever the pipe (RFC 6675 5 (4.3)) */
  t2s_tcp_timer_update(c);
}

void t2s_tcp_tlp_arm(t2s_tcp_conn *c, t2s_tstamp now) {
  uint32_t flight = c->snd.max - c->snd.una;
  t2s_tstamp at = T2S_TSTAMP_MAX;
  if (c->sack_ok && flight > 0 && c->srtt > 0 && !c->in_recovery && !c->rto_recovery &&
      !c->tlp_out && c->snd.wnd > 0) {
    /* PTO = 2 SRTT, plus the peer's worst-case delayed ACK when one segment is out. */
    t2s_tstamp pto = 2 * c->srtt + (flight <= c->mss ? TCP_TLP_DELACK : 0);
    if (c->rto_at == T2S_TSTAMP_MAX || now + pto < c->rto_at) {
      at = now + pto;
    }
  }
  if (at != c->tlp_at) {
    c->tlp_at = at;
    t2s_tcp_timer_update(c);
  }
}

void t2s_tcp_tlp_send(t2s_tcp_conn *c, t2s_tstamp now) {
  uint32_t data_end = c->snd.una + c->sbuf_len;
  uint32_t sent_end = t2s_seq_min(c->snd.max, data_end); /* the FIN aside */
  c->tlp_out = true;
  c->stack->stats.tlp_probes++;
  /* New data when there is some and the peer's window has room (RFC 8985 7.3). */
  if (c->snd.nxt == c->snd.max && t2s_seq_lt(c->snd.nxt, data_end) &&
      c->snd.wnd > c->snd.nxt - c->snd.una) {
    uint32_t off = c->snd.nxt - c->snd.una;
    uint32_t len = T2S_MIN(T2S_MIN(c->sbuf_len - off, seg_payload_max(c)),
                           c->snd.wnd - (c->snd.nxt - c->snd.una));
    send_segment(c, c->snd.nxt, T2S_TCP_ACK | (len == c->sbuf_len - off ? T2S_TCP_PSH : 0), off,
                 len, now);
    c->snd.nxt += len;
    c->snd.max = c->snd.nxt;
  } else if (t2s_seq_lt(c->snd.una, sent_end)) {
    /* Else the last segment sent, again. */
    uint32_t len = T2S_MIN(seg_payload_max(c), sent_end - c->snd.una);
    uint32_t seq = sent_end - len;
    send_segment(c, seq, T2S_TCP_ACK, seq - c->snd.una, len, now);
    c->stack->stats.retransmits++;
  } else if (c->fin_sent) {
    send_segment(c, c->snd.max - 1, T2S_TCP_FIN | T2S_TCP_ACK, 0, 0, now); /* only the FIN */
    c->stack->stats.retransmits++;
  }
  c->tlp_high = c->snd.max;
  t2s_tcp_rto_arm(c, now);
}
