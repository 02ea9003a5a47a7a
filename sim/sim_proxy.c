/* sim_proxy.c: the simulated SOCKS5 proxies, a protocol front over sim_socks5's server model;
 * their scripted failures and the answers to the engine's probes (sim_proxy.h). */
#include "sim_proxy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim_socks5.h"
#include "sim_upstream.h"

typedef struct sim_proxy sim_proxy;

typedef struct px_one {
  sim_proxy *set;
  size_t index;
  sim_proxy_config cfg;
  t2s_sim_socks5_config scfg; /* points into cfg */
  sim_proxy_mode mode;
  sim_proxy_seen seen;
} px_one;

struct sim_proxy {
  sim_world *w;
  size_t n;
  px_one p[T2S_PROXY_MAX];
  bool health; /* the engine keeps the proxies' health (t2s_engine_set_proxies) */
  t2s_proxy_health_config hcfg;
  uint64_t associations;
  uint64_t by_name[SIM_PROXY_MAX_HOSTS]; /* CONNECTs by the name of hosts[i] */
  uint64_t by_unknown_name;              /* CONNECTs by a name it does not resolve */
  uint64_t by_addr;                      /* CONNECTs by address */
};

static const char *const mode_names[] = {"back", "die", "refuse", "blackhole", "hang"};
_Static_assert(T2S_ARRAY_LEN(mode_names) == SIM_PROXY_MODE_MAX, "mode names");

const char *sim_proxy_mode_name(sim_proxy_mode m) {
  return (size_t)m < T2S_ARRAY_LEN(mode_names) ? mode_names[m] : "?";
}

typedef struct front {
  px_one *one;
  t2s_sim_socks5_server srv;
  bool udp; /* an association's control connection */
} front;

static void flush(front *f, sim_up_stream *s, t2s_tstamp now) {
  const uint8_t *out;
  size_t n;
  t2s_sim_socks5_server_pending_output(&f->srv, &out, &n);
  if (n > 0) {
    sim_up_stream_emit(s, out, n, now);
    t2s_sim_socks5_server_output_consumed(&f->srv, n);
  }
}

static void log_request(sim_world *w, t2s_tstamp now, const t2s_addr *target, int rep) {
  sim_log_begin(&w->log, now, "proxy_request");
  sim_log_addr(&w->log, "target", target);
  sim_log_i64(&w->log, "rep", rep);
  sim_log_end(&w->log);
}

/* The host entry of a name (any case), or -1. */
static int host_index(const sim_proxy *px, const char *name) {
  /* `proxy host` lines belong to the first proxy line: a resolver beside every proxy. */
  const sim_proxy_config *c = &px->p[0].cfg;
  for (size_t i = 0; i < c->nhosts; i++) {
    if (strcasecmp(c->hosts[i].name, name) == 0) {
      return (int)i;
    }
  }
  return -1;
}

/* A CONNECT by name: its target (the address the proxy's side resolves, with the port asked),
 * or a REP (4: a name it cannot resolve). Logged as proxy_request with the name. */
static int resolve_name(sim_proxy *px, const t2s_socks5_host *h, t2s_addr *target, t2s_tstamp now) {
  int k = host_index(px, h->domain);
  sim_log_begin(&px->w->log, now, "proxy_name");
  sim_log_str(&px->w->log, "name", h->domain);
  sim_log_u64(&px->w->log, "port", h->addr.port);
  if (k < 0) {
    px->by_unknown_name++;
    sim_log_i64(&px->w->log, "rep", T2S_SOCKS5_REP_HOST_UNREACHABLE);
    sim_log_end(&px->w->log);
    return T2S_SOCKS5_REP_HOST_UNREACHABLE;
  }
  px->by_name[k]++;
  *target = px->p[0].cfg.hosts[k].addr;
  target->port = h->addr.port;
  sim_log_addr(&px->w->log, "resolved", target);
  sim_log_end(&px->w->log);
  return 0;
}

uint64_t sim_proxy_name_requests(const sim_world *w, const char *name) {
  const sim_proxy *px = w->proxy;
  int k = px != NULL ? host_index(px, name) : -1;
  return k >= 0 ? px->by_name[k] : 0;
}

