/* tun_linux_uring.c: a TUN's packets batched through io_uring (see tun_linux_uring.h). */
#include "tun_linux_uring.h"

#ifdef T2S_HAVE_LIBURING

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define URING_ENTRIES 256          /* submission queue */
#define URING_WARENA (256u * 1024) /* queued writes, copied back to back */
#define URING_MAX_READS 32         /* reads per batch */
#define URING_RARENA (64u * 1024)  /* the read slots */
#define URING_MAX_WRITES (URING_ENTRIES - URING_MAX_READS)
#define URING_READ_TAG (1ull << 32) /* user_data of a read: the tag | its slot */

struct t2s_tun_uring {
  struct io_uring ring;
  int fd;
  /* Writes queued (SQEs prepared, not yet submitted) and the arena holding their bytes. */
  uint8_t *warena;
  size_t wused;
  unsigned wqueued;
  /* The last read batch: each slot's result, the next one to return, whether it drained the
   * device, the size of the next batch. */
  uint8_t *rarena;
  size_t rslot;      /* bytes per read slot (the largest packet) */
  unsigned rslots;   /* slots in rarena */
  unsigned rk;       /* reads in the next batch */
  unsigned rn, rpos; /* reads in the last batch, next slot to look at */
  int32_t rres[URING_MAX_READS];
  bool drained; /* the last batch found the device empty */
  int rerr;     /* errno of a failed read, reported once the packets before it are */
  t2s_tun_uring_counters cnt;
};

t2s_tun_uring *t2s_tun_uring_new(int fd, size_t max_pkt) {
  const char *env = getenv("TUN2SOCK_IO_URING");
  if (env && strcmp(env, "0") == 0) {
    return NULL;
  }
  if (max_pkt == 0 || max_pkt > URING_RARENA / 4) {
    return NULL; /* fewer than 4 packets per batch: not worth a copy */
  }
  t2s_tun_uring *u = calloc(1, sizeof(*u));
  if (!u) {
    return NULL;
  }
  u->fd = fd;
  u->rslot = max_pkt;
  u->rslots = (unsigned)T2S_MIN((size_t)URING_MAX_READS, URING_RARENA / max_pkt);
  u->rk = 2;
  u->warena = malloc(URING_WARENA);
  u->rarena = malloc(u->rslot * u->rslots);
  /* IORING_SETUP_SUBMIT_ALL (Linux 5.18): a request that fails at submission (kernels that
   * look the fd up then) does not stop the ones after it, so every request prepared completes
   * and the wait for them ends; without it the wait could block on requests never submitted:
   * plain I/O then. */
  int rv = u->warena && u->rarena
               ? io_uring_queue_init(URING_ENTRIES, &u->ring, IORING_SETUP_SUBMIT_ALL)
               : -ENOMEM;
  if (rv < 0) {
    T2S_INFO("TUN I/O without io_uring: %s", strerror(-rv));
    free(u->warena);
    free(u->rarena);
    free(u);
    return NULL;
  }
  return u;
}

void t2s_tun_uring_free(t2s_tun_uring *u) {
  if (!u) {
    return;
  }
  io_uring_queue_exit(&u->ring);
  free(u->warena);
  free(u->rarena);
  free(u);
}

/* Takes every completion waiting: writes are counted, reads' results filed by slot. */
static void reap(t2s_tun_uring *u) {
  struct io_uring_cqe *cqe;
  unsigned head, n = 0;
  io_uring_for_each_cqe(&u->ring, head, cqe) {
    if (cqe->user_data & URING_READ_TAG) {
      u->rres[(uint32_t)cqe->user_data] = cqe->res;
    } else if (cqe->res < 0) {
      u->cnt.tx_errors++;
    } else {
      u->cnt.tx_packets++;
    }
    n++;
  }
  io_uring_cq_advance(&u->ring, n);
}

/* Submits what is prepared and waits until `wait` requests completed (TUN reads and writes
 * complete during the submission: the wait returns at once). Bounded: a signal is retried a
 * few times. */
static int submit_wait(t2s_tun_uring *u, unsigned wait) {
  int rv = -EINTR;
  for (int tries = 0; tries < 4 && rv == -EINTR; tries++) {
    rv = io_uring_submit_and_wait(&u->ring, wait);
    u->cnt.enters++;
    wait = io_uring_cq_ready(&u->ring) >= wait ? 0 : wait; /* a retry only waits */
  }
  if (rv < 0) {
    errno = -rv;
    return rv == -EBADF || rv == -EBADFD ? T2S_ERR_FATAL : T2S_ERR_CLOSED;
  }
  reap(u);
  return 0;
}

int t2s_tun_uring_flush(t2s_tun_uring *u) {
  if (u->wqueued == 0) {
    return 0;
  }
  int rv = submit_wait(u, u->wqueued);
  u->wqueued = 0;
  u->wused = 0;
  return rv;
}

