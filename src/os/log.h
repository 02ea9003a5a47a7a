/*
 * log.h: the binary's log, one line per message on stderr, filtered by level.
 *
 * The level is process-wide (set once from --log-level); the engine itself never logs, the
 * runner turns its events into lines.
 */
#ifndef T2S_LOG_H
#define T2S_LOG_H

typedef enum t2s_log_level {
  T2S_LOG_DEBUG = 0,
  T2S_LOG_INFO = 1,
  T2S_LOG_WARN = 2,
  T2S_LOG_ERROR = 3,
} t2s_log_level;

/* Sets the lowest level that is printed (default T2S_LOG_INFO). */
void t2s_log_set_level(t2s_log_level level);
/* True when messages of `level` are printed (to skip building expensive lines). */
int t2s_log_enabled(t2s_log_level level);
/* Prints "2024-01-02T03:04:05.678Z LEVEL message" when level is enabled. */
void t2s_log(t2s_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define T2S_DEBUG(...) t2s_log(T2S_LOG_DEBUG, __VA_ARGS__)
#define T2S_INFO(...) t2s_log(T2S_LOG_INFO, __VA_ARGS__)
#define T2S_WARN(...) t2s_log(T2S_LOG_WARN, __VA_ARGS__)
#define T2S_ERROR(...) t2s_log(T2S_LOG_ERROR, __VA_ARGS__)

#endif
