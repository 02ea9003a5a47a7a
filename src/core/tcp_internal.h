/*
 * tcp_internal.h: the TCP stack's private state, shared by tcp.c (stack, table, API),
 * tcp_in.c (input), tcp_out.c (output) and tcp_timer.c (deadlines, RTT/RTO).
 */
#ifndef T2S_TCP_INTERNAL_H
#define T2S_TCP_INTERNAL_H

#include "tcp.h"

/* RFC 6298 constants (with a lower minimum RTO suited to a local TUN, as Linux uses). */
#define TCP_RTO_INITIAL (1 * T2S_SECONDS)
#define TCP_RTO_MIN (200 * T2S_MILLISECONDS)
#define TCP_RTO_MAX (60 * T2S_SECONDS)
#define TCP_PERSIST_MIN (200 * T2S_MILLISECONDS)
#define TCP_PERSIST_MAX (60 * T2S_SECONDS)
#define TCP_DELACK_TIMEOUT (40 * T2S_MILLISECONDS) /* a lone segment's ACK waits this long */
/* Inside a burst (t2s_tcp_batch_begin) an ACK is held for its end, but not past two full-sized
 * segments (RFC 1122 4.2.3.2): a sender that grows cwnd per ACK (RFC 3465 L = 2, or the
 * per-ACK congestion-avoidance increase, as this stack) slowed down with one ACK per burst (the
 * simulator's 8 MB upload at 1 % loss: 1.4 s -> 2.5 s; at 5 %: 7 s -> 11 s; at 4 segments 1.8
 * and 11 s; at 2 as without batching). Re-measured at 8, 16 and unbounded (docs/benchmarks.md,
 * "ACKs per burst"): every N >= 8 slows those uploads 1.6-1.8x, and none reaches 0.6 of the relay
 * on upload without offloads in every run. With quick-ack re-entered after a hole or a duplicate
 * (tcp_in.c) 16 is faster than 2 in the simulator's loss matrix but for the 8 MB upload at 1 %
 * (p50 1.4 -> 1.8 s) and the upload bench gains (docs/benchmarks.md), so it is 16. A build may
 * override it (-DTCP_BATCH_ACK_SEGS=2u) to measure; during quick-ack the bound is 2. */
#ifndef TCP_BATCH_ACK_SEGS
#define TCP_BATCH_ACK_SEGS 16u
#endif
#define TCP_QUICKACKS 16    /* data segments ACKed at once after the handshake (Linux's maximum) */
#define TCP_SYN_RETRIES 6   /* SYN-ACK / SYN retransmissions before giving up */
#define TCP_DUPACK_THRESH 3 /* RFC 5681 */
#define TCP_TLP_DELACK (200 * T2S_MILLISECONDS) /* RFC 8985 7.2 WCDelAckT */
#define TCP_REO_WND_MIN T2S_MILLISECONDS        /* RFC 8985 6.2: reo_wnd = max(SRTT / 4, this) */
#define TCP_INITIAL_WINDOW 10                   /* segments, RFC 6928 */
#define TCP_MAX_OOO 16                          /* out-of-order ranges held by a receiver */
#define TCP_MAX_SACKED 16                       /* SACK scoreboard ranges held by a sender */
#define TCP_CHALLENGE_ACK_LIMIT 100             /* per second, per stack (RFC 5961 section 7) */
#define TCP_HASH_MIN 1024
#define TCP_RING_INITIAL 8192u /* first size of a connection's send and receive rings */

static inline bool t2s_seq_lt(uint32_t a, uint32_t b) {
  return (int32_t)(a - b) < 0;
}
static inline bool t2s_seq_leq(uint32_t a, uint32_t b) {
  return (int32_t)(a - b) <= 0;
}
static inline bool t2s_seq_gt(uint32_t a, uint32_t b) {
  return (int32_t)(a - b) > 0;
}
static inline bool t2s_seq_geq(uint32_t a, uint32_t b) {
  return (int32_t)(a - b) >= 0;
}
static inline uint32_t t2s_seq_max(uint32_t a, uint32_t b) {
  return t2s_seq_gt(a, b) ? a : b;
}
static inline uint32_t t2s_seq_min(uint32_t a, uint32_t b) {
  return t2s_seq_lt(a, b) ? a : b;
}

