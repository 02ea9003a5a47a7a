/* sim_client.c: closed-loop client hosts on their own t2s_tcp_stack. */
#include "sim_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"
#include "sim_util.h"
#include "tcp.h"

#define SEND_CHUNK 16384
#define PORT_TRIES 64

typedef struct client {
  struct sim_clients *host;
  sim_client_spec spec;
  uint8_t *text;  /* own copy of spec.text */
  uint64_t total; /* bytes to send */
  sim_client_result res;
  t2s_tcp_conn *conn;
  bool shut;
  uint64_t rx_hash;
} client;

struct sim_clients {
  sim_world *w;
  t2s_rand rand;
  t2s_tcp_stack *stack;
  client **v;
  size_t n, cap;
  t2s_addr addr4, addr6;
};

const char *sim_client_state_name(sim_client_state s) {
  switch (s) {
  case SIM_CLIENT_IDLE:
    return "idle";
  case SIM_CLIENT_CONNECTING:
    return "connecting";
  case SIM_CLIENT_OPEN:
    return "open";
  case SIM_CLIENT_DONE:
    return "done";
  case SIM_CLIENT_RESET:
    return "reset";
  case SIM_CLIENT_REFUSED:
    return "refused";
  case SIM_CLIENT_FAILED:
    return "failed";
  }
  return "unknown";
}

static void log_client(client *c, t2s_tstamp now, const char *ev) {
  sim_log *log = &c->host->w->log;
  sim_log_begin(log, now, ev);
  sim_log_str(log, "client", c->spec.name);
}

static void client_fail(client *c, t2s_tstamp now, const char *why) {
  char msg[256];
  snprintf(msg, sizeof(msg), "client %s: %s", c->spec.name, why);
  sim_world_invariant(c->host->w, now, msg);
  if (c->res.state != SIM_CLIENT_DONE) {
    c->res.state = SIM_CLIENT_FAILED;
    c->res.ended_at = now;
  }
}

/* ---------------- TCP callbacks ---------------- */

static int cb_output(void *arg, const uint8_t *pkt, size_t len) {
  struct sim_clients *h = arg;
  sim_device_link(&h->w->dev, SIM_DIR_TO_ENGINE, pkt, len, SIM_ORIGIN_CLIENT, h->w->loop.now);
  return 0;
}

static int cb_on_syn(void *arg, t2s_tcp_conn *conn) {
  /* Client hosts do not listen. */
  (void)arg;
  (void)conn;
  return T2S_ERR_REFUSED;
}

static void pump(client *c, t2s_tstamp now) {
  uint8_t buf[SEND_CHUNK];
  /* Offers data until the stack takes less than offered (then on_sendable follows, as
   * tcp.h promises); each iteration queues at least one byte or stops: bounded by total. */
  while (c->conn != NULL && c->res.sent < c->total) {
    size_t n = (size_t)T2S_MIN((uint64_t)sizeof(buf), c->total - c->res.sent);
    const uint8_t *data = buf;
    if (c->text) {
      data = c->text + c->res.sent;
    } else {
      sim_pattern_fill(buf, c->res.sent, n);
    }
    t2s_ssize rv = t2s_tcp_send(c->conn, data, n, now);
    if (rv <= 0) {
      return;
    }
    c->res.sent += (uint64_t)rv;
    if ((size_t)rv < n) {
      return;
    }
  }
  if (c->conn != NULL && !c->shut && c->res.sent == c->total) {
    c->shut = true;
    t2s_tcp_shutdown(c->conn, now);
  }
}

static void cb_on_established(void *arg, t2s_tcp_conn *conn) {
  struct sim_clients *h = arg;
  client *c = t2s_tcp_conn_get_user(conn);
  t2s_tstamp now = h->w->loop.now;
  if (c == NULL) {
    return;
  }
  c->res.state = SIM_CLIENT_OPEN;
  c->res.established_at = now;
  log_client(c, now, "client_established");
  sim_log_end(&h->w->log);
  pump(c, now);
}

