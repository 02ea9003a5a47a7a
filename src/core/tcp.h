/*
 * tcp.h: the userspace TCP stack (RFC 9293), sans-I/O.
 *
 * One t2s_tcp_stack holds many connections, demultiplexed by (local, remote) address pairs.
 * Passive opens are "any-IP": a SYN to any address and port creates a connection whose local
 * endpoint is the SYN's destination; the SYN is held until the owner calls t2s_tcp_accept()
 * (SYN-ACK) or t2s_tcp_refuse() (RST). Active opens (t2s_tcp_connect) exist so the simulator
 * can run closed-loop client hosts on the same code.
 *
 * Packets leave through cbs->output. Time is passed into every call. Deadlines live in the
 * connections; t2s_tcp_get_expiry() is their minimum (kept in a heap).
 * Callbacks never free a connection: after on_closed the stack reaps it at a safe point, and
 * the owner must drop its pointer in on_closed.
 */
#ifndef T2S_TCP_H
#define T2S_TCP_H

#include "alloc.h"
#include "common.h"
#include "packet.h"
#include "rand.h"

typedef struct t2s_tcp_stack t2s_tcp_stack;
typedef struct t2s_tcp_conn t2s_tcp_conn;

typedef enum t2s_tcp_state {
  T2S_TCP_CLOSED = 0,
  T2S_TCP_LISTEN,      /* unused: passive opens are any-IP */
  T2S_TCP_SYN_PENDING, /* SYN received, held until accept/refuse (not an RFC state) */
  T2S_TCP_SYN_SENT,
  T2S_TCP_SYN_RECEIVED,
  T2S_TCP_ESTABLISHED,
  T2S_TCP_FIN_WAIT_1,
  T2S_TCP_FIN_WAIT_2,
  T2S_TCP_CLOSE_WAIT,
  T2S_TCP_CLOSING,
  T2S_TCP_LAST_ACK,
  T2S_TCP_TIME_WAIT,
} t2s_tcp_state;

/* RFC name of a state ("SYN-RECEIVED"). */
const char *t2s_tcp_state_name(t2s_tcp_state s);

typedef struct t2s_tcp_config {
  uint32_t mtu;               /* the device MTU; MSS is clamped to it */
  uint32_t sndbuf;            /* per-connection send buffer, bytes (toward the peer) */
  uint32_t rcvbuf;            /* per-connection receive buffer, bytes (from the peer) */
  uint32_t max_conns;         /* cap on connections (all states) */
  uint32_t max_pending;       /* cap on SYN_PENDING connections */
  t2s_tstamp pending_timeout; /* a held SYN is refused after this long */
  t2s_tstamp time_wait;       /* TIME-WAIT duration (short, bounded) */
  uint32_t max_retries;       /* retransmissions of one segment before giving up */
  t2s_tstamp keepalive_idle;  /* 0 = off */
  bool wscale;                /* offer window scaling (when the peer does) */
  bool timestamps;            /* offer timestamps */
  bool sack;                  /* offer SACK */
  bool tso; /* the device splits TCP super-segments (T2S_DEVICE_OFFLOAD_TSO): data goes out in
             * segments of up to 64 KiB of whole MSS when the MSS fills the MTU */
  uint32_t partial_csum_over; /* a segment longer than this (the device's MTU: one the device
                               * splits and checksums itself) carries only the pseudo-header
                               * sum; 0: every segment is fully checksummed */
  t2s_mem *mem; /* counts the stack's heap blocks (alloc.h); NULL: an internal counter */
} t2s_tcp_config;

/* Defaults: mtu 1500, sndbuf/rcvbuf 256 KiB, 16384 conns, 1024 pending, 10 s pending timeout,
 * 2 s TIME-WAIT, 12 retries, keepalive off, all options on. */
void t2s_tcp_config_default(t2s_tcp_config *cfg);

