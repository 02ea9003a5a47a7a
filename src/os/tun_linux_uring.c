/* tun_linux_uring.c: a TUN's packets batched through io_uring (see tun_linux_uring.h). */
#include "tun_linux_uring.h"

#ifdef T2S_HAVE_LIBURING

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tun_fd_linux.h"

#define URING_ENTRIES 256          /* submission queue */
#define URING_WARENA (256u * 1024) /* queued writes, copied back to back */
#define URING_MAX_READS 32         /* reads per batch */
#define URING_RARENA (64u * 1024)  /* the read slots */
#define URING_MAX_WRITES (URING_ENTRIES - URING_MAX_READS)
/* user_data of a read: this tag | its slot; of a write: its index in the queue */
#define URING_READ_TAG (1ull << 32)
#define URING_BAD_RW_FLAG (1u << 30) /* tests: an rw flag no kernel knows (EOPNOTSUPP) */

/* A queued write: where its bytes are in the arena, and whether it completed. */
typedef struct uring_write {
  uint32_t off, len;
  bool done;
} uring_write;

struct t2s_tun_uring {
  struct io_uring ring;
  int fd;
  /* io_uring failed after setup: every packet is a read or a write of its own from then on
   * (the ring is gone; packets already read are still returned first). */
  bool plain;
  /* A write completed with an error that a plain write of the same packet did not have. */
  int write_broke;
  /* Writes queued (SQEs prepared, not yet submitted) and the arena holding their bytes. */
  uint8_t *warena;
  size_t wused;
  unsigned wqueued;
  uring_write wq[URING_MAX_WRITES];
  /* The last read batch: each slot's result, the next one to return, whether it drained the
   * device, the size of the next batch. */
  uint8_t *rarena;   /* two halves of rslots slots: a batch (or a plain read) fills the half
                      * not holding the packet returned last, which so stays valid for one
                      * more call (t2s_tun_uring_recv_ref) */
  size_t rslot;      /* bytes per read slot (the largest packet) */
  unsigned rslots;   /* slots in each half */
  unsigned rhalf;    /* the half the last batch filled */
  unsigned lent;     /* the half holding the packet returned last */
  unsigned rk;       /* reads in the next batch */
  unsigned rn, rpos; /* reads in the last batch, next slot to look at */
  int32_t rres[URING_MAX_READS];
  bool drained; /* the last batch found the device empty */
  int rerr;     /* errno of a failed read, reported once the packets before it are */
  t2s_tun_uring_counters cnt;
  /* The test hook (t2s_tun_uring_test_fail): from io_uring_enter number fail_after on. */
  t2s_tun_uring_fail fail_mode;
  uint64_t fail_after;
};

/* The test hook's failures are in force. */
static bool failing(const t2s_tun_uring *u, t2s_tun_uring_fail mode) {
  return u->fail_mode == mode && u->cnt.enters >= u->fail_after;
}

/* TUN2SOCK_TEST_IO_URING_FAIL=MODE:N (tests only; MODE submit, reads or writes): the hook from
 * the start, for a test of the whole binary. */
static void fail_from_env(t2s_tun_uring *u) {
  const char *env = getenv("TUN2SOCK_TEST_IO_URING_FAIL");
  if (!env) {
    return;
  }
  static const struct {
    const char *name;
    t2s_tun_uring_fail mode;
  } modes[] = {{"submit:", T2S_TUN_URING_FAIL_SUBMIT},
               {"reads:", T2S_TUN_URING_FAIL_READS},
               {"writes:", T2S_TUN_URING_FAIL_WRITES}};
  for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
    size_t n = strlen(modes[i].name);
    if (strncmp(env, modes[i].name, n) == 0) {
      t2s_tun_uring_test_fail(u, modes[i].mode, strtoull(env + n, NULL, 10));
    }
  }
}

/* The first byte of slot i of half h. */
static uint8_t *rslot_at(const t2s_tun_uring *u, unsigned h, unsigned i) {
  return u->rarena + ((size_t)h * u->rslots + i) * u->rslot;
}

/* One read of its own (into the first slot of the other half, *ppkt): the length,
 * T2S_ERR_WOULDBLOCK, or T2S_ERR_CLOSED / T2S_ERR_FATAL with errno set. */
static t2s_ssize plain_recv(t2s_tun_uring *u, const uint8_t **ppkt) {
  uint8_t *buf = rslot_at(u, 1 - u->lent, 0);
  t2s_ssize n = t2s_tun_fd_read(u->fd, buf, u->rslot);
  if (n >= 0) {
    u->lent = 1 - u->lent;
    u->cnt.rx_packets++;
    *ppkt = buf;
  }
  return n;
}