static void cb_on_sendable(void *arg, t2s_tcp_conn *conn) {
  struct sim_clients *h = arg;
  client *c = t2s_tcp_conn_get_user(conn);
  if (c != NULL) {
    pump(c, h->w->loop.now);
  }
}

/* Checks received bytes at stream offset off against what the client expects. */
static void check_bytes(client *c, const uint8_t *p, size_t len, uint64_t off, t2s_tstamp now) {
  uint64_t bad = 0;
  switch (c->spec.check) {
  case SIM_CHECK_ECHO:
    for (size_t i = 0; i < len; i++) {
      uint64_t o = off + i;
      uint8_t want = c->text ? (o < c->total ? c->text[o] : 0) : sim_pattern_byte(o);
      bad += o >= c->total || p[i] != want;
    }
    break;
  case SIM_CHECK_BYTES:
    for (size_t i = 0; i < len; i++) {
      uint64_t o = off + i;
      bad += o >= c->spec.expect_len || p[i] != sim_pattern_byte(o);
    }
    break;
  case SIM_CHECK_READ_ALL:
    break;
  }
  if (bad > 0 && c->res.bad_bytes == 0) {
    char why[128];
    snprintf(why, sizeof(why), "%llu received byte(s) at offset %llu.. differ from the expected",
             (unsigned long long)bad, (unsigned long long)off);
    c->res.bad_bytes += bad;
    client_fail(c, now, why);
    return;
  }
  c->res.bad_bytes += bad;
}

static void cb_on_recv(void *arg, t2s_tcp_conn *conn) {
  struct sim_clients *h = arg;
  client *c = t2s_tcp_conn_get_user(conn);
  t2s_tstamp now = h->w->loop.now;
  const uint8_t *p1, *p2;
  size_t l1, l2;
  size_t n = t2s_tcp_recv_peek(conn, &p1, &l1, &p2, &l2);
  if (n == 0) {
    return;
  }
  if (c != NULL) {
    check_bytes(c, p1, l1, c->res.received, now);
    check_bytes(c, p2, l2, c->res.received + l1, now);
    c->rx_hash = sim_fnv(sim_fnv(c->rx_hash, p1, l1), p2, l2);
    c->res.received += n;
  }
  t2s_tcp_consume(conn, n, now);
}

static void cb_on_fin(void *arg, t2s_tcp_conn *conn) {
  struct sim_clients *h = arg;
  client *c = t2s_tcp_conn_get_user(conn);
  t2s_tstamp now = h->w->loop.now;
  if (c == NULL || c->res.state != SIM_CLIENT_OPEN) {
    return;
  }
  uint64_t want = c->spec.check == SIM_CHECK_ECHO    ? c->total
                  : c->spec.check == SIM_CHECK_BYTES ? c->spec.expect_len
                                                     : c->res.received;
  log_client(c, now, "client_fin");
  sim_log_u64(&h->w->log, "sent", c->res.sent);
  sim_log_u64(&h->w->log, "received", c->res.received);
  sim_log_str(&h->w->log, "check",
              c->spec.check == SIM_CHECK_ECHO    ? "echo"
              : c->spec.check == SIM_CHECK_BYTES ? "bytes"
                                                 : "read-all");
  sim_log_end(&h->w->log);
  if (c->res.received != want) {
    char why[128];
    snprintf(why, sizeof(why), "the peer closed after %llu bytes, expected %llu",
             (unsigned long long)c->res.received, (unsigned long long)want);
    client_fail(c, now, why);
    return;
  }
  if (c->res.bad_bytes == 0) {
    c->res.state = SIM_CLIENT_DONE;
    c->res.ended_at = now;
    log_client(c, now, "client_done");
    sim_log_u64(&h->w->log, "received", c->res.received);
    sim_log_u64(&h->w->log, "rx_hash", c->rx_hash);
    sim_log_end(&h->w->log);
  }
}

