/* test_embed_packets.c: packet I/O by callback (src/os/embed_packets.c, tun2sock.h API 4):
 * packets queued from other threads reach the loop whole and in each thread's order, the
 * queue's bounds and counters, the wakeup (the eventfd is readable exactly while packets wait),
 * the output callback; and the whole library through the public API: 4 threads feed ICMP echo
 * requests to tun2sock_input_packet while tun2sock_run() runs on a fifth, and every reply comes
 * back through config.output, with no TUN opened. scripts/tsan-embed runs this suite under
 * ThreadSanitizer. */
#include <dirent.h>
#include <event2/event.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "embed_packets.h"
#include "test_util.h"
#include "tun2sock.h"

#define THREADS 4
#define PER_THREAD 300

/* ---------------- the device ---------------- */

typedef struct drain {
  t2s_device dev;
  size_t n;
  uint32_t next[THREADS]; /* the sequence number expected next from each thread */
  bool ordered, whole;
  uint8_t buf[65536 + 256];
} drain;

static void on_readable(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  drain *d = arg;
  for (int i = 0; i < 64; i++) { /* as the runner's loop: a bounded batch per wakeup */
    t2s_ssize n = d->dev.ops->recv(d->dev.self, d->buf, sizeof(d->buf));
    if (n == T2S_ERR_WOULDBLOCK) {
      return;
    }
    CU_ASSERT_FATAL(n >= 8);
    uint32_t t = d->buf[0], seq = (uint32_t)d->buf[1] << 8 | d->buf[2];
    CU_ASSERT_FATAL(t < THREADS);
    d->ordered = d->ordered && seq == d->next[t];
    d->next[t] = seq + 1;
    for (t2s_ssize k = 3; k < n; k++) {
      d->whole = d->whole && d->buf[k] == (uint8_t)(seq + k);
    }
    d->n++;
  }
}

typedef struct feeder {
  t2s_embed_packets *p;
  uint8_t t;
  unsigned refused; /* queue full: retried */
} feeder;

/* Sends PER_THREAD packets of 8..1407 bytes, retrying while the queue is full (bounded). */
static void *feed(void *arg) {
  feeder *f = arg;
  uint8_t pkt[1500];
  for (uint32_t seq = 0; seq < PER_THREAD; seq++) {
    size_t len = 8 + (seq * 37 + f->t * 101) % 1400;
    pkt[0] = f->t;
    pkt[1] = (uint8_t)(seq >> 8);
    pkt[2] = (uint8_t)seq;
    for (size_t k = 3; k < len; k++) {
      pkt[k] = (uint8_t)(seq + k);
    }
    int rv, tries = 0;
    while ((rv = t2s_embed_packets_input(f->p, pkt, len)) == T2S_ERR_LIMIT && tries++ < 1000000) {
      f->refused++;
      sched_yield();
    }
    CU_ASSERT_EQUAL(rv, 0);
  }
  return NULL;
}

static int no_output(void *arg, const uint8_t *pkt, size_t len) {
  (void)arg;
  (void)pkt;
  (void)len;
  return 0;
}

static void test_packets_from_threads_arrive_whole_in_order(void) {
  struct event_base *base = event_base_new();
  t2s_embed_packets *p = NULL;
  CU_ASSERT_FATAL(t2s_embed_packets_new(&p, 1500, no_output, NULL) == 0);
  static drain d;
  memset(&d, 0, sizeof(d));
  d.ordered = d.whole = true;
  t2s_embed_packets_device(p, &d.dev);
  struct event *ev =
      event_new(base, t2s_embed_packets_fd(p), EV_READ | EV_PERSIST, on_readable, &d);
  CU_ASSERT_FATAL(ev && event_add(ev, NULL) == 0);
  pthread_t th[THREADS];
  feeder f[THREADS];
  for (int i = 0; i < THREADS; i++) {
    f[i] = (feeder){p, (uint8_t)i, 0};
    CU_ASSERT_FATAL(pthread_create(&th[i], NULL, feed, &f[i]) == 0);
  }
  for (int spins = 0; spins < 2000000 && d.n < THREADS * PER_THREAD; spins++) {
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  }
  unsigned refused = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    refused += f[i].refused;
  }
  event_base_loop(base, EVLOOP_NONBLOCK);
  CU_ASSERT_EQUAL(d.n, THREADS * PER_THREAD);
  CU_ASSERT(d.ordered);
  CU_ASSERT(d.whole);
  t2s_embed_packets_counters c;
  t2s_embed_packets_get_counters(p, &c);
  CU_ASSERT_EQUAL(c.queued, THREADS * PER_THREAD);
  CU_ASSERT_EQUAL(c.delivered, THREADS * PER_THREAD);
  CU_ASSERT_EQUAL(c.queue_drops, refused);
  /* Everything read: no wakeup left pending. */
  struct pollfd pfd = {t2s_embed_packets_fd(p), POLLIN, 0};
  CU_ASSERT_EQUAL(poll(&pfd, 1, 0), 0);
  event_free(ev);
  t2s_embed_packets_del(p);
  event_base_free(base);
}

