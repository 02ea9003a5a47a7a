/*
 * relay.c: the "plain user-space relay" ceiling of the network benchmark (bench/net/run.py).
 *
 *   relay LISTEN_ADDR LISTEN_PORT PROXY_ADDR PROXY_PORT TARGET_ADDR TARGET_PORT
 *
 * Accepts TCP connections on LISTEN_ADDR:LISTEN_PORT; for each one opens a TCP connection to
 * the SOCKS5 proxy, does the no-auth greeting and one CONNECT to TARGET (IPv4 or IPv6
 * literal), then copies bytes both ways until both sides are done. One thread, epoll, level
 * triggered, non-blocking sockets, one 64 KiB buffer per direction (allocated when the
 * connection is accepted, freed when it ends). No TUN, no TCP stack: the practical ceiling of
 * any tun2socks on the same path. Same socket options as tun2sock's upstream (TCP_NODELAY).
 * Runs until SIGTERM/SIGINT.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ 65536
#define MAX_EVENTS 64

enum phase { CONNECTING, GREETING, REQUEST, RELAY };

struct dir {
  uint8_t *buf;
  size_t off, len; /* bytes buf[off..off+len) wait to be written */
  bool eof;        /* the reading side gave EOF */
  bool shut;       /* we half-closed the writing side */
};

struct conn;
struct end {
  int fd;
  struct conn *c;
  uint32_t events; /* registered epoll events */
};

struct conn {
  struct end a, b;   /* a: the accepted client; b: the proxy */
  struct dir ab, ba; /* a -> b and b -> a */
  enum phase phase;
  bool dead;         /* ended: freed after the current batch of events */
  struct conn *next; /* graveyard link */
  uint8_t hs[32];    /* SOCKS5 reply bytes */
  size_t hslen;
};

static int ep;
static struct sockaddr_storage proxy, target;
static socklen_t proxylen;
static volatile sig_atomic_t stop;
static struct conn *graveyard;

static void on_signal(int sig) {
  (void)sig;
  stop = 1;
}

static int parse_addr(const char *host, const char *port, struct sockaddr_storage *ss,
                      socklen_t *plen) {
  memset(ss, 0, sizeof(*ss));
  struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)atoi(port));
    *plen = sizeof(*s4);
    return 0;
  }
  if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)atoi(port));
    *plen = sizeof(*s6);
    return 0;
  }
  return -1;
}

static void set_events(struct end *e, uint32_t ev) {
  if (ev == e->events) {
    return;
  }
  struct epoll_event ee = {.events = ev, .data.ptr = e};
  epoll_ctl(ep, e->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, e->fd, &ee);
  e->events = ev;
}

/* Ends c: closes both sockets now; the memory goes when the batch of events is done (another
 * event of the batch may still point at c). */
static void conn_end(struct conn *c) {
  close(c->a.fd);
  close(c->b.fd);
  c->dead = true;
  c->next = graveyard;
  graveyard = c;
}

static void bury(void) {
  while (graveyard) {
    struct conn *c = graveyard;
    graveyard = c->next;
    free(c->ab.buf);
    free(c->ba.buf);
    free(c);
  }
}

/* Registers the events each end needs now. */
static void update(struct conn *c) {
  if (c->phase != RELAY) {
    set_events(&c->a, 0 | EPOLLRDHUP);
    set_events(&c->b, c->phase == CONNECTING ? EPOLLOUT : EPOLLIN);
    return;
  }
  uint32_t ea = 0, eb = 0;
  if (!c->ab.eof && c->ab.len == 0) {
    ea |= EPOLLIN;
  }
  if (!c->ba.eof && c->ba.len == 0) {
    eb |= EPOLLIN;
  }
  if (c->ab.len) {
    eb |= EPOLLOUT;
  }
  if (c->ba.len) {
    ea |= EPOLLOUT;
  }
  set_events(&c->a, ea ? ea : EPOLLRDHUP);
  set_events(&c->b, eb ? eb : EPOLLRDHUP);
}

/* Moves bytes from src to dst through d. Returns -1 when the connection must end. */
static int pump(struct dir *d, int src, int dst) {
  for (int i = 0; i < 4; i++) {
    if (d->len == 0 && !d->eof) {
      ssize_t n = recv(src, d->buf, BUFSZ, MSG_DONTWAIT);
      if (n > 0) {
        d->off = 0;
        d->len = (size_t)n;
      } else if (n == 0) {
        d->eof = true;
      } else if (errno == EAGAIN || errno == EINTR) {
        return 0;
      } else {
        return -1;
      }
    }
    if (d->len) {
      ssize_t n = send(dst, d->buf + d->off, d->len, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0) {
        return errno == EAGAIN || errno == EINTR ? 0 : -1;
      }
      d->off += (size_t)n;
      d->len -= (size_t)n;
      if (d->len) {
        return 0;
      }
    }
    if (d->eof) {
      if (!d->shut) {
        shutdown(dst, SHUT_WR);
        d->shut = true;
      }
      return 0;
    }
  }
  return 0;
}

