/* sim_clock.c: the t2s_clock interface over the loop's virtual time. */
#include "sim_loop.h"

static t2s_tstamp clock_now(void *self) {
  const sim_loop *loop = self;
  return loop->now;
}

static t2s_tstamp clock_boottime(void *self) {
  const sim_loop *loop = self;
  return loop->now + loop->slept;
}

static void clock_timer_arm(void *self, t2s_tstamp deadline) {
  sim_loop *loop = self;
  loop->deadline = deadline;
}

static const t2s_clock_ops sim_clock_ops = {
    .now = clock_now,
    .boottime = clock_boottime,
    .timer_arm = clock_timer_arm,
};

t2s_clock sim_loop_clock(sim_loop *loop) {
  return (t2s_clock){&sim_clock_ops, loop};
}