static bool readable(t2s_embed_packets *p) {
  struct pollfd pfd = {t2s_embed_packets_fd(p), POLLIN, 0};
  return poll(&pfd, 1, 0) == 1;
}

static void test_queue_bounds_and_wakeup(void) {
  t2s_embed_packets *p = NULL;
  CU_ASSERT_FATAL(t2s_embed_packets_new(&p, 1280, no_output, NULL) == 0);
  t2s_device dev;
  t2s_embed_packets_device(p, &dev);
  static uint8_t big[T2S_EMBED_PACKET_MAX + 1], buf[65536 + 256];
  memset(big, 0x45, sizeof(big));
  CU_ASSERT(!readable(p));
  CU_ASSERT_EQUAL(dev.ops->recv(dev.self, buf, sizeof(buf)), T2S_ERR_WOULDBLOCK);
  /* T2S_EMBED_QUEUE_PACKETS fit, the next is dropped. */
  for (int i = 0; i < T2S_EMBED_QUEUE_PACKETS; i++) {
    CU_ASSERT_EQUAL(t2s_embed_packets_input(p, big, 40), 0);
  }
  CU_ASSERT(readable(p));
  CU_ASSERT_EQUAL(t2s_embed_packets_input(p, big, 40), T2S_ERR_LIMIT);
  for (int i = 0; i < T2S_EMBED_QUEUE_PACKETS; i++) {
    CU_ASSERT_EQUAL(dev.ops->recv(dev.self, buf, sizeof(buf)), 40);
  }
  CU_ASSERT(readable(p)); /* not yet known to be empty */
  CU_ASSERT_EQUAL(dev.ops->recv(dev.self, buf, sizeof(buf)), T2S_ERR_WOULDBLOCK);
  CU_ASSERT(!readable(p)); /* the wakeups are spent with the queue empty */
  /* T2S_EMBED_QUEUE_BYTES: as many 65535-byte packets as fit, and no more. */
  const int fit = T2S_EMBED_QUEUE_BYTES / T2S_EMBED_PACKET_MAX;
  for (int i = 0; i < fit; i++) {
    CU_ASSERT_EQUAL(t2s_embed_packets_input(p, big, T2S_EMBED_PACKET_MAX), 0);
  }
  CU_ASSERT_EQUAL(t2s_embed_packets_input(p, big, T2S_EMBED_PACKET_MAX), T2S_ERR_LIMIT);
  CU_ASSERT_EQUAL(dev.ops->recv(dev.self, buf, sizeof(buf)), (t2s_ssize)T2S_EMBED_PACKET_MAX);
  CU_ASSERT_EQUAL(memcmp(buf, big, T2S_EMBED_PACKET_MAX), 0);
  CU_ASSERT_EQUAL(t2s_embed_packets_input(p, big, 100), 0); /* room again */
  /* Empty and oversized packets are refused and counted apart. */
  CU_ASSERT_EQUAL(t2s_embed_packets_input(p, big, 0), T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_embed_packets_input(p, big, sizeof(big)), T2S_ERR_INVALID_ARGUMENT);
  t2s_embed_packets_counters c;
  t2s_embed_packets_get_counters(p, &c);
  CU_ASSERT_EQUAL(c.queued, T2S_EMBED_QUEUE_PACKETS + fit + 1);
  CU_ASSERT_EQUAL(c.queue_drops, 2);
  CU_ASSERT_EQUAL(c.invalid, 2);
  CU_ASSERT_EQUAL(c.delivered, T2S_EMBED_QUEUE_PACKETS + 1);
  t2s_device_caps caps;
  dev.ops->get_caps(dev.self, &caps);
  CU_ASSERT_EQUAL(caps.mtu, 1280);
  CU_ASSERT_EQUAL(caps.offloads, 0);
  t2s_embed_packets_del(p); /* frees the packets still queued (ASan: no leak) */
}

typedef struct out_log {
  uint8_t last[64];
  size_t len, calls;
  int answer;
} out_log;

static int log_output(void *arg, const uint8_t *pkt, size_t len) {
  out_log *o = arg;
  o->calls++;
  o->len = len;
  memcpy(o->last, pkt, len < sizeof(o->last) ? len : sizeof(o->last));
  return o->answer;
}

