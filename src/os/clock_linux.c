/* clock_linux.c: CLOCK_MONOTONIC / CLOCK_BOOTTIME and the engine timer (see clock_linux.h). */
#include "clock_linux.h"

#include <time.h>

static t2s_tstamp read_clock(clockid_t id) {
  struct timespec ts;
  if (clock_gettime(id, &ts) != 0) {
    return 0;
  }
  return (t2s_tstamp)ts.tv_sec * T2S_SECONDS + (t2s_tstamp)ts.tv_nsec;
}

t2s_tstamp t2s_clock_monotonic_ns(void) {
  return read_clock(CLOCK_MONOTONIC);
}

t2s_tstamp t2s_clock_boottime_ns(void) {
  return read_clock(CLOCK_BOOTTIME);
}

static t2s_tstamp op_now(void *self) {
  (void)self;
  return t2s_clock_monotonic_ns();
}

static t2s_tstamp op_boottime(void *self) {
  (void)self;
  return t2s_clock_boottime_ns();
}

void t2s_clock_linux_arm(t2s_clock_linux *clk, t2s_tstamp deadline) {
  clk->deadline = deadline;
  if (deadline == T2S_TSTAMP_MAX) {
    evtimer_del(clk->timer);
    return;
  }
  t2s_tstamp now = t2s_clock_monotonic_ns();
  t2s_tstamp delta = deadline > now ? deadline - now : 0;
  /* Round up to the timer's microsecond resolution so it never fires before the deadline. */
  uint64_t us = (delta + 999) / 1000;
  struct timeval tv = {.tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000)};
  evtimer_add(clk->timer, &tv);
}

static void op_timer_arm(void *self, t2s_tstamp deadline) {
  t2s_clock_linux_arm(self, deadline);
}

static const t2s_clock_ops clock_ops = {
    .now = op_now,
    .boottime = op_boottime,
    .timer_arm = op_timer_arm,
};

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_clock_linux *clk = arg;
  t2s_tstamp now = t2s_clock_monotonic_ns();
  if (clk->deadline == T2S_TSTAMP_MAX) {
    return;
  }
  if (now < clk->deadline) {
    t2s_clock_linux_arm(clk, clk->deadline); /* woke early: wait for the rest */
    return;
  }
  clk->deadline = T2S_TSTAMP_MAX;
  clk->on_fire(clk->arg, now);
}

int t2s_clock_linux_init(t2s_clock_linux *clk, struct event_base *base,
                         void (*on_fire)(void *arg, t2s_tstamp now), void *arg) {
  clk->deadline = T2S_TSTAMP_MAX;
  clk->on_fire = on_fire;
  clk->arg = arg;
  clk->timer = evtimer_new(base, timer_cb, clk);
  return clk->timer ? 0 : T2S_ERR_NOMEM;
}

void t2s_clock_linux_free(t2s_clock_linux *clk) {
  if (clk->timer) {
    event_free(clk->timer);
    clk->timer = NULL;
  }
}

void t2s_clock_linux_ops(t2s_clock_linux *clk, t2s_clock *out) {
  out->ops = &clock_ops;
  out->self = clk;
}
