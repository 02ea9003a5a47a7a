/*
 * tun_fd_linux.h: one read or one write on a TUN fd, as every TUN path does it when it does
 * not batch (tun_linux.c's plain path, tun_linux_uring.c after io_uring failed): a signal is
 * retried a few times, errno is mapped to the T2S_ERR_* the device ops return.
 */
#ifndef T2S_TUN_FD_LINUX_H
#define T2S_TUN_FD_LINUX_H

#include <sys/uio.h>

#include "common.h"

/* One read(2) of up to len bytes: the length, or T2S_ERR_WOULDBLOCK (nothing there, or still
 * interrupted after the retries), T2S_ERR_FATAL (a bad fd) or T2S_ERR_CLOSED, errno set. */
t2s_ssize t2s_tun_fd_read(int fd, void *buf, size_t len);

/* The T2S_ERR_* of a failed TUN read with errno err (as t2s_tun_fd_read maps it). */
t2s_ssize t2s_tun_fd_read_error(int err);

/* One writev(2) of a packet: 0, T2S_ERR_WOULDBLOCK (the kernel's queue is full) or
 * T2S_ERR_CLOSED, errno set. */
int t2s_tun_fd_writev(int fd, const struct iovec *iov, int niov);

#endif