static void test_output_callback(void) {
  out_log o = {.answer = 0};
  t2s_embed_packets *p = NULL;
  CU_ASSERT_FATAL(t2s_embed_packets_new(&p, 1500, log_output, &o) == 0);
  t2s_device dev;
  t2s_embed_packets_device(p, &dev);
  const uint8_t pkt[] = {0x45, 0, 0, 20, 1, 2, 3, 4};
  CU_ASSERT_EQUAL(dev.ops->send(dev.self, pkt, sizeof(pkt)), 0);
  CU_ASSERT_EQUAL(o.calls, 1);
  CU_ASSERT_EQUAL(o.len, sizeof(pkt));
  CU_ASSERT_EQUAL(memcmp(o.last, pkt, sizeof(pkt)), 0);
  o.answer = -1; /* the host could not take it: dropped, counted */
  CU_ASSERT_EQUAL(dev.ops->send(dev.self, pkt, sizeof(pkt)), T2S_ERR_CLOSED);
  t2s_embed_packets_counters c;
  t2s_embed_packets_get_counters(p, &c);
  CU_ASSERT_EQUAL(c.output, 2);
  CU_ASSERT_EQUAL(c.output_errors, 1);
  t2s_embed_packets_del(p);
}

/* ---------------- the public API: tun2sock_input_packet and config.output ---------------- */

#define API_PER_THREAD 100

static uint16_t csum(const uint8_t *p, size_t len) {
  uint32_t s = 0;
  for (size_t i = 0; i + 1 < len; i += 2) {
    s += (uint32_t)p[i] << 8 | p[i + 1];
  }
  if (len & 1) {
    s += (uint32_t)p[len - 1] << 8;
  }
  while (s >> 16) {
    s = (s & 0xffff) + (s >> 16);
  }
  return (uint16_t)~s;
}

/* An ICMP echo request 198.18.0.1 -> 198.18.4.4 with id and seq, 32 bytes of payload. */
static size_t echo_request(uint8_t *pkt, uint16_t id, uint16_t seq) {
  const size_t len = 20 + 8 + 32;
  memset(pkt, 0, len);
  pkt[0] = 0x45;
  pkt[2] = (uint8_t)(len >> 8);
  pkt[3] = (uint8_t)len;
  pkt[8] = 64;
  pkt[9] = 1; /* ICMP */
  const uint8_t src[4] = {198, 18, 0, 1}, dst[4] = {198, 18, 4, 4};
  memcpy(pkt + 12, src, 4);
  memcpy(pkt + 16, dst, 4);
  uint16_t c = csum(pkt, 20);
  pkt[10] = (uint8_t)(c >> 8);
  pkt[11] = (uint8_t)c;
  uint8_t *icmp = pkt + 20;
  icmp[0] = 8; /* echo request */
  icmp[4] = (uint8_t)(id >> 8);
  icmp[5] = (uint8_t)id;
  icmp[6] = (uint8_t)(seq >> 8);
  icmp[7] = (uint8_t)seq;
  for (int k = 0; k < 32; k++) {
    icmp[8 + k] = (uint8_t)(id ^ seq ^ k);
  }
  c = csum(icmp, 8 + 32);
  icmp[2] = (uint8_t)(c >> 8);
  icmp[3] = (uint8_t)c;
  return len;
}

typedef struct api_host {
  /* Written on the loop's thread only (the output callback), read after it joined. */
  bool got[THREADS][API_PER_THREAD];
  unsigned dup, foreign;
  atomic_uint replies; /* read by the waiting thread while the loop runs */
} api_host;

static int api_output(void *arg, const uint8_t *pkt, size_t len) {
  api_host *h = arg;
  if (len < 28 || pkt[0] != 0x45 || pkt[9] != 1 || pkt[20] != 0 || pkt[12] != 198 || pkt[15] != 4 ||
      pkt[16] != 198 || pkt[19] != 1) {
    h->foreign++;
    return 0;
  }
  unsigned id = (unsigned)pkt[24] << 8 | pkt[25], seq = (unsigned)pkt[26] << 8 | pkt[27];
  if (id < 1 || id > THREADS || seq >= API_PER_THREAD) {
    h->foreign++;
    return 0;
  }
  if (h->got[id - 1][seq]) {
    h->dup++;
  }
  h->got[id - 1][seq] = true;
  atomic_fetch_add(&h->replies, 1);
  return 0;
}

typedef struct api_feeder {
  tun2sock *t;
  uint16_t id;
  unsigned refused;
} api_feeder;

static void *api_feed(void *arg) {
  api_feeder *f = arg;
  uint8_t pkt[128];
  for (uint16_t seq = 0; seq < API_PER_THREAD; seq++) {
    size_t len = echo_request(pkt, f->id, seq);
    int rv, tries = 0;
    while ((rv = tun2sock_input_packet(f->t, pkt, len)) == TUN2SOCK_ERR_FAILED &&
           tries++ < 1000000) {
      f->refused++;
      sched_yield();
    }
    CU_ASSERT_EQUAL(rv, TUN2SOCK_OK);
  }
  return NULL;
}

