/* test_flow.c: the engine's flow table (flow.h) and the id map under it (idmap.h): one owner
 * per id, lookups across groups, iteration that survives removals, the footprint of a group
 * that has no flow, and the assert on a second owner for an id. */
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flow.h"
#include "test_util.h"

static const t2s_flow_ops tcp_ops = {.kind = T2S_FLOW_TCP, .group = T2S_FLOW_GROUP_TCP};
static const t2s_flow_ops udp_ops = {.kind = T2S_FLOW_UDP, .group = T2S_FLOW_GROUP_UDP};

static void add(t2s_flow_table *ft, t2s_flow *f, const t2s_flow_ops *ops) {
  memset(f, 0, sizeof(*f));
  f->ops = ops;
  f->id = t2s_flow_table_new_id(ft);
  CU_ASSERT_EQUAL(t2s_flow_table_add(ft, f), 0);
}

static void test_ids_lookup_and_groups(void) {
  t2s_mem mem = {0};
  t2s_flow_table ft;
  CU_ASSERT_EQUAL_FATAL(t2s_flow_table_init(&ft, &mem), 0);
  uint64_t base = mem.live; /* the TCP group's map only */
  t2s_flow f[6];
  for (int i = 0; i < 6; i++) {
    add(&ft, &f[i], i % 2 ? &udp_ops : &tcp_ops);
    CU_ASSERT_EQUAL(f[i].id, (uint64_t)i + 1); /* in order from 1 */
  }
  CU_ASSERT(mem.live > base); /* the UDP group's map appeared with its first flow */
  CU_ASSERT_EQUAL(t2s_flow_table_len(&ft), 6);
  for (int i = 0; i < 6; i++) {
    CU_ASSERT_PTR_EQUAL(t2s_flow_table_get(&ft, f[i].id), &f[i]);
  }
  CU_ASSERT_PTR_NULL(t2s_flow_table_get(&ft, 7));
  CU_ASSERT_PTR_NULL(t2s_flow_table_get(&ft, 0));
  for (int i = 1; i < 6; i += 2) {
    t2s_flow_table_remove(&ft, &f[i]);
  }
  CU_ASSERT_EQUAL(mem.live, base); /* ...and went with its last */
  CU_ASSERT_PTR_NULL(t2s_flow_table_get(&ft, f[1].id));
  CU_ASSERT_PTR_EQUAL(t2s_flow_table_get(&ft, f[2].id), &f[2]);
  t2s_flow_table_free(&ft);
  CU_ASSERT_EQUAL(mem.live, 0);
}

/* The iterator visits every flow once, TCP group first, and survives removing the current
 * flow and flows ahead of it (what a reset does: a UDP session removes both its ids). */
static void test_iterator_groups_and_removal(void) {
  t2s_flow_table ft;
  CU_ASSERT_EQUAL_FATAL(t2s_flow_table_init(&ft, NULL), 0);
  enum { N = 40 };
  t2s_flow f[N];
  for (int i = 0; i < N; i++) {
    add(&ft, &f[i], i % 3 ? &tcp_ops : &udp_ops);
  }
  int seen[N] = {0};
  int visited = 0;
  bool in_udp = false, order_ok = true;
  t2s_flow_iter it = T2S_FLOW_ITER_INIT;
  for (t2s_flow *g; (g = t2s_flow_iter_next(&ft, &it)) != NULL;) {
    int i = (int)(g - f);
    CU_ASSERT_FATAL(i >= 0 && i < N);
    seen[i]++;
    visited++;
    if (g->ops == &udp_ops) {
      in_udp = true;
    } else if (in_udp) {
      order_ok = false; /* a TCP flow after a UDP one */
    }
    t2s_flow_table_remove(&ft, g);
    if (g->ops == &udp_ops && i + 3 < N && seen[i + 3] == 0) {
      t2s_flow_table_remove(&ft, &f[i + 3]); /* a partner ahead: never visited then */
      seen[i + 3] = -1;
    }
  }
  CU_ASSERT(order_ok);
  for (int i = 0; i < N; i++) {
    CU_ASSERT(seen[i] == 1 || seen[i] == -1);
  }
  CU_ASSERT(visited < N);
  CU_ASSERT_EQUAL(t2s_flow_table_len(&ft), 0);
  t2s_flow_table_free(&ft);
}

static void test_idmap_next(void) {
  t2s_idmap m;
  t2s_idmap_init(&m);
  size_t pos = 0;
  CU_ASSERT(!t2s_idmap_next(&m, &pos, NULL, NULL)); /* empty, never allocated */
  static int vals[100];
  for (uint64_t id = 1; id <= 100; id++) {
    CU_ASSERT_EQUAL(t2s_idmap_put(&m, id, &vals[id - 1]), 0);
  }
  for (uint64_t id = 1; id <= 100; id += 2) {
    t2s_idmap_del(&m, id);
  }
  uint64_t sum = 0, id;
  void *v;
  size_t n = 0;
  pos = 0;
  while (t2s_idmap_next(&m, &pos, &id, &v)) {
    CU_ASSERT_PTR_EQUAL(v, &vals[id - 1]);
    CU_ASSERT_EQUAL(id % 2, 0);
    sum += id;
    n++;
  }
  CU_ASSERT_EQUAL(n, 50);
  CU_ASSERT_EQUAL(t2s_idmap_len(&m), 50);
  CU_ASSERT_EQUAL(sum, 2550); /* 2 + 4 + ... + 100 */
  t2s_idmap_free(&m);
}

#ifdef T2S_ENABLE_ASSERTS
/* A second flow under an id the table holds: the child aborts (one owner per id). */
static void test_second_owner_aborts(void) {
  pid_t pid = fork();
  CU_ASSERT_FATAL(pid >= 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, STDERR_FILENO);
    t2s_flow_table ft;
    t2s_flow a, b;
    t2s_flow_table_init(&ft, NULL);
    add(&ft, &a, &tcp_ops);
    b = a;
    b.ops = &udp_ops; /* another group: the same id must still be refused */
    t2s_flow_table_add(&ft, &b);
    _exit(0);
  }
  int status = 0;
  CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
  CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}
#endif

int t2s_test_register_flow(void) {
  CU_pSuite s = CU_add_suite("flow", NULL, NULL);
  if (s == NULL) {
    return -1;
  }
  CU_add_test(s, "ids_lookup_and_groups", test_ids_lookup_and_groups);
  CU_add_test(s, "iterator_groups_and_removal", test_iterator_groups_and_removal);
  CU_add_test(s, "idmap_next", test_idmap_next);
#ifdef T2S_ENABLE_ASSERTS
  CU_add_test(s, "second_owner_aborts", test_second_owner_aborts);
#endif
  return 0;
}
