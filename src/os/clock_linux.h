/*
 * clock_linux.h: the t2s_clock of the binary. now() is CLOCK_MONOTONIC, boottime() is
 * CLOCK_BOOTTIME (plus a test offset, below), and the single engine timer is one libevent
 * timer event.
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
  /* Test hook: when the environment variable TUN2SOCK_TEST_BOOTTIME_OFFSET_FILE names a file,
   * boottime() adds the number of nanoseconds written in it (read at each call; missing or
   * unreadable = 0). Raising it by 30e9 looks, to the sleep detector, like a 30 s suspend. */
  const char *boottime_offset_file;
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
