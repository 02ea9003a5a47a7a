/*
 * proxy_probe.c: the probe of a proxy (proxy_probe.h, docs/proxies.md). A non-blocking
 * connect from a socket prepared like every upstream one (t2s_upstream_sock_prepare: the
 * egress's mark, interface and source, the embedder's protect), then the SOCKS5 client codec
 * (socks5.h) drives the bytes: without a target the probe is good once the proxy accepted one of
 * our methods (and our credentials, when the exchange gets that far before the request is due);
 * with a target, once the CONNECT reply says "succeeded".
 */
#include "proxy_probe.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "socks5.h"
#include "upstream_sock.h"

#define PROBE_SLOTS 8

typedef struct probe {
  struct t2s_proxy_prober *owner;
  size_t index;
  int fd;
  struct event *ev;
  bool active;
  bool connected;
  int done_err; /* a failure found at once, delivered from the loop */
  t2s_socks5_client socks;
} probe;

struct t2s_proxy_prober {
  struct event_base *base;
  t2s_socks5_host target;
  bool has_target;
  struct timeval timeout;
  t2s_proxy_probe_done cb;
  void *arg;
  t2s_upstream_sock *up; /* prepares each probe's socket (NULL: the egress only) */
  probe slots[PROBE_SLOTS];
};

static void probe_stop(probe *pr) {
  if (pr->ev) {
    event_free(pr->ev);
    pr->ev = NULL;
  }
  if (pr->fd >= 0) {
    close(pr->fd);
    pr->fd = -1;
  }
  pr->active = false;
}

static void probe_finish(probe *pr, int err) {
  t2s_proxy_prober *p = pr->owner;
  size_t index = pr->index;
  probe_stop(pr);
  p->cb(p->arg, index, err);
}

/* Writes what the codec has pending. Returns 0 or an error. */
static int probe_flush(probe *pr) {
  for (int k = 0; k < 4; k++) {
    const uint8_t *data;
    size_t len;
    t2s_socks5_client_pending_output(&pr->socks, &data, &len);
    if (len == 0) {
      return 0;
    }
    ssize_t n = send(pr->fd, data, len, MSG_NOSIGNAL);
    if (n < 0) {
      return errno == EAGAIN ? 0 : t2s_upstream_map_errno(errno);
    }
    t2s_socks5_client_output_consumed(&pr->socks, (size_t)n);
  }
  return 0;
}

