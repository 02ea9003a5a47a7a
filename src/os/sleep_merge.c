/* sleep_merge.c: which source reports a sleep (see sleep_merge.h). */
#include "sleep_merge.h"

#include <string.h>

void t2s_sleep_merge_init(t2s_sleep_merge *m) {
  memset(m, 0, sizeof(*m));
}

t2s_sleep_verdict t2s_sleep_merge_logind(t2s_sleep_merge *m, bool sleeping, int64_t gap,
                                         t2s_tstamp *pslept_ns) {
  *pslept_ns = 0;
  if (sleeping) {
    if (m->logind_paused && !m->resumed_since_pause) {
      return T2S_SLEEP_IGNORE_REPEAT; /* after a wake the clocks saw (its false lost): new */
    }
    m->logind_paused = true;
    m->resumed_since_pause = false;
    m->gap_at_pause = gap;
    return T2S_SLEEP_REPORT_PAUSED;
  }
  if (!m->logind_paused) {
    return T2S_SLEEP_IGNORE_NO_PAUSE;
  }
  m->logind_paused = false;
  if (m->resumed_since_pause) {
    return T2S_SLEEP_IGNORE_CLOCKS_SAW;
  }
  *pslept_ns = gap > m->gap_at_pause ? (t2s_tstamp)(gap - m->gap_at_pause) : 0;
  m->logind_resumed = true;
  m->gap_at_resume = gap;
  return T2S_SLEEP_REPORT_RESUMED;
}

t2s_sleep_verdict t2s_sleep_merge_clock_resumed(t2s_sleep_merge *m, int64_t gap) {
  if (m->logind_resumed) {
    m->logind_resumed = false;
    if (gap - m->gap_at_resume < T2S_SLEEP_REPEAT_NS) {
      return T2S_SLEEP_IGNORE_LOGIND_SAW;
    }
  }
  if (m->logind_paused) {
    m->resumed_since_pause = true;
  }
  m->gap_at_resume = gap;
  return T2S_SLEEP_REPORT_RESUMED;
}
