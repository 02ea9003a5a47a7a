/*
 * proxy_resolve.c: proxy names resolved on threads of their own (see proxy_resolve.h).
 *
 * Each lookup is a job on a detached thread. Jobs and the resolver share a mailbox (a mutex,
 * the answers not yet taken, an eventfd that wakes the loop, a reference count): a job that
 * ends after the resolver is gone frees itself, and the last reference frees the mailbox.
 * Stale answers (a lookup abandoned by a newer one for the same slot, or timed out) carry an
 * old generation number and are dropped on the loop.
 */
#include "proxy_resolve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

typedef struct job job;

typedef struct mailbox {
  pthread_mutex_t mu;
  pthread_cond_t cv; /* t2s_proxy_resolve_bounded waits on it */
  int refs;          /* the owner (resolver or bounded wait) and each running job */
  int efd;           /* written when an answer is queued; -1: none (the bounded wait) */
  bool closed;       /* the owner wants no more answers */
  int running;       /* jobs blocked in getaddrinfo */
  job *done;         /* answers not yet taken, newest first */
} mailbox;

struct job {
  mailbox *mb;
  size_t slot;
  uint64_t gen;
  char host[256];
  uint16_t port;
  int err;
  t2s_addr addr;
  char why[96];
  job *next;
};

typedef struct slot_ref { /* a slot's timer argument */
  t2s_proxy_resolver *r;
  size_t slot;
} slot_ref;

struct t2s_proxy_resolver {
  mailbox *mb;
  slot_ref ref[T2S_RESOLVE_SLOTS];
  struct event *ev; /* the eventfd */
  struct event *timer[T2S_RESOLVE_SLOTS];
  uint64_t gen[T2S_RESOLVE_SLOTS];
  bool busy[T2S_RESOLVE_SLOTS];
  t2s_proxy_resolved_cb cb;
  void *arg;
};

