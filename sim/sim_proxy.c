/* sim_proxy.c: the simulated SOCKS5 proxy, a protocol front over sim_socks5's server model. */
#include "sim_proxy.h"

#include <stdlib.h>
#include <string.h>

#include "sim_socks5.h"
#include "sim_upstream.h"

typedef struct sim_proxy {
  sim_world *w;
  sim_proxy_config cfg;
  t2s_sim_socks5_config scfg;
} sim_proxy;

typedef struct front {
  sim_proxy *px;
  t2s_sim_socks5_server srv;
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
    if (h == NULL || h->atyp == T2S_SOCKS5_ATYP_DOMAIN) {
      /* The engine only asks for IP destinations; a name has no simulated DNS. */
      t2s_sim_socks5_server_reply(&f->srv, T2S_SOCKS5_REP_HOST_UNREACHABLE, NULL);
      flush(f, s, now);
      sim_up_stream_front_fail(s, 0, now);
      return (t2s_ssize)len;
    }
    t2s_addr target = h->addr;
    sim_up_stream_set_target(s, &target);
    const sim_up_behaviour *b = sim_upstream_lookup(w->up, &target);
    if (b->kind == SIM_UP_BLACKHOLE) {
      log_request(w, now, &target, -1);
      return (t2s_ssize)len; /* never answers: the engine's connect timeout decides */
    }
    if (b->kind == SIM_UP_REFUSE || b->kind == SIM_UP_UNREACHABLE) {
      uint8_t rep = b->kind == SIM_UP_REFUSE ? T2S_SOCKS5_REP_CONN_REFUSED
                                             : T2S_SOCKS5_REP_HOST_UNREACHABLE;
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
  px->scfg.udp_supported = false;
  px->scfg.black_hole = cfg->black_hole;
  w->cfg.proxy_kind = T2S_PROXY_SOCKS5;
  w->cfg.proxy = cfg->addr;
  w->cfg.username = px->cfg.engine_user[0] ? px->cfg.engine_user : NULL;
  w->cfg.password = px->cfg.engine_user[0] ? px->cfg.engine_pass : NULL;
  w->proxy = px;
  sim_upstream_set_front_factory(w->up, factory, px);
  return 0;
}

void sim_proxy_free(sim_world *w) {
  free(w->proxy);
  w->proxy = NULL;
}