static void *api_run(void *arg) {
  return (void *)(intptr_t)tun2sock_run(arg);
}

/* How many of this process's fds are /dev/net/tun. */
static int tun_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    char path[300], target[256];
    snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
    ssize_t k = readlink(path, target, sizeof(target) - 1);
    if (k > 0) {
      target[k] = 0;
      n += strcmp(target, "/dev/net/tun") == 0;
    }
  }
  if (d) {
    closedir(d);
  }
  return n;
}

static void test_api_echo_through_callbacks_from_threads(void) {
  static api_host h;
  memset(&h, 0, sizeof(h));
  tun2sock_config cfg;
  tun2sock_config_default(&cfg);
  cfg.proxy = "socks5://127.0.0.1:1080";
  cfg.log_level = TUN2SOCK_LOG_WARN;
  cfg.network_monitor = TUN2SOCK_MONITOR_HOST;
  cfg.output = api_output;
  cfg.output_arg = &h;
  /* A TUN fd and packet callbacks together are refused. */
  cfg.tun_fd = 0;
  tun2sock *t = NULL;
  CU_ASSERT_EQUAL(tun2sock_new(&t, &cfg), TUN2SOCK_ERR_CONFIG);
  cfg.tun_fd = -1;
  int fds_before = tun_fds();
  CU_ASSERT_FATAL(tun2sock_new(&t, &cfg) == TUN2SOCK_OK);
  CU_ASSERT_EQUAL(tun_fds(), fds_before); /* no TUN opened */
  CU_ASSERT_EQUAL(tun2sock_input_packet(t, NULL, 0), TUN2SOCK_ERR_FAILED);
  CU_ASSERT_EQUAL(tun2sock_input_packet(NULL, (const uint8_t *)"x", 1), TUN2SOCK_ERR_CONFIG);
  pthread_t run, th[THREADS];
  api_feeder f[THREADS];
  for (int i = 0; i < THREADS; i++) { /* some before the loop runs: they wait in the queue */
    f[i] = (api_feeder){t, (uint16_t)(i + 1), 0};
    CU_ASSERT_FATAL(pthread_create(&th[i], NULL, api_feed, &f[i]) == 0);
  }
  CU_ASSERT_FATAL(pthread_create(&run, NULL, api_run, t) == 0);
  struct timespec tick = {0, 2 * 1000 * 1000};
  for (int i = 0; i < 5000 && atomic_load(&h.replies) < THREADS * API_PER_THREAD; i++) {
    nanosleep(&tick, NULL); /* at most 10 s */
  }
  unsigned refused = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    refused += f[i].refused;
  }
  tun2sock_stop(t);
  void *rv = NULL;
  pthread_join(run, &rv);
  CU_ASSERT_EQUAL((intptr_t)rv, TUN2SOCK_OK);
  CU_ASSERT_EQUAL(atomic_load(&h.replies), THREADS * API_PER_THREAD);
  bool all = true;
  for (int i = 0; i < THREADS; i++) {
    for (int s = 0; s < API_PER_THREAD; s++) {
      all = all && h.got[i][s];
    }
  }
  CU_ASSERT(all);
  CU_ASSERT_EQUAL(h.dup, 0);
  tun2sock_stats st;
  tun2sock_get_stats(t, &st);
  CU_ASSERT_EQUAL(st.input_packets, THREADS * API_PER_THREAD);
  CU_ASSERT_EQUAL(st.input_drops, refused + 1); /* the NULL packet above */
  CU_ASSERT_EQUAL(st.icmp_echo_replies, THREADS * API_PER_THREAD);
  CU_ASSERT_EQUAL(st.packets_in, THREADS * API_PER_THREAD);
  CU_ASSERT(st.packets_out >= THREADS * API_PER_THREAD);
  CU_ASSERT_EQUAL(st.output_errors, 0);
  tun2sock_del(t);
}

int t2s_test_register_embed_packets(void) {
  CU_pSuite s = CU_add_suite("embed_packets", NULL, NULL);
  if (!s) {
    return -1;
  }
  if (!CU_add_test(s, "packets from 4 threads arrive whole and in order",
                   test_packets_from_threads_arrive_whole_in_order) ||
      !CU_add_test(s, "the queue's bounds and its wakeup", test_queue_bounds_and_wakeup) ||
      !CU_add_test(s, "the output callback", test_output_callback) ||
      !CU_add_test(s, "the API: echo requests from 4 threads answered through output",
                   test_api_echo_through_callbacks_from_threads)) {
    return -1;
  }
  return 0;
}
