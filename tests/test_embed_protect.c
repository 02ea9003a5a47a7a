/* test_embed_protect.c: the embedder's protect (tun2sock.h API 2) reaches every socket the
 * library opens toward the network, the proxy probes (src/os/proxy_probe.c) included: each probe
 * socket is prepared by the upstream connector (t2s_upstream_sock_prepare), so protect sees it
 * after socket() and before connect(), it is counted with the upstream sockets, and a refusal
 * fails the probe without a connect. */
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proxy_probe.h"
#include "test_util.h"
#include "upstream_sock.h"

typedef struct fake_protect {
  int calls;
  int result;       /* what protect returns */
  bool unconnected; /* every fd it saw was a socket not yet connected */
  int probe_err;    /* the probe's result */
  bool probe_done;
} fake_protect;

static int on_protect(void *arg, int fd) {
  fake_protect *f = arg;
  f->calls++;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof(ss);
  int type = 0;
  socklen_t tl = sizeof(type);
  bool is_sock = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 && type == SOCK_STREAM;
  bool connected = getpeername(fd, (struct sockaddr *)&ss, &sl) == 0 || errno != ENOTCONN;
  if (!is_sock || connected) {
    f->unconnected = false;
  }
  return f->result;
}

static void on_probe_done(void *arg, size_t index, int err) {
  fake_protect *f = arg;
  (void)index;
  f->probe_err = err;
  f->probe_done = true;
}

/* A listening loopback TCP socket (non-blocking) and its address. */
static int listen_loopback(t2s_addr *a) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof(sin);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sl) != 0 || listen(fd, 4) != 0 ||
      getsockname(fd, (struct sockaddr *)&sin, &sl) != 0) {
    return -1;
  }
  char text[32];
  snprintf(text, sizeof(text), "127.0.0.1:%u", ntohs(sin.sin_port));
  return t2s_addr_parse(text, a) == 0 ? fd : -1;
}

/* One probe of a loopback listener that never answers the greeting (or of nothing). */
static void run_probe(int protect_result, bool with_upstream, fake_protect *f, uint64_t counts[3],
                      bool *pconnected) {
  memset(f, 0, sizeof(*f));
  f->result = protect_result;
  f->unconnected = true;
  struct event_base *base = event_base_new();
  CU_ASSERT_PTR_NOT_NULL_FATAL(base);
  t2s_upstream_sock_config ucfg;
  t2s_upstream_sock_config_default(&ucfg);
  t2s_upstream_sock *up = NULL;
  CU_ASSERT_EQUAL_FATAL(t2s_upstream_sock_new(&up, base, &ucfg), 0);
  t2s_upstream_sock_set_protect(up, on_protect, f);
  t2s_proxy_prober *p = NULL;
  CU_ASSERT_EQUAL_FATAL(
      t2s_proxy_prober_new(&p, base, NULL, 0, 300 * T2S_MILLISECONDS, on_probe_done, f), 0);
  if (with_upstream) {
    t2s_proxy_prober_set_upstream(p, up);
  }
  t2s_addr a;
  int lfd = listen_loopback(&a);
  CU_ASSERT_FATAL(lfd >= 0);
  t2s_egress eg;
  memset(&eg, 0, sizeof(eg));
  CU_ASSERT_EQUAL(t2s_proxy_probe_start(p, 0, &a, &eg, NULL, NULL), 0);
  for (int i = 0; i < 200 && !f->probe_done; i++) {
    event_base_loop(base, EVLOOP_ONCE);
  }
  CU_ASSERT(f->probe_done);
  int cfd = accept(lfd, NULL, NULL); /* did the probe reach the listener? */
  *pconnected = cfd >= 0;
  if (cfd >= 0) {
    close(cfd);
  }
  close(lfd);
  t2s_upstream_sock_protect_counts(up, &counts[0], &counts[1], &counts[2]);
  t2s_proxy_prober_del(p);
  t2s_upstream_sock_del(up);
  event_base_free(base);
}

static void test_probe_socket_goes_through_protect(void) {
  fake_protect f;
  uint64_t c[3];
  bool connected;
  run_probe(0, true, &f, c, &connected);
  CU_ASSERT_EQUAL(f.calls, 1);
  CU_ASSERT(f.unconnected); /* before connect() */
  CU_ASSERT_EQUAL(c[0], 1); /* counted with the upstream sockets */
  CU_ASSERT_EQUAL(c[1], 1);
  CU_ASSERT_EQUAL(c[2], 0);
  CU_ASSERT(connected);                          /* protect passed: the probe connected */
  CU_ASSERT_EQUAL(f.probe_err, T2S_ERR_TIMEOUT); /* the listener never answered */
}

static void test_probe_refused_by_protect_fails_without_connect(void) {
  fake_protect f;
  uint64_t c[3];
  bool connected;
  run_probe(-1, true, &f, c, &connected);
  CU_ASSERT_EQUAL(f.calls, 1);
  CU_ASSERT_EQUAL(c[0], 1);
  CU_ASSERT_EQUAL(c[1], 1);
  CU_ASSERT_EQUAL(c[2], 1);
  CU_ASSERT(!connected);
  CU_ASSERT_NOT_EQUAL(f.probe_err, 0);
  CU_ASSERT_NOT_EQUAL(f.probe_err, T2S_ERR_TIMEOUT); /* failed at once */
}

static void test_probe_without_connector_is_unprotected(void) {
  fake_protect f;
  uint64_t c[3];
  bool connected;
  run_probe(-1, false, &f, c, &connected);
  CU_ASSERT_EQUAL(f.calls, 0);
  CU_ASSERT_EQUAL(c[0], 0);
  CU_ASSERT(connected);
}

int t2s_test_register_embed_protect(void) {
  CU_pSuite s = CU_add_suite("embed_protect", NULL, NULL);
  if (!s) {
    return -1;
  }
  if (!CU_add_test(s, "a proxy probe's socket goes through protect before connect",
                   test_probe_socket_goes_through_protect) ||
      !CU_add_test(s, "a probe refused by protect fails at once, without a connect",
                   test_probe_refused_by_protect_fails_without_connect) ||
      !CU_add_test(s, "a prober without a connector calls no protect",
                   test_probe_without_connector_is_unprotected)) {
    return -1;
  }
  return 0;
}
