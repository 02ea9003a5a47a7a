/* upstream_sock.c: non-blocking upstream sockets on libevent (see upstream_sock.h). */
#include "upstream_sock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock_linux.h"
#include "idmap.h"
#include "log.h"
#include "mptcp_linux.h"

#define UPSTREAM_ERRNOS(X)                                                                         \
  X(ECONNREFUSED)                                                                                  \
  X(ENETUNREACH)                                                                                   \
  X(EHOSTUNREACH)                                                                                  \
  X(ETIMEDOUT)                                                                                     \
  X(ECONNRESET)                                                                                    \
  X(ECONNABORTED)                                                                                  \
  X(EPIPE)                                                                                         \
  X(ENETDOWN)                                                                                      \
  X(EHOSTDOWN)                                                                                     \
  X(EADDRNOTAVAIL)                                                                                 \
  X(EADDRINUSE)                                                                                    \
  X(ENODEV)                                                                                        \
  X(EACCES)                                                                                        \
  X(EPERM)                                                                                         \
  X(EMFILE)                                                                                        \
  X(ENFILE)                                                                                        \
  X(ENOBUFS)                                                                                       \
  X(ENOMEM)                                                                                        \
  X(EMSGSIZE)

static const struct {
  int err;
  const char *name;
} error_kinds[] = {
#define X(e) {e, #e},
    UPSTREAM_ERRNOS(X)
#undef X
        {0, "other"},
};
#define N_ERROR_KINDS T2S_ARRAY_LEN(error_kinds)

/* Bytes read from one socket per callback at most, and reads per callback. */
#define READ_CHUNK 65536
#define READS_PER_CALLBACK 8
#define DGRAMS_PER_CALLBACK 32
#define DGRAMS_PER_CALL 4 /* recvmmsg: a short count means drained, no read to see EAGAIN */

typedef enum usock_kind { USOCK_STREAM, USOCK_DGRAM } usock_kind;

typedef struct usock {
  uint64_t id;
  usock_kind kind;
  int fd;
  struct event *rev; /* EV_READ | EV_PERSIST */
  struct event *wev; /* EV_WRITE | EV_PERSIST: connect completion and writability */
  t2s_upstream_sock *up;
  bool connecting;
  bool paused;     /* the engine asked (stream_pause_read) */
  bool starved;    /* the engine had no room: on the starved list */
  bool eof;        /* EOF seen: no more reads */
  bool want_write; /* a short write: report writable */
  bool shut_after_connect;
  bool reading;                 /* rev is added */
  bool writing;                 /* wev is added */
  bool dead;                    /* forgotten: on the graveyard, freed at the next poll */
  bool mptcp;                   /* opened with IPPROTO_MPTCP (--mptcp) */
  uint8_t mp;                   /* t2s_stream_mp last told to the engine (0: not yet) */
  uint32_t subflows;            /* the subflow count last told */
  struct usock *lnext, **lprev; /* starved list or graveyard */
} usock;

typedef t2s_idmap usock_map; /* id -> usock (idmap.h) */

struct t2s_upstream_sock {
  struct event_base *base;
  t2s_upstream_sock_config cfg;
  t2s_engine *engine;
  t2s_upstream_sink sink; /* where completions go: the engine, or a recorder in between */
  void *sink_arg;
  void (*after)(void *arg);
  void *after_arg;
  usock_map streams, dgrams;
  usock *starved;   /* streams waiting for room in the engine */
  usock *graveyard; /* closed, freed at the next poll */
  uint64_t errors[N_ERROR_KINDS];
  bool warned_mark;                  /* the SO_MARK privilege warning was logged */
  int (*protect)(void *arg, int fd); /* the embedder's protect (NULL: none) */
  void *protect_arg;
  uint64_t sockets_opened, protect_calls, protect_failures;
  struct event *mptcp_timer; /* --mptcp: re-reads the subflow counts once a second */
  bool warned_mptcp;         /* the kernel's refusal of IPPROTO_MPTCP was logged */
  bool told_fallback;        /* the first fallback was logged at info */
  uint64_t mptcp_opened, mptcp_refused;
  uint8_t *dbuf; /* DGRAMS_PER_CALL datagrams of READ_CHUNK bytes, at the first datagram read */
  uint8_t buf[READ_CHUNK];
};