static int socks_step(struct conn *c) {
  if (c->phase == CONNECTING) {
    int err = 0;
    socklen_t l = sizeof(err);
    getsockopt(c->b.fd, SOL_SOCKET, SO_ERROR, &err, &l);
    if (err) {
      return -1;
    }
    static const uint8_t hello[3] = {5, 1, 0};
    if (send(c->b.fd, hello, 3, MSG_NOSIGNAL) != 3) {
      return -1;
    }
    c->phase = GREETING;
    c->hslen = 0;
    return 0;
  }
  ssize_t n = recv(c->b.fd, c->hs + c->hslen, sizeof(c->hs) - c->hslen, MSG_DONTWAIT);
  if (n <= 0) {
    return n < 0 && errno == EAGAIN ? 0 : -1;
  }
  c->hslen += (size_t)n;
  if (c->phase == GREETING) {
    if (c->hslen < 2) {
      return 0;
    }
    if (c->hs[0] != 5 || c->hs[1] != 0) {
      return -1;
    }
    uint8_t req[22] = {5, 1, 0};
    size_t len;
    if (target.ss_family == AF_INET) {
      struct sockaddr_in *s4 = (struct sockaddr_in *)&target;
      req[3] = 1;
      memcpy(req + 4, &s4->sin_addr, 4);
      memcpy(req + 8, &s4->sin_port, 2);
      len = 10;
    } else {
      struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&target;
      req[3] = 4;
      memcpy(req + 4, &s6->sin6_addr, 16);
      memcpy(req + 20, &s6->sin6_port, 2);
      len = 22;
    }
    if (send(c->b.fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
      return -1;
    }
    c->phase = REQUEST;
    c->hslen = 0;
    return 0;
  }
  /* REQUEST: VER REP RSV ATYP BND.ADDR BND.PORT */
  if (c->hslen < 5) {
    return 0;
  }
  size_t need = c->hs[3] == 1 ? 10 : c->hs[3] == 4 ? 22 : 7u + c->hs[4];
  if (c->hslen < need) {
    return 0;
  }
  if (c->hs[1] != 0 || c->hslen != need) {
    return -1; /* refused, or the destination spoke before we relayed (not in this bench) */
  }
  c->phase = RELAY;
  return 0;
}

static void handle(struct end *e, uint32_t ev) {
  struct conn *c = e->c;
  if (c->dead) {
    return;
  }
  int rv = 0;
  if (c->phase != RELAY) {
    if (e == &c->a) {
      if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        rv = -1;
      }
    } else {
      rv = socks_step(c);
    }
  }
  if (rv == 0 && c->phase == RELAY) {
    rv = pump(&c->ab, c->a.fd, c->b.fd);
    if (rv == 0) {
      rv = pump(&c->ba, c->b.fd, c->a.fd);
    }
    if (rv == 0 && c->ab.shut && c->ba.shut) {
      rv = -1; /* both directions finished */
    }
    if (rv == 0 && (ev & EPOLLERR)) {
      rv = -1;
    }
  }
  if (rv < 0) {
    conn_end(c);
    return;
  }
  update(c);
}

static void accept_all(int lfd) {
  for (int i = 0; i < 64; i++) {
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    int pfd = socket(proxy.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (!c || pfd < 0 || !(c->ab.buf = malloc(BUFSZ)) || !(c->ba.buf = malloc(BUFSZ))) {
      close(fd);
      if (pfd >= 0) {
        close(pfd);
      }
      if (c) {
        free(c->ab.buf);
        free(c);
      }
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(pfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->a = (struct end){.fd = fd, .c = c};
    c->b = (struct end){.fd = pfd, .c = c};
    c->phase = CONNECTING;
    if (connect(pfd, (struct sockaddr *)&proxy, proxylen) < 0 && errno != EINPROGRESS) {
      conn_end(c);
      continue;
    }
    update(c);
  }
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr,
            "usage: %s LISTEN_ADDR LISTEN_PORT PROXY_ADDR PROXY_PORT TARGET_ADDR "
            "TARGET_PORT\n",
            argv[0]);
    return 2;
  }
  struct sockaddr_storage lss;
  socklen_t llen, tlen;
  if (parse_addr(argv[1], argv[2], &lss, &llen) ||
      parse_addr(argv[3], argv[4], &proxy, &proxylen) ||
      parse_addr(argv[5], argv[6], &target, &tlen)) {
    fprintf(stderr, "relay: addresses must be IPv4 or IPv6 literals\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  int lfd = socket(lss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (lfd < 0 || bind(lfd, (struct sockaddr *)&lss, llen) < 0 || listen(lfd, 4096) < 0) {
    perror("relay: listen");
    return 1;
  }
  ep = epoll_create1(EPOLL_CLOEXEC);
  struct end lend = {.fd = lfd};
  struct epoll_event ee = {.events = EPOLLIN, .data.ptr = &lend};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ee);
  fprintf(stderr, "relay: listening on %s:%s\n", argv[1], argv[2]);
  struct epoll_event evs[MAX_EVENTS];
  while (!stop) {
    int n = epoll_wait(ep, evs, MAX_EVENTS, 1000);
    for (int i = 0; i < n; i++) {
      struct end *e = evs[i].data.ptr;
      if (e == &lend) {
        accept_all(lfd);
      } else {
        handle(e, evs[i].events);
      }
    }
    bury();
  }
  return 0;
}
