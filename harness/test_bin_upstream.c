/*
 * test_bin_upstream.c: drives the upstream connector (src/os/upstream_sock.c) against real
 * loopback sockets with a stub engine, checking what the engine is told: connect completion,
 * refusal, backpressure (never more than recv_space, reads stop at 0 and resume), half-close,
 * EOF, abort (RST), datagrams both ways, ICMP-refused datagrams, and that no completion
 * arrives while an op is running (iface.h's re-entrancy rule). Built and run by
 * test_bin_upstream.py. Exit 0 = all checks passed; each failure prints a line.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upstream_sock.h"

static int failures;
#define CHECK(c)                                                                                   \
  do {                                                                                             \
    if (!(c)) {                                                                                    \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #c);                                 \
      failures++;                                                                                  \
    }                                                                                              \
  } while (0)

/* ---- the stub engine ---- */
static bool in_op;         /* an op of the connector is running */
static int reentered;      /* completions that arrived during an op */
static int opened_err = 1; /* last stream_opened err (1 = none yet) */
static size_t space = 1 << 20;
static size_t max_chunk, total_recv;
static bool eof_seen;
static int stream_err = 1, dgram_err = 1;
static char dgram_buf[256];
static size_t dgram_len;
static int writable_calls;

#define NOTE() (reentered += in_op ? 1 : 0)

void t2s_engine_stream_opened(t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  (void)e, (void)id, (void)now;
  NOTE();
  opened_err = err;
}
size_t t2s_engine_stream_recv_space(const t2s_engine *e, uint64_t id) {
  (void)e, (void)id;
  return space;
}
size_t t2s_engine_stream_recv_buf(t2s_engine *e, uint64_t id, size_t len, uint8_t **pbuf) {
  (void)e, (void)id, (void)len;
  *pbuf = NULL; /* no in-place room: the connector reads into its own buffer */
  return 0;
}
size_t t2s_engine_stream_recv(t2s_engine *e, uint64_t id, const uint8_t *d, size_t len,
                              t2s_tstamp now) {
  (void)e, (void)id, (void)d, (void)now;
  NOTE();
  if (len > space) {
    fprintf(stderr, "FAIL: %zu bytes delivered with room for %zu\n", len, space);
    failures++;
  }
  max_chunk = len > max_chunk ? len : max_chunk;
  total_recv += len;
  space -= len < space ? len : space;
  return len;
}
void t2s_engine_stream_eof(t2s_engine *e, uint64_t id, t2s_tstamp now) {
  (void)e, (void)id, (void)now;
  NOTE();
  eof_seen = true;
}
void t2s_engine_stream_writable(t2s_engine *e, uint64_t id, t2s_tstamp now) {
  (void)e, (void)id, (void)now;
  NOTE();
  writable_calls++;
}
void t2s_engine_stream_error(t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  (void)e, (void)id, (void)now;
  NOTE();
  stream_err = err;
}
void t2s_engine_dgram_recv(t2s_engine *e, uint64_t id, const uint8_t *d, size_t len,
                           t2s_tstamp now) {
  (void)e, (void)id, (void)now;
  NOTE();
  dgram_len = len < sizeof(dgram_buf) ? len : sizeof(dgram_buf);
  memcpy(dgram_buf, d, dgram_len);
}
void t2s_engine_dgram_error(t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  (void)e, (void)id, (void)now;
  NOTE();
  dgram_err = err;
}
/* --mptcp's report (not used here: the connector reports only with --mptcp). */
void t2s_engine_stream_multipath(t2s_engine *e, uint64_t id, t2s_stream_mp mp, uint32_t subflows,
                                 t2s_tstamp now) {
  (void)e, (void)id, (void)mp, (void)subflows, (void)now;
}

/* ---- helpers ---- */
static struct event_base *base;
static t2s_upstream_sock *up;
static t2s_upstream ops;

static void after(void *arg) {
  (void)arg;
  t2s_upstream_sock_poll(up);
}

/* Runs the loop until *flag becomes true or about 2 s pass (bounded). */
static void run_until(bool (*done)(void)) {
  for (int i = 0; i < 200 && !done(); i++) {
    struct timeval tv = {0, 10000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
  }
}

static t2s_addr loopback(uint16_t port) {
  t2s_addr a;
  memset(&a, 0, sizeof(a));
  a.family = T2S_AF_INET;
  a.ip[0] = 127;
  a.ip[3] = 1;
  a.port = port;
  return a;
}

static int listener(int type, uint16_t *pport) {
  int fd = socket(AF_INET, type, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(sin);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sin, len) < 0 ||
      (type == SOCK_STREAM && listen(fd, 4) < 0) ||
      getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
    perror("listener");
    exit(2);
  }
  *pport = ntohs(sin.sin_port);
  return fd;
}

static bool opened(void) {
  return opened_err != 1;
}
static bool got_eof(void) {
  return eof_seen;
}
static bool got_dgram(void) {
  return dgram_len > 0;
}
static bool got_dgram_err(void) {
  return dgram_err != 1;
}

#define OP(call) (in_op = true, call, in_op = false)

