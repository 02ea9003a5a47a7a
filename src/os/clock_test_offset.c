/* clock_test_offset.c: the test-only boottime offset (see clock_test_offset.h). */
#include "clock_test_offset.h"

#include <stdio.h>
#include <stdlib.h>

static t2s_tstamp op_now(void *self) {
  t2s_clock_test_offset *w = self;
  return w->inner.ops->now(w->inner.self);
}

/* The number (nanoseconds) in the file. */
static t2s_tstamp file_offset(const t2s_clock_test_offset *w) {
  FILE *f = fopen(w->path, "re");
  if (f == NULL) {
    return 0;
  }
  unsigned long long v = 0;
  if (fscanf(f, "%llu", &v) != 1) {
    v = 0;
  }
  fclose(f);
  return (t2s_tstamp)v;
}

static t2s_tstamp op_boottime(void *self) {
  t2s_clock_test_offset *w = self;
  return w->inner.ops->boottime(w->inner.self) + file_offset(w);
}

static void op_timer_arm(void *self, t2s_tstamp deadline) {
  t2s_clock_test_offset *w = self;
  w->inner.ops->timer_arm(w->inner.self, deadline);
}

static const t2s_clock_ops wrapper_ops = {
    .now = op_now,
    .boottime = op_boottime,
    .timer_arm = op_timer_arm,
};

bool t2s_clock_test_offset_from_env(t2s_clock_test_offset *w, t2s_clock *clk) {
  const char *path = getenv(T2S_CLOCK_TEST_OFFSET_ENV);
  if (path == NULL || path[0] == '\0') {
    return false;
  }
  snprintf(w->path, sizeof(w->path), "%s", path);
  w->inner = *clk;
  clk->ops = &wrapper_ops;
  clk->self = w;
  return true;
}
