/* test_host_monitor.c: the host-fed network monitor (src/os/host_monitor.c, tun2sock.h's
 * TUN2SOCK_MONITOR_HOST): reports from other threads reach the loop whole and in each thread's
 * order, the queue bound, and the route fallback. */
#include <pthread.h>
#include <string.h>

#include "host_monitor.h"
#include "test_util.h"

#define THREADS 4
#define PER_THREAD 200

typedef struct got {
  t2s_net_event ev[THREADS * PER_THREAD + 8];
  size_t n;
} got;

static void on_event(void *arg, const t2s_net_event *ev) {
  got *g = arg;
  if (g->n < T2S_ARRAY_LEN(g->ev)) {
    g->ev[g->n++] = *ev;
  }
}

typedef struct feeder {
  t2s_host_monitor *m;
  uint32_t base;
} feeder;

/* Reports PER_THREAD changes (ifindex base+1..), retrying while the queue is full (bounded). */
static void *feed(void *arg) {
  feeder *f = arg;
  for (uint32_t i = 1; i <= PER_THREAD; i++) {
    int tries = 0;
    while (t2s_host_monitor_changed(f->m, NULL, f->base + i) != 0 && tries++ < 100000) {
      sched_yield();
    }
  }
  return NULL;
}

static void test_reports_from_threads_arrive_in_order(void) {
  struct event_base *base = event_base_new();
  t2s_addr proxy = {.family = T2S_AF_INET, .ip = {203, 0, 113, 2}, .port = 1080};
  t2s_egress eg = {0};
  t2s_host_monitor *m = NULL;
  CU_ASSERT_FATAL(t2s_host_monitor_new(&m, base, &proxy, &eg) == 0);
  t2s_monitor mon;
  t2s_host_monitor_ops(m, &mon);
  static got g;
  memset(&g, 0, sizeof(g));
  CU_ASSERT_FATAL(mon.ops->start(mon.self, on_event, &g) == 0);
  pthread_t th[THREADS];
  feeder f[THREADS];
  for (int i = 0; i < THREADS; i++) {
    f[i] = (feeder){m, (uint32_t)(i + 1) * 100000};
    CU_ASSERT_FATAL(pthread_create(&th[i], NULL, feed, &f[i]) == 0);
  }
  for (int spins = 0; spins < 200000 && g.n < THREADS * PER_THREAD; spins++) {
    event_base_loop(base, EVLOOP_NONBLOCK);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
  }
  event_base_loop(base, EVLOOP_NONBLOCK);
  CU_ASSERT_EQUAL(g.n, THREADS * PER_THREAD);
  uint32_t last[THREADS] = {0};
  bool ordered = true;
  for (size_t k = 0; k < g.n; k++) {
    CU_ASSERT_EQUAL(g.ev[k].type, T2S_NET_DEFAULT_ROUTE_CHANGED);
    CU_ASSERT_EQUAL(g.ev[k].family, T2S_AF_INET);
    uint32_t t = g.ev[k].ifindex / 100000 - 1, i = g.ev[k].ifindex % 100000;
    CU_ASSERT_FATAL(t < THREADS);
    ordered = ordered && i == last[t] + 1;
    last[t] = i;
  }
  CU_ASSERT(ordered);
  /* The route answer follows the last report delivered. */
  t2s_route r;
  CU_ASSERT_EQUAL(mon.ops->route_get(mon.self, &proxy, 0, &r), 0);
  CU_ASSERT_EQUAL(r.ifindex, g.ev[g.n - 1].ifindex);
  mon.ops->stop(mon.self);
  t2s_host_monitor_del(m);
  event_base_free(base);
}