bool t2s_proxy_host_is_literal(const char *host) {
  uint8_t buf[16];
  return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* ---------------- the lookup (on its thread) ---------------- */

static void lookup(job *j) {
  memset(&j->addr, 0, sizeof(j->addr));
  j->addr.port = j->port;
  j->why[0] = 0;
  if (inet_pton(AF_INET, j->host, j->addr.ip) == 1) {
    j->addr.family = T2S_AF_INET;
    j->err = 0;
    return;
  }
  if (inet_pton(AF_INET6, j->host, j->addr.ip) == 1) {
    j->addr.family = T2S_AF_INET6;
    j->err = 0;
    return;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  int rv = getaddrinfo(j->host, NULL, &hints, &res);
  if (rv != 0) {
    snprintf(j->why, sizeof(j->why), "%s", rv == EAI_SYSTEM ? strerror(errno) : gai_strerror(rv));
    j->err = rv == EAI_MEMORY ? T2S_ERR_NOMEM : T2S_ERR_NOT_FOUND;
    return;
  }
  j->err = T2S_ERR_NOT_FOUND;
  snprintf(j->why, sizeof(j->why), "no IPv4 or IPv6 address");
  for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      j->addr.family = T2S_AF_INET;
      memcpy(j->addr.ip, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
    } else if (ai->ai_family == AF_INET6) {
      j->addr.family = T2S_AF_INET6;
      memcpy(j->addr.ip, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
    } else {
      continue;
    }
    j->err = 0;
    j->why[0] = 0;
    break;
  }
  freeaddrinfo(res);
}

/* ---------------- the mailbox ---------------- */

static mailbox *mb_new(int efd) {
  mailbox *mb = calloc(1, sizeof(*mb));
  if (mb == NULL) {
    return NULL;
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&mb->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&mb->mu, NULL);
  mb->refs = 1;
  mb->efd = efd;
  return mb;
}

static void free_jobs(job *j) {
  while (j != NULL) { /* bounded by the jobs ever queued */
    job *next = j->next;
    free(j);
    j = next;
  }
}

/* Drops one reference (the caller's); the last frees the mailbox. */
static void mb_release(mailbox *mb) {
  pthread_mutex_lock(&mb->mu);
  bool last = --mb->refs == 0;
  pthread_mutex_unlock(&mb->mu);
  if (!last) {
    return;
  }
  free_jobs(mb->done);
  if (mb->efd >= 0) {
    close(mb->efd);
  }
  pthread_cond_destroy(&mb->cv);
  pthread_mutex_destroy(&mb->mu);
  free(mb);
}

static void *job_main(void *arg) {
  job *j = arg;
  mailbox *mb = j->mb;
  lookup(j);
  pthread_mutex_lock(&mb->mu);
  mb->running--;
  if (!mb->closed) {
    j->next = mb->done;
    mb->done = j;
    j = NULL;
    if (mb->efd >= 0) {
      uint64_t one = 1;
      ssize_t n = write(mb->efd, &one, sizeof(one));
      (void)n; /* the counter cannot overflow here; a full one still wakes the loop */
    }
    pthread_cond_broadcast(&mb->cv);
  }
  pthread_mutex_unlock(&mb->mu);
  free(j);
  mb_release(mb);
  return NULL;
}

/* Starts j on a detached thread with every signal blocked (the loop's thread takes them). */
static int spawn(mailbox *mb, job *j) {
  pthread_mutex_lock(&mb->mu);
  if (mb->running >= T2S_RESOLVE_THREADS_MAX) {
    pthread_mutex_unlock(&mb->mu);
    return T2S_ERR_LIMIT;
  }
  mb->running++;
  mb->refs++;
  pthread_mutex_unlock(&mb->mu);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_t t;
  int rv = pthread_create(&t, &attr, job_main, j);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (rv != 0) {
    pthread_mutex_lock(&mb->mu);
    mb->running--;
    mb->refs--; /* the owner still holds one: never the last */
    pthread_mutex_unlock(&mb->mu);
    return T2S_ERR_NOMEM;
  }
  return 0;
}

static job *job_new(mailbox *mb, size_t slot, uint64_t gen, const char *host, uint16_t port) {
  if (strlen(host) >= sizeof(((job *)0)->host)) {
    return NULL;
  }
  job *j = calloc(1, sizeof(*j));
  if (j == NULL) {
    return NULL;
  }
  j->mb = mb;
  j->slot = slot;
  j->gen = gen;
  j->port = port;
  snprintf(j->host, sizeof(j->host), "%s", host);
  return j;
}

/* ---------------- on the loop ---------------- */

static void on_answers(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  t2s_proxy_resolver *r = arg;
  uint64_t v;
  ssize_t n = read(fd, &v, sizeof(v));
  (void)n;
  pthread_mutex_lock(&r->mb->mu);
  job *list = r->mb->done;
  r->mb->done = NULL;
  pthread_mutex_unlock(&r->mb->mu);
  /* Oldest first. */
  job *rev = NULL;
  while (list != NULL) {
    job *next = list->next;
    list->next = rev;
    rev = list;
    list = next;
  }
  for (job *j = rev; j != NULL;) {
    job *next = j->next;
    size_t s = j->slot;
    if (s < T2S_RESOLVE_SLOTS && r->busy[s] && r->gen[s] == j->gen) {
      r->busy[s] = false;
      evtimer_del(r->timer[s]);
      r->cb(r->arg, s, j->err, j->err == 0 ? &j->addr : NULL, j->why);
    }
    free(j);
    j = next;
  }
}

static void on_timeout(evutil_socket_t fd, short what, void *arg);

int t2s_proxy_resolver_new(t2s_proxy_resolver **pr, struct event_base *base,
                           t2s_proxy_resolved_cb cb, void *arg) {
  *pr = NULL;
  t2s_proxy_resolver *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    return T2S_ERR_NOMEM;
  }
  r->cb = cb;
  r->arg = arg;
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    free(r);
    return T2S_ERR_INTERNAL;
  }
  r->mb = mb_new(efd);
  if (r->mb == NULL) {
    close(efd);
    free(r);
    return T2S_ERR_NOMEM;
  }
  r->ev = event_new(base, efd, EV_READ | EV_PERSIST, on_answers, r);
  bool ok = r->ev != NULL && event_add(r->ev, NULL) == 0;
  for (size_t i = 0; ok && i < T2S_RESOLVE_SLOTS; i++) {
    r->ref[i] = (slot_ref){.r = r, .slot = i};
    r->timer[i] = evtimer_new(base, on_timeout, &r->ref[i]);
    ok = r->timer[i] != NULL;
  }
  if (!ok) {
    t2s_proxy_resolver_del(r);
    return T2S_ERR_NOMEM;
  }
  *pr = r;
  return 0;
}

static void on_timeout(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  const slot_ref *ref = arg;
  t2s_proxy_resolver *r = ref->r;
  size_t s = ref->slot;
  if (r->busy[s]) {
    r->busy[s] = false;
    r->gen[s]++; /* its late answer is dropped */
    r->cb(r->arg, s, T2S_ERR_TIMEOUT, NULL, "no answer in time");
  }
}