/* One write of its own, counted: 0, T2S_ERR_WOULDBLOCK (the device's queue is full) or
 * T2S_ERR_CLOSED, errno set. */
static int plain_send(t2s_tun_uring *u, const uint8_t *pkt, size_t len) {
  struct iovec iov = {.iov_base = (void *)pkt, .iov_len = len};
  int rv = t2s_tun_fd_writev(u->fd, &iov, 1);
  if (rv == 0) {
    u->cnt.tx_packets++;
  } else {
    u->cnt.tx_errors++;
  }
  return rv;
}

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
  u->fail_mode = T2S_TUN_URING_FAIL_NONE;
  u->warena = malloc(URING_WARENA);
  u->rarena = malloc(2 * u->rslot * u->rslots);
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
  fail_from_env(u);
  return u;
}

void t2s_tun_uring_free(t2s_tun_uring *u) {
  if (!u) {
    return;
  }
  if (!u->plain) {
    io_uring_queue_exit(&u->ring);
  }
  free(u->warena);
  free(u->rarena);
  free(u);
}

/* Takes every completion waiting: writes are counted, reads' results filed by slot. A write
 * that failed is tried once more as a plain write: if that succeeds, io_uring is at fault
 * (write_broke: the caller falls back); if not, the device refused the packet (counted). */
static void reap(t2s_tun_uring *u) {
  struct io_uring_cqe *cqe;
  unsigned head, n = 0;
  io_uring_for_each_cqe(&u->ring, head, cqe) {
    if (cqe->user_data & URING_READ_TAG) {
      u->rres[(uint32_t)cqe->user_data] = cqe->res;
    } else if (cqe->user_data < URING_MAX_WRITES && !u->wq[cqe->user_data].done) {
      uring_write *w = &u->wq[cqe->user_data];
      w->done = true;
      if (cqe->res >= 0) {
        u->cnt.tx_packets++;
      } else if (plain_send(u, u->warena + w->off, w->len) == 0 && !u->write_broke) {
        u->write_broke = -cqe->res;
      }
    }
    n++;
  }
  io_uring_cq_advance(&u->ring, n);
}

/* io_uring failed after setup (what, err): the ring is dropped and every packet from now on
 * is a read or a write of its own. Writes queued and not completed are written now, in order
 * (a refused one is counted); reads already completed stay to be returned, reads not submitted
 * were never made (their packets wait in the device). Logged once, as a warning. */
static void fall_back(t2s_tun_uring *u, const char *what, int err) {
  if (u->plain) {
    return;
  }
  reap(u);
  for (unsigned i = 0; i < u->wqueued; i++) {
    if (!u->wq[i].done) {
      u->wq[i].done = true;
      (void)plain_send(u, u->warena + u->wq[i].off, u->wq[i].len);
    }
  }
  u->wqueued = 0;
  u->wused = 0;
  io_uring_queue_exit(&u->ring);
  u->plain = true;
  u->cnt.fallbacks++;
  free(u->warena);
  u->warena = NULL;
  T2S_WARN("TUN I/O falls back to plain read/write: io_uring %s failed: %s", what, strerror(err));
}

/* Submits what is prepared and waits until `wait` requests completed (TUN reads and writes
 * complete during the submission: the wait returns at once). Bounded: a signal is retried a
 * few times. A submission that fails or leaves requests behind falls back to plain I/O. */
static void submit_wait(t2s_tun_uring *u, unsigned wait) {
  int rv = -EINTR;
  for (int tries = 0; tries < 4 && rv == -EINTR; tries++) {
    if (failing(u, T2S_TUN_URING_FAIL_SUBMIT)) {
      rv = -EOPNOTSUPP; /* the test hook: as io_uring_enter refusing the lot */
    } else {
      rv = io_uring_submit_and_wait(&u->ring, wait);
    }
    u->cnt.enters++;
    wait = io_uring_cq_ready(&u->ring) >= wait ? 0 : wait; /* a retry only waits */
  }
  if (rv < 0 || io_uring_sq_ready(&u->ring) > 0) {
    fall_back(u, "submission", rv < 0 ? -rv : EAGAIN);
    return;
  }
  reap(u);
  if (u->write_broke) {
    fall_back(u, "write", u->write_broke);
  }
}

int t2s_tun_uring_flush(t2s_tun_uring *u) {
  if (u->plain || u->wqueued == 0) {
    return 0;
  }
  submit_wait(u, u->wqueued);
  u->wqueued = 0;
  u->wused = 0;
  return 0;
}