/* ---------------- small helpers ---------------- */

size_t t2s_upstream_sock_error_kinds(void) {
  return N_ERROR_KINDS;
}

const char *t2s_upstream_sock_error_name(size_t i) {
  return i < N_ERROR_KINDS ? error_kinds[i].name : "unknown";
}

uint64_t t2s_upstream_sock_error_count(const t2s_upstream_sock *up, size_t i) {
  return i < N_ERROR_KINDS ? up->errors[i] : 0;
}

void t2s_upstream_sock_counts(const t2s_upstream_sock *up, uint64_t *pstreams, uint64_t *pdgrams) {
  *pstreams = t2s_idmap_len(&up->streams);
  *pdgrams = t2s_idmap_len(&up->dgrams);
}

void t2s_upstream_sock_set_protect(t2s_upstream_sock *up, int (*protect)(void *arg, int fd),
                                   void *arg) {
  up->protect = protect;
  up->protect_arg = arg;
}

void t2s_upstream_sock_protect_counts(const t2s_upstream_sock *up, uint64_t *popened,
                                      uint64_t *pcalls, uint64_t *pfailures) {
  *popened = up->sockets_opened;
  *pcalls = up->protect_calls;
  *pfailures = up->protect_failures;
}

int t2s_upstream_map_errno(int err) {
  switch (err) {
  case ECONNREFUSED:
    return T2S_ERR_REFUSED;
  case ENETUNREACH:
  case EHOSTUNREACH:
  case ENETDOWN:
  case EHOSTDOWN:
  case EADDRNOTAVAIL:
  case ENODEV:
  case EACCES:
  case EPERM:
    return T2S_ERR_UNREACHABLE;
  case ETIMEDOUT:
    return T2S_ERR_TIMEOUT;
  case ECONNRESET:
  case ECONNABORTED:
  case EPIPE:
    return T2S_ERR_RESET;
  case EMFILE:
  case ENFILE:
  case ENOBUFS:
  case ENOMEM:
  case EADDRINUSE:
  case EMSGSIZE:
    return T2S_ERR_LIMIT;
  default:
    return T2S_ERR_CLOSED;
  }
}

/* Counts err by name and returns its T2S_ERR_* mapping. */
static int count_error(t2s_upstream_sock *up, int err) {
  size_t i;
  for (i = 0; i + 1 < N_ERROR_KINDS; i++) {
    if (error_kinds[i].err == err) {
      break;
    }
  }
  up->errors[i]++;
  return t2s_upstream_map_errno(err);
}

/* The map that holds usocks of kind. */
static usock_map *map_of(t2s_upstream_sock *up, usock_kind kind) {
  return kind == USOCK_STREAM ? &up->streams : &up->dgrams;
}

static usock *map_find(const usock_map *m, uint64_t id) {
  return t2s_idmap_get(m, id);
}

static int map_insert(usock_map *m, usock *s) {
  return t2s_idmap_put(m, s->id, s);
}

static void map_remove(usock_map *m, usock *s) {
  t2s_idmap_del(m, s->id);
}

static void list_push(usock **head, usock *s) {
  s->lnext = *head;
  if (*head) {
    (*head)->lprev = &s->lnext;
  }
  *head = s;
  s->lprev = head;
}

static void list_unlink(usock *s) {
  if (!s->lprev) {
    return;
  }
  *s->lprev = s->lnext;
  if (s->lnext) {
    s->lnext->lprev = s->lprev;
  }
  s->lnext = NULL;
  s->lprev = NULL;
}

/* Adds (on) or deletes ev, when *padded says it is not so already. */
static void set_event(struct event *ev, bool *padded, bool on) {
  if (on == *padded) {
    return;
  }
  if (on) {
    event_add(ev, NULL);
  } else {
    event_del(ev);
  }
  *padded = on;
}

static void set_reading(usock *s, bool on) {
  set_event(s->rev, &s->reading, on);
}

static void set_writing(usock *s, bool on) {
  set_event(s->wev, &s->writing, on);
}

static void update_read(usock *s) {
  set_reading(s, !s->dead && !s->connecting && !s->paused && !s->starved && !s->eof);
}