uint64_t sim_proxy_addr_requests(const sim_world *w) {
  return w->proxy != NULL ? w->proxy->by_addr : 0;
}

static t2s_ssize front_input(void *arg, sim_up_stream *s, const uint8_t *data, size_t len,
                             t2s_tstamp now) {
  front *f = arg;
  sim_world *w = f->one->set->w;
  size_t consumed = 0;
  int st = t2s_sim_socks5_server_feed(&f->srv, data, len, &consumed);
  flush(f, s, now);
  if (st < 0) {
    return st;
  }
  if (st == T2S_SIM_SOCKS5_REQUEST_READY) {
    uint8_t cmd = 0;
    const t2s_socks5_host *h = t2s_sim_socks5_server_request(&f->srv, &cmd);
    if (f->one->mode == SIM_PROXY_HANG) {
      if (h != NULL && h->atyp != T2S_SOCKS5_ATYP_DOMAIN) {
        sim_up_stream_set_target(s, &h->addr);
        log_request(w, now, &h->addr, -2); /* hangs after the greeting: never answers */
      }
      return (t2s_ssize)len;
    }
    t2s_addr target;
    int rep = h == NULL ? T2S_SOCKS5_REP_GENERAL_FAILURE : 0;
    if (h != NULL && cmd == T2S_SOCKS5_CMD_CONNECT && h->atyp == T2S_SOCKS5_ATYP_DOMAIN) {
      rep = resolve_name(f->one->set, h, &target, now); /* the names of `proxy host` */
    } else if (h != NULL && h->atyp == T2S_SOCKS5_ATYP_DOMAIN) {
      rep = T2S_SOCKS5_REP_HOST_UNREACHABLE;
    } else if (h != NULL) {
      target = h->addr;
      if (cmd == T2S_SOCKS5_CMD_CONNECT) {
        f->one->set->by_addr++;
        if (f->one->cfg.names_only) {
          rep = T2S_SOCKS5_REP_ATYP_UNSUPPORTED; /* a proxy that routes by name only */
          log_request(w, now, &target, rep);
        }
      }
    }
    if (rep != 0) {
      t2s_sim_socks5_server_reply(&f->srv, (uint8_t)rep, NULL);
      flush(f, s, now);
      sim_up_stream_front_fail(s, 0, now);
      return (t2s_ssize)len;
    }
    if (cmd == T2S_SOCKS5_CMD_UDP_ASSOCIATE) {
      /* BND 0.0.0.0 with the proxy's port: "the address you connected to". */
      t2s_addr bnd;
      memset(&bnd, 0, sizeof(bnd));
      bnd.family = T2S_AF_INET;
      bnd.port = f->one->cfg.addr.port;
      f->udp = true;
      f->one->set->associations++;
      sim_log_begin(&w->log, now, "proxy_udp_associate");
      sim_log_addr(&w->log, "relay", &f->one->cfg.addr);
      sim_log_end(&w->log);
      t2s_sim_socks5_server_reply(&f->srv, T2S_SOCKS5_REP_SUCCEEDED, &bnd);
      flush(f, s, now);
      return (t2s_ssize)len;
    }
    sim_up_stream_set_target(s, &target);
    const sim_up_behaviour *b = sim_upstream_lookup(w->up, &target);
    if (b->kind == SIM_UP_BLACKHOLE) {
      log_request(w, now, &target, -1);
      return (t2s_ssize)len; /* never answers: the engine's connect timeout decides */
    }
    if (b->kind == SIM_UP_REFUSE || b->kind == SIM_UP_UNREACHABLE) {
      uint8_t rep =
          b->kind == SIM_UP_REFUSE ? T2S_SOCKS5_REP_CONN_REFUSED : T2S_SOCKS5_REP_HOST_UNREACHABLE;
      log_request(w, now, &target, rep);
      t2s_sim_socks5_server_reply(&f->srv, rep, NULL);
      flush(f, s, now);
      sim_up_stream_front_fail(s, 0, now);
      return (t2s_ssize)len;
    }
    log_request(w, now, &target, 0);
    t2s_sim_socks5_server_reply(&f->srv, T2S_SOCKS5_REP_SUCCEEDED, &f->one->cfg.addr);
    flush(f, s, now);
    /* Bytes after the request are payload for the destination (the caller passes them on
     * once the front is gone). The front is freed inside front_done: do not touch f after. */
    sim_up_stream_front_done(s, &target, now);
    return (t2s_ssize)consumed;
  }
  if (f->udp) {
    return (t2s_ssize)len; /* the control connection of an association: ignored */
  }
  if (st == T2S_SIM_SOCKS5_CLOSE) {
    sim_up_stream_front_fail(s, 0, now);
    return (t2s_ssize)len;
  }
  /* NEED_MORE (everything consumed) or ESTABLISHED (not reached while the front is on). */
  return (t2s_ssize)consumed;
}

