/*
 * engine_proxy.c: several proxies in the engine (docs/proxies.md). The health state machine
 * (proxy_health.c) decides; this file is its plumbing: which proxy a new flow uses, what the
 * outcome of each upstream handshake says about its proxy, the probes asked of the host
 * (T2S_EV_PROXY_PROBE, answered with t2s_engine_proxy_probe_result()), and the reset of a
 * proxy's flows when it goes DOWN. The reset is deferred to the next expiry (a safe point):
 * the transition is found inside TCP callbacks, where aborting other connections is not
 * allowed.
 */
#include <string.h>

#include "dns.h"
#include "engine_internal.h"

typedef struct px_endpoint {
  t2s_addr addr;
  bool has_auth;
  char username[256];
  char password[256];
} px_endpoint;

struct t2s_engine_proxies {
  size_t n;
  px_endpoint ep[T2S_PROXY_MAX];
  t2s_proxy_set set;
  bool reset_pending[T2S_PROXY_MAX]; /* went DOWN: reset its flows at the next expiry */
  t2s_proxy_cause down_cause[T2S_PROXY_MAX];
  t2s_engine *engine;
};

static void copy_str(char *dst, size_t cap, const char *src) {
  size_t n = strlen(src);
  if (n >= cap) {
    n = cap - 1;
  }
  memcpy(dst, src, n);
  dst[n] = 0;
}

static void px_emit(t2s_engine *e, t2s_engine_event_type type, size_t i, int reason, uint64_t count,
                    uint64_t period, t2s_tstamp now) {
  if (e->hooks.on_event == NULL) {
    return;
  }
  t2s_engine_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = type;
  ev.now = now;
  ev.flow_id = i;
  ev.dst = e->px->ep[i].addr;
  ev.reason = reason;
  ev.bytes_up = count;
  ev.bytes_down = period;
  e->hooks.on_event(e->hooks.arg, &ev);
}

static void on_action(void *arg, const t2s_proxy_action *a, t2s_tstamp now) {
  struct t2s_engine_proxies *px = arg;
  t2s_engine *e = px->engine;
  switch (a->kind) {
  case T2S_PROXY_ACT_PROBE:
    px_emit(e, T2S_EV_PROXY_PROBE, a->proxy, (int)a->cause, 0, 0, now);
    break;
  case T2S_PROXY_ACT_DOWN:
    px->reset_pending[a->proxy] = true;
    px->down_cause[a->proxy] = a->cause;
    break;
  case T2S_PROXY_ACT_UP:
    px->reset_pending[a->proxy] = false;
    px_emit(e, T2S_EV_PROXY_UP, a->proxy, 0, 0, 0, now);
    break;
  case T2S_PROXY_ACT_LOG_FAILURE:
    px_emit(e, T2S_EV_PROXY_FAILURES, a->proxy, (int)a->cause, a->count, a->period, now);
    break;
  }
}

int t2s_engine_set_proxies(t2s_engine *e, const t2s_engine_proxy *list, size_t n,
                           const t2s_proxy_health_config *hcfg, t2s_tstamp now) {
  if (e == NULL || list == NULL || n == 0 || n > T2S_PROXY_MAX || e->px != NULL) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  struct t2s_engine_proxies *px = t2s_calloc(e->mem, 1, sizeof(*px));
  if (px == NULL) {
    return T2S_ERR_NOMEM;
  }
  px->engine = e;
  px->n = n;
  for (size_t i = 0; i < n; i++) {
    px->ep[i].addr = list[i].addr;
    if (list[i].username != NULL) {
      px->ep[i].has_auth = true;
      copy_str(px->ep[i].username, sizeof(px->ep[i].username), list[i].username);
      copy_str(px->ep[i].password, sizeof(px->ep[i].password),
               list[i].password ? list[i].password : "");
    }
  }
  int rv = t2s_proxy_set_init(&px->set, n, hcfg, on_action, px, now);
  if (rv != 0) {
    t2s_free(e->mem, px);
    return rv;
  }
  for (size_t i = 0; i < n; i++) {
    if (list[i].addr.family == 0) {
      t2s_proxy_set_unresolved(&px->set, i, now);
    }
  }
  e->px = px;
  /* The first proxy is the one whose route the network-change machine follows and the one
   * the loop guard knows (while it has no address, cfg.proxy stays what it was). */
  e->cfg.proxy_kind = T2S_PROXY_SOCKS5;
  if (list[0].addr.family != 0) {
    e->cfg.proxy = list[0].addr;
  }
  return 0;
}

void t2s_engine_proxy_free(t2s_engine *e) {
  t2s_free(e->mem, e->px);
  e->px = NULL;
}

const t2s_proxy_set *t2s_engine_proxy_health(const t2s_engine *e) {
  return e->px ? &e->px->set : NULL;
}

int t2s_engine_proxy_pick(t2s_engine *e) {
  return e->px ? t2s_proxy_set_pick(&e->px->set) : -1;
}

int t2s_engine_proxy_next(t2s_engine *e, int after) {
  return e->px ? t2s_proxy_set_next(&e->px->set, after) : -1;
}

bool t2s_engine_proxies_all_down(const t2s_engine *e) {
  if (e->px == NULL) {
    return false;
  }
  for (size_t i = 0; i < e->px->n; i++) {
    if (t2s_proxy_set_usable(&e->px->set, i)) {
      return false;
    }
  }
  return true; /* every proxy DOWN or UNRESOLVED */
}

const t2s_addr *t2s_engine_proxy_addr(const t2s_engine *e, int i) {
  if (e->px == NULL || i < 0 || (size_t)i >= e->px->n) {
    return &e->cfg.proxy;
  }
  return &e->px->ep[i].addr;
}

