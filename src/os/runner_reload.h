/*
 * runner_reload.h: what a reload (SIGHUP with --config, docs/config.md) changes, as a pure
 * function of the running options and the ones just read: the options a reload applies (the
 * table's T2S_CLI_RUNTIME ones: proxies and credentials, timeouts, log level, policies) are
 * taken from the file, every other option that changed is listed as needing a restart and
 * kept as it runs. The runner (runner.c) carries the plan out.
 */
#ifndef T2S_RUNNER_RELOAD_H
#define T2S_RUNNER_RELOAD_H

#include "cli.h"

typedef struct t2s_reload_plan {
  t2s_cli_opts next; /* the running options with the reloadable ones taken from the file */
  const char *restart[T2S_CLI_OPTIONS_MAX]; /* options changed in the file that need a restart */
  size_t nrestart;
  const char *changed[T2S_CLI_OPTIONS_MAX]; /* reloadable options that changed (applied) */
  size_t nchanged;
  bool proxies;  /* the proxies, a credential or the probes changed: the list is replaced */
  bool password; /* the first proxy's password changed (file, variable or URL) */
} t2s_reload_plan;

/* Fills *plan from the running options and password and the fresh ones (both as parsed and
 * checked by t2s_cli_parse_with, passwords apart). */
void t2s_reload_plan_make(const t2s_cli_opts *running, const char *running_password,
                          const t2s_cli_opts *fresh, const char *fresh_password,
                          t2s_reload_plan *plan);

/* "a, b and c" of names[0..n) into buf (empty when n is 0). Returns buf. */
char *t2s_reload_join(const char *const *names, size_t n, char *buf, size_t buflen);

#endif