static void on_probe_event(evutil_socket_t fd, short what, void *arg) {
  probe *pr = arg;
  (void)fd;
  if (pr->done_err != 0) {
    probe_finish(pr, pr->done_err);
    return;
  }
  if (what & EV_TIMEOUT) {
    probe_finish(pr, T2S_ERR_TIMEOUT);
    return;
  }
  if (!pr->connected) {
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (getsockopt(pr->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) {
      soerr = errno;
    }
    if (soerr != 0) {
      probe_finish(pr, t2s_upstream_map_errno(soerr));
      return;
    }
    pr->connected = true;
    /* From now on wait for the answer only (a writable socket would wake us forever). */
    event_free(pr->ev);
    pr->ev = event_new(pr->owner->base, pr->fd, EV_READ | EV_PERSIST, on_probe_event, pr);
    if (pr->ev == NULL || event_add(pr->ev, &pr->owner->timeout) != 0) {
      probe_finish(pr, T2S_ERR_NOMEM);
      return;
    }
    int rv = probe_flush(pr);
    if (rv != 0) {
      probe_finish(pr, rv);
    }
    return;
  }
  uint8_t buf[512];
  ssize_t n = recv(pr->fd, buf, sizeof(buf), 0);
  if (n < 0) {
    if (errno != EAGAIN && errno != EINTR) {
      probe_finish(pr, t2s_upstream_map_errno(errno));
    }
    return;
  }
  if (n == 0) {
    int err = t2s_socks5_client_eof(&pr->socks);
    probe_finish(pr, err != 0 ? err : T2S_ERR_CLOSED);
    return;
  }
  size_t used = 0;
  int rv = t2s_socks5_client_feed(&pr->socks, buf, (size_t)n, &used);
  if (rv < 0) {
    probe_finish(pr, rv);
    return;
  }
  if (rv == T2S_SOCKS5_DONE) {
    probe_finish(pr, 0);
    return;
  }
  /* NEED_MORE: the method (or the credentials) accepted, the next message due. Without a
   * target the greeting has answered: good. */
  const uint8_t *data;
  size_t len;
  t2s_socks5_client_pending_output(&pr->socks, &data, &len);
  if (!pr->owner->has_target && len > 0 && data[0] == T2S_SOCKS5_VERSION) {
    probe_finish(pr, 0); /* the CONNECT request is due: greeting (and auth) passed */
    return;
  }
  rv = probe_flush(pr);
  if (rv != 0) {
    probe_finish(pr, rv);
  }
}

int t2s_proxy_prober_new(t2s_proxy_prober **pp, struct event_base *base, const char *target_host,
                         uint16_t target_port, uint64_t timeout_ns, t2s_proxy_probe_done cb,
                         void *arg) {
  if (pp == NULL || base == NULL || cb == NULL) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  t2s_proxy_prober *p = calloc(1, sizeof(*p));
  if (p == NULL) {
    return T2S_ERR_NOMEM;
  }
  p->base = base;
  p->cb = cb;
  p->arg = arg;
  p->timeout.tv_sec = (time_t)(timeout_ns / T2S_SECONDS);
  p->timeout.tv_usec = (suseconds_t)(timeout_ns % T2S_SECONDS / 1000);
  if (target_host && target_host[0]) {
    t2s_addr a;
    if (t2s_addr_parse(target_host, &a) == 0) {
      a.port = target_port;
      t2s_socks5_host_from_addr(&p->target, &a);
    } else {
      size_t n = strlen(target_host);
      if (n == 0 || n > 255) {
        free(p);
        return T2S_ERR_INVALID_ARGUMENT;
      }
      memset(&p->target, 0, sizeof(p->target));
      p->target.atyp = T2S_SOCKS5_ATYP_DOMAIN;
      p->target.domainlen = (uint8_t)n;
      memcpy(p->target.domain, target_host, n);
      p->target.addr.port = target_port;
    }
    p->has_target = true;
  } else {
    /* Greeting only: the request that would follow is never sent. */
    t2s_addr a;
    t2s_addr_parse("192.0.2.1:9", &a);
    t2s_socks5_host_from_addr(&p->target, &a);
  }
  for (size_t i = 0; i < PROBE_SLOTS; i++) {
    p->slots[i].owner = p;
    p->slots[i].index = i;
    p->slots[i].fd = -1;
  }
  *pp = p;
  return 0;
}

void t2s_proxy_prober_set_upstream(t2s_proxy_prober *p, t2s_upstream_sock *up) {
  p->up = up;
}

void t2s_proxy_prober_del(t2s_proxy_prober *p) {
  if (p == NULL) {
    return;
  }
  for (size_t i = 0; i < PROBE_SLOTS; i++) {
    probe_stop(&p->slots[i]);
  }
  free(p);
}

/* Without a connector: the mark and the interface (best effort, as before). */
static int apply_egress(int fd, const t2s_egress *eg) {
  if (eg && eg->mark) {
    int mark = (int)eg->mark;
    (void)setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, sizeof(mark));
  }
  if (eg && eg->ifindex) {
    int idx = (int)eg->ifindex;
    (void)setsockopt(fd, SOL_SOCKET, SO_BINDTOIFINDEX, &idx, sizeof(idx));
  }
  return 0;
}

int t2s_proxy_probe_start(t2s_proxy_prober *p, size_t index, const t2s_addr *addr,
                          const t2s_egress *eg, const char *username, const char *password) {
  if (p == NULL || index >= PROBE_SLOTS || addr == NULL) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  probe *pr = &p->slots[index];
  probe_stop(pr);
  pr->connected = false;
  pr->done_err = 0;
  if (t2s_socks5_client_init(&pr->socks, T2S_SOCKS5_CMD_CONNECT, &p->target, username, password,
                             false) != 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  struct sockaddr_storage ss;
  socklen_t sl;
  if (t2s_upstream_sock_sockaddr(addr, &ss, &sl) != 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  pr->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (pr->fd < 0) {
    pr->done_err = t2s_upstream_map_errno(errno);
  } else {
    /* Like every upstream socket (upstream_sock.c): the egress, then the host's protect, counted
     * with theirs; a refusal fails the probe. Without a connector, the egress only. */
    int err = p->up ? t2s_upstream_sock_prepare(p->up, pr->fd, addr, eg) : apply_egress(pr->fd, eg);
    if (err != 0) {
      pr->done_err = err;
    } else if (connect(pr->fd, (struct sockaddr *)&ss, sl) < 0 && errno != EINPROGRESS) {
      pr->done_err = t2s_upstream_map_errno(errno);
    }
  }
  /* A failure found now is delivered from the loop too (the caller is inside the engine). */
  short what = pr->done_err != 0 ? 0 : (short)(EV_WRITE | EV_PERSIST);
  pr->ev = event_new(p->base, pr->done_err != 0 ? -1 : pr->fd, what, on_probe_event, pr);
  if (pr->ev == NULL) {
    probe_stop(pr);
    return T2S_ERR_NOMEM;
  }
  struct timeval zero = {0, 0};
  event_add(pr->ev, pr->done_err != 0 ? &zero : &p->timeout);
  pr->active = true;
  return 0;
}
