/*
 * clock_linux.h: the t2s_clock of the binary. now() is CLOCK_MONOTONIC, boottime() is
 * CLOCK_BOOTTIME, and the single engine timer is one libevent timer event. (Tests fake a
 * suspend through a wrapper, clock_test_offset.h, that this driver knows nothing of.)
 */
#ifndef T2S_CLOCK_LINUX_H
#define T2S_CLOCK_LINUX_H

#include <event2/event.h>

#include "iface.h"

typedef struct t2s_clock_linux {
  struct event *timer;
  t2s_tstamp deadline;                        /* T2S_TSTAMP_MAX when disarmed */
  void (*on_fire)(void *arg, t2s_tstamp now); /* the runner: t2s_engine_handle_expiry() */
  void *arg;
} t2s_clock_linux;

/* Monotonic nanoseconds (CLOCK_MONOTONIC). */
t2s_tstamp t2s_clock_monotonic_ns(void);
/* Nanoseconds including suspend (CLOCK_BOOTTIME). */
t2s_tstamp t2s_clock_boottime_ns(void);

/* Creates the timer on base; on_fire(arg, now) runs when an armed deadline has passed.
 * Returns 0 or T2S_ERR_NOMEM. */
int t2s_clock_linux_init(t2s_clock_linux *clk, struct event_base *base,
                         void (*on_fire)(void *arg, t2s_tstamp now), void *arg);
/* Frees the timer. */
void t2s_clock_linux_free(t2s_clock_linux *clk);
/* A t2s_clock over clk (borrowed). */
void t2s_clock_linux_ops(t2s_clock_linux *clk, t2s_clock *out);
/* Arms the timer at deadline (T2S_TSTAMP_MAX disarms). */
void t2s_clock_linux_arm(t2s_clock_linux *clk, t2s_tstamp deadline);

#endif