static void front_del(void *arg) {
  free(arg);
}

static const sim_up_front_ops front_ops = {front_input, front_del};

/* ---- the UDP relay ---- */

int sim_proxy_index(const sim_world *w, const t2s_addr *addr) {
  const sim_proxy *px = w->proxy;
  for (size_t i = 0; px != NULL && i < px->n; i++) {
    if (t2s_addr_eq(addr, &px->p[i].cfg.addr)) {
      return (int)i;
    }
  }
  return -1;
}

static bool relay_claims(void *arg, const t2s_addr *relay) {
  sim_proxy *px = arg;
  return sim_proxy_index(px->w, relay) >= 0;
}

static void relay_reply(sim_proxy *px, uint64_t id, const t2s_addr *from, const uint8_t *data,
                        size_t len, t2s_tstamp at) {
  uint8_t *buf = malloc(len + 32);
  if (buf == NULL) {
    return;
  }
  t2s_ssize n = t2s_socks5_udp_encode(buf, len + 32, from, data, len);
  if (n > 0) {
    sim_upstream_dgram_emit(px->w->up, id, buf, (size_t)n, at);
  }
  free(buf);
}

static void relay_input(void *arg, uint64_t id, const uint8_t *data, size_t len, t2s_tstamp now) {
  sim_proxy *px = arg;
  sim_world *w = px->w;
  t2s_socks5_host h;
  const uint8_t *payload;
  size_t plen;
  t2s_socks5_error_reason why;
  int rv = t2s_socks5_udp_decode_host(data, len, &h, &payload, &plen, &why);
  int k = rv == 0 && h.atyp == T2S_SOCKS5_ATYP_DOMAIN ? host_index(px, h.domain) : -1;
  if (k >= 0) { /* a datagram to a name the proxy's side resolves (`proxy host`) */
    px->by_name[k]++;
    uint16_t port = h.addr.port;
    h.addr = px->p[0].cfg.hosts[k].addr;
    h.addr.port = port;
    h.atyp = h.addr.family == T2S_AF_INET ? T2S_SOCKS5_ATYP_IPV4 : T2S_SOCKS5_ATYP_IPV6;
  }
  sim_log_begin(&w->log, now, "proxy_udp");
  if (k >= 0) {
    sim_log_str(&w->log, "name", h.domain);
  }
  if (rv != 0 || h.atyp == T2S_SOCKS5_ATYP_DOMAIN) {
    sim_log_str(&w->log, "error", rv != 0 ? t2s_socks5_reason_name(why) : "domain");
    sim_log_end(&w->log);
    return;
  }
  const sim_up_behaviour *b = sim_upstream_lookup(w->up, &h.addr);
  sim_log_addr(&w->log, "target", &h.addr);
  sim_log_u64(&w->log, "len", plen);
  sim_log_str(&w->log, "behaviour", sim_up_kind_name(b->kind));
  sim_log_end(&w->log);
  if (b->kind != SIM_UP_ECHO && b->kind != SIM_UP_SOURCE) {
    return; /* sink, refuse and black hole: nothing comes back */
  }
  relay_reply(px, id, &h.addr, payload, plen, now + b->latency);
  if (b->reply_from.family == h.addr.family) {
    relay_reply(px, id, &b->reply_from, payload, plen, now + b->latency + T2S_MICROSECONDS);
  }
}