typedef struct tcp_range {
  uint32_t left, right; /* [left, right) in sequence space */
} tcp_range;

/* A ring buffer of bytes. */
typedef struct tcp_ring {
  uint8_t *buf;
  uint32_t cap;
  uint32_t head; /* index of the first byte */
} tcp_ring;

struct t2s_tcp_conn {
  t2s_tcp_stack *stack;
  t2s_tcp_state state;
  t2s_addr local, remote;
  struct t2s_tcp_conn *hnext; /* hash chain */
  struct t2s_tcp_conn *rnext; /* reap list */
  /* An ACK held for the end of a burst (t2s_tcp_flush): the stack's ackq. */
  struct t2s_tcp_conn *aqnext, *aqprev;
  bool ack_queued;
  void *user;
  size_t heap_idx;     /* position in the deadline heap, SIZE_MAX when not in it */
  t2s_tstamp deadline; /* the minimum of the timers below */

  struct {
    uint32_t una, nxt, max; /* max: highest sequence ever sent + 1 */
    uint32_t wnd;           /* peer's window in bytes (scaled) */
    uint32_t max_wnd;       /* the largest window the peer advertised (RFC 5961 MAX.SND.WND) */
    uint32_t wl1, wl2;
    uint32_t iss;
    uint8_t wscale; /* the peer's shift, applied to windows it sends */
  } snd;
  struct {
    uint32_t nxt;
    uint32_t irs;
    uint32_t adv;   /* right edge of the window last advertised */
    uint8_t wscale; /* our shift */
  } rcv;

  uint16_t mss;      /* payload bytes per segment we send (options accounted for) */
  uint16_t peer_mss; /* as the peer announced it */
  bool ws_ok, ts_ok, sack_ok;
  uint32_t ts_recent; /* RFC 7323 TS.Recent */
  t2s_tstamp ts_recent_at;
  uint32_t ts_offset; /* random per-connection offset of our TSval */
  uint32_t last_ack_sent;

  /* Send buffer: bytes from snd.una onward; FIN after them when fin_queued. */
  tcp_ring sbuf;
  uint32_t sbuf_len; /* bytes queued, acknowledged ones removed */
  bool fin_queued;   /* the owner shut down writes */
  bool fin_sent;
  bool sbuf_was_full;

  /* Receive buffer: rbuf_ready in-order bytes for the owner, then out-of-order data placed at
   * its offset from rcv.nxt. */
  tcp_ring rbuf;
  uint32_t rbuf_ready;
  tcp_range ooo[TCP_MAX_OOO]; /* most recently changed first: the SACK blocks' order */
  uint8_t nooo;
  bool dsack_pending; /* dsack goes first in the next ACK (RFC 2883), once */
  tcp_range dsack;    /* the duplicate range the peer sent */
  bool fin_rcvd;
  bool fin_ooo;     /* an out-of-order FIN sits at fin_seq */
  uint32_t fin_seq; /* sequence of the peer's FIN (valid when fin_rcvd or fin_ooo) */

  /* Congestion control and loss recovery (docs/tcp-recovery.md): RFC 5681 with limited
   * transmit (RFC 3042); NewReno (RFC 6582) without SACK; with SACK, RFC 6675 recovery driven
   * by the pipe estimate, a reordering window after which a hole below SACKed data is lost
   * (RFC 8985 6.2, on sequence ranges) and a tail loss probe (RFC 8985 7). */
  uint32_t cwnd, ssthresh;
  uint32_t dupacks;
  bool in_recovery;
  bool rto_recovery; /* after an RTO, until snd.una reaches recover: no fast retransmit */
  bool tlp_out;      /* a tail loss probe is outstanding (until snd.una reaches tlp_high) */
  uint32_t recover;
  uint32_t rtx_next; /* next hole to fill during recovery */
  uint32_t tlp_high; /* snd.max when the probe went out */
  uint32_t rtx_mark; /* snd.max when this round of hole retransmissions began (recovery) */
  t2s_tstamp rtx_mark_at;
  tcp_range sacked[TCP_MAX_SACKED];
  uint8_t nsacked;

