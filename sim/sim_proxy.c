/* sim_proxy.c: the simulated SOCKS5 proxy, a protocol front over sim_socks5's server model. */
#include "sim_proxy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim_socks5.h"
#include "sim_upstream.h"

typedef struct sim_proxy {
  sim_world *w;
  sim_proxy_config cfg;
  t2s_sim_socks5_config scfg;
  uint64_t associations;
  uint64_t by_name[SIM_PROXY_MAX_HOSTS]; /* CONNECTs by the name of hosts[i] */
  uint64_t by_unknown_name;              /* CONNECTs by a name it does not resolve */
  uint64_t by_addr;                      /* CONNECTs by address */
} sim_proxy;

typedef struct front {
  sim_proxy *px;
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
  for (size_t i = 0; i < px->cfg.nhosts; i++) {
    if (strcasecmp(px->cfg.hosts[i].name, name) == 0) {
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
  *target = px->cfg.hosts[k].addr;
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
  sim_world *w = f->px->w;
  size_t consumed = 0;
  int st = t2s_sim_socks5_server_feed(&f->srv, data, len, &consumed);
  flush(f, s, now);
  if (st < 0) {
    return st;
  }
  if (st == T2S_SIM_SOCKS5_REQUEST_READY) {
    uint8_t cmd = 0;
    const t2s_socks5_host *h = t2s_sim_socks5_server_request(&f->srv, &cmd);
    t2s_addr target;
    int rep = h == NULL ? T2S_SOCKS5_REP_GENERAL_FAILURE : 0;
    if (h != NULL && cmd == T2S_SOCKS5_CMD_CONNECT && h->atyp == T2S_SOCKS5_ATYP_DOMAIN) {
      rep = resolve_name(f->px, h, &target, now); /* the names of `proxy host` */
    } else if (h != NULL && h->atyp == T2S_SOCKS5_ATYP_DOMAIN) {
      rep = T2S_SOCKS5_REP_HOST_UNREACHABLE;
    } else if (h != NULL) {
      target = h->addr;
      if (cmd == T2S_SOCKS5_CMD_CONNECT) {
        f->px->by_addr++;
        if (f->px->cfg.names_only) {
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
      bnd.port = f->px->cfg.addr.port;
      f->udp = true;
      f->px->associations++;
      sim_log_begin(&w->log, now, "proxy_udp_associate");
      sim_log_addr(&w->log, "relay", &f->px->cfg.addr);
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
    t2s_sim_socks5_server_reply(&f->srv, T2S_SOCKS5_REP_SUCCEEDED, &f->px->cfg.addr);
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

static bool relay_claims(void *arg, const t2s_addr *relay) {
  sim_proxy *px = arg;
  return t2s_addr_eq(relay, &px->cfg.addr);
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
    h.addr = px->cfg.hosts[k].addr;
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
  if (!t2s_addr_eq(sim_up_stream_dst(s), &px->cfg.addr)) {
    return;
  }
  front *f = calloc(1, sizeof(*f));
  if (f == NULL) {
    return;
  }
  f->px = px;
  if (t2s_sim_socks5_server_init(&f->srv, &px->scfg) != 0) {
    free(f);
    return;
  }
  sim_up_stream_set_front(s, &front_ops, f);
}

int sim_proxy_install(sim_world *w, const sim_proxy_config *cfg) {
  sim_proxy *px = calloc(1, sizeof(*px));
  if (px == NULL) {
    return T2S_ERR_NOMEM;
  }
  px->w = w;
  px->cfg = *cfg;
  px->scfg.auth_required = cfg->username[0] != 0;
  px->scfg.username = px->cfg.username;
  px->scfg.password = px->cfg.password;
  px->scfg.udp_supported = cfg->udp == SIM_PROXY_UDP_RELAY;
  px->scfg.close_on_unsupported = cfg->udp == SIM_PROXY_UDP_CLOSE;
  px->scfg.black_hole = cfg->black_hole;
  w->cfg.proxy_kind = T2S_PROXY_SOCKS5;
  w->cfg.proxy = cfg->addr;
  w->cfg.username = px->cfg.engine_user[0] ? px->cfg.engine_user : NULL;
  w->cfg.password = px->cfg.engine_user[0] ? px->cfg.engine_pass : NULL;
  w->proxy = px;
  sim_upstream_set_front_factory(w->up, factory, px);
  sim_upstream_set_dgram_front(w->up, &relay_ops, px);
  return 0;
}

void sim_proxy_free(sim_world *w) {
  free(w->proxy);
  w->proxy = NULL;
}
