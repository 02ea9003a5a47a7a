/* scn_check_fakedns.c: the fake-IP DNS expectations after the run (scn_fakedns.h). */
#include <stdio.h>
#include <string.h>

#include "scn_check.h"
#include "scn_fakedns.h"
#include "sim_fakedns.h"
#include "sim_proxy.h"

bool scn_fakedns_eval(const scn_expect *e, sim_world *w, char *actual, size_t alen) {
  uint64_t v = 0;
  switch (e->fd_what) {
  case SCN_FD_STAT: {
    t2s_fakedns_stats st;
    if (!sim_fakedns_stats(w, &st)) {
      snprintf(actual, alen, "no fake-dns line");
      return false;
    }
    memcpy(&v, (const char *)&st + e->stat_off, sizeof(v));
    break;
  }
  case SCN_FD_PROXY_NAME:
    v = sim_proxy_name_requests(w, e->host);
    break;
  case SCN_FD_PROXY_ADDR:
    v = sim_proxy_addr_requests(w);
    break;
  case SCN_FD_RESOLVED: {
    t2s_addr a;
    if (!sim_fakedns_resolved(w, e->name, &a)) {
      snprintf(actual, alen, "not resolved");
      return false;
    }
    char buf[64];
    t2s_addr_format(&a, false, buf, sizeof(buf));
    snprintf(actual, alen, "%s", buf);
    return t2s_addr_ip_eq(&a, &e->dst);
  }
  default:
    snprintf(actual, alen, "?");
    return false;
  }
  snprintf(actual, alen, "%llu", (unsigned long long)v);
  return scn_compare(v, e->op, e->value);
}