/* Forgets s: out of its map and lists, fd closed (with RST when abort), events stopped. The
 * memory stays on the graveyard until the next poll, so a callback still holding s is safe. */
static void forget(usock *s, bool abort) {
  if (s->dead) {
    return;
  }
  t2s_upstream_sock *up = s->up;
  map_remove(map_of(up, s->kind), s);
  list_unlink(s);
  set_reading(s, false);
  set_writing(s, false);
  if (s->fd >= 0) {
    if (abort && s->kind == USOCK_STREAM) {
      struct linger lg = {.l_onoff = 1, .l_linger = 0};
      setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    close(s->fd);
    s->fd = -1;
  }
  s->dead = true;
  list_push(&up->graveyard, s);
}

static void free_usock(usock *s) {
  if (s->rev) {
    event_free(s->rev);
  }
  if (s->wev) {
    event_free(s->wev);
  }
  free(s);
}

static void after(t2s_upstream_sock *up) {
  if (up->after) {
    up->after(up->after_arg);
  }
}

/* ---------------- socket setup ---------------- */

int t2s_upstream_sock_sockaddr(const t2s_addr *a, struct sockaddr_storage *ss, socklen_t *plen) {
  memset(ss, 0, sizeof(*ss));
  if (a->family == T2S_AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(a->port);
    memcpy(&sin->sin_addr, a->ip, 4);
    *plen = sizeof(*sin);
    return 0;
  }
  if (a->family == T2S_AF_INET6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(a->port);
    memcpy(&sin6->sin6_addr, a->ip, 16);
    *plen = sizeof(*sin6);
    return 0;
  }
  return T2S_ERR_INVALID_ARGUMENT;
}

/* Applies the egress (mark, device, source) to fd. Returns 0 or the errno of the call that
 * failed (the caller counts it by name and maps it, count_error). */
static int apply_egress(int fd, const t2s_addr *dst, const t2s_egress *eg, bool mptcp) {
  if (!eg) {
    return 0;
  }
  if (eg->mark) {
    int mark = (int)eg->mark;
    if (setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) < 0) {
      return errno;
    }
  }
  if (mptcp) {
    /* An MPTCP connection must not be pinned to one interface or address: its subflows leave
     * through every path the kernel's endpoints allow (the mark above reaches them all). */
    return 0;
  }
  if (eg->ifindex) {
    int idx = (int)eg->ifindex;
    if (setsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &idx, sizeof(idx)) < 0) {
      if (errno != ENOPROTOOPT || !eg->ifname[0]) {
        return errno;
      }
      /* Kernels before 5.0: by name. */
      if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, eg->ifname, (socklen_t)strlen(eg->ifname)) <
          0) {
        return errno;
      }
    }
  }
  if (eg->src.family && eg->src.family == dst->family) {
    t2s_addr src = eg->src;
    src.port = 0;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    if (t2s_upstream_sock_sockaddr(&src, &ss, &len) != 0) {
      return EAFNOSUPPORT;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
      return errno;
    }
  }
  return 0;
}

/* Counts fd as opened and prepares it like every upstream socket: the egress (apply_egress),
 * then the embedder's protect (Android VpnService.protect), after socket() and before connect()
 * or the first send. Returns 0 or the T2S_ERR_* that refuses the socket (the caller closes it). */
static int prepare_fd(t2s_upstream_sock *up, int fd, const t2s_addr *dst, const t2s_egress *eg,
                      bool mptcp, const char *what) {
  up->sockets_opened++;
  int err = apply_egress(fd, dst, eg, mptcp);
  if (err != 0) {
    if (err == EPERM && eg->mark && !up->warned_mark) {
      up->warned_mark = true;
      T2S_WARN("cannot set SO_MARK %u on upstream sockets: CAP_NET_ADMIN needed", eg->mark);
    }
    return count_error(up, err);
  }
  if (up->protect) {
    up->protect_calls++;
    if (up->protect(up->protect_arg, fd) != 0) {
      up->protect_failures++;
      T2S_DEBUG("%s socket %d: the host's protect failed: refused", what, fd);
      return t2s_upstream_map_errno(EPERM);
    }
  }
  return 0;
}

