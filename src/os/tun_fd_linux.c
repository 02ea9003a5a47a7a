/* tun_fd_linux.c: one read or one write on a TUN fd (see tun_fd_linux.h). */
#include "tun_fd_linux.h"

#include <errno.h>
#include <unistd.h>

t2s_ssize t2s_tun_fd_read_error(int err) {
  if (err == EAGAIN || err == EWOULDBLOCK) {
    return T2S_ERR_WOULDBLOCK;
  }
  return err == EBADFD || err == EBADF ? T2S_ERR_FATAL : T2S_ERR_CLOSED;
}

t2s_ssize t2s_tun_fd_read(int fd, void *buf, size_t len) {
  /* Bounded: a signal may interrupt the read; retry a few times, then report nothing. */
  for (int tries = 0; tries < 4; tries++) {
    ssize_t n = read(fd, buf, len);
    if (n >= 0) {
      return (t2s_ssize)n;
    }
    if (errno != EINTR) {
      return t2s_tun_fd_read_error(errno);
    }
  }
  return T2S_ERR_WOULDBLOCK;
}

int t2s_tun_fd_writev(int fd, const struct iovec *iov, int niov) {
  for (int tries = 0; tries < 4; tries++) {
    if (writev(fd, iov, niov) >= 0) {
      return 0;
    }
    if (errno != EINTR) {
      break;
    }
  }
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? T2S_ERR_WOULDBLOCK
                                                                     : T2S_ERR_CLOSED;
}
