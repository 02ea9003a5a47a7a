/* sim_client.c: closed-loop client hosts on their own t2s_tcp_stack. */
#include "sim_client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frag.h"
#include "packet.h"
#include "sim_fakedns.h"
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
  uint16_t ping_id; /* ping: the echo identifier */
  uint64_t rx_seen; /* res.received at the last progress */
} client;

struct sim_clients {
  sim_world *w;
  t2s_rand rand;
  t2s_tcp_stack *stack;
  client **v;
  size_t n, cap;
  t2s_addr addr4, addr6;
  t2s_reasm *reasm;                 /* fragments toward the client hosts */
  uint8_t whole[T2S_REASM_MAX_PKT]; /* a reassembled packet */
  uint8_t pkt[65600];               /* a datagram being sent */
  uint8_t frag[65600];              /* one fragment of it */
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

/* Notes progress of a TCP client: bytes read or newly acknowledged since the last call. */
static void note_progress(client *c, t2s_tstamp now) {
  sim_client_result *r = &c->res;
  uint64_t acked = c->conn ? r->sent - t2s_tcp_send_queued(c->conn) : r->acked;
  if (acked <= r->acked && r->received == c->rx_seen) {
    return;
  }
  r->acked = acked;
  c->rx_seen = r->received;
  r->stall_max = T2S_MAX(r->stall_max, now - r->progress_at);
  r->progress_at = now;
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
  case SIM_CHECK_REPLIES:
  case SIM_CHECK_UNREACHABLE:
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
    note_progress(c, now);
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
  t2s_reasm_config rc;
  t2s_reasm_config_default(&rc);
  rv = t2s_reasm_new(&h->reasm, &rc);
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
  t2s_reasm_del(h->reasm);
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

static void dgram_input(struct sim_clients *h, const t2s_pkt *p, t2s_tstamp now);

void sim_clients_input(sim_clients *h, const uint8_t *pkt, size_t len, t2s_tstamp now) {
  t2s_pkt p;
  t2s_drop_reason r = t2s_pkt_parse(pkt, len, &p);
  if (r == T2S_DROP_FRAGMENT) {
    t2s_ssize n = t2s_reasm_input(h->reasm, &p, now, h->whole, sizeof(h->whole), &r);
    if (n == 0) {
      return; /* held */
    }
    if (n > 0) {
      sim_log_begin(&h->w->log, now, "client_reassembled");
      sim_log_u64(&h->w->log, "len", (uint64_t)n);
      sim_log_end(&h->w->log);
      r = t2s_pkt_parse(h->whole, (size_t)n, &p);
    }
  }
  if (r == T2S_DROP_NONE && p.proto != T2S_IPPROTO_TCP) {
    dgram_input(h, &p, now);
    return;
  }
  if (r == T2S_DROP_NONE) {
    r = t2s_tcp_input(h->stack, &p, now);
    for (size_t i = 0; i < h->n; i++) {
      client *c = h->v[i];
      if (c->conn != NULL && c->spec.proto == SIM_CLIENT_TCP &&
          t2s_addr_eq(&c->spec.local, &p.dst)) {
        note_progress(c, now);
      }
    }
  }
  if (r != T2S_DROP_NONE) {
    sim_log_begin(&h->w->log, now, "client_drop");
    sim_log_str(&h->w->log, "reason", t2s_drop_name(r));
    sim_log_end(&h->w->log);
  }
}

/* ---------------- UDP and ping clients ---------------- */

static int frag_link(void *arg, const uint8_t *pkt, size_t len) {
  struct sim_clients *h = arg;
  sim_device_link(&h->w->dev, SIM_DIR_TO_ENGINE, pkt, len, SIM_ORIGIN_CLIENT, h->w->loop.now);
  return 0;
}

/* Sends a packet toward the engine, fragmented when it is larger than the link's MTU. */
static void send_frag(struct sim_clients *h, const uint8_t *pkt, size_t len) {
  if (len <= h->w->dev.mtu) {
    frag_link(h, pkt, len);
    return;
  }
  uint32_t ident = t2s_rand_u32(&h->rand);
  t2s_frag_split(pkt, len, h->w->dev.mtu, ident, h->frag, sizeof(h->frag), frag_link, h);
}

static size_t dgram_size(const client *c) {
  return c->text ? c->total : (size_t)c->spec.send_len;
}

static void client_done(client *c, t2s_tstamp now) {
  c->res.state = SIM_CLIENT_DONE;
  c->res.ended_at = now;
  log_client(c, now, "client_done");
  sim_log_u64(&c->host->w->log, "sent", c->res.sent);
  sim_log_u64(&c->host->w->log, "received", c->res.received);
  sim_log_end(&c->host->w->log);
}

static void dgram_tick(void *arg, sim_event *ev, t2s_tstamp now) {
  client *c = arg;
  struct sim_clients *h = c->host;
  (void)ev;
  uint32_t count = c->spec.count ? c->spec.count : 1;
  if (c->res.sent >= count || c->res.state != SIM_CLIENT_OPEN) {
    return;
  }
  size_t size = dgram_size(c);
  t2s_ssize n;
  if (c->spec.proto == SIM_CLIENT_PING) {
    n = sim_build_echo_request(h->pkt, sizeof(h->pkt), &c->spec.local, &c->spec.remote, c->ping_id,
                               (uint16_t)(c->res.sent + 1), size);
  } else {
    uint8_t *payload = malloc(size ? size : 1);
    if (payload == NULL) {
      return;
    }
    if (c->text) {
      memcpy(payload, c->text, size);
    } else {
      sim_pattern_fill(payload, 0, size);
    }
    n = t2s_build_udp(h->pkt, sizeof(h->pkt), &c->spec.local, &c->spec.remote, payload, size);
    free(payload);
  }
  if (n < 0) {
    client_fail(c, now, "cannot build the datagram");
    return;
  }
  c->res.sent++;
  log_client(c, now, "client_send");
  sim_log_u64(&h->w->log, "seq", c->res.sent);
  sim_log_u64(&h->w->log, "len", (uint64_t)n);
  sim_log_end(&h->w->log);
  send_frag(h, h->pkt, (size_t)n);
  if (c->res.sent < count) {
    sim_loop_schedule(&h->w->loop, now + c->spec.interval, SIM_EV_CLIENT, dgram_tick, c, 0, 0, NULL,
                      0);
  }
}

static client *find_dgram_client(struct sim_clients *h, const t2s_addr *local, bool ping,
                                 uint16_t ping_id) {
  for (size_t i = 0; i < h->n; i++) {
    client *c = h->v[i];
    if (ping && c->spec.proto == SIM_CLIENT_PING && c->ping_id == ping_id &&
        t2s_addr_ip_eq(&c->spec.local, local)) {
      return c;
    }
    if (!ping && c->spec.proto == SIM_CLIENT_UDP && t2s_addr_eq(&c->spec.local, local)) {
      return c;
    }
  }
  return NULL;
}

/* An ICMP error quoting one of our datagrams. */
static void dgram_unreach(struct sim_clients *h, const t2s_pkt *p, t2s_tstamp now) {
  const uint8_t *q = p->payload;
  size_t qlen = p->payload_len;
  t2s_addr src;
  memset(&src, 0, sizeof(src));
  size_t l4;
  if (p->ipver == 4 && qlen >= 28 && (q[0] >> 4) == 4) {
    src.family = T2S_AF_INET;
    memcpy(src.ip, q + 12, 4);
    l4 = (size_t)(q[0] & 0x0f) * 4;
  } else if (p->ipver == 6 && qlen >= 48 && (q[0] >> 4) == 6) {
    src.family = T2S_AF_INET6;
    memcpy(src.ip, q + 8, 16);
    l4 = 40;
  } else {
    return;
  }
  if (qlen < l4 + 2) {
    return;
  }
  src.port = t2s_get16(q + l4);
  client *c = find_dgram_client(h, &src, false, 0);
  if (c == NULL || c->res.state != SIM_CLIENT_OPEN) {
    return;
  }
  log_client(c, now, "client_unreachable");
  sim_log_u64(&h->w->log, "code", p->l4.icmp.code);
  sim_log_end(&h->w->log);
  if (c->spec.check == SIM_CHECK_UNREACHABLE) {
    client_done(c, now);
  } else {
    c->res.state = SIM_CLIENT_REFUSED;
    c->res.ended_at = now;
  }
}

static void dgram_input(struct sim_clients *h, const t2s_pkt *p, t2s_tstamp now) {
  client *c = NULL;
  bool v4 = p->ipver == 4;
  if (p->proto == T2S_IPPROTO_UDP) {
    c = find_dgram_client(h, &p->dst, false, 0);
  } else if ((v4 && p->l4.icmp.type == 0) || (!v4 && p->l4.icmp.type == 129)) {
    c = find_dgram_client(h, &p->dst, true, p->l4.icmp.id);
  } else if ((v4 && p->l4.icmp.type == 3) || (!v4 && p->l4.icmp.type == 1)) {
    dgram_unreach(h, p, now);
    return;
  }
  if (c == NULL) {
    sim_fakedns_client_input(h->w, p, now); /* a lookup's answer (sim_fakedns.h), maybe */
    return;
  }
  c->res.received++;
  log_client(c, now, "client_recv");
  sim_log_addr(&h->w->log, "from", &p->src);
  sim_log_u64(&h->w->log, "len", p->payload_len);
  sim_log_end(&h->w->log);
  if (c->res.state != SIM_CLIENT_OPEN) {
    return;
  }
  uint32_t count = c->spec.count ? c->spec.count : 1;
  if (c->spec.check == SIM_CHECK_ECHO || c->spec.proto == SIM_CLIENT_PING) {
    size_t size = dgram_size(c);
    bool ok = p->payload_len == size &&
              (c->spec.proto == SIM_CLIENT_PING || t2s_addr_eq(&p->src, &c->spec.remote));
    for (size_t i = 0; ok && i < size; i++) {
      uint8_t want = c->text ? c->text[i] : sim_pattern_byte(i);
      ok = p->payload[i] == want;
    }
    if (!ok) {
      c->res.bad_bytes++;
      client_fail(c, now, "a reply differs from what was sent");
      return;
    }
    if (c->res.received >= count) {
      client_done(c, now);
    }
  } else if (c->spec.check == SIM_CHECK_REPLIES && c->res.received >= c->spec.expect_len) {
    client_done(c, now);
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
  for (int i = 0; i < PORT_TRIES && spec->local.port == 0; i++) {
    c->spec.local.port = (uint16_t)(49152 + t2s_rand_below(&h->rand, 16384));
    if (!port_used(h, &c->spec.local)) {
      break;
    }
  }
  h->v[h->n++] = c;
  if (c->spec.proto != SIM_CLIENT_TCP) {
    if (c->spec.proto == SIM_CLIENT_PING) {
      c->spec.local.port = 0;
      c->spec.remote.port = 0;
      c->ping_id = (uint16_t)t2s_rand_u32(&h->rand);
      if (c->text == NULL && c->spec.send_len == 0) {
        c->spec.send_len = 56;
      }
    }
    c->res.state = SIM_CLIENT_OPEN;
    c->res.started_at = now;
    log_client(c, now, c->spec.proto == SIM_CLIENT_PING ? "client_ping" : "client_udp");
    sim_log_addr(&h->w->log, "local", &c->spec.local);
    sim_log_addr(&h->w->log, "remote", &c->spec.remote);
    sim_log_u64(&h->w->log, "size", dgram_size(c));
    sim_log_end(&h->w->log);
    dgram_tick(c, NULL, now);
    return 0;
  }
  c->res.state = SIM_CLIENT_CONNECTING;
  c->res.started_at = now;
  c->res.progress_at = now;
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

void sim_clients_print(const sim_clients *h, FILE *f, t2s_tstamp now) {
  for (size_t i = 0; h != NULL && i < h->n; i++) {
    const client *c = h->v[i];
    const sim_client_result *r = &c->res;
    if (c->spec.proto != SIM_CLIENT_TCP) {
      continue;
    }
    bool open = r->state == SIM_CLIENT_CONNECTING || r->state == SIM_CLIENT_OPEN;
    t2s_tstamp end = open ? now : r->ended_at;
    t2s_tstamp stall = T2S_MAX(r->stall_max, end > r->progress_at ? end - r->progress_at : 0);
    t2s_tstamp took = end - r->started_at;
    fprintf(f,
            "client %s: %s after %" PRIu64 ".%06" PRIu64 " s, longest without progress %" PRIu64
            ".%06" PRIu64 " s\n",
            c->spec.name, sim_client_state_name(r->state), took / T2S_SECONDS,
            took % T2S_SECONDS / 1000, stall / T2S_SECONDS, stall % T2S_SECONDS / 1000);
  }
}

bool sim_clients_get(const sim_clients *h, size_t i, const sim_client_spec **pspec,
                     const sim_client_result **pres, bool *ppattern) {
  if (h == NULL || i >= h->n) {
    return false;
  }
  *pspec = &h->v[i]->spec;
  *pres = &h->v[i]->res;
  *ppattern = h->v[i]->text == NULL;
  return true;
}
