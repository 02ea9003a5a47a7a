/* sim_fakedns.c: the fake-IP table of a run and the client hosts' name lookups
 * (sim_fakedns.h). */
#include "sim_fakedns.h"

#include <stdlib.h>
#include <string.h>

#include "dns.h"

#define LOOKUP_TRIES 3
#define LOOKUP_RETRY (1 * T2S_SECONDS)
#define LOOKUP_PORT0 40000 /* below the client hosts' ephemeral ports (49152..) */
#define LOOKUP_ID0 0x5300
#define LOOKUP_MAX 4096

typedef struct lookup {
  struct sim_fakedns *fd;
  size_t index;
  sim_client_spec spec; /* the client to start (spec.text: own copy) */
  uint8_t *text;
  char name[T2S_DNS_TEXT_MAX];
  uint16_t qtype;
  t2s_addr local, resolver;
  uint16_t id;
  int tries;
  bool answered, failed;
  t2s_addr addr; /* the address answered */
} lookup;

struct sim_fakedns {
  sim_world *w;
  t2s_fakedns *table; /* NULL: lookups only (a scenario without fake-dns) */
  lookup **v;
  size_t n, cap;
};

static struct sim_fakedns *get(sim_world *w) {
  if (w->fakedns == NULL) {
    w->fakedns = calloc(1, sizeof(*w->fakedns));
    if (w->fakedns != NULL) {
      w->fakedns->w = w;
    }
  }
  return w->fakedns;
}

int sim_fakedns_install(sim_world *w, const t2s_fakedns_config *cfg) {
  struct sim_fakedns *fd = get(w);
  if (fd == NULL) {
    return T2S_ERR_NOMEM;
  }
  t2s_fakedns_config c = *cfg;
  c.seed = w->seed * 0x9e3779b97f4a7c15ULL + 0x14; /* the run's seed; no draw from w->rand */
  c.mem = NULL; /* the table outlives flows: not the engine's heap */
  int rv = t2s_fakedns_new(&fd->table, &c);
  if (rv == 0) {
    w->cfg.fake_dns = fd->table;
  }
  return rv;
}

static void log_lookup(sim_world *w, const lookup *lk, t2s_tstamp now, const char *ev) {
  sim_log_begin(&w->log, now, ev);
  sim_log_str(&w->log, "client", lk->spec.name);
  sim_log_str(&w->log, "name", lk->name);
}

/* Sends the query (again). */
static void send_query(lookup *lk, t2s_tstamp now) {
  sim_world *w = lk->fd->w;
  uint8_t q[12 + T2S_DNS_NAME_MAX + 4];
  memset(q, 0, 12);
  t2s_put16(q, lk->id);
  t2s_put16(q + 2, 0x0100); /* RD */
  t2s_put16(q + 4, 1);
  t2s_ssize n = t2s_dns_name_to_wire(lk->name, q + 12, T2S_DNS_NAME_MAX);
  if (n < 0) {
    return;
  }
  t2s_put16(q + 12 + n, lk->qtype);
  t2s_put16(q + 14 + n, T2S_DNS_CLASS_IN);
  uint8_t pkt[64 + sizeof(q)];
  t2s_ssize plen = t2s_build_udp(pkt, sizeof(pkt), &lk->local, &lk->resolver, q, 16 + (size_t)n);
  if (plen < 0) {
    return;
  }
  lk->tries++;
  log_lookup(w, lk, now, "client_lookup");
  sim_log_addr(&w->log, "resolver", &lk->resolver);
  sim_log_u64(&w->log, "try", (uint64_t)lk->tries);
  sim_log_end(&w->log);
  sim_device_link(&w->dev, SIM_DIR_TO_ENGINE, pkt, (size_t)plen, SIM_ORIGIN_CLIENT, now);
}

static void lookup_failed(lookup *lk, t2s_tstamp now, const char *why) {
  sim_world *w = lk->fd->w;
  lk->failed = true;
  log_lookup(w, lk, now, "client_lookup_failed");
  sim_log_str(&w->log, "why", why);
  sim_log_end(&w->log);
}

static void retry(void *arg, sim_event *ev, t2s_tstamp now) {
  lookup *lk = arg;
  (void)ev;
  if (lk->answered || lk->failed) {
    return;
  }
  if (lk->tries >= LOOKUP_TRIES) {
    lookup_failed(lk, now, "no answer");
    return;
  }
  send_query(lk, now);
  sim_loop_schedule(&lk->fd->w->loop, now + LOOKUP_RETRY, SIM_EV_CLIENT, retry, lk, 0, 0, NULL, 0);
}

int sim_fakedns_lookup(sim_world *w, const sim_client_spec *spec, const char *name, uint8_t family,
                       const t2s_addr *resolver, t2s_tstamp now) {
  struct sim_fakedns *fd = get(w);
  if (fd == NULL || fd->n >= LOOKUP_MAX) {
    return T2S_ERR_NOMEM;
  }
  if (fd->n == fd->cap) {
    size_t cap = fd->cap ? fd->cap * 2 : 8;
    lookup **v = realloc(fd->v, cap * sizeof(*v));
    if (v == NULL) {
      return T2S_ERR_NOMEM;
    }
    fd->v = v;
    fd->cap = cap;
  }
  lookup *lk = calloc(1, sizeof(*lk));
  if (lk == NULL) {
    return T2S_ERR_NOMEM;
  }
  lk->fd = fd;
  lk->index = fd->n;
  lk->spec = *spec;
  if (spec->text != NULL) {
    lk->text = malloc(spec->text_len ? spec->text_len : 1);
    if (lk->text == NULL) {
      free(lk);
      return T2S_ERR_NOMEM;
    }
    memcpy(lk->text, spec->text, spec->text_len);
  }
  lk->spec.text = NULL;
  snprintf(lk->name, sizeof(lk->name), "%s", name);
  lk->qtype = family == T2S_AF_INET6 ? T2S_DNS_TYPE_AAAA : T2S_DNS_TYPE_A;
  lk->resolver = *resolver;
  /* The client host's address of the resolver's family (sim_client.h), or the client's own. */
  if (spec->local.family == resolver->family) {
    lk->local = spec->local;
  } else {
    t2s_addr_parse(resolver->family == T2S_AF_INET ? "198.18.0.2" : "fd00:18::2", &lk->local);
  }
  lk->local.port = (uint16_t)(LOOKUP_PORT0 + lk->index);
  lk->id = (uint16_t)(LOOKUP_ID0 + lk->index);
  fd->v[fd->n++] = lk;
  retry(lk, NULL, now);
  return 0;
}