static void cb_on_closed(void *arg, t2s_tcp_conn *conn, int err) {
  struct sim_clients *h = arg;
  client *c = t2s_tcp_conn_get_user(conn);
  t2s_tstamp now = h->w->loop.now;
  if (c == NULL) {
    return;
  }
  c->conn = NULL;
  c->res.err = err;
  if (c->res.state == SIM_CLIENT_CONNECTING || c->res.state == SIM_CLIENT_OPEN) {
    c->res.ended_at = now;
    if (err == T2S_ERR_RESET) {
      c->res.state = SIM_CLIENT_RESET;
    } else if (err == T2S_ERR_REFUSED) {
      c->res.state = SIM_CLIENT_REFUSED;
    } else {
      c->res.state = SIM_CLIENT_FAILED;
    }
  }
  log_client(c, now, "client_closed");
  sim_log_str(&h->w->log, "state", sim_client_state_name(c->res.state));
  sim_log_str(&h->w->log, "err", t2s_strerror(err));
  sim_log_u64(&h->w->log, "sent", c->res.sent);
  sim_log_u64(&h->w->log, "received", c->res.received);
  sim_log_end(&h->w->log);
}

/* ---------------- host ---------------- */

static t2s_tstamp host_expiry(void *arg) {
  struct sim_clients *h = arg;
  return t2s_tcp_get_expiry(h->stack);
}

static void host_handle(void *arg, t2s_tstamp now) {
  struct sim_clients *h = arg;
  t2s_tcp_handle_expiry(h->stack, now);
}

int sim_clients_new(sim_world *w) {
  struct sim_clients *h = calloc(1, sizeof(*h));
  if (h == NULL) {
    return T2S_ERR_NOMEM;
  }
  h->w = w;
  t2s_rand_init(&h->rand, w->client_seed);
  t2s_addr_parse("198.18.0.2", &h->addr4);
  t2s_addr_parse("fd00:18::2", &h->addr6);
  t2s_tcp_config cfg;
  t2s_tcp_config_default(&cfg);
  cfg.mtu = w->dev.mtu;
  t2s_tcp_callbacks cbs = {
      .output = cb_output,
      .on_syn = cb_on_syn,
      .on_established = cb_on_established,
      .on_recv = cb_on_recv,
      .on_sendable = cb_on_sendable,
      .on_fin = cb_on_fin,
      .on_closed = cb_on_closed,
  };
  int rv = t2s_tcp_stack_new(&h->stack, &cfg, &cbs, h, &h->rand);
  if (rv != 0) {
    free(h);
    return rv;
  }
  sim_timer_src ts = {host_expiry, host_handle, h};
  rv = sim_loop_add_timer(&w->loop, &ts);
  if (rv != 0) {
    t2s_tcp_stack_del(h->stack);
    free(h);
    return rv;
  }
  w->clients = h;
  return 0;
}

void sim_clients_del(sim_clients *h) {
  if (h == NULL) {
    return;
  }
  t2s_tcp_stack_del(h->stack);
  for (size_t i = 0; i < h->n; i++) {
    free(h->v[i]->text);
    free(h->v[i]);
  }
  free(h->v);
  free(h);
}

static bool host_addr(const struct sim_clients *h, const t2s_addr *a) {
  if (t2s_addr_ip_eq(a, &h->addr4) || t2s_addr_ip_eq(a, &h->addr6)) {
    return true;
  }
  for (size_t i = 0; i < h->n; i++) {
    if (t2s_addr_ip_eq(a, &h->v[i]->spec.local)) {
      return true;
    }
  }
  return false;
}

bool sim_clients_owns(const sim_clients *h, const uint8_t *pkt, size_t len) {
  t2s_addr dst;
  memset(&dst, 0, sizeof(dst));
  if (len >= 20 && (pkt[0] >> 4) == 4) {
    dst.family = T2S_AF_INET;
    memcpy(dst.ip, pkt + 16, 4);
  } else if (len >= 40 && (pkt[0] >> 4) == 6) {
    dst.family = T2S_AF_INET6;
    memcpy(dst.ip, pkt + 24, 16);
  } else {
    return false;
  }
  return host_addr(h, &dst);
}

