/*
 * engine_reload.c: what a reload (docs/config.md) changes in a running engine: the settings
 * read at use (timeouts, policies) and the proxy list. Built on the proxies' own API
 * (engine_proxy.c): the old list is read through it, the new one given with
 * t2s_engine_set_proxies(), and the health of each proxy that kept its place is carried over.
 */
#include <string.h>

#include "engine_internal.h"

void t2s_engine_set_runtime(t2s_engine *e, const t2s_engine_config *cfg) {
  e->cfg.tcp_connect_timeout = cfg->tcp_connect_timeout;
  t2s_tcp_stack_set_pending_timeout(e->tcp, cfg->tcp_connect_timeout);
  e->cfg.udp_timeout = cfg->udp_timeout;
  e->cfg.dns_timeout = cfg->dns_timeout;
  e->cfg.on_network_change = cfg->on_network_change;
  e->cfg.network_debounce = cfg->network_debounce;
  e->cfg.icmp_unreach_on_refuse = cfg->icmp_unreach_on_refuse;
  e->cfg.socks5_pipelined = cfg->socks5_pipelined;
}

static void copy_str(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  n = n < cap ? n : cap - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

/* The same proxy: address and credentials. */
static bool same_endpoint(const t2s_addr *addr, const char *user, const char *pass,
                          const t2s_engine_proxy *p) {
  if (!t2s_addr_eq(addr, &p->addr) || (user == NULL) != (p->username == NULL)) {
    return false;
  }
  return user == NULL || (strcmp(user, p->username) == 0 &&
                          strcmp(pass ? pass : "", p->password ? p->password : "") == 0);
}

t2s_ssize t2s_engine_replace_proxies(t2s_engine *e, const t2s_engine_proxy *list, size_t n,
                                     const t2s_proxy_health_config *hcfg, t2s_tstamp now) {
  if (e == NULL || list == NULL || n == 0 || n > T2S_PROXY_MAX) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  e->now = now;
  /* A proxy that went DOWN has its flows reset first (its pending reset would be lost). */
  t2s_engine_proxy_handle_expiry(e, now);
  const t2s_proxy_set *old = t2s_engine_proxy_health(e);
  size_t oldn = old ? old->n : 1;
  t2s_proxy_set saved;
  if (old) {
    saved = *old;
  }
  bool keep[T2S_PROXY_MAX] = {false}; /* old index i keeps its flows (same place, same proxy) */
  for (size_t i = 0; i < oldn && i < n; i++) {
    int idx = old ? (int)i : -1; /* without a list the engine answers for cfg.proxy */
    keep[i] = same_endpoint(t2s_engine_proxy_addr(e, idx), t2s_engine_proxy_username(e, idx),
                            t2s_engine_proxy_password(e, idx), &list[i]);
  }
  size_t reset = 0;
  t2s_flow_iter it = T2S_FLOW_ITER_INIT;
  for (t2s_flow *f; (f = t2s_flow_iter_next(&e->flows, &it)) != NULL;) {
    int i = f->proxy < 0 ? 0 : f->proxy;
    if (f->proxy < 0 && old != NULL) {
      continue; /* a flow that goes to no proxy (UDP to a destination directly) */
    }
    if (i >= (int)oldn || !keep[i]) {
      reset += f->ops->reset(e, f, now);
    } else if (f->proxy < 0 && n > 1) {
      f->proxy = 0; /* the list starts now: proxy 0's DOWN resets it */
    }
  }
  e->stats.flows_reset += reset;
  if (old == NULL && n == 1 && list[0].addr.family != 0) {
    /* One proxy, no health kept: the engine's own copy of the address and credentials. */
    e->cfg.proxy = list[0].addr;
    e->cfg.proxy_kind = T2S_PROXY_SOCKS5;
    e->cfg.username = NULL;
    e->cfg.password = NULL;
    if (list[0].username != NULL) {
      copy_str(e->username, sizeof(e->username), list[0].username);
      copy_str(e->password, sizeof(e->password), list[0].password ? list[0].password : "");
      e->cfg.username = e->username;
      e->cfg.password = e->password;
    }
    return (t2s_ssize)reset;
  }
  if (old != NULL) {
    t2s_engine_proxy_free(e);
  }
  int rv = t2s_engine_set_proxies(e, list, n, hcfg, now);
  if (rv != 0) {
    return rv;
  }
  /* The health of each proxy that kept its place; a probe that was out is forgotten (its
   * result would come for the old list), so one that is not UP is probed again at once. */
  t2s_proxy_set *set = (t2s_proxy_set *)t2s_engine_proxy_health(e);
  for (size_t i = 0; old != NULL && i < n && i < oldn; i++) {
    if (!keep[i]) {
      continue;
    }
    set->p[i] = saved.p[i];
    if (set->p[i].probing || set->p[i].state != T2S_PROXY_UP) {
      set->p[i].probing = false;
      set->p[i].probe_at = now;
    }
  }
  return (t2s_ssize)reset;
}