int t2s_proxy_resolver_start(t2s_proxy_resolver *r, size_t slot, const char *host, uint16_t port,
                             t2s_tstamp timeout_ns) {
  if (r == NULL || slot >= T2S_RESOLVE_SLOTS || host == NULL || timeout_ns == 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  uint64_t gen = r->gen[slot] + 1;
  job *j = job_new(r->mb, slot, gen, host, port);
  if (j == NULL) {
    return T2S_ERR_NOMEM;
  }
  int rv = spawn(r->mb, j);
  if (rv != 0) {
    free(j);
    return rv;
  }
  r->gen[slot] = gen; /* a lookup still out for the slot is abandoned */
  r->busy[slot] = true;
  struct timeval tv = {.tv_sec = (time_t)(timeout_ns / T2S_SECONDS),
                       .tv_usec = (suseconds_t)(timeout_ns % T2S_SECONDS / 1000)};
  evtimer_add(r->timer[slot], &tv);
  return 0;
}

bool t2s_proxy_resolver_busy(const t2s_proxy_resolver *r, size_t slot) {
  return r != NULL && slot < T2S_RESOLVE_SLOTS && r->busy[slot];
}

void t2s_proxy_resolver_del(t2s_proxy_resolver *r) {
  if (r == NULL) {
    return;
  }
  for (size_t i = 0; i < T2S_RESOLVE_SLOTS; i++) {
    if (r->timer[i]) {
      event_free(r->timer[i]);
    }
  }
  if (r->ev) {
    event_free(r->ev);
  }
  pthread_mutex_lock(&r->mb->mu);
  r->mb->closed = true; /* no job writes the eventfd from now on */
  pthread_mutex_unlock(&r->mb->mu);
  mb_release(r->mb);
  free(r);
}

/* ---------------- at start ---------------- */

int t2s_proxy_resolve_bounded(const char *host, uint16_t port, t2s_addr *out, t2s_tstamp timeout_ns,
                              char *why, size_t whylen) {
  if (whylen > 0) {
    why[0] = 0;
  }
  mailbox *mb = mb_new(-1);
  if (mb == NULL) {
    snprintf(why, whylen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  job *j = job_new(mb, 0, 0, host, port);
  int rv = j == NULL ? T2S_ERR_NOMEM : spawn(mb, j);
  if (rv != 0) {
    free(j);
    mb_release(mb);
    snprintf(why, whylen, "cannot start a lookup: %s", t2s_strerror(rv));
    return rv;
  }
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  uint64_t ns = (uint64_t)until.tv_nsec + timeout_ns;
  until.tv_sec += (time_t)(ns / T2S_SECONDS);
  until.tv_nsec = (long)(ns % T2S_SECONDS);
  pthread_mutex_lock(&mb->mu);
  /* Bounded: each wait ends at `until` at the latest. */
  while (mb->done == NULL) {
    if (pthread_cond_timedwait(&mb->cv, &mb->mu, &until) == ETIMEDOUT) {
      break;
    }
  }
  job *d = mb->done;
  mb->done = NULL;
  mb->closed = true;
  pthread_mutex_unlock(&mb->mu);
  if (d == NULL) {
    snprintf(why, whylen, "no answer within %.1f s", (double)timeout_ns / 1e9);
    rv = T2S_ERR_TIMEOUT;
  } else {
    rv = d->err;
    if (rv == 0) {
      *out = d->addr;
    } else {
      snprintf(why, whylen, "%s", d->why);
    }
    free(d);
  }
  mb_release(mb);
  return rv;
}

void t2s_proxy_resolve_at_start(const char *host, uint16_t port, t2s_addr *out) {
  char why[128];
  int rv = t2s_proxy_resolve_bounded(host, port, out, 2 * T2S_SECONDS, why, sizeof(why));
  if (rv == 0) {
    if (!t2s_proxy_host_is_literal(host)) {
      char buf[64];
      T2S_INFO("--proxy: %s resolved to %s", host, t2s_addr_format(out, false, buf, sizeof(buf)));
    }
    return;
  }
  memset(out, 0, sizeof(*out));
  out->port = port;
  T2S_WARN("--proxy: cannot resolve '%s' (%s): starting anyway; new flows are refused at once "
           "until it resolves (retried with backoff)",
           host, why);
}