void sim_clients_input(sim_clients *h, const uint8_t *pkt, size_t len, t2s_tstamp now) {
  t2s_pkt p;
  t2s_drop_reason r = t2s_pkt_parse(pkt, len, &p);
  if (r == T2S_DROP_NONE && p.proto != T2S_IPPROTO_TCP) {
    return; /* ICMP and UDP toward the client host are not used yet */
  }
  if (r == T2S_DROP_NONE) {
    r = t2s_tcp_input(h->stack, &p, now);
  }
  if (r != T2S_DROP_NONE) {
    sim_log_begin(&h->w->log, now, "client_drop");
    sim_log_str(&h->w->log, "reason", t2s_drop_name(r));
    sim_log_end(&h->w->log);
  }
}

static bool port_used(const struct sim_clients *h, const t2s_addr *local) {
  for (size_t i = 0; i < h->n; i++) {
    if (t2s_addr_eq(&h->v[i]->spec.local, local)) {
      return true;
    }
  }
  return false;
}

int sim_clients_start(sim_clients *h, const sim_client_spec *spec, t2s_tstamp now) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 16;
    client **v = realloc(h->v, cap * sizeof(*v));
    if (v == NULL) {
      return T2S_ERR_NOMEM;
    }
    h->v = v;
    h->cap = cap;
  }
  client *c = calloc(1, sizeof(*c));
  if (c == NULL) {
    return T2S_ERR_NOMEM;
  }
  c->host = h;
  c->spec = *spec;
  c->rx_hash = SIM_FNV_INIT;
  if (spec->text != NULL) {
    c->text = malloc(spec->text_len ? spec->text_len : 1);
    if (c->text == NULL) {
      free(c);
      return T2S_ERR_NOMEM;
    }
    memcpy(c->text, spec->text, spec->text_len);
    c->total = spec->text_len;
  } else {
    c->total = spec->send_len;
  }
  c->spec.text = NULL;
  if (c->spec.local.family == 0) {
    c->spec.local = spec->remote.family == T2S_AF_INET ? h->addr4 : h->addr6;
  }
  for (int i = 0; i < PORT_TRIES; i++) {
    c->spec.local.port = (uint16_t)(49152 + t2s_rand_below(&h->rand, 16384));
    if (!port_used(h, &c->spec.local)) {
      break;
    }
  }
  h->v[h->n++] = c;
  c->res.state = SIM_CLIENT_CONNECTING;
  c->res.started_at = now;
  log_client(c, now, "client_connect");
  sim_log_addr(&h->w->log, "local", &c->spec.local);
  sim_log_addr(&h->w->log, "remote", &c->spec.remote);
  sim_log_u64(&h->w->log, "send", c->total);
  sim_log_end(&h->w->log);
  int rv = t2s_tcp_connect(h->stack, &c->spec.local, &c->spec.remote, now, &c->conn);
  if (rv != 0) {
    c->conn = NULL;
    c->res.state = SIM_CLIENT_FAILED;
    c->res.ended_at = now;
    c->res.err = rv;
    return 0;
  }
  t2s_tcp_conn_set_user(c->conn, c);
  return 0;
}

const sim_client_result *sim_clients_result(const sim_clients *h, const char *name) {
  for (size_t i = 0; h != NULL && i < h->n; i++) {
    if (strcmp(h->v[i]->spec.name, name) == 0) {
      return &h->v[i]->res;
    }
  }
  return NULL;
}

uint64_t sim_clients_unfinished(const sim_clients *h) {
  uint64_t n = 0;
  for (size_t i = 0; h != NULL && i < h->n; i++) {
    n += h->v[i]->res.state == SIM_CLIENT_CONNECTING || h->v[i]->res.state == SIM_CLIENT_OPEN;
  }
  return n;
}