  /* RTT (RFC 6298). */
  t2s_tstamp srtt, rttvar, rto;
  bool rtt_timing;
  uint32_t rtt_seq;
  t2s_tstamp rtt_start;

  /* Timers (T2S_TSTAMP_MAX = off). */
  t2s_tstamp rto_at;
  t2s_tstamp persist_at;
  t2s_tstamp pending_at; /* a held SYN */
  t2s_tstamp timewait_at;
  t2s_tstamp keepalive_at;
  t2s_tstamp delack_at; /* a delayed ACK is owed by then */
  t2s_tstamp tlp_at;    /* tail loss probe (RFC 8985 7.2) */
  t2s_tstamp reo_at;    /* end of the reordering window: SACKed data above a hole (RFC 8985 6.2) */
  uint32_t retries;
  t2s_tstamp persist_backoff;
  t2s_tstamp last_activity;
  t2s_tstamp rcv_data_at; /* in-order data last arrived (T2S_TSTAMP_MAX: none yet) */

  bool need_ack;        /* send an ACK now (at the end of the current input or call) */
  uint8_t quickacks;    /* data segments still ACKed at once (quick-ack at the start) */
  uint16_t rcv_mss;     /* the peer's full-sized segment as seen so far (at most our MSS) */
  bool closed_notified; /* on_closed was called */
  bool dead;            /* in the reap list */
};

/* A connection in TIME-WAIT, once its control block and rings are freed (tcp_tw.c). */
typedef struct tcp_tw {
  t2s_addr local, remote;
  struct tcp_tw *hnext;       /* hash chain in tw_table */
  struct tcp_tw *prev, *next; /* expiry order */
  t2s_tstamp at;              /* TIME-WAIT ends */
  t2s_tstamp ts_recent_at;
  uint32_t snd_max, max_wnd; /* our sequence space, all acknowledged; the peer's largest window */
  uint32_t rcv_nxt, rcv_wnd; /* after the peer's FIN; the window in bytes */
  uint32_t ts_recent, ts_offset;
  uint16_t wnd16; /* the window field we send */
  bool ts_ok, sack_ok;
} tcp_tw;

struct t2s_tcp_stack {
  t2s_tcp_config cfg;
  t2s_tcp_callbacks cbs;
  void *arg;
  t2s_rand *rand;
  uint64_t hash_seed;
  uint64_t isn_key[2]; /* the RFC 6528 secret, from the caller's generator */
  t2s_tcp_conn **table;
  size_t table_size; /* power of two */
  size_t nconns;
  size_t npending;
  t2s_tcp_conn **heap;
  size_t heap_len, heap_cap;
  t2s_tcp_conn *reap;
  tcp_tw **tw_table;         /* table_size buckets, allocated by the first TIME-WAIT */
  tcp_tw *tw_head, *tw_tail; /* TIME-WAIT records by expiry */
  int depth;                 /* nesting of public calls; reaping happens at depth 0 */
  t2s_tstamp now;
  t2s_tstamp challenge_window_start;
  uint32_t challenge_count;
  t2s_tcp_stats stats;
  t2s_mem *mem;    /* cfg.mem, or &own_mem */
  t2s_mem own_mem; /* used when cfg.mem is NULL (the stack struct itself is not counted) */
  /* A burst (t2s_tcp_batch_begin): pure ACKs for in-order data are held in ackq until
   * t2s_tcp_flush(). */
  t2s_tcp_conn *ackq;
  bool batch;
  uint8_t outbuf[65536 + 128];
};

/* Invariants of a connection's sequence space, rings and heap slot (T2S_ASSERT: compiled in
 * Debug, ASan and fuzz builds). Cheap: O(1), checked after each input, output and timer. */