static void test_queue_bound_and_route_fallback(void) {
  struct event_base *base = event_base_new();
  t2s_addr proxy = {.family = T2S_AF_INET, .ip = {203, 0, 113, 2}, .port = 1080};
  t2s_egress eg = {.ifindex = 7, .ifname = "eth7"};
  t2s_host_monitor *m = NULL;
  CU_ASSERT_FATAL(t2s_host_monitor_new(&m, base, &proxy, &eg) == 0);
  t2s_monitor mon;
  t2s_host_monitor_ops(m, &mon);
  t2s_route r;
  /* Before any report: the egress chosen at start. */
  CU_ASSERT_EQUAL(mon.ops->route_get(mon.self, &proxy, 0, &r), 0);
  CU_ASSERT_EQUAL(r.ifindex, 7);
  CU_ASSERT_STRING_EQUAL(r.ifname, "eth7");
  /* A loopback proxy is local. */
  t2s_addr lo = {.family = T2S_AF_INET, .ip = {127, 0, 0, 1}};
  CU_ASSERT_EQUAL(mon.ops->route_get(mon.self, &lo, 0, &r), 0);
  CU_ASSERT(r.local);
  /* Reports before start wait; 64 fit, the 65th is refused. */
  CU_ASSERT_EQUAL(t2s_host_monitor_paused(m), 0);
  CU_ASSERT_EQUAL(t2s_host_monitor_resumed(m, 1500), 0);
  CU_ASSERT_EQUAL(t2s_host_monitor_changed(m, NULL, 0), 0);
  for (int i = 3; i < 64; i++) {
    CU_ASSERT_EQUAL(t2s_host_monitor_paused(m), 0);
  }
  CU_ASSERT_EQUAL(t2s_host_monitor_paused(m), -1);
  static got g;
  memset(&g, 0, sizeof(g));
  CU_ASSERT_FATAL(mon.ops->start(mon.self, on_event, &g) == 0);
  event_base_loop(base, EVLOOP_NONBLOCK);
  CU_ASSERT_EQUAL(g.n, 64);
  CU_ASSERT_EQUAL(g.ev[0].type, T2S_NET_PAUSED);
  CU_ASSERT_EQUAL(g.ev[1].type, T2S_NET_RESUMED);
  CU_ASSERT_EQUAL(g.ev[1].slept_ns, 1500 * T2S_MILLISECONDS);
  CU_ASSERT_EQUAL(g.ev[2].type, T2S_NET_DEFAULT_ROUTE_CHANGED);
  CU_ASSERT(g.ev[2].removed);
  /* "none": no route to the proxy. */
  CU_ASSERT_EQUAL(mon.ops->route_get(mon.self, &proxy, 0, &r), T2S_ERR_UNREACHABLE);
  /* A name alone is looked up. */
  CU_ASSERT_EQUAL(t2s_host_monitor_changed(m, "lo", 0), 0);
  event_base_loop(base, EVLOOP_NONBLOCK);
  CU_ASSERT_EQUAL(g.n, 65);
  CU_ASSERT_EQUAL(mon.ops->route_get(mon.self, &proxy, 0, &r), 0);
  CU_ASSERT_STRING_EQUAL(r.ifname, "lo");
  CU_ASSERT(r.ifindex != 0);
  mon.ops->stop(mon.self);
  t2s_host_monitor_del(m);
  event_base_free(base);
}

static int host_route(void *arg, int family, const uint8_t *addr, char *ifname, unsigned *ifindex) {
  int *calls = arg;
  (*calls)++;
  if (family == T2S_AF_INET && addr[0] == 203) {
    strcpy(ifname, "lo");
    return 0;
  }
  if (family == T2S_AF_INET && addr[0] == 198) {
    *ifindex = 0;
    return 0; /* local */
  }
  (void)ifindex;
  return -1;
}

/* With the host's route answer set, route_get asks it (not the fallback). */
static void test_host_route_callback(void) {
  struct event_base *base = event_base_new();
  t2s_addr proxy = {.family = T2S_AF_INET, .ip = {203, 0, 113, 2}, .port = 1080};
  t2s_egress eg = {.ifindex = 7, .ifname = "eth7"};
  t2s_host_monitor *m = NULL;
  CU_ASSERT_FATAL(t2s_host_monitor_new(&m, base, &proxy, &eg) == 0);
  int calls = 0;
  t2s_host_monitor_set_route(m, host_route, &calls);
  t2s_monitor mon;
  t2s_host_monitor_ops(m, &mon);
  t2s_route r;
  CU_ASSERT_EQUAL(mon.ops->route_get(mon.self, &proxy, 0, &r), 0);
  CU_ASSERT_STRING_EQUAL(r.ifname, "lo");
  CU_ASSERT(r.ifindex != 0 && !r.local);
  t2s_addr local = {.family = T2S_AF_INET, .ip = {198, 18, 0, 1}};
  CU_ASSERT_EQUAL(mon.ops->route_get(mon.self, &local, 0, &r), 0);
  CU_ASSERT(r.local && r.ifindex == 0);
  t2s_addr v6 = {.family = T2S_AF_INET6, .ip = {0x20, 0x01, 0x0d, 0xb8}};
  CU_ASSERT_EQUAL(mon.ops->route_get(mon.self, &v6, 0, &r), T2S_ERR_UNREACHABLE);
  CU_ASSERT_EQUAL(calls, 3);
  t2s_host_monitor_del(m);
  event_base_free(base);
}

int t2s_test_register_host_monitor(void) {
  CU_pSuite s = CU_add_suite("host_monitor", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "reports from 4 threads arrive whole, in order",
                   test_reports_from_threads_arrive_in_order) ||
      !CU_add_test(s, "queue bound and route fallback", test_queue_bound_and_route_fallback) ||
      !CU_add_test(s, "the host's route answer", test_host_route_callback)) {
    return -1;
  }
  return 0;
}
