/*
 * tun_linux_uring.h: a TUN's reads and writes batched through io_uring (tun_linux.c uses it on
 * a TUN without IFF_VNET_HDR, where every packet is a system call of its own).
 *
 * Writes: each packet is copied into an arena and queued; t2s_tun_uring_flush() (the loop
 * calls it after every callback, through t2s_tun_flush) submits them all with one
 * io_uring_enter and reaps their completions. Reads: t2s_tun_uring_recv() takes the next
 * packet of a batch of reads submitted together (the pending writes go in the same call); a
 * batch that came back with fewer packets than reads drained the device, and the next recv
 * after its last packet says so without a system call. The batch grows while it fills and
 * shrinks to what the last one found (2 reads at least).
 *
 * Built with liburing (T2S_HAVE_LIBURING); without it, or when the kernel refuses io_uring
 * (ENOSYS, a seccomp filter, kernel.io_uring_disabled), or with TUN2SOCK_IO_URING=0 in the
 * environment, t2s_tun_uring_new fails and the TUN keeps its plain read/writev path.
 *
 * When io_uring fails later (io_uring_enter refuses a submission or leaves requests behind, a
 * read or a write completes with an error that a plain read or write of the same fd does not
 * have: EOPNOTSUPP, EINVAL, ENOMEM, ...), the ring is dropped and every packet from then on
 * is a read or a write of its own, made here: the queued writes that did not complete are
 * written then (one the device refuses is counted in tx_errors), packets already read are
 * still returned, and a warning says why, once. The TUN goes on without a restart.
 */
#ifndef T2S_TUN_LINUX_URING_H
#define T2S_TUN_LINUX_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

typedef struct t2s_tun_uring t2s_tun_uring;

typedef struct t2s_tun_uring_counters {
  uint64_t rx_packets, tx_packets, tx_errors;
  uint64_t enters;    /* io_uring_enter calls */
  uint64_t fallbacks; /* 1 once io_uring failed and plain reads and writes took over */
} t2s_tun_uring_counters;

/* What the test hook makes fail (t2s_tun_uring_test_fail). */
typedef enum t2s_tun_uring_fail {
  T2S_TUN_URING_FAIL_NONE,
  T2S_TUN_URING_FAIL_SUBMIT, /* io_uring_enter returns EOPNOTSUPP (not called) */
  T2S_TUN_URING_FAIL_READS,  /* every read completes with EOPNOTSUPP (an rw flag no kernel has) */
  T2S_TUN_URING_FAIL_WRITES, /* every write completes with EOPNOTSUPP (the same) */
} t2s_tun_uring_fail;

/* A ring over fd (non-blocking) for packets of at most max_pkt bytes. Returns NULL when
 * io_uring is not available or not wanted (see above), or max_pkt is too large to batch. */
t2s_tun_uring *t2s_tun_uring_new(int fd, size_t max_pkt);
void t2s_tun_uring_free(t2s_tun_uring *u);
/* Queues a copy of pkt (flushing first when the queue is full). Returns 0; a write that fails
 * later is counted (tx_errors), not reported. After a fall back to plain I/O the packet is
 * written at once: 0, or T2S_ERR_WOULDBLOCK / T2S_ERR_CLOSED (errno set), counted. */
int t2s_tun_uring_send(t2s_tun_uring *u, const uint8_t *pkt, size_t len);
/* Submits the queued writes and waits for them. Returns 0 (a failure of io_uring falls back
 * to plain writes; a write the device refuses is counted in tx_errors). */
int t2s_tun_uring_flush(t2s_tun_uring *u);
/* The next packet read (copied into buf): its length, T2S_ERR_WOULDBLOCK when the device is
 * drained, or T2S_ERR_CLOSED / T2S_ERR_FATAL (errno set). */
t2s_ssize t2s_tun_uring_recv(t2s_tun_uring *u, uint8_t *buf, size_t buflen);
/* t2s_tun_uring_recv without the copy: *ppkt points at the packet in the ring's read buffer,
 * valid until the second call after this one (of either function): a caller that reads one
 * packet ahead hands the previous one over while the next is held. */
t2s_ssize t2s_tun_uring_recv_ref(t2s_tun_uring *u, const uint8_t **ppkt);
/* Packets already read and not yet returned by t2s_tun_uring_recv. */
bool t2s_tun_uring_rx_pending(const t2s_tun_uring *u);
void t2s_tun_uring_get_counters(const t2s_tun_uring *u, t2s_tun_uring_counters *c);
/* Tests only: from the after_enters-th io_uring_enter call on (0: at once), io_uring fails
 * the way mode says, every time, as a broken kernel would; the environment variable
 * TUN2SOCK_TEST_IO_URING_FAIL=submit:N, reads:N or writes:N sets it at t2s_tun_uring_new. */
void t2s_tun_uring_test_fail(t2s_tun_uring *u, t2s_tun_uring_fail mode, uint64_t after_enters);

#endif
