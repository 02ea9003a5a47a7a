/*
 * clock_linux.h: the t2s_clock of the binary. now() is CLOCK_MONOTONIC, boottime() is
 * CLOCK_BOOTTIME, and the single engine timer is a timerfd of its own (CLOCK_MONOTONIC,
 * absolute, nanoseconds) watched by the event base. (Tests fake a suspend through a wrapper,
 * clock_test_offset.h, that this driver knows nothing of.)
 *
 * Arming is lazy: the loop hands the engine's expiry after every callback, and the timerfd is
 * set (a system call) only when that deadline is earlier than the one it holds. A later
 * deadline (an idle timeout pushed back by traffic, an RTO restarted by an ACK) is only noted:
 * the timerfd fires at the earlier time, finds it early and is set again for the rest. The
 * event base needs no precise timers of its own for the engine (EVENT_BASE_FLAG_PRECISE_TIMER
 * would make libevent re-arm its own timerfd before every epoll_wait).
 */
#ifndef T2S_CLOCK_LINUX_H
#define T2S_CLOCK_LINUX_H

#include <event2/event.h>

#include "iface.h"

typedef struct t2s_clock_linux {
  int tfd;             /* the timerfd; -1 before init */
  struct event *ev;    /* tfd readable: timer_cb */
  t2s_tstamp deadline; /* when on_fire is wanted; T2S_TSTAMP_MAX = never */
  t2s_tstamp armed;    /* what tfd is set to; T2S_TSTAMP_MAX = disarmed (or already fired) */
  uint64_t sets;       /* timerfd_settime calls made (tests, diagnosis) */
  void (*on_fire)(void *arg, t2s_tstamp now); /* the runner: t2s_engine_handle_expiry() */
  void *arg;
} t2s_clock_linux;

/* Monotonic nanoseconds (CLOCK_MONOTONIC). */
t2s_tstamp t2s_clock_monotonic_ns(void);
/* Nanoseconds including suspend (CLOCK_BOOTTIME). */
t2s_tstamp t2s_clock_boottime_ns(void);

/* Creates the timer on base; on_fire(arg, now) runs when an armed deadline has passed (never
 * before it). Returns 0, T2S_ERR_NOMEM, or T2S_ERR_INTERNAL (no timerfd). */
int t2s_clock_linux_init(t2s_clock_linux *clk, struct event_base *base,
                         void (*on_fire)(void *arg, t2s_tstamp now), void *arg);
/* Frees the timer. */
void t2s_clock_linux_free(t2s_clock_linux *clk);
/* A t2s_clock over clk (borrowed). */
void t2s_clock_linux_ops(t2s_clock_linux *clk, t2s_clock *out);
/* Asks for on_fire at deadline (CLOCK_MONOTONIC ns; T2S_TSTAMP_MAX: never). Sets the timerfd
 * only when deadline is earlier than what it holds. */
void t2s_clock_linux_arm(t2s_clock_linux *clk, t2s_tstamp deadline);

#endif
