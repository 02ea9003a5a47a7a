/*
 * clock_test_offset.h: a t2s_clock wrapper for tests that fakes a suspend. boottime() is the
 * inner clock's plus the number of nanoseconds written in a file (read at each call; missing
 * or unreadable = 0); now() and timer_arm() pass through. Raising the number by 30e9 looks, to
 * the sleep detector and the sleep merger, like a 30 s suspend.
 *
 * The production clock driver (clock_linux.h) knows nothing of it: the runner wraps its clock
 * once at start, and only when the environment variable TUN2SOCK_TEST_BOOTTIME_OFFSET_FILE
 * names the file (t2s_clock_test_offset_from_env).
 */
#ifndef T2S_CLOCK_TEST_OFFSET_H
#define T2S_CLOCK_TEST_OFFSET_H

#include "iface.h"

#define T2S_CLOCK_TEST_OFFSET_ENV "TUN2SOCK_TEST_BOOTTIME_OFFSET_FILE"

typedef struct t2s_clock_test_offset {
  t2s_clock inner;
  char path[4096];
} t2s_clock_test_offset;

/* When the environment variable names a file: sets w up around *clk (copied) and replaces
 * *clk with the wrapper (w must outlive it), and returns true. Otherwise leaves *clk alone and
 * returns false. */
bool t2s_clock_test_offset_from_env(t2s_clock_test_offset *w, t2s_clock *clk);

#endif