int t2s_tun_uring_send(t2s_tun_uring *u, const uint8_t *pkt, size_t len) {
  if (len > URING_WARENA) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (!u->plain && (u->wused + len > URING_WARENA || u->wqueued == URING_MAX_WRITES)) {
    (void)t2s_tun_uring_flush(u);
  }
  if (u->plain) {
    return plain_send(u, pkt, len);
  }
  struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
  if (!sqe) {
    return T2S_ERR_WOULDBLOCK; /* not reached: the queue has room for URING_MAX_WRITES */
  }
  uint8_t *dst = u->warena + u->wused;
  memcpy(dst, pkt, len);
  io_uring_prep_write(sqe, u->fd, dst, (unsigned)len, 0);
  if (failing(u, T2S_TUN_URING_FAIL_WRITES)) {
    sqe->rw_flags = URING_BAD_RW_FLAG; /* the test hook: the kernel fails it (EOPNOTSUPP) */
  }
  sqe->user_data = u->wqueued;
  u->wq[u->wqueued] = (uring_write){.off = (uint32_t)u->wused, .len = (uint32_t)len};
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
static void read_batch(t2s_tun_uring *u) {
  unsigned k = u->rk;
  u->rhalf = 1 - u->lent; /* the packet returned last stays where it is */
  for (unsigned i = 0; i < k; i++) {
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (!sqe) {
      k = i;
      break;
    }
    io_uring_prep_read(sqe, u->fd, rslot_at(u, u->rhalf, i), (unsigned)u->rslot, 0);
    /* io_uring ignores O_NONBLOCK on a pollable file: without RWF_NOWAIT a read of an empty
     * TUN would wait for a packet instead of failing with EAGAIN. */
    sqe->rw_flags = RWF_NOWAIT;
    if (failing(u, T2S_TUN_URING_FAIL_READS)) {
      sqe->rw_flags |= URING_BAD_RW_FLAG; /* the test hook: the kernel fails it (EOPNOTSUPP) */
    }
    sqe->user_data = URING_READ_TAG | i;
    u->rres[i] = -EAGAIN;
  }
  submit_wait(u, k + u->wqueued);
  u->wqueued = 0;
  u->wused = 0;
  u->rn = k;
  u->rpos = 0;
  u->drained = false;
  if (u->plain) {
    return; /* what completed is returned; the rest is read plainly */
  }
  unsigned got = 0;
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
}

t2s_ssize t2s_tun_uring_recv_ref(t2s_tun_uring *u, const uint8_t **ppkt) {
  for (int batches = 0; batches < 2; batches++) {
    while (u->rpos < u->rn) {
      unsigned i = u->rpos++;
      if (u->rres[i] >= 0) {
        *ppkt = rslot_at(u, u->rhalf, i);
        u->lent = u->rhalf;
        u->cnt.rx_packets++;
        return u->rres[i];
      }
    }
    if (u->rerr) {
      /* A read failed: if a plain read works (a packet, or the device is empty), io_uring is
       * at fault and the TUN goes on without it; else the device's error is reported. */
      int err = u->rerr;
      u->rerr = 0;
      u->drained = false;
      t2s_ssize n = plain_recv(u, ppkt);
      if (n >= 0 || n == T2S_ERR_WOULDBLOCK) {
        fall_back(u, "read", err);
      }
      return n;
    }
    if (u->plain) {
      return plain_recv(u, ppkt);
    }
    if (u->drained) {
      u->drained = false; /* the next recv reads again */
      return T2S_ERR_WOULDBLOCK;
    }
    read_batch(u);
  }
  return T2S_ERR_WOULDBLOCK;
}

t2s_ssize t2s_tun_uring_recv(t2s_tun_uring *u, uint8_t *buf, size_t buflen) {
  const uint8_t *pkt;
  t2s_ssize n = t2s_tun_uring_recv_ref(u, &pkt);
  if (n > 0) {
    n = (t2s_ssize)T2S_MIN((size_t)n, buflen);
    memcpy(buf, pkt, (size_t)n);
  }
  return n;
}

void t2s_tun_uring_get_counters(const t2s_tun_uring *u, t2s_tun_uring_counters *c) {
  *c = u->cnt;
}

void t2s_tun_uring_test_fail(t2s_tun_uring *u, t2s_tun_uring_fail mode, uint64_t after_enters) {
  u->fail_mode = mode;
  u->fail_after = after_enters;
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

t2s_ssize t2s_tun_uring_recv_ref(t2s_tun_uring *u, const uint8_t **ppkt) {
  (void)u;
  (void)ppkt;
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

void t2s_tun_uring_test_fail(t2s_tun_uring *u, t2s_tun_uring_fail mode, uint64_t after_enters) {
  (void)u;
  (void)mode;
  (void)after_enters;
}

#endif
