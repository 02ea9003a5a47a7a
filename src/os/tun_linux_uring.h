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
  uint64_t enters; /* io_uring_enter calls */
} t2s_tun_uring_counters;

/* A ring over fd (non-blocking) for packets of at most max_pkt bytes. Returns NULL when
 * io_uring is not available or not wanted (see above), or max_pkt is too large to batch. */
t2s_tun_uring *t2s_tun_uring_new(int fd, size_t max_pkt);
void t2s_tun_uring_free(t2s_tun_uring *u);
/* Queues a copy of pkt (flushing first when the queue is full). Returns 0, or T2S_ERR_* of a
 * flush that failed. A write that fails later is counted (tx_errors), not reported. */
int t2s_tun_uring_send(t2s_tun_uring *u, const uint8_t *pkt, size_t len);
/* Submits the queued writes and waits for them. Returns 0 or T2S_ERR_*. */
int t2s_tun_uring_flush(t2s_tun_uring *u);
/* The next packet read (copied into buf): its length, T2S_ERR_WOULDBLOCK when the device is
 * drained, or T2S_ERR_CLOSED / T2S_ERR_FATAL (errno set). */
t2s_ssize t2s_tun_uring_recv(t2s_tun_uring *u, uint8_t *buf, size_t buflen);
/* Packets already read and not yet returned by t2s_tun_uring_recv. */
bool t2s_tun_uring_rx_pending(const t2s_tun_uring *u);
void t2s_tun_uring_get_counters(const t2s_tun_uring *u, t2s_tun_uring_counters *c);

#endif