static const sim_up_dgram_front_ops relay_ops = {relay_claims, relay_input};

static void factory(void *arg, sim_up_stream *s) {
  sim_proxy *px = arg;
  int i = sim_proxy_index(px->w, sim_up_stream_dst(s));
  if (i < 0) {
    return;
  }
  px_one *one = &px->p[i];
  front *f = calloc(1, sizeof(*f));
  if (f == NULL) {
    return;
  }
  f->one = one;
  if (t2s_sim_socks5_server_init(&f->srv, &one->scfg) != 0) {
    free(f);
    return;
  }
  one->seen.streams++;
  sim_up_stream_set_front(s, &front_ops, f);
  if (one->mode == SIM_PROXY_DIE || one->mode == SIM_PROXY_REFUSE) {
    sim_up_stream_override_connect(s, SIM_UP_REFUSE);
  } else if (one->mode == SIM_PROXY_BLACKHOLE) {
    sim_up_stream_override_connect(s, SIM_UP_BLACKHOLE);
  }
}

int sim_proxy_install(sim_world *w, const sim_proxy_config *cfg) {
  sim_proxy *px = w->proxy;
  if (px == NULL) {
    px = calloc(1, sizeof(*px));
    if (px == NULL) {
      return T2S_ERR_NOMEM;
    }
    px->w = w;
    t2s_proxy_health_config_default(&px->hcfg);
    w->proxy = px;
    sim_upstream_set_front_factory(w->up, factory, px);
    sim_upstream_set_dgram_front(w->up, &relay_ops, px);
  }
  if (px->n == T2S_PROXY_MAX) {
    return T2S_ERR_LIMIT;
  }
  px_one *one = &px->p[px->n];
  one->set = px;
  one->index = px->n;
  one->cfg = *cfg;
  one->scfg.auth_required = cfg->username[0] != 0;
  one->scfg.username = one->cfg.username;
  one->scfg.password = one->cfg.password;
  one->scfg.udp_supported = cfg->udp == SIM_PROXY_UDP_RELAY;
  one->scfg.close_on_unsupported = cfg->udp == SIM_PROXY_UDP_CLOSE;
  one->scfg.black_hole = cfg->black_hole;
  one->seen.first_down_at = T2S_TSTAMP_MAX;
  if (px->n == 0) {
    w->cfg.proxy_kind = T2S_PROXY_SOCKS5;
    w->cfg.proxy = cfg->addr;
    w->cfg.username = one->cfg.engine_user[0] ? one->cfg.engine_user : NULL;
    w->cfg.password = one->cfg.engine_user[0] ? one->cfg.engine_pass : NULL;
  }
  px->n++;
  if (px->n >= 2) {
    px->health = true;
  }
  return 0;
}

void sim_proxy_free(sim_world *w) {
  free(w->proxy);
  w->proxy = NULL;
}

void sim_proxy_set_health(sim_world *w, const t2s_proxy_health_config *hcfg) {
  if (w->proxy == NULL) {
    return;
  }
  w->proxy->health = true;
  if (hcfg != NULL) {
    w->proxy->hcfg = *hcfg;
  }
}

int sim_proxy_engine_started(sim_world *w, t2s_tstamp now) {
  sim_proxy *px = w->proxy;
  if (px == NULL || !px->health || w->engine == NULL) {
    return 0;
  }
  t2s_engine_proxy list[T2S_PROXY_MAX];
  memset(list, 0, sizeof(list));
  for (size_t i = 0; i < px->n; i++) {
    const sim_proxy_config *c = &px->p[i].cfg;
    list[i].addr = c->addr;
    list[i].username = c->engine_user[0] ? c->engine_user : NULL;
    list[i].password = c->engine_user[0] ? c->engine_pass : NULL;
  }
  return t2s_engine_set_proxies(w->engine, list, px->n, &px->hcfg, now);
}

/* ---- probes and scripted failures ---- */

