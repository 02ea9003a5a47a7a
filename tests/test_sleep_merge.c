/* test_sleep_merge.c: the sleep-source merger (src/os/sleep_merge.c): logind's PrepareForSleep
 * and the clock detector's RESUMED report each sleep once, whichever came first. The gap is
 * CLOCK_BOOTTIME - CLOCK_MONOTONIC; a sleep of N seconds grows it by N seconds. */
#include "sleep_merge.h"
#include "test_util.h"

#define S ((int64_t)T2S_SECONDS)

static t2s_sleep_verdict logind(t2s_sleep_merge *m, bool sleeping, int64_t gap,
                                t2s_tstamp *pslept) {
  t2s_tstamp dummy;
  return t2s_sleep_merge_logind(m, sleeping, gap, pslept ? pslept : &dummy);
}

/* true, then false 30 s of sleep later: one PAUSED, one RESUMED of 30 s; the clocks' report of
 * the same sleep afterwards is dropped. */
static void test_logind_sleep_then_clocks_repeat(void) {
  t2s_sleep_merge m;
  t2s_sleep_merge_init(&m);
  t2s_tstamp slept = 0;
  CU_ASSERT_EQUAL(logind(&m, true, 5 * S, NULL), T2S_SLEEP_REPORT_PAUSED);
  CU_ASSERT_EQUAL(logind(&m, false, 35 * S, &slept), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(slept, 30 * T2S_SECONDS);
  CU_ASSERT_EQUAL(t2s_sleep_merge_clock_resumed(&m, 35 * S + 1000), T2S_SLEEP_IGNORE_LOGIND_SAW);
  /* Only once: a later report of the clocks is news (it can only be another sleep). */
  CU_ASSERT_EQUAL(t2s_sleep_merge_clock_resumed(&m, 35 * S + 2000), T2S_SLEEP_REPORT_RESUMED);
}

/* The clocks report just under the repeat window after logind's wake: dropped; at or over it:
 * a second sleep, reported. */
static void test_clock_report_after_logind_wake_window(void) {
  t2s_sleep_merge m;
  t2s_sleep_merge_init(&m);
  CU_ASSERT_EQUAL(logind(&m, true, 0, NULL), T2S_SLEEP_REPORT_PAUSED);
  CU_ASSERT_EQUAL(logind(&m, false, 10 * S, NULL), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(t2s_sleep_merge_clock_resumed(&m, 10 * S + T2S_SLEEP_REPEAT_NS - 1),
                  T2S_SLEEP_IGNORE_LOGIND_SAW);

  t2s_sleep_merge_init(&m);
  CU_ASSERT_EQUAL(logind(&m, true, 0, NULL), T2S_SLEEP_REPORT_PAUSED);
  CU_ASSERT_EQUAL(logind(&m, false, 10 * S, NULL), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(t2s_sleep_merge_clock_resumed(&m, 10 * S + T2S_SLEEP_REPEAT_NS),
                  T2S_SLEEP_REPORT_RESUMED);
}

/* A second PrepareForSleep(true) before any wake is a repeat: no second PAUSED. */
static void test_repeated_pause_ignored(void) {
  t2s_sleep_merge m;
  t2s_sleep_merge_init(&m);
  t2s_tstamp slept = 0;
  CU_ASSERT_EQUAL(logind(&m, true, 1 * S, NULL), T2S_SLEEP_REPORT_PAUSED);
  CU_ASSERT_EQUAL(logind(&m, true, 1 * S, NULL), T2S_SLEEP_IGNORE_REPEAT);
  /* The time slept counts from the first pause. */
  CU_ASSERT_EQUAL(logind(&m, false, 21 * S, &slept), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(slept, 20 * T2S_SECONDS);
}

/* PrepareForSleep(false) with no pause before it (tun2sock started while the machine slept,
 * or a second false): ignored. */
static void test_wake_without_pause_ignored(void) {
  t2s_sleep_merge m;
  t2s_sleep_merge_init(&m);
  CU_ASSERT_EQUAL(logind(&m, false, 3 * S, NULL), T2S_SLEEP_IGNORE_NO_PAUSE);
  CU_ASSERT_EQUAL(logind(&m, true, 3 * S, NULL), T2S_SLEEP_REPORT_PAUSED);
  CU_ASSERT_EQUAL(logind(&m, false, 9 * S, NULL), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(logind(&m, false, 9 * S, NULL), T2S_SLEEP_IGNORE_NO_PAUSE);
}

/* The clocks see the wake before logind's false arrives: the clocks' RESUMED counts, the late
 * false is dropped. */
static void test_clocks_first_then_logind_wake_ignored(void) {
  t2s_sleep_merge m;
  t2s_sleep_merge_init(&m);
  CU_ASSERT_EQUAL(logind(&m, true, 0, NULL), T2S_SLEEP_REPORT_PAUSED);
  CU_ASSERT_EQUAL(t2s_sleep_merge_clock_resumed(&m, 40 * S), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(logind(&m, false, 40 * S, NULL), T2S_SLEEP_IGNORE_CLOCKS_SAW);
  /* Then a whole new sleep goes through logind as usual. */
  CU_ASSERT_EQUAL(logind(&m, true, 40 * S, NULL), T2S_SLEEP_REPORT_PAUSED);
  CU_ASSERT_EQUAL(logind(&m, false, 50 * S, NULL), T2S_SLEEP_REPORT_RESUMED);
}

/* The clocks saw the wake and logind's false was lost: the next true is a new pause, not a
 * repeat of the old one. */
static void test_pause_after_clock_wake_with_lost_false(void) {
  t2s_sleep_merge m;
  t2s_sleep_merge_init(&m);
  t2s_tstamp slept = 0;
  CU_ASSERT_EQUAL(logind(&m, true, 0, NULL), T2S_SLEEP_REPORT_PAUSED);
  CU_ASSERT_EQUAL(t2s_sleep_merge_clock_resumed(&m, 30 * S), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(logind(&m, true, 31 * S, NULL), T2S_SLEEP_REPORT_PAUSED);
  CU_ASSERT_EQUAL(logind(&m, false, 41 * S, &slept), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(slept, 10 * T2S_SECONDS);
}

/* Without logind, every RESUMED of the clocks is reported. */
static void test_clocks_alone(void) {
  t2s_sleep_merge m;
  t2s_sleep_merge_init(&m);
  CU_ASSERT_EQUAL(t2s_sleep_merge_clock_resumed(&m, 10 * S), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(t2s_sleep_merge_clock_resumed(&m, 10 * S + 1), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(t2s_sleep_merge_clock_resumed(&m, 20 * S), T2S_SLEEP_REPORT_RESUMED);
}

/* A sleep too short for the clock detector: logind's report is the only one; a gap that
 * shrank (readings not simultaneous) gives 0, not a huge unsigned number. */
static void test_short_sleep_and_shrunk_gap(void) {
  t2s_sleep_merge m;
  t2s_sleep_merge_init(&m);
  t2s_tstamp slept = 1;
  CU_ASSERT_EQUAL(logind(&m, true, 1000, NULL), T2S_SLEEP_REPORT_PAUSED);
  CU_ASSERT_EQUAL(logind(&m, false, -500, &slept), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(slept, 0);
  CU_ASSERT_EQUAL(logind(&m, true, 0, NULL), T2S_SLEEP_REPORT_PAUSED);
  CU_ASSERT_EQUAL(logind(&m, false, S, &slept), T2S_SLEEP_REPORT_RESUMED);
  CU_ASSERT_EQUAL(slept, T2S_SECONDS);
}

int t2s_test_register_sleep_merge(void) {
  CU_pSuite s = CU_add_suite("sleep_merge", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "logind sleep, clocks repeat dropped",
                   test_logind_sleep_then_clocks_repeat) ||
      !CU_add_test(s, "clock report window after a logind wake",
                   test_clock_report_after_logind_wake_window) ||
      !CU_add_test(s, "repeated pause ignored", test_repeated_pause_ignored) ||
      !CU_add_test(s, "wake without pause ignored", test_wake_without_pause_ignored) ||
      !CU_add_test(s, "clocks first, logind wake ignored",
                   test_clocks_first_then_logind_wake_ignored) ||
      !CU_add_test(s, "pause after a clock wake with a lost false",
                   test_pause_after_clock_wake_with_lost_false) ||
      !CU_add_test(s, "clocks alone", test_clocks_alone) ||
      !CU_add_test(s, "short sleep, shrunk gap", test_short_sleep_and_shrunk_gap)) {
    return -1;
  }
  return 0;
}