/* The address of the first record of type qtype in the answer section of msg[0..len), or
 * an error. */
static int parse_answer(const lookup *lk, const uint8_t *msg, size_t len, t2s_addr *out) {
  if (len < T2S_DNS_HEADER_LEN || t2s_get16(msg) != lk->id || (msg[2] & 0x80) == 0) {
    return T2S_ERR_NOT_FOUND; /* not ours */
  }
  if ((msg[3] & 0x0f) != 0) {
    return T2S_ERR_REFUSED; /* an error RCODE */
  }
  size_t qd = t2s_get16(msg + 4), an = t2s_get16(msg + 6);
  size_t off = T2S_DNS_HEADER_LEN;
  uint8_t wire[T2S_DNS_NAME_MAX];
  size_t wlen;
  for (size_t i = 0; i < qd && i < 4; i++) { /* bounded: a query has one question */
    if (t2s_dns_read_name(msg, len, off, wire, &wlen, &off) != 0 || off + 4 > len) {
      return T2S_ERR_MALFORMED;
    }
    off += 4;
  }
  for (size_t i = 0; i < an && i < 64; i++) {
    if (t2s_dns_read_name(msg, len, off, wire, &wlen, &off) != 0 || off + 10 > len) {
      return T2S_ERR_MALFORMED;
    }
    uint16_t type = t2s_get16(msg + off);
    size_t rdlen = t2s_get16(msg + off + 8);
    off += 10;
    if (off + rdlen > len) {
      return T2S_ERR_MALFORMED;
    }
    size_t alen = lk->qtype == T2S_DNS_TYPE_A ? 4 : 16;
    if (type == lk->qtype && rdlen == alen) {
      memset(out, 0, sizeof(*out));
      out->family = alen == 4 ? T2S_AF_INET : T2S_AF_INET6;
      memcpy(out->ip, msg + off, alen);
      return 0;
    }
    off += rdlen;
  }
  return T2S_ERR_NOT_FOUND;
}

void sim_fakedns_client_input(sim_world *w, const t2s_pkt *p, t2s_tstamp now) {
  struct sim_fakedns *fd = w->fakedns;
  if (fd == NULL || p->proto != T2S_IPPROTO_UDP) {
    return;
  }
  for (size_t i = 0; i < fd->n; i++) {
    lookup *lk = fd->v[i];
    if (lk->answered || lk->failed || !t2s_addr_eq(&p->dst, &lk->local) ||
        !t2s_addr_eq(&p->src, &lk->resolver)) {
      continue;
    }
    t2s_addr a;
    int rv = parse_answer(lk, p->payload, p->payload_len, &a);
    if (rv == T2S_ERR_NOT_FOUND && p->payload_len >= 2 && t2s_get16(p->payload) != lk->id) {
      return; /* another ID: not an answer to this lookup */
    }
    if (rv != 0) {
      lookup_failed(lk, now, rv == T2S_ERR_REFUSED ? "error rcode" : "no address");
      return;
    }
    lk->answered = true;
    lk->addr = a;
    a.port = lk->spec.remote.port;
    lk->spec.remote = a;
    if (lk->spec.local.family != a.family) {
      memset(&lk->spec.local, 0, sizeof(lk->spec.local));
    }
    log_lookup(w, lk, now, "client_resolved");
    sim_log_addr(&w->log, "addr", &lk->addr);
    sim_log_end(&w->log);
    lk->spec.text = lk->text;
    if (w->clients) {
      sim_clients_start(w->clients, &lk->spec, now);
    }
    lk->spec.text = NULL;
    return;
  }
}

bool sim_fakedns_resolved(const sim_world *w, const char *client, t2s_addr *out) {
  const struct sim_fakedns *fd = w->fakedns;
  for (size_t i = 0; fd != NULL && i < fd->n; i++) {
    if (fd->v[i]->answered && strcmp(fd->v[i]->spec.name, client) == 0) {
      *out = fd->v[i]->addr;
      return true;
    }
  }
  return false;
}

bool sim_fakedns_stats(const sim_world *w, t2s_fakedns_stats *st) {
  if (w->fakedns == NULL || w->fakedns->table == NULL) {
    memset(st, 0, sizeof(*st));
    return false;
  }
  t2s_fakedns_get_stats(w->fakedns->table, st);
  return true;
}

void sim_fakedns_free(sim_world *w) {
  struct sim_fakedns *fd = w->fakedns;
  if (fd == NULL) {
    return;
  }
  T2S_ASSERT(w->engine == NULL); /* the engine unpins its flows first */
  for (size_t i = 0; i < fd->n; i++) {
    free(fd->v[i]->text);
    free(fd->v[i]);
  }
  free(fd->v);
  t2s_fakedns_del(fd->table);
  free(fd);
  w->fakedns = NULL;
  w->cfg.fake_dns = NULL;
}