static void probe_done(void *arg, sim_event *ev, t2s_tstamp now) {
  sim_proxy *px = arg;
  sim_world *w = px->w;
  size_t i = (size_t)ev->u64a;
  int err = (int)(int64_t)ev->u64b;
  px->p[i].seen.probes++;
  sim_log_begin(&w->log, now, "proxy_probe_result");
  sim_log_addr(&w->log, "proxy", &px->p[i].cfg.addr);
  sim_log_str(&w->log, "result", err == 0 ? "ok" : t2s_strerror(err));
  sim_log_end(&w->log);
  if (w->engine != NULL) {
    t2s_engine_proxy_probe_result(w->engine, i, err, now);
  }
}

/* The probe (a connect and a CONNECT, as with --proxy-probe-target) as the mode says: a good
 * answer or a refusal after 2 ms, a timeout after the engine's connect timeout. */
static void probe(sim_proxy *px, size_t i, t2s_tstamp now) {
  const px_one *one = &px->p[i];
  int err = 0;
  t2s_tstamp delay = 2 * T2S_MILLISECONDS;
  switch (one->mode) {
  case SIM_PROXY_OK:
    if (one->cfg.black_hole) {
      err = T2S_ERR_TIMEOUT;
    } else if (one->scfg.auth_required && (strcmp(one->cfg.username, one->cfg.engine_user) != 0 ||
                                           strcmp(one->cfg.password, one->cfg.engine_pass) != 0)) {
      err = T2S_ERR_AUTH;
    }
    break;
  case SIM_PROXY_DIE:
  case SIM_PROXY_REFUSE:
    err = T2S_ERR_REFUSED;
    delay = 1 * T2S_MILLISECONDS;
    break;
  case SIM_PROXY_BLACKHOLE:
  case SIM_PROXY_HANG:
  case SIM_PROXY_MODE_MAX:
    err = T2S_ERR_TIMEOUT;
    break;
  }
  if (err == T2S_ERR_TIMEOUT) {
    delay = px->w->cfg.tcp_connect_timeout;
  }
  sim_loop_schedule(&px->w->loop, now + delay, SIM_EV_UPSTREAM, probe_done, px, i,
                    (uint64_t)(int64_t)err, NULL, 0);
}

void sim_proxy_on_event(sim_world *w, const t2s_engine_event *ev) {
  sim_proxy *px = w->proxy;
  if (px == NULL || ev->flow_id >= px->n) {
    return;
  }
  px_one *one = &px->p[ev->flow_id];
  switch (ev->type) {
  case T2S_EV_PROXY_PROBE:
    probe(px, (size_t)ev->flow_id, w->loop.now);
    break;
  case T2S_EV_PROXY_DOWN:
    one->seen.downs++;
    one->seen.flows_reset += ev->bytes_up;
    if (one->seen.first_down_at == T2S_TSTAMP_MAX) {
      one->seen.first_down_at = w->loop.now;
    }
    break;
  case T2S_EV_PROXY_UP:
    one->seen.ups++;
    break;
  default:
    break;
  }
}

void sim_proxy_set_mode(sim_world *w, size_t i, sim_proxy_mode mode, t2s_tstamp now) {
  sim_proxy *px = w->proxy;
  if (px == NULL || i >= px->n) {
    return;
  }
  px->p[i].mode = mode;
  size_t n = 0;
  if (mode == SIM_PROXY_DIE) {
    n = sim_upstream_reset_dst(w->up, &px->p[i].cfg.addr, now);
  }
  sim_log_begin(&w->log, now, "proxy_mode");
  sim_log_addr(&w->log, "proxy", &px->p[i].cfg.addr);
  sim_log_str(&w->log, "mode", sim_proxy_mode_name(mode));
  if (mode == SIM_PROXY_DIE) {
    sim_log_u64(&w->log, "streams_reset", n);
  }
  sim_log_end(&w->log);
}

bool sim_proxy_get_seen(const sim_world *w, size_t i, sim_proxy_seen *out) {
  const sim_proxy *px = w->proxy;
  if (px == NULL || i >= px->n) {
    return false;
  }
  *out = px->p[i].seen;
  return true;
}