int t2s_upstream_sock_prepare(t2s_upstream_sock *up, int fd, const t2s_addr *dst,
                              const t2s_egress *eg) {
  return prepare_fd(up, fd, dst, eg, false, "proxy probe");
}

/* A read failed with errno_value: counts it, forgets the socket and tells the engine (whose
 * stream or datagram socket it was). s is freed. */
static void fail_io(usock *s, int errno_value) {
  t2s_upstream_sock *up = s->up;
  int err = count_error(up, errno_value);
  uint64_t id = s->id;
  usock_kind kind = s->kind;
  forget(s, false);
  if (kind == USOCK_STREAM) {
    up->sink.stream_error(up->sink_arg, up->engine, id, err, t2s_clock_monotonic_ns());
  } else {
    up->sink.dgram_error(up->sink_arg, up->engine, id, err, t2s_clock_monotonic_ns());
  }
}

static void stream_read_cb(evutil_socket_t fd, short what, void *arg);
static void stream_write_cb(evutil_socket_t fd, short what, void *arg);

/* ---------------- Multipath TCP (--mptcp) ---------------- */

/* Asks stream s what it is now and tells the engine when that changed (the first time
 * always). */
static void mptcp_report(usock *s) {
  t2s_upstream_sock *up = s->up;
  t2s_mptcp_status st;
  if (t2s_mptcp_status_get(s->fd, &st) != 0) {
    return;
  }
  if (s->mp == (uint8_t)st.mp && s->subflows == st.subflows) {
    return;
  }
  if (st.mp == T2S_STREAM_FALLBACK && !up->told_fallback) {
    up->told_fallback = true;
    T2S_INFO("--mptcp: an upstream stream fell back to TCP: the proxy (or a middlebox) does not "
             "speak MPTCP; such flows are reset by network changes as without --mptcp");
  }
  s->mp = (uint8_t)st.mp;
  s->subflows = st.subflows;
  t2s_mptcp_log_status(s->id, &st);
  t2s_tstamp now = t2s_clock_monotonic_ns();
  if (up->sink.stream_multipath) {
    up->sink.stream_multipath(up->sink_arg, up->engine, s->id, st.mp, st.subflows, now);
  } else {
    t2s_engine_stream_multipath(up->engine, s->id, st.mp, st.subflows, now);
  }
}

/* Once a second with --mptcp: the subflow counts of the multipath streams. Bounded by the
 * streams open. */
static void mptcp_timer_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_upstream_sock *up = arg;
  size_t pos = 0;
  void *v;
  bool told = false;
  while (t2s_idmap_next(&up->streams, &pos, NULL, &v)) {
    usock *s = v;
    if (s->mptcp && !s->dead && !s->connecting && s->mp == T2S_STREAM_MULTIPATH) {
      uint32_t before = s->subflows;
      mptcp_report(s);
      told |= s->subflows != before;
    }
  }
  if (told) {
    after(up);
  }
}
static void dgram_read_cb(evutil_socket_t fd, short what, void *arg);

