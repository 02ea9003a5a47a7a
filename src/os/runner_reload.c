/* runner_reload.c: the plan of a reload (see runner_reload.h). */
#include "runner_reload.h"

#include <stdio.h>
#include <string.h>

void t2s_reload_plan_make(const t2s_cli_opts *running, const char *running_password,
                          const t2s_cli_opts *fresh, const char *fresh_password,
                          t2s_reload_plan *plan) {
  memset(plan, 0, sizeof(*plan));
  plan->next = *running;
  size_t n;
  const t2s_cli_option *table = t2s_cli_options(&n);
  for (size_t i = 0; i < n; i++) {
    const t2s_cli_option *opt = &table[i];
    if ((opt->flags & (T2S_CLI_ALIAS | T2S_CLI_CMDLINE_ONLY)) ||
        t2s_cli_option_same(opt, running, fresh)) {
      continue;
    }
    if (!(opt->flags & T2S_CLI_RUNTIME)) {
      plan->restart[plan->nrestart++] = opt->name;
      continue;
    }
    plan->changed[plan->nchanged++] = opt->name;
    for (size_t k = 0; k < 2; k++) {
      size_t off = opt->span[k].start, end = opt->span[k].end;
      if (end > off) {
        memcpy((char *)&plan->next + off, (const char *)fresh + off, end - off);
      }
    }
    if (opt->id == t2s_cli_find("proxy")->id ||
        opt->id == t2s_cli_find("proxy-probe-interval")->id ||
        opt->id == t2s_cli_find("proxy-probe-target")->id) {
      plan->proxies = true;
    }
  }
  if (strcmp(running_password, fresh_password) != 0) {
    plan->password = true;
    plan->proxies = true;
    bool listed = false;
    for (size_t i = 0; i < plan->nchanged; i++) {
      listed = listed || strcmp(plan->changed[i], "proxy") == 0;
    }
    if (!listed) {
      plan->changed[plan->nchanged++] = "proxy";
    }
  }
}

char *t2s_reload_join(const char *const *names, size_t n, char *buf, size_t buflen) {
  size_t o = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < n && o < buflen; i++) {
    int w = snprintf(buf + o, buflen - o, "%s%s",
                     i == 0       ? ""
                     : i + 1 == n ? " and "
                                  : ", ",
                     names[i]);
    if (w < 0) {
      break;
    }
    o += (size_t)w;
  }
  return buf;
}