int main(void) {
  base = event_base_new();
  t2s_upstream_sock_new(&up, base, NULL);
  t2s_upstream_sock_ops(up, &ops);
  t2s_upstream_sock_set_engine(up, (t2s_engine *)1, after, NULL);
  t2s_egress eg;
  memset(&eg, 0, sizeof(eg));

  /* 1. Connect, then backpressure: 200000 bytes arrive in chunks within the room given. */
  uint16_t port;
  int lfd = listener(SOCK_STREAM, &port);
  t2s_addr dst = loopback(port);
  int rv;
  OP(rv = ops.ops->stream_open(ops.self, 1, &dst, &eg));
  CHECK(rv == 0);
  run_until(opened);
  CHECK(opened_err == 0);
  int sfd = accept(lfd, NULL, NULL);
  CHECK(sfd >= 0);
  static uint8_t big[200000];
  memset(big, 'x', sizeof(big));
  size_t off = 0;
  space = 3000;
  /* Feed the server side in pieces; the engine's room opens 3000 bytes at a time. */
  for (int rounds = 0; rounds < 2000 && total_recv < sizeof(big); rounds++) {
    if (off < sizeof(big)) {
      ssize_t n = send(sfd, big + off, sizeof(big) - off, MSG_DONTWAIT);
      off += n > 0 ? (size_t)n : 0;
    }
    struct timeval tv = {0, 2000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
    if (space == 0) {
      space = 3000; /* the engine consumed: room again (found by poll) */
      t2s_upstream_sock_poll(up);
    }
  }
  CHECK(total_recv == sizeof(big));
  CHECK(max_chunk <= 3000);

  /* 2. Writes and half-close: the server reads what we wrote, then EOF. */
  t2s_ssize w;
  OP(w = ops.ops->stream_write(ops.self, 1, (const uint8_t *)"hello", 5));
  CHECK(w == 5);
  OP(rv = ops.ops->stream_shutdown_write(ops.self, 1));
  CHECK(rv == 0);
  char rbuf[16];
  ssize_t n = recv(sfd, rbuf, sizeof(rbuf), 0);
  CHECK(n == 5 && memcmp(rbuf, "hello", 5) == 0);
  n = recv(sfd, rbuf, sizeof(rbuf), 0);
  CHECK(n == 0);

  /* 3. The server closes: EOF reaches the engine. */
  space = 1 << 20;
  close(sfd);
  run_until(got_eof);
  CHECK(eof_seen);
  OP(ops.ops->stream_close(ops.self, 1, false));

  /* 4. Abort: the server sees a reset. */
  opened_err = 1;
  OP(rv = ops.ops->stream_open(ops.self, 2, &dst, &eg));
  run_until(opened);
  CHECK(opened_err == 0);
  sfd = accept(lfd, NULL, NULL);
  OP(ops.ops->stream_close(ops.self, 2, true));
  n = recv(sfd, rbuf, sizeof(rbuf), 0);
  CHECK(n < 0 && errno == ECONNRESET);
  close(sfd);
  close(lfd);

  /* 5. Refused: nothing listens any more. */
  opened_err = 1;
  OP(rv = ops.ops->stream_open(ops.self, 3, &dst, &eg));
  if (rv == 0) {
    run_until(opened);
    CHECK(opened_err == T2S_ERR_REFUSED);
  } else {
    CHECK(rv == T2S_ERR_REFUSED);
  }
  size_t refused_kind = 0;
  for (size_t i = 0; i < t2s_upstream_sock_error_kinds(); i++) {
    if (strcmp(t2s_upstream_sock_error_name(i), "ECONNREFUSED") == 0) {
      refused_kind = i;
    }
  }
  CHECK(t2s_upstream_sock_error_count(up, refused_kind) == 1);

  /* 6. Datagrams: to a relay and back; then the relay is gone (ICMP port unreachable). */
  uint16_t uport;
  int ufd = listener(SOCK_DGRAM, &uport);
  t2s_addr relay = loopback(uport);
  OP(rv = ops.ops->dgram_open(ops.self, 9, &relay, &eg));
  CHECK(rv == 0);
  OP(rv = ops.ops->dgram_send(ops.self, 9, (const uint8_t *)"ping", 4));
  CHECK(rv == 0);
  struct sockaddr_storage from;
  socklen_t flen = sizeof(from);
  n = recvfrom(ufd, rbuf, sizeof(rbuf), 0, (struct sockaddr *)&from, &flen);
  CHECK(n == 4 && memcmp(rbuf, "ping", 4) == 0);
  sendto(ufd, "pong", 4, 0, (struct sockaddr *)&from, flen);
  run_until(got_dgram);
  CHECK(dgram_len == 4 && memcmp(dgram_buf, "pong", 4) == 0);
  close(ufd);
  OP(rv = ops.ops->dgram_send(ops.self, 9, (const uint8_t *)"ping", 4));
  run_until(got_dgram_err);
  CHECK(dgram_err == T2S_ERR_REFUSED);
  OP(ops.ops->dgram_close(ops.self, 9)); /* already forgotten: a no-op */

  /* 7. Unknown ids are harmless. */
  OP(w = ops.ops->stream_write(ops.self, 77, (const uint8_t *)"x", 1));
  CHECK(w == T2S_ERR_CLOSED);
  OP(ops.ops->stream_close(ops.self, 77, true));
  OP(ops.ops->stream_pause_read(ops.self, 77, true));

  uint64_t ns, nd;
  t2s_upstream_sock_counts(up, &ns, &nd);
  CHECK(ns == 0 && nd == 0);
  CHECK(reentered == 0);
  t2s_upstream_sock_del(up);
  event_base_free(base);
  if (failures == 0) {
    printf("upstream connector: all checks passed\n");
  }
  return failures ? 1 : 0;
}