static inline void tcp_check(const t2s_tcp_conn *c) {
  const t2s_tcp_stack *st = c->stack;
  (void)st;
  T2S_ASSERT(t2s_seq_leq(c->snd.una, c->snd.nxt));
  T2S_ASSERT(t2s_seq_leq(c->snd.nxt, c->snd.max));
  T2S_ASSERT(c->sbuf_len <= st->cfg.sndbuf);
  T2S_ASSERT(c->sbuf.cap == 0 || (c->sbuf.head < c->sbuf.cap && c->sbuf_len <= c->sbuf.cap));
  T2S_ASSERT(c->rbuf.cap == 0 || (c->rbuf.head < c->rbuf.cap && c->rbuf_ready <= c->rbuf.cap));
  T2S_ASSERT(c->sbuf.cap != 0 || c->sbuf_len == 0);
  T2S_ASSERT(c->rbuf.cap != 0 || c->rbuf_ready == 0);
  T2S_ASSERT(c->nooo <= TCP_MAX_OOO && c->nsacked <= TCP_MAX_SACKED);
  /* Sent but unacknowledged: queued bytes plus our FIN (the SYN before ESTABLISHED). */
  T2S_ASSERT(c->state < T2S_TCP_ESTABLISHED ||
             c->snd.max - c->snd.una <= c->sbuf_len + (c->fin_sent ? 1u : 0u));
  T2S_ASSERT(c->heap_idx == SIZE_MAX ||
             (c->heap_idx < st->heap_len && st->heap[c->heap_idx] == c &&
              (c->heap_idx == 0 || st->heap[(c->heap_idx - 1) / 2]->deadline <= c->deadline)));
}

/* tcp.c */
/* The initial sequence number for a connection from local to remote at now (RFC 6528):
 * a 4 us clock plus SipHash-2-4, keyed by the stack's secret, of the four-tuple. Successive
 * connections of one four-tuple get increasing ISNs; others cannot guess them. */
uint32_t t2s_tcp_isn(const t2s_tcp_stack *st, const t2s_addr *local, const t2s_addr *remote,
                     t2s_tstamp now);
/* Ends a connection: calls on_closed(err) once, removes it from the table and heap, and queues
 * it for freeing. send_rst sends a RST first. */
void t2s_tcp_conn_finish(t2s_tcp_conn *c, int err, bool send_rst);
void t2s_tcp_enter(t2s_tcp_stack *st);
void t2s_tcp_leave(t2s_tcp_stack *st);
/* Grows r to hold at least need bytes (at most max), keeping every offset from its head.
 * Returns 0, T2S_ERR_NOBUF (max reached) or T2S_ERR_NOMEM. */
int t2s_tcp_ring_reserve(t2s_tcp_stack *st, tcp_ring *r, uint32_t need, uint32_t max);
size_t t2s_tcp_ring_write(tcp_ring *r, uint32_t off, const uint8_t *data, size_t len);
void t2s_tcp_ring_read(const tcp_ring *r, uint32_t off, size_t len, const uint8_t **p1, size_t *l1,
                       const uint8_t **p2, size_t *l2);

/* The hash bucket of a four-tuple (the connection table and the TIME-WAIT table). */
size_t t2s_tcp_bucket(const t2s_tcp_stack *st, const t2s_addr *local, const t2s_addr *remote);

/* tcp_tw.c */
/* Replaces c (in TIME-WAIT, on_closed already called) by a compact record and frees c.
 * Returns false (c stays, whole) when memory is short. */
bool t2s_tcp_tw_enter(t2s_tcp_conn *c, t2s_tstamp now);
tcp_tw *t2s_tcp_tw_lookup(const t2s_tcp_stack *st, const t2s_addr *local, const t2s_addr *remote);
/* Handles a segment for a TIME-WAIT record (may free it: a RST at rcv_nxt). */
t2s_drop_reason t2s_tcp_tw_input(t2s_tcp_stack *st, tcp_tw *tw, const t2s_pkt *pkt, t2s_tstamp now);
/* The earliest end of a TIME-WAIT (T2S_TSTAMP_MAX: none). */
t2s_tstamp t2s_tcp_tw_expiry(const t2s_tcp_stack *st);
/* Frees the records whose TIME-WAIT ended at or before now. */
void t2s_tcp_tw_expire(t2s_tcp_stack *st, t2s_tstamp now);
/* Frees every record and the table. */
void t2s_tcp_tw_free_all(t2s_tcp_stack *st);