const char *t2s_engine_proxy_username(const t2s_engine *e, int i) {
  if (e->px == NULL || i < 0 || (size_t)i >= e->px->n) {
    return e->cfg.username;
  }
  return e->px->ep[i].has_auth ? e->px->ep[i].username : NULL;
}

const char *t2s_engine_proxy_password(const t2s_engine *e, int i) {
  if (e->px == NULL || i < 0 || (size_t)i >= e->px->n) {
    return e->cfg.password;
  }
  return e->px->ep[i].has_auth ? e->px->ep[i].password : NULL;
}

void t2s_engine_proxy_outcome(t2s_engine *e, int i, int err, t2s_tstamp now) {
  int cause = err == 0 ? -1 : t2s_proxy_cause_from_err(err);
  if (cause >= 0) {
    e->stats.upstream_failures[cause]++; /* with or without a proxy set */
  }
  if (e->px == NULL || i < 0 || (size_t)i >= e->px->n) {
    return;
  }
  if (err == 0) {
    t2s_proxy_set_success(&e->px->set, (size_t)i, now);
  } else if (cause >= 0) {
    t2s_proxy_set_failure(&e->px->set, (size_t)i, (t2s_proxy_cause)cause, now);
  }
}

void t2s_engine_proxy_count_bytes(t2s_engine *e, int i, uint64_t up, uint64_t down) {
  if (e->px == NULL || i < 0 || (size_t)i >= e->px->n) {
    return;
  }
  e->px->set.p[i].bytes_up += up;
  e->px->set.p[i].bytes_down += down;
}

int t2s_engine_proxy_readdress(t2s_engine *e, size_t i, const t2s_addr *addr, t2s_tstamp now) {
  if (e == NULL || e->px == NULL || i >= e->px->n || addr == NULL || addr->family == 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  e->now = now;
  px_endpoint *ep = &e->px->ep[i];
  bool unresolved = e->px->set.p[i].state == T2S_PROXY_UNRESOLVED;
  if (!unresolved && t2s_addr_eq(&ep->addr, addr)) {
    return 0;
  }
  ep->addr = *addr;
  t2s_proxy_set_readdressed(&e->px->set, i, now);
  if (i == 0) {
    e->cfg.proxy = *addr;
    return 1; /* the caller (engine.c) moves the network machine's target */
  }
  return 0;
}

void t2s_engine_proxy_net_decision(t2s_engine *e, t2s_tstamp now) {
  if (e->px != NULL) {
    t2s_proxy_set_network_changed(&e->px->set, now);
  }
}

void t2s_engine_proxy_probe_result(t2s_engine *e, size_t i, int err, t2s_tstamp now) {
  if (e->px == NULL || i >= e->px->n) {
    return;
  }
  e->now = now;
  int cause = err == 0 ? 0 : t2s_proxy_cause_from_err(err);
  t2s_proxy_set_probe_result(&e->px->set, i, err == 0,
                             cause < 0 ? T2S_PROXY_CAUSE_PROTOCOL : (t2s_proxy_cause)cause, now);
}

t2s_tstamp t2s_engine_proxy_expiry(const t2s_engine *e) {
  if (e->px == NULL) {
    return T2S_TSTAMP_MAX;
  }
  for (size_t i = 0; i < e->px->n; i++) {
    if (e->px->reset_pending[i]) {
      return e->now; /* at once */
    }
  }
  return t2s_proxy_set_get_expiry(&e->px->set);
}

void t2s_engine_proxy_handle_expiry(t2s_engine *e, t2s_tstamp now) {
  if (e->px == NULL) {
    return;
  }
  for (size_t i = 0; i < e->px->n; i++) {
    if (!e->px->reset_pending[i]) {
      continue;
    }
    e->px->reset_pending[i] = false;
    /* Reset once per DOWN transition: RST to its TCP clients, its UDP associations flushed
     * (every UDP session: they are re-created through the proxy in use on the next
     * datagram). */
    size_t n = 0;
    t2s_flow_iter it = T2S_FLOW_ITER_INIT;
    for (t2s_flow *f; (f = t2s_flow_iter_next(&e->flows, &it)) != NULL;) {
      if (f->ops->group != T2S_FLOW_GROUP_TCP || f->proxy == (int)i) {
        n += f->ops->reset(e, f, now);
      }
    }
    e->stats.flows_reset += n;
    px_emit(e, T2S_EV_PROXY_DOWN, i, (int)e->px->down_cause[i], n, 0, now);
  }
  if (t2s_proxy_set_get_expiry(&e->px->set) <= now) {
    t2s_proxy_set_handle_expiry(&e->px->set, now);
  }
}

bool t2s_engine_dns_servfail(t2s_engine *e, const t2s_pkt *pkt) {
  t2s_dns_query q;
  if (pkt->proto != T2S_IPPROTO_UDP || pkt->dst.port != 53 ||
      t2s_dns_parse_query(pkt->payload, pkt->payload_len, &q) != 0) {
    return false;
  }
  uint8_t answer[512];
  t2s_ssize alen = t2s_dns_build_answer(answer, sizeof(answer), t2s_dns_udp_limit(&q), &q,
                                        T2S_DNS_RCODE_SERVFAIL, NULL, 0, 0);
  if (alen < 0) {
    return false;
  }
  /* From the address the client asked, to the port it asked from. */
  uint8_t out[60 + sizeof(answer)];
  t2s_ssize n = t2s_build_udp(out, sizeof(out), &pkt->dst, &pkt->src, answer, (size_t)alen);
  if (n < 0 || t2s_engine_send(e, out, (size_t)n) != 0) {
    return false;
  }
  e->stats.udp_datagrams_down++;
  return true;
}