typedef struct t2s_tcp_callbacks {
  /* Sends one IP packet (borrowed for the call). Returns 0 or a negative error. */
  int (*output)(void *arg, const uint8_t *pkt, size_t len);
  /* Optional (may be NULL): sends one data segment given as its IP and TCP headers (hdr,
   * hdrlen) followed by its payload in two pieces of the send buffer (all borrowed for the
   * call): no copy of the payload into a packet buffer. NULL: output gets every packet whole. */
  int (*output_v)(void *arg, const uint8_t *hdr, size_t hdrlen, const uint8_t *p1, size_t l1,
                  const uint8_t *p2, size_t l2);
  /* A SYN created connection c (state SYN_PENDING). Return 0 to hold it (the owner later calls
   * accept or refuse), or a negative error to refuse at once (RST). May be NULL: then the stack
   * accepts at once. */
  int (*on_syn)(void *arg, t2s_tcp_conn *c);
  /* The handshake completed (passive or active open). */
  void (*on_established)(void *arg, t2s_tcp_conn *c);
  /* New in-order data can be read (t2s_tcp_recv_peek / t2s_tcp_consume). */
  void (*on_recv)(void *arg, t2s_tcp_conn *c);
  /* Send-buffer space opened after the buffer was full. */
  void (*on_sendable)(void *arg, t2s_tcp_conn *c);
  /* The peer's FIN arrived and every byte before it has been delivered to on_recv. */
  void (*on_fin)(void *arg, t2s_tcp_conn *c);
  /* The connection is finished: err 0 after a clean close, T2S_ERR_RESET when the peer reset it,
   * T2S_ERR_TIMEOUT when retransmissions or the pending timer ran out, T2S_ERR_REFUSED when an
   * active open got a RST, T2S_ERR_CLOSED after the owner aborted it. Called once; c is reaped
   * afterwards and must not be used again. */
  void (*on_closed)(void *arg, t2s_tcp_conn *c, int err);
} t2s_tcp_callbacks;

/* Creates a stack. rand is borrowed (ISNs come from it). Returns 0 or T2S_ERR_NOMEM. */
int t2s_tcp_stack_new(t2s_tcp_stack **pstack, const t2s_tcp_config *cfg,
                      const t2s_tcp_callbacks *cbs, void *arg, t2s_rand *rand);
/* Frees the stack and every connection without sending anything or calling on_closed. */
void t2s_tcp_stack_del(t2s_tcp_stack *stack);
/* Sets cfg.pending_timeout for the SYNs that arrive from now on (a reload); held ones keep
 * their deadline. */
void t2s_tcp_stack_set_pending_timeout(t2s_tcp_stack *stack, t2s_tstamp timeout);

/*
 * Feeds a parsed TCP segment (pkt->proto == TCP, checksum already verified). Handles it for
 * the matching connection, creates a pending one for a SYN, answers RST for a segment to no
 * connection. Returns T2S_DROP_NONE or the reason the segment was dropped.
 */
t2s_drop_reason t2s_tcp_input(t2s_tcp_stack *stack, const t2s_pkt *pkt, t2s_tstamp now);

/* Earliest deadline of any connection (T2S_TSTAMP_MAX: none). */
/* Starts a burst of input: until t2s_tcp_flush(), an ACK owed for in-order data (including a
 * window update after t2s_tcp_consume) is held instead of sent, so a connection that received
 * several segments answers them with one ACK. Out-of-order data, duplicates, FINs and data
 * segments (which carry the ACK) are not held. */
void t2s_tcp_batch_begin(t2s_tcp_stack *stack);
/* Ends a burst: sends every held ACK (one per connection) and stops holding them. */
void t2s_tcp_flush(t2s_tcp_stack *stack, t2s_tstamp now);
t2s_tstamp t2s_tcp_get_expiry(const t2s_tcp_stack *stack);
/* Runs every timer due at or before now, then reaps closed connections. */
void t2s_tcp_handle_expiry(t2s_tcp_stack *stack, t2s_tstamp now);