/* tcp_out.c */
/* Sends what the windows allow (data, FIN) and an ACK when one is owed. */
void t2s_tcp_output(t2s_tcp_conn *c, t2s_tstamp now);
/* Sends one segment with no data (SYN, SYN-ACK, ACK, FIN, RST variants). */
void t2s_tcp_send_ctl(t2s_tcp_conn *c, uint32_t seq, uint8_t flags, t2s_tstamp now);
/* Sends a RST for a segment that belongs to no connection (RFC 9293 3.10.7.1). */
void t2s_tcp_send_reset_for(t2s_tcp_stack *st, const t2s_pkt *pkt);
/* During recovery: retransmits the next segment the peer is missing. Returns true if sent. */
bool t2s_tcp_retransmit_hole(t2s_tcp_conn *c, t2s_tstamp now);
/* Retransmits starting at snd.una after an RTO. */
void t2s_tcp_retransmit_timeout(t2s_tcp_conn *c, t2s_tstamp now);
/* Bytes the peer has SACKed within [from, to). */
uint32_t t2s_tcp_sacked_in(const t2s_tcp_conn *c, uint32_t from, uint32_t to);
/* The end of the highest SACKed range (snd.una when none). */
uint32_t t2s_tcp_high_sacked(const t2s_tcp_conn *c);
/* RFC 6675 pipe during SACK recovery: bytes in flight, less those SACKed and the holes below
 * the highest SACKed byte not yet retransmitted (presumed lost). */
uint32_t t2s_tcp_pipe(const t2s_tcp_conn *c);
/* Enters fast recovery at snd.una (RFC 5681 3.2 / RFC 6675 5): ssthresh, cwnd, the first hole
 * retransmitted. */
void t2s_tcp_enter_recovery(t2s_tcp_conn *c, t2s_tstamp now);
/* Arms the tail loss probe (RFC 8985 7.2) when data is in flight outside recovery with SACK;
 * disarms it otherwise. */
void t2s_tcp_tlp_arm(t2s_tcp_conn *c, t2s_tstamp now);
/* Sends the tail loss probe: one new segment if the peer's window allows, else the last one
 * sent again (RFC 8985 7.3). */
void t2s_tcp_tlp_send(t2s_tcp_conn *c, t2s_tstamp now);
/* The receive window to advertise now (bytes, before scaling). */
uint32_t t2s_tcp_rcv_window(const t2s_tcp_conn *c);
/* Free bytes in the send buffer. */
uint32_t t2s_tcp_sbuf_space(const t2s_tcp_conn *c);
/* With TSO: n (> 0) less what would leave the unsent bytes a part of a super-segment behind
 * the whole ones, when that much room remains; else n (tcp_out.c). */
size_t t2s_tcp_send_round(const t2s_tcp_conn *c, size_t n);

/* tcp_in.c */
/* RFC 9293's acceptability test of a segment (seq, seglen) against [rcv_nxt, rcv_nxt + wnd). */
bool t2s_tcp_acceptable(uint32_t rcv_nxt, uint32_t seq, uint32_t seglen, uint32_t wnd);
/* Counts a challenge ACK against the per-stack limit (RFC 5961 7): false when over it. */
bool t2s_tcp_challenge_allowed(t2s_tcp_stack *st, t2s_tstamp now);
/* Holds c's owed ACK until t2s_tcp_flush() (once per connection). */
void t2s_tcp_ackq_add(t2s_tcp_conn *c);
t2s_drop_reason t2s_tcp_input_conn(t2s_tcp_conn *c, const t2s_pkt *pkt, t2s_tstamp now);

/* tcp_timer.c */
void t2s_tcp_timer_update(t2s_tcp_conn *c);
void t2s_tcp_heap_remove(t2s_tcp_stack *st, t2s_tcp_conn *c);
void t2s_tcp_rtt_sample(t2s_tcp_conn *c, t2s_tstamp rtt);
void t2s_tcp_rto_arm(t2s_tcp_conn *c, t2s_tstamp now);
uint32_t t2s_tcp_now_ts(const t2s_tcp_conn *c, t2s_tstamp now);

#endif
