/* log.c: leveled log lines on stderr with a UTC timestamp. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

/* Process-wide: the binary sets it once at start from --log-level. */
static t2s_log_level log_level = T2S_LOG_INFO;

static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void t2s_log_set_level(t2s_log_level level) {
  log_level = level;
}

int t2s_log_enabled(t2s_log_level level) {
  return level >= log_level;
}

void t2s_log(t2s_log_level level, const char *fmt, ...) {
  if (level < log_level || level > T2S_LOG_ERROR) {
    return;
  }
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  char line[1024];
  int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000, level_names[level]);
  if (n < 0) {
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
  va_end(ap);
  /* One fputs per line so concurrent writers do not interleave within a line. */
  fprintf(stderr, "%s\n", line);
}
