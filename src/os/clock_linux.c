/* clock_linux.c: CLOCK_MONOTONIC / CLOCK_BOOTTIME and the engine timer (see clock_linux.h). */
#include "clock_linux.h"

#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

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

/* Sets the timerfd to fire at `at` (absolute CLOCK_MONOTONIC; a time already past fires at
 * once). An all-zero it_value would disarm it: the earliest time set is 1 ns. */
static void set_tfd(t2s_clock_linux *clk, t2s_tstamp at) {
  if (at == 0) {
    at = 1;
  }
  struct itimerspec its;
  memset(&its, 0, sizeof(its));
  its.it_value.tv_sec = (time_t)(at / T2S_SECONDS);
  its.it_value.tv_nsec = (long)(at % T2S_SECONDS);
  clk->sets++;
  if (timerfd_settime(clk->tfd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
    T2S_WARN("arming the engine timer: %s", strerror(errno));
    return;
  }
  clk->armed = at;
}

void t2s_clock_linux_arm(t2s_clock_linux *clk, t2s_tstamp deadline) {
  clk->deadline = deadline;
  if (deadline < clk->armed) {
    set_tfd(clk, deadline); /* earlier than what the timerfd holds (or it holds nothing) */
  }
  /* Later or equal: the timerfd fires at its time and timer_cb sets it again for the rest. */
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
  (void)what;
  t2s_clock_linux *clk = arg;
  uint64_t expirations;
  if (read(fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN) {
    T2S_DEBUG("reading the engine timer: %s", strerror(errno));
  }
  clk->armed = T2S_TSTAMP_MAX;
  if (clk->deadline == T2S_TSTAMP_MAX) {
    return; /* nothing wanted any more (a deadline given up after the timerfd was set) */
  }
  t2s_tstamp now = t2s_clock_monotonic_ns();
  if (now < clk->deadline) {
    set_tfd(clk, clk->deadline); /* the deadline moved later since: wait for the rest */
    return;
  }
  clk->deadline = T2S_TSTAMP_MAX;
  clk->on_fire(clk->arg, now);
}

int t2s_clock_linux_init(t2s_clock_linux *clk, struct event_base *base,
                         void (*on_fire)(void *arg, t2s_tstamp now), void *arg) {
  memset(clk, 0, sizeof(*clk));
  clk->deadline = T2S_TSTAMP_MAX;
  clk->armed = T2S_TSTAMP_MAX;
  clk->on_fire = on_fire;
  clk->arg = arg;
  clk->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (clk->tfd < 0) {
    T2S_ERROR("cannot create the engine timer: %s", strerror(errno));
    return T2S_ERR_INTERNAL;
  }
  clk->ev = event_new(base, clk->tfd, EV_READ | EV_PERSIST, timer_cb, clk);
  if (!clk->ev || event_add(clk->ev, NULL) != 0) {
    t2s_clock_linux_free(clk);
    return T2S_ERR_NOMEM;
  }
  return 0;
}

void t2s_clock_linux_free(t2s_clock_linux *clk) {
  if (clk->ev) {
    event_free(clk->ev);
    clk->ev = NULL;
  }
  if (clk->tfd >= 0) {
    close(clk->tfd);
    clk->tfd = -1;
  }
}

void t2s_clock_linux_ops(t2s_clock_linux *clk, t2s_clock *out) {
  out->ops = &clock_ops;
  out->self = clk;
}