int t2s_tun_uring_send(t2s_tun_uring *u, const uint8_t *pkt, size_t len) {
  if (len > URING_WARENA) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (u->wused + len > URING_WARENA || u->wqueued == URING_MAX_WRITES) {
    int rv = t2s_tun_uring_flush(u);
    if (rv != 0) {
      return rv;
    }
  }
  struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
  if (!sqe) {
    return T2S_ERR_WOULDBLOCK; /* not reached: the queue has room for URING_MAX_WRITES */
  }
  uint8_t *dst = u->warena + u->wused;
  memcpy(dst, pkt, len);
  io_uring_prep_write(sqe, u->fd, dst, (unsigned)len, 0);
  sqe->user_data = 0;
  u->wused += (len + 15) & ~(size_t)15;
  u->wqueued++;
  return 0;
}

bool t2s_tun_uring_rx_pending(const t2s_tun_uring *u) {
  for (unsigned i = u->rpos; i < u->rn; i++) {
    if (u->rres[i] >= 0) {
      return true;
    }
  }
  return false;
}

/* One batch: rk reads, with the queued writes, in one submission. */
static int read_batch(t2s_tun_uring *u) {
  unsigned k = u->rk;
  for (unsigned i = 0; i < k; i++) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) {
      k = i;
      break;
    }
    io_uring_prep_read(sqe, u->fd, u->rarena + (size_t)i * u->rslot, (unsigned)u->rslot, 0);
    /* io_uring ignores O_NONBLOCK on a pollable file: without RWF_NOWAIT a read of an empty
     * TUN would wait for a packet instead of failing with EAGAIN. */
    sqe->rw_flags = RWF_NOWAIT;
    sqe->user_data = URING_READ_TAG | i;
    u->rres[i] = -EAGAIN;
  }
  int rv = submit_wait(u, k + u->wqueued);
  u->wqueued = 0;
  u->wused = 0;
  u->rn = k;
  u->rpos = 0;
  if (rv != 0) {
    u->rn = 0;
    return rv;
  }
  unsigned got = 0;
  u->drained = false;
  for (unsigned i = 0; i < k; i++) {
    if (u->rres[i] >= 0) {
      got++;
    } else if (u->rres[i] == -EAGAIN || u->rres[i] == -EWOULDBLOCK) {
      u->drained = true;
    } else if (!u->rerr) {
      u->rerr = -u->rres[i];
    }
  }
  /* Grow while batches fill; otherwise start from twice what this one found. */
  u->rk = u->drained ? T2S_MAX(2u, T2S_MIN(2 * got, u->rslots)) : T2S_MIN(2 * k, u->rslots);
  return 0;
}

t2s_ssize t2s_tun_uring_recv(t2s_tun_uring *u, uint8_t *buf, size_t buflen) {
  for (int batches = 0; batches < 2; batches++) {
    while (u->rpos < u->rn) {
      unsigned i = u->rpos++;
      if (u->rres[i] >= 0) {
        size_t n = T2S_MIN((size_t)u->rres[i], buflen);
        memcpy(buf, u->rarena + (size_t)i * u->rslot, n);
        u->cnt.rx_packets++;
        return (t2s_ssize)n;
      }
    }
    if (u->rerr) {
      errno = u->rerr;
      u->rerr = 0;
      u->drained = false;
      return errno == EBADF || errno == EBADFD ? T2S_ERR_FATAL : T2S_ERR_CLOSED;
    }
    if (u->drained) {
      u->drained = false; /* the next recv reads again */
      return T2S_ERR_WOULDBLOCK;
    }
    int rv = read_batch(u);
    if (rv != 0) {
      return rv;
    }
  }
  return T2S_ERR_WOULDBLOCK;
}

void t2s_tun_uring_get_counters(const t2s_tun_uring *u, t2s_tun_uring_counters *c) {
  *c = u->cnt;
}

#else /* !T2S_HAVE_LIBURING */

t2s_tun_uring *t2s_tun_uring_new(int fd, size_t max_pkt) {
  (void)fd;
  (void)max_pkt;
  return NULL;
}

void t2s_tun_uring_free(t2s_tun_uring *u) {
  (void)u;
}

int t2s_tun_uring_send(t2s_tun_uring *u, const uint8_t *pkt, size_t len) {
  (void)u;
  (void)pkt;
  (void)len;
  return T2S_ERR_INTERNAL;
}

int t2s_tun_uring_flush(t2s_tun_uring *u) {
  (void)u;
  return 0;
}

t2s_ssize t2s_tun_uring_recv(t2s_tun_uring *u, uint8_t *buf, size_t buflen) {
  (void)u;
  (void)buf;
  (void)buflen;
  return T2S_ERR_WOULDBLOCK;
}

bool t2s_tun_uring_rx_pending(const t2s_tun_uring *u) {
  (void)u;
  return false;
}

void t2s_tun_uring_get_counters(const t2s_tun_uring *u, t2s_tun_uring_counters *c) {
  (void)u;
  *c = (t2s_tun_uring_counters){0};
}

#endif