/* Completes the handshake of a SYN_PENDING connection (sends the SYN-ACK). */
int t2s_tcp_accept(t2s_tcp_conn *c, t2s_tstamp now);
/* Refuses a SYN_PENDING connection with a RST (on_closed follows with T2S_ERR_REFUSED). */
int t2s_tcp_refuse(t2s_tcp_conn *c, t2s_tstamp now);
/* Refuses a SYN_PENDING connection without sending anything (the owner answers another way,
 * e.g. with an ICMP unreachable); on_closed follows with T2S_ERR_REFUSED. */
int t2s_tcp_refuse_silently(t2s_tcp_conn *c, t2s_tstamp now);
/* The peer's initial sequence number (valid once its SYN arrived). */
uint32_t t2s_tcp_conn_irs(const t2s_tcp_conn *c);

/* Active open from local to remote. *pconn is set on success (state SYN_SENT). */
int t2s_tcp_connect(t2s_tcp_stack *stack, const t2s_addr *local, const t2s_addr *remote,
                    t2s_tstamp now, t2s_tcp_conn **pconn);

/* Queues up to len bytes for sending; returns how many were taken (0 when the buffer is full,
 * then on_sendable follows), or T2S_ERR_CLOSED after shutdown/close. */
t2s_ssize t2s_tcp_send(t2s_tcp_conn *c, const uint8_t *data, size_t len, t2s_tstamp now);
/* Free bytes in the send buffer. */
size_t t2s_tcp_send_space(const t2s_tcp_conn *c);
/* Where up to len more bytes could be put into the send buffer in place (a socket read straight
 * into it): *pbuf and the contiguous room there, within the buffer's current size (it is not
 * grown: t2s_tcp_send grows it by what actually arrives). 0 (and *pbuf NULL) when there is
 * none. Nothing is queued until t2s_tcp_send(c, *pbuf, n, now) takes the n bytes read there,
 * without copying them. */
size_t t2s_tcp_send_buf(t2s_tcp_conn *c, size_t len, uint8_t **pbuf);
/* Bytes queued but not yet acknowledged by the peer. */
size_t t2s_tcp_send_queued(const t2s_tcp_conn *c);

/* Points p1/len1 and p2/len2 at the readable in-order bytes (two pieces when the ring
 * wraps). Returns the total. Nothing is consumed. */
size_t t2s_tcp_recv_peek(const t2s_tcp_conn *c, const uint8_t **p1, size_t *len1,
                         const uint8_t **p2, size_t *len2);
/* Marks n readable bytes consumed: the receive window reopens by that much (a window update
 * is sent when it matters). */
void t2s_tcp_consume(t2s_tcp_conn *c, size_t n, t2s_tstamp now);

/* Half-close: FIN after every queued byte. */
int t2s_tcp_shutdown(t2s_tcp_conn *c, t2s_tstamp now);
/* Aborts with a RST; on_closed follows with T2S_ERR_CLOSED. */
void t2s_tcp_abort(t2s_tcp_conn *c, t2s_tstamp now);

t2s_tcp_state t2s_tcp_conn_state(const t2s_tcp_conn *c);
/* The connection's local endpoint (for passive opens: the SYN's original destination). */
const t2s_addr *t2s_tcp_conn_local(const t2s_tcp_conn *c);
const t2s_addr *t2s_tcp_conn_remote(const t2s_tcp_conn *c);
void t2s_tcp_conn_set_user(t2s_tcp_conn *c, void *user);
void *t2s_tcp_conn_get_user(const t2s_tcp_conn *c);

typedef struct t2s_tcp_stats {
  uint64_t conns_active;
  uint64_t conns_pending;
  uint64_t retransmits;
  uint64_t tlp_probes; /* tail loss probes sent (RFC 8985 7) */
  uint64_t rsts_sent;
  uint64_t challenge_acks;
  uint64_t segs_in, segs_out;
} t2s_tcp_stats;
void t2s_tcp_get_stats(const t2s_tcp_stack *stack, t2s_tcp_stats *st);

#endif
