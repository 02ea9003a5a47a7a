/*
 * sleep_merge.h: one sleep, one reset, whichever source saw it first. A pure policy (no clock,
 * no I/O): the runner reads the clocks and asks it what to report.
 *
 * Two sources notice that the machine slept: systemd-logind's PrepareForSleep (sleep_logind.h:
 * `true` before the sleep, `false` after the wake; optional) and the network monitor's clock
 * detector (a jump of CLOCK_BOOTTIME over CLOCK_MONOTONIC above its threshold, reported as a
 * RESUMED event). A sleep longer than the threshold is seen by both; the engine must get one
 * PAUSED (from logind) and one RESUMED (from whichever reported the wake first).
 *
 * Both functions take the current `gap`: CLOCK_BOOTTIME - CLOCK_MONOTONIC in nanoseconds
 * (signed: the two readings are not simultaneous, so without a sleep it may be a few
 * microseconds below 0); it grows by the time slept.
 */
#ifndef T2S_SLEEP_MERGE_H
#define T2S_SLEEP_MERGE_H

#include "common.h"

/* A wake logind reported is reported again by the clocks when the sleep exceeded their
 * threshold: within this much growth of the gap it is the same sleep. */
#define T2S_SLEEP_REPEAT_NS ((int64_t)(2 * T2S_SECONDS)) /* the clock detector's threshold */

typedef struct t2s_sleep_merge {
  bool logind_paused;       /* PrepareForSleep(true) delivered, no false yet */
  bool resumed_since_pause; /* the clock detector reported the wake first */
  bool logind_resumed;      /* the last wake came from logind: the clocks' report repeats it */
  int64_t gap_at_pause;     /* the gap when logind said the machine goes to sleep */
  int64_t gap_at_resume;    /* the gap at the last wake reported */
} t2s_sleep_merge;

/* What to do with a source's report. */
typedef enum t2s_sleep_verdict {
  T2S_SLEEP_REPORT_PAUSED = 1, /* deliver PAUSED to the engine */
  T2S_SLEEP_REPORT_RESUMED,    /* deliver RESUMED (with the time slept) */
  T2S_SLEEP_IGNORE_REPEAT,     /* logind: a second `true` before any wake: nothing */
  T2S_SLEEP_IGNORE_NO_PAUSE,   /* logind: `false` without a `true` before it */
  T2S_SLEEP_IGNORE_CLOCKS_SAW, /* logind: `false` for a wake the clocks reported first */
  T2S_SLEEP_IGNORE_LOGIND_SAW, /* clocks: the wake logind reported already */
} t2s_sleep_verdict;

/* Starts with no sleep seen. */
void t2s_sleep_merge_init(t2s_sleep_merge *m);

/* logind's PrepareForSleep(sleeping) with the current gap. Returns REPORT_PAUSED (a first
 * `true`, or a `true` after a wake only the clocks reported: its `false` was lost),
 * IGNORE_REPEAT, REPORT_RESUMED with *pslept_ns = the growth of the gap since the pause (0 if
 * it shrank), IGNORE_NO_PAUSE or IGNORE_CLOCKS_SAW. */
t2s_sleep_verdict t2s_sleep_merge_logind(t2s_sleep_merge *m, bool sleeping, int64_t gap,
                                         t2s_tstamp *pslept_ns);

/* The clock detector's RESUMED with the current gap. Returns REPORT_RESUMED, or
 * IGNORE_LOGIND_SAW when logind reported this wake and the gap grew by less than
 * T2S_SLEEP_REPEAT_NS since (a second sleep after it is news again). */
t2s_sleep_verdict t2s_sleep_merge_clock_resumed(t2s_sleep_merge *m, int64_t gap);

#endif