/* Creates the socket and its events for a new usock. Returns it or NULL with *perr set. */
static usock *usock_new(t2s_upstream_sock *up, uint64_t id, usock_kind kind, const t2s_addr *dst,
                        const t2s_egress *eg, int *perr) {
  usock *s = calloc(1, sizeof(*s));
  if (!s) {
    *perr = T2S_ERR_LIMIT;
    return NULL;
  }
  s->id = id;
  s->kind = kind;
  s->up = up;
  int af = dst->family == T2S_AF_INET ? AF_INET : AF_INET6;
  s->fd = -1;
  if (kind == USOCK_STREAM && up->cfg.mptcp) {
    s->fd = t2s_mptcp_socket(af);
    if (s->fd >= 0) {
      s->mptcp = true;
      up->mptcp_opened++;
    } else if (t2s_mptcp_unsupported(errno)) {
      up->mptcp_refused++;
      if (!up->warned_mptcp) {
        up->warned_mptcp = true;
        T2S_WARN("--mptcp: the kernel refuses IPPROTO_MPTCP (%s; net.mptcp.enabled=0 or no "
                 "CONFIG_MPTCP): upstream streams use plain TCP",
                 strerror(errno));
      }
    } else {
      *perr = count_error(up, errno);
      free(s);
      return NULL;
    }
  }
  if (s->fd < 0) {
    s->fd = socket(
        af, (kind == USOCK_STREAM ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (s->fd < 0) {
    *perr = count_error(up, errno);
    free(s);
    return NULL;
  }
  int err = prepare_fd(up, s->fd, dst, eg, s->mptcp,
                       kind == USOCK_STREAM ? "upstream stream" : "upstream datagram");
  if (err != 0) {
    *perr = err;
    close(s->fd);
    free(s);
    return NULL;
  }
  if (kind == USOCK_STREAM) {
    const t2s_upstream_sock_config *c = &up->cfg;
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (c->keepalive_idle_s) {
      int idle = (int)c->keepalive_idle_s, intvl = (int)c->keepalive_intvl_s,
          cnt = (int)c->keepalive_cnt;
      setsockopt(s->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
      setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
      if (intvl) {
        setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
      }
      if (cnt) {
        setsockopt(s->fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
      }
    }
    if (c->user_timeout_ms) {
      unsigned ut = c->user_timeout_ms;
      setsockopt(s->fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
    }
    s->rev = event_new(up->base, s->fd, EV_READ | EV_PERSIST, stream_read_cb, s);
    s->wev = event_new(up->base, s->fd, EV_WRITE | EV_PERSIST, stream_write_cb, s);
  } else {
    s->rev = event_new(up->base, s->fd, EV_READ | EV_PERSIST, dgram_read_cb, s);
  }
  if (!s->rev || (kind == USOCK_STREAM && !s->wev)) {
    *perr = T2S_ERR_LIMIT;
    close(s->fd);
    free_usock(s);
    return NULL;
  }
  return s;
}

/* ---------------- stream callbacks (from libevent) ---------------- */

static void stream_read_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  usock *s = arg;
  t2s_upstream_sock *up = s->up;
  for (int i = 0; i < READS_PER_CALLBACK && !s->dead && s->reading; i++) {
    size_t space = t2s_engine_stream_recv_space(up->engine, s->id);
    if (space == 0) {
      /* No room in the engine: stop reading until poll sees room again. */
      s->starved = true;
      list_push(&up->starved, s);
      update_read(s);
      break;
    }
    size_t want = T2S_MIN(space, sizeof(up->buf));
    /* Into the flow's send ring in place when it has the room in one piece (4 KiB, or all that
     * is wanted): no copy through up->buf. A wrapping ring gives its start at the next read. */
    uint8_t *dst = NULL;
    size_t room = t2s_engine_stream_recv_buf(up->engine, s->id, want, &dst);
    if (dst == NULL || room < T2S_MIN(want, 4096u)) {
      dst = up->buf;
    } else {
      want = room;
    }
    ssize_t n = recv(s->fd, dst, want, MSG_DONTWAIT);
    if (n > 0) {
      size_t took = up->sink.stream_recv(up->sink_arg, up->engine, s->id, dst, (size_t)n,
                                         t2s_clock_monotonic_ns());
      if (took < (size_t)n && !s->dead) {
        T2S_WARN("upstream stream %llu: engine took %zu of %zd bytes within its room",
                 (unsigned long long)s->id, took, n);
      }
      if ((size_t)n < want) {
        break; /* the socket is drained */
      }
    } else if (n == 0) {
      s->eof = true;
      update_read(s);
      up->sink.stream_eof(up->sink_arg, up->engine, s->id, t2s_clock_monotonic_ns());
      break;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else {
      fail_io(s, errno);
      break;
    }
  }
  after(up);
}

static void stream_write_cb(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  usock *s = arg;
  t2s_upstream_sock *up = s->up;
  if (s->dead) {
    return;
  }
  if (s->connecting) {
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) {
      soerr = errno;
    }
    if (soerr == EINPROGRESS || soerr == EALREADY) {
      return; /* spurious wakeup */
    }
    s->connecting = false;
    uint64_t id = s->id;
    if (soerr != 0) {
      int err = count_error(up, soerr);
      forget(s, false);
      up->sink.stream_opened(up->sink_arg, up->engine, id, err, t2s_clock_monotonic_ns());
      after(up);
      return;
    }
    set_writing(s, s->want_write);
    if (s->shut_after_connect) {
      shutdown(s->fd, SHUT_WR);
    }
    update_read(s);
    up->sink.stream_opened(up->sink_arg, up->engine, id, 0, t2s_clock_monotonic_ns());
    if (!s->dead && s->mptcp) {
      mptcp_report(s);
    }
    if (!s->dead && s->want_write) {
      s->want_write = false;
      set_writing(s, false);
      up->sink.stream_writable(up->sink_arg, up->engine, id, t2s_clock_monotonic_ns());
    }
    after(up);
    return;
  }
  s->want_write = false;
  set_writing(s, false);
  up->sink.stream_writable(up->sink_arg, up->engine, s->id, t2s_clock_monotonic_ns());
  after(up);
}

/* ---------------- datagram callback ---------------- */

static void dgram_read_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  usock *s = arg;
  t2s_upstream_sock *up = s->up;
  if (!up->dbuf) {
    up->dbuf = malloc((size_t)DGRAMS_PER_CALL * READ_CHUNK); /* untouched pages stay virtual */
  }
  /* Several datagrams per system call (recvmmsg); a call that returns fewer than it could
   * take drained the socket, so a lone datagram (a ping-pong) costs one call, not two. */
  unsigned per_call = up->dbuf ? DGRAMS_PER_CALL : 1;
  uint8_t *base = up->dbuf ? up->dbuf : up->buf;
  for (int i = 0; i < DGRAMS_PER_CALLBACK / DGRAMS_PER_CALL && !s->dead; i++) {
    struct mmsghdr mm[DGRAMS_PER_CALL];
    struct iovec iov[DGRAMS_PER_CALL];
    memset(mm, 0, sizeof(mm));
    for (unsigned k = 0; k < per_call; k++) {
      iov[k].iov_base = base + (size_t)k * READ_CHUNK;
      iov[k].iov_len = READ_CHUNK;
      mm[k].msg_hdr.msg_iov = &iov[k];
      mm[k].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(s->fd, mm, per_call, MSG_DONTWAIT, NULL);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        fail_io(s, errno);
      }
      break;
    }
    t2s_tstamp now = t2s_clock_monotonic_ns();
    for (int k = 0; k < n && !s->dead; k++) {
      up->sink.dgram_recv(up->sink_arg, up->engine, s->id, (const uint8_t *)iov[k].iov_base,
                          mm[k].msg_len, now);
    }
    if ((unsigned)n < per_call) {
      break;
    }
  }
  after(up);
}

/* ---------------- ops (called by the engine: never call it back) ---------------- */

/* Opens usock id of kind toward dst: checks that id is new, makes the socket, files it in the
 * map of its kind and connects it. A stream then waits for the connect's completion (reported
 * from the loop, also when it connected at once); a datagram socket, connected so that the
 * kernel delivers only the relay's datagrams and reports ICMP errors, starts reading.
 * Returns 0, or an error with nothing left behind. */
static int usock_open(t2s_upstream_sock *up, uint64_t id, usock_kind kind, const t2s_addr *dst,
                      const t2s_egress *egress) {
  usock_map *m = map_of(up, kind);
  if (id == 0 || map_find(m, id)) {
    return T2S_ERR_EXISTS;
  }
  struct sockaddr_storage ss;
  socklen_t sslen;
  if (t2s_upstream_sock_sockaddr(dst, &ss, &sslen) != 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  int err = 0;
  usock *s = usock_new(up, id, kind, dst, egress, &err);
  if (!s) {
    return err;
  }
  if (map_insert(m, s) != 0) {
    close(s->fd);
    free_usock(s);
    return T2S_ERR_LIMIT;
  }
  s->connecting = kind == USOCK_STREAM;
  int rv = connect(s->fd, (struct sockaddr *)&ss, sslen);
  if (rv < 0 && !(s->connecting && errno == EINPROGRESS)) {
    err = count_error(up, errno);
    forget(s, false);
    return err;
  }
  if (kind == USOCK_DGRAM) {
    set_reading(s, true);
    return 0;
  }
  set_writing(s, true);
  if (rv == 0) {
    event_active(s->wev, EV_WRITE, 0); /* connected at once: report from the loop */
  }
  return 0;
}

static int op_stream_open(void *self, uint64_t id, const t2s_addr *dst, const t2s_egress *egress) {
  return usock_open(self, id, USOCK_STREAM, dst, egress);
}

static t2s_ssize op_stream_write(void *self, uint64_t id, const uint8_t *data, size_t len) {
  t2s_upstream_sock *up = self;
  usock *s = map_find(&up->streams, id);
  if (!s) {
    return T2S_ERR_CLOSED;
  }
  if (s->connecting) {
    s->want_write = true;
    return 0;
  }
  if (len == 0) {
    return 0;
  }
  for (int tries = 0; tries < 4; tries++) {
    ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      if ((size_t)n < len) {
        s->want_write = true;
        set_writing(s, true);
      }
      return (t2s_ssize)n;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      s->want_write = true;
      set_writing(s, true);
      return 0;
    }
    return count_error(up, errno);
  }
  return 0;
}

static int op_stream_shutdown_write(void *self, uint64_t id) {
  t2s_upstream_sock *up = self;
  usock *s = map_find(&up->streams, id);
  if (!s) {
    return T2S_ERR_CLOSED;
  }
  if (s->connecting) {
    s->shut_after_connect = true;
    return 0;
  }
  if (shutdown(s->fd, SHUT_WR) < 0 && errno != ENOTCONN) {
    return count_error(up, errno);
  }
  return 0;
}

static void op_stream_pause_read(void *self, uint64_t id, bool paused) {
  t2s_upstream_sock *up = self;
  usock *s = map_find(&up->streams, id);
  if (!s) {
    return;
  }
  s->paused = paused;
  if (!paused && s->starved) {
    s->starved = false; /* the read callback finds out again if there is still no room */
    list_unlink(s);
  }
  update_read(s);
}

static void op_stream_close(void *self, uint64_t id, bool abort) {
  t2s_upstream_sock *up = self;
  usock *s = map_find(&up->streams, id);
  if (s) {
    forget(s, abort);
  }
}

static int op_dgram_open(void *self, uint64_t id, const t2s_addr *relay, const t2s_egress *egress) {
  return usock_open(self, id, USOCK_DGRAM, relay, egress);
}

static int op_dgram_send(void *self, uint64_t id, const uint8_t *data, size_t len) {
  t2s_upstream_sock *up = self;
  usock *s = map_find(&up->dgrams, id);
  if (!s) {
    return T2S_ERR_CLOSED;
  }
  for (int tries = 0; tries < 4; tries++) {
    ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      return 0;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      return T2S_ERR_WOULDBLOCK;
    }
    return count_error(up, errno);
  }
  return T2S_ERR_WOULDBLOCK;
}

static void op_dgram_close(void *self, uint64_t id) {
  t2s_upstream_sock *up = self;
  usock *s = map_find(&up->dgrams, id);
  if (s) {
    forget(s, false);
  }
}

static const t2s_upstream_ops upstream_ops = {
    .stream_open = op_stream_open,
    .stream_write = op_stream_write,
    .stream_shutdown_write = op_stream_shutdown_write,
    .stream_pause_read = op_stream_pause_read,
    .stream_close = op_stream_close,
    .dgram_open = op_dgram_open,
    .dgram_send = op_dgram_send,
    .dgram_close = op_dgram_close,
};

/* ---------------- lifecycle ---------------- */

void t2s_upstream_sock_config_default(t2s_upstream_sock_config *cfg) {
  cfg->keepalive_idle_s = 30;
  cfg->keepalive_intvl_s = 10;
  cfg->keepalive_cnt = 3;
  cfg->user_timeout_ms = 30000;
}

int t2s_upstream_sock_new(t2s_upstream_sock **pup, struct event_base *base,
                          const t2s_upstream_sock_config *cfg) {
  t2s_upstream_sock *up = calloc(1, sizeof(*up));
  if (!up) {
    return T2S_ERR_NOMEM;
  }
  up->base = base;
  t2s_upstream_sock_set_sink(up, NULL, NULL);
  if (cfg) {
    up->cfg = *cfg;
  } else {
    t2s_upstream_sock_config_default(&up->cfg);
  }
  if (up->cfg.mptcp) {
    up->mptcp_timer = event_new(base, -1, EV_PERSIST, mptcp_timer_cb, up);
    if (!up->mptcp_timer) {
      free(up);
      return T2S_ERR_NOMEM;
    }
    struct timeval tv = {1, 0};
    event_add(up->mptcp_timer, &tv);
  }
  *pup = up;
  return 0;
}

void t2s_upstream_sock_mptcp_counts(const t2s_upstream_sock *up, uint64_t *pmptcp,
                                    uint64_t *prefused) {
  *pmptcp = up->mptcp_opened;
  *prefused = up->mptcp_refused;
}

void t2s_upstream_sock_ops(t2s_upstream_sock *up, t2s_upstream *out) {
  out->ops = &upstream_ops;
  out->self = up;
}

void t2s_upstream_sock_set_engine(t2s_upstream_sock *up, t2s_engine *engine,
                                  void (*after_cb)(void *arg), void *arg) {
  up->engine = engine;
  up->after = after_cb;
  up->after_arg = arg;
}

/* ---------------- the sink: completions to the engine ---------------- */

static void direct_stream_opened(void *arg, t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  (void)arg;
  t2s_engine_stream_opened(e, id, err, now);
}

static size_t direct_stream_recv(void *arg, t2s_engine *e, uint64_t id, const uint8_t *data,
                                 size_t len, t2s_tstamp now) {
  (void)arg;
  return t2s_engine_stream_recv(e, id, data, len, now);
}

static void direct_stream_eof(void *arg, t2s_engine *e, uint64_t id, t2s_tstamp now) {
  (void)arg;
  t2s_engine_stream_eof(e, id, now);
}

static void direct_stream_writable(void *arg, t2s_engine *e, uint64_t id, t2s_tstamp now) {
  (void)arg;
  t2s_engine_stream_writable(e, id, now);
}

static void direct_stream_error(void *arg, t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  (void)arg;
  t2s_engine_stream_error(e, id, err, now);
}

static void direct_dgram_recv(void *arg, t2s_engine *e, uint64_t id, const uint8_t *data,
                              size_t len, t2s_tstamp now) {
  (void)arg;
  t2s_engine_dgram_recv(e, id, data, len, now);
}

static void direct_dgram_error(void *arg, t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  (void)arg;
  t2s_engine_dgram_error(e, id, err, now);
}

static const t2s_upstream_sink direct_sink = {
    .stream_opened = direct_stream_opened,
    .stream_recv = direct_stream_recv,
    .stream_eof = direct_stream_eof,
    .stream_writable = direct_stream_writable,
    .stream_error = direct_stream_error,
    .dgram_recv = direct_dgram_recv,
    .dgram_error = direct_dgram_error,
};

void t2s_upstream_sock_set_sink(t2s_upstream_sock *up, const t2s_upstream_sink *sink, void *arg) {
  up->sink = sink ? *sink : direct_sink;
  up->sink_arg = sink ? arg : NULL;
}

void t2s_upstream_sock_poll(t2s_upstream_sock *up) {
  usock *s = up->starved;
  while (s) {
    usock *next = s->lnext;
    if (t2s_engine_stream_recv_space(up->engine, s->id) > 0) {
      s->starved = false;
      list_unlink(s);
      update_read(s);
    }
    s = next;
  }
  while (up->graveyard) {
    usock *g = up->graveyard;
    list_unlink(g);
    free_usock(g);
  }
}

static void close_all(t2s_upstream_sock *up, usock_map *m) {
  size_t pos = 0;
  void *s;
  while (t2s_idmap_next(m, &pos, NULL, &s)) { /* forget() deletes: never rehashes */
    forget(s, true);
  }
  t2s_idmap_free(m);
  (void)up;
}

void t2s_upstream_sock_del(t2s_upstream_sock *up) {
  if (!up) {
    return;
  }
  if (up->mptcp_timer) {
    event_free(up->mptcp_timer);
  }
  close_all(up, &up->streams);
  close_all(up, &up->dgrams);
  while (up->graveyard) {
    usock *g = up->graveyard;
    list_unlink(g);
    free_usock(g);
  }
  free(up->dbuf);
  free(up);
}
