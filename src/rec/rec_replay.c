/*
 * rec_replay.c: feeds a recording's inputs to a fresh engine and checks each output against
 * the recording (rec_replay.h). The device, upstream and monitor given to the engine are
 * "answering machines": each call takes the next recorded output, compares it and returns
 * what the recording says the real one returned.
 */
#include "rec_replay.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rp {
  t2s_rec_reader rd;
  t2s_fakedns *fake_dns;   /* rebuilt from the header and the FAKEDNS_STATE records */
  t2s_rec_proxies proxies; /* the list of the SET_PROXIES / REPLACE_PROXIES being replayed */
  t2s_rec_record next;     /* the next record that is not a note, when have > 0 */
  int have;                /* 1: next is valid, 0: end of file, < 0: a reader error */
  t2s_engine *e;
  t2s_mem mem;
  const t2s_replay_opts *opts;
  t2s_replay_result *res;
  bool diff;            /* the first difference was found (res->msg) */
  bool teardown;        /* deleting the engine past the replayed part: not compared */
  t2s_rec_record input; /* the input being replayed */
  uint64_t input_recno; /* its record number (1-based) */
  t2s_tstamp last_expiry;
} rp;

static void peek(rp *p) {
  if (p->have != 2) {
    return;
  }
  for (;;) {
    int rv = t2s_rec_reader_next(&p->rd, &p->next);
    if (rv == 1) {
      p->res->records++;
      if (t2s_rec_kind_is_note(p->next.kind) && p->next.kind != T2S_REC_END) {
        continue;
      }
    }
    p->have = rv;
    return;
  }
}

/* The next record that is not a note (NULL at the end or on a reader error). */
static const t2s_rec_record *next(rp *p) {
  peek(p);
  return p->have == 1 ? &p->next : NULL;
}

static void take(rp *p) {
  p->have = 2;
}

static char *fmt_time(t2s_tstamp t, char *buf, size_t len) {
  snprintf(buf, len, "%" PRIu64 ".%09" PRIu64 " s", t / T2S_SECONDS, t % T2S_SECONDS);
  return buf;
}

/* "TCP 10.0.0.2:40000 > 192.0.2.1:80 len 60" for an IP packet (best effort). */
static char *pkt_name(const uint8_t *pkt, size_t len, char *buf, size_t buflen) {
  t2s_addr s = {0}, d = {0};
  uint8_t proto = 0;
  size_t l4 = 0;
  if (len >= 20 && pkt[0] >> 4 == 4) {
    s.family = d.family = T2S_AF_INET;
    memcpy(s.ip, pkt + 12, 4);
    memcpy(d.ip, pkt + 16, 4);
    proto = pkt[9];
    l4 = (size_t)(pkt[0] & 15) * 4;
  } else if (len >= 40 && pkt[0] >> 4 == 6) {
    s.family = d.family = T2S_AF_INET6;
    memcpy(s.ip, pkt + 8, 16);
    memcpy(d.ip, pkt + 24, 16);
    proto = pkt[6];
    l4 = 40;
  } else {
    snprintf(buf, buflen, "packet len %zu", len);
    return buf;
  }
  if ((proto == 6 || proto == 17) && len >= l4 + 4) {
    s.port = t2s_get16(pkt + l4);
    d.port = t2s_get16(pkt + l4 + 2);
  }
  char a[64], b[64];
  const char *pn = proto == 6                  ? "TCP"
                   : proto == 17               ? "UDP"
                   : proto == 1 || proto == 58 ? "ICMP"
                                               : "IP";
  snprintf(buf, buflen, "%s %s > %s len %zu", pn, t2s_addr_format(&s, s.port != 0, a, sizeof(a)),
           t2s_addr_format(&d, d.port != 0, b, sizeof(b)), len);
  return buf;
}

/* Records the first difference: "at T (record #N, after input #K KIND at T'): WHAT". */
static void differ(rp *p, t2s_tstamp now, const char *fmt, ...) {
  if (p->diff) {
    return;
  }
  p->diff = true;
  char what[700], t1[32], t2[32];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(what, sizeof(what), fmt, ap);
  va_end(ap);
  const char *in = t2s_rec_kind_name(p->input.kind);
  char pk[160] = "";
  if (p->input.kind == T2S_REC_DEV_IN) {
    char n[140];
    snprintf(pk, sizeof(pk), " (%s)", pkt_name(p->input.data, p->input.datalen, n, sizeof(n)));
  } else if (p->input.kind != 0 && p->input.kind != T2S_REC_EXPIRY &&
             p->input.kind != T2S_REC_NET_EVENT && p->input.kind != T2S_REC_RESET_ALL) {
    snprintf(pk, sizeof(pk), " flow %" PRIu64, p->input.id);
  }
  snprintf(p->res->msg, sizeof(p->res->msg),
           "first difference at t=%s (record #%" PRIu64 ", while replaying input record #%" PRIu64
           " %s%s at t=%s): %s",
           fmt_time(now, t1, sizeof(t1)), p->res->records, p->input_recno, in ? in : "(setup)", pk,
           fmt_time(p->input.now, t2, sizeof(t2)), what);
}

/* The next output, which must be of kind `kind`; otherwise a difference is noted and NULL
 * returned. `made` describes what the replayed engine did. */
static const t2s_rec_record *expect(rp *p, uint8_t kind, const char *made) {
  if (p->diff || p->teardown) {
    return NULL;
  }
  const t2s_rec_record *r = next(p);
  if (r && r->kind == T2S_REC_END && r->u32a == T2S_REC_END_MAX) {
    p->teardown = true; /* the recording stopped at its bound inside this input: no more */
    return NULL;
  }
  if (r == NULL || r->kind != kind) {
    differ(p, p->input.now, "recorded %s, replayed %s",
           r              ? t2s_rec_kind_name(r->kind)
           : p->have == 0 ? "the end of the file"
                          : "a bad record",
           made);
    return NULL;
  }
  p->res->outputs++;
  return r;
}

/* Compares two byte strings; on a difference writes both sides into a message. */
static bool bytes_same(rp *p, const t2s_rec_record *r, const char *what, uint64_t flow,
                       const uint8_t *d, size_t len, bool is_pkt) {
  size_t keep = T2S_MIN(len, (size_t)T2S_REC_OUTPUT_PREFIX);
  bool prefix_same = r->datalen == keep && (keep == 0 || memcmp(r->data, d, keep) == 0);
  if (prefix_same && r->fulllen == len && r->hash == t2s_rec_hash(d, len)) {
    return true;
  }
  char a[200], b[200];
  if (is_pkt) {
    pkt_name(r->data, r->datalen, a, sizeof(a));
    pkt_name(d, len, b, sizeof(b));
  } else {
    snprintf(a, sizeof(a), "%" PRIu32 " bytes", r->fulllen);
    snprintf(b, sizeof(b), "%zu bytes", len);
  }
  if (is_pkt && r->fulllen != len) { /* the name shows the captured prefix's length */
    snprintf(a + strlen(a), sizeof(a) - strlen(a), " (%" PRIu32 " bytes)", r->fulllen);
  }
  if (prefix_same) {
    differ(p, r->now,
           "%s flow %" PRIu64 ": recorded %s, replayed %s; the first %zu bytes are the same, the "
           "rest differs (hash %016" PRIx64 " recorded, %016" PRIx64 " replayed)",
           what, flow, a, b, keep, r->hash, t2s_rec_hash(d, len));
    return false;
  }
  size_t i = 0;
  while (i < keep && i < r->datalen && r->data[i] == d[i]) {
    i++;
  }
  char ra[16] = "end", rb[16] = "end";
  if (i < r->datalen) {
    snprintf(ra, sizeof(ra), "0x%02x", r->data[i]);
  }
  if (i < len) {
    snprintf(rb, sizeof(rb), "0x%02x", d[i]);
  }
  differ(p, r->now,
         "%s flow %" PRIu64 ": recorded %s, replayed %s; first differing byte at offset %zu: "
         "recorded %s, replayed %s",
         what, flow, a, b, i, ra, rb);
  return false;
}

/* ---------------- the answering device, upstream and monitor ---------------- */

static t2s_ssize dev_recv(void *self, uint8_t *buf, size_t buflen) {
  (void)self;
  (void)buf;
  (void)buflen;
  return T2S_ERR_WOULDBLOCK;
}

static int dev_send(void *self, const uint8_t *pkt, size_t len) {
  rp *p = self;
  char name[200];
  pkt_name(pkt, len, name, sizeof(name));
  char made[240];
  snprintf(made, sizeof(made), "dev_send (%s)", name);
  const t2s_rec_record *r = expect(p, T2S_REC_DEV_SEND, made);
  if (r == NULL || !bytes_same(p, r, "dev_send", 0, pkt, len, true)) {
    return 0;
  }
  int rv = (int)r->rv;
  take(p);
  return rv;
}

static void dev_caps(void *self, t2s_device_caps *caps) {
  rp *p = self;
  caps->mtu = 1500;
  caps->offloads = 0;
  const t2s_rec_record *r = expect(p, T2S_REC_DEV_CAPS, "dev_caps");
  if (r) {
    caps->mtu = r->u32a;
    caps->offloads = r->u32b;
    take(p);
  }
}

static const t2s_device_ops replay_dev_ops = {dev_recv, dev_send, dev_caps, NULL, NULL, NULL};

static bool id_same(rp *p, const t2s_rec_record *r, const char *what, uint64_t id) {
  if (r->id == id) {
    return true;
  }
  differ(p, r->now, "%s: recorded flow %" PRIu64 ", replayed flow %" PRIu64, what, r->id, id);
  return false;
}

static bool addr_same(rp *p, const t2s_rec_record *r, const char *what, const t2s_addr *a,
                      const t2s_egress *eg) {
  bool same = t2s_addr_eq(&r->addr, a);
  if (same && eg) {
    same = r->egress.ifindex == eg->ifindex && r->egress.mark == eg->mark &&
           t2s_addr_eq(&r->egress.src, &eg->src) &&
           strncmp(r->egress.ifname, eg->ifname, T2S_IFNAMSIZ) == 0;
  }
  if (!same) {
    char x[64], y[64];
    differ(p, r->now, "%s flow %" PRIu64 ": recorded %s (egress %s), replayed %s (egress %s)", what,
           r->id, t2s_addr_format(&r->addr, true, x, sizeof(x)), eg ? r->egress.ifname : "-",
           t2s_addr_format(a, true, y, sizeof(y)), eg ? eg->ifname : "-");
  }
  return same;
}

static int up_stream_open(void *self, uint64_t id, const t2s_addr *dst, const t2s_egress *eg) {
  rp *p = self;
  const t2s_rec_record *r = expect(p, T2S_REC_STREAM_OPEN, "stream_open");
  if (r == NULL || !id_same(p, r, "stream_open", id) || !addr_same(p, r, "stream_open", dst, eg)) {
    return T2S_ERR_UNREACHABLE;
  }
  int rv = (int)r->rv;
  take(p);
  return rv;
}

static t2s_ssize up_stream_write(void *self, uint64_t id, const uint8_t *data, size_t len) {
  rp *p = self;
  const t2s_rec_record *r = expect(p, T2S_REC_STREAM_WRITE, "stream_write");
  if (r == NULL || !id_same(p, r, "stream_write", id) ||
      !bytes_same(p, r, "stream_write", id, data, len, false)) {
    return 0;
  }
  t2s_ssize rv = (t2s_ssize)r->rv;
  if (rv > (t2s_ssize)len) {
    differ(p, r->now, "stream_write flow %" PRIu64 ": recorded %zd bytes taken of %zu offered", id,
           rv, len);
    return 0;
  }
  take(p);
  return rv;
}

/* An output with an id and a result (or a flag). */
static int id_out(rp *p, uint8_t kind, uint64_t id, int flag) {
  const char *name = t2s_rec_kind_name(kind);
  const t2s_rec_record *r = expect(p, kind, name);
  if (r == NULL || !id_same(p, r, name, id)) {
    return 0;
  }
  if (flag >= 0 && r->flag != flag) {
    differ(p, r->now, "%s flow %" PRIu64 ": recorded %s, replayed %s", name, id,
           r->flag ? "true" : "false", flag ? "true" : "false");
    return 0;
  }
  int rv = (int)r->rv;
  take(p);
  return rv;
}

static int up_stream_shutdown(void *self, uint64_t id) {
  return id_out(self, T2S_REC_STREAM_SHUTDOWN, id, -1);
}

static void up_stream_pause(void *self, uint64_t id, bool paused) {
  id_out(self, T2S_REC_STREAM_PAUSE, id, paused);
}

static void up_stream_close(void *self, uint64_t id, bool abort) {
  id_out(self, T2S_REC_STREAM_CLOSE, id, abort);
}

static int up_dgram_open(void *self, uint64_t id, const t2s_addr *relay, const t2s_egress *eg) {
  rp *p = self;
  const t2s_rec_record *r = expect(p, T2S_REC_DGRAM_OPEN, "dgram_open");
  if (r == NULL || !id_same(p, r, "dgram_open", id) || !addr_same(p, r, "dgram_open", relay, eg)) {
    return T2S_ERR_UNREACHABLE;
  }
  int rv = (int)r->rv;
  take(p);
  return rv;
}

static int up_dgram_send(void *self, uint64_t id, const uint8_t *data, size_t len) {
  rp *p = self;
  const t2s_rec_record *r = expect(p, T2S_REC_DGRAM_SEND, "dgram_send");
  if (r == NULL || !id_same(p, r, "dgram_send", id) ||
      !bytes_same(p, r, "dgram_send", id, data, len, false)) {
    return T2S_ERR_WOULDBLOCK;
  }
  int rv = (int)r->rv;
  take(p);
  return rv;
}

static void up_dgram_close(void *self, uint64_t id) {
  id_out(self, T2S_REC_DGRAM_CLOSE, id, -1);
}

static const t2s_upstream_ops replay_up_ops = {
    up_stream_open,  up_stream_write, up_stream_shutdown, up_stream_pause,
    up_stream_close, up_dgram_open,   up_dgram_send,      up_dgram_close,
};

static int mon_start(void *self, t2s_net_event_cb cb, void *arg) {
  (void)self;
  (void)cb;
  (void)arg;
  return 0;
}

static void mon_stop(void *self) {
  (void)self;
}

static int mon_route_get(void *self, const t2s_addr *dst, uint32_t mark, t2s_route *out) {
  rp *p = self;
  memset(out, 0, sizeof(*out));
  const t2s_rec_record *r = expect(p, T2S_REC_ROUTE_GET, "route_get");
  if (r == NULL || !addr_same(p, r, "route_get", dst, NULL)) {
    return T2S_ERR_UNREACHABLE;
  }
  if (r->u32a != mark) {
    differ(p, r->now, "route_get: recorded mark %" PRIu32 ", replayed mark %" PRIu32, r->u32a,
           mark);
    return T2S_ERR_UNREACHABLE;
  }
  *out = r->route;
  int rv = (int)r->rv;
  take(p);
  return rv;
}

static const t2s_monitor_ops replay_mon_ops = {mon_start, mon_stop, mon_route_get};

/* "drop checksum", "reason -304", ... */
static const char *reason(const t2s_engine_event *ev, char *buf, size_t len) {
  if (ev->type == T2S_EV_DROP) {
    snprintf(buf, len, "drop %s", t2s_drop_name(ev->reason));
  } else {
    snprintf(buf, len, "reason %d", ev->reason);
  }
  return buf;
}

static void on_event(void *arg, const t2s_engine_event *ev) {
  rp *p = arg;
  if (p->opts->on_event) {
    p->opts->on_event(p->opts->arg, ev);
  }
  char made[64];
  snprintf(made, sizeof(made), "event %s flow %" PRIu64, t2s_engine_event_name(ev->type),
           ev->flow_id);
  const t2s_rec_record *r = expect(p, T2S_REC_EVENT, made);
  if (r == NULL) {
    return;
  }
  const t2s_engine_event *x = &r->eev;
  if (x->type != ev->type || x->flow_id != ev->flow_id || x->reason != ev->reason ||
      x->bytes_up != ev->bytes_up || x->bytes_down != ev->bytes_down || x->now != ev->now ||
      !t2s_addr_eq(&x->src, &ev->src) || !t2s_addr_eq(&x->dst, &ev->dst)) {
    char a[64], b[64], c[64], d[64], rx[48], ry[48];
    differ(p, r->now,
           "event flow %" PRIu64 ": recorded %s (%s > %s, %s, up %" PRIu64 ", down %" PRIu64
           "), replayed %s flow %" PRIu64 " (%s > %s, %s, up %" PRIu64 ", down %" PRIu64 ")",
           x->flow_id, t2s_engine_event_name(x->type), t2s_addr_format(&x->src, true, a, 64),
           t2s_addr_format(&x->dst, true, b, 64), reason(x, rx, sizeof(rx)), x->bytes_up,
           x->bytes_down, t2s_engine_event_name(ev->type), ev->flow_id,
           t2s_addr_format(&ev->src, true, c, 64), t2s_addr_format(&ev->dst, true, d, 64),
           reason(ev, ry, sizeof(ry)), ev->bytes_up, ev->bytes_down);
    return;
  }
  take(p);
}

/* ---------------- the replay ---------------- */

/* After an input: the recorded return value, then the expiry if it changed. */
static void check_after(rp *p, bool has_rv, int64_t rv) {
  if (p->diff || p->teardown) {
    return;
  }
  /* An output the replayed engine did not make. */
  const t2s_rec_record *r = next(p);
  if (r && t2s_rec_kind_is_output(r->kind) && r->kind != T2S_REC_RET && r->kind != T2S_REC_TIMER) {
    differ(p, r->now, "recorded %s (flow %" PRIu64 "), replayed nothing more",
           t2s_rec_kind_name(r->kind), r->kind == T2S_REC_EVENT ? r->eev.flow_id : r->id);
    return;
  }
  if (has_rv) {
    char made[64];
    snprintf(made, sizeof(made), "return %" PRId64, rv);
    r = expect(p, T2S_REC_RET, made);
    if (r == NULL) {
      return;
    }
    if (r->rv != rv) {
      differ(p, r->now, "return value of %s: recorded %" PRId64 ", replayed %" PRId64,
             t2s_rec_kind_name(p->input.kind), r->rv, rv);
      return;
    }
    take(p);
  }
  t2s_tstamp exp = t2s_engine_get_expiry(p->e);
  r = next(p);
  bool recorded = r && r->kind == T2S_REC_TIMER;
  if (exp != p->last_expiry || recorded) {
    char a[32], b[32];
    if (!recorded || r->t1 != exp) {
      differ(p, p->input.now, "engine expiry: recorded %s, replayed %s",
             recorded ? r->t1 == T2S_TSTAMP_MAX ? "none" : fmt_time(r->t1, a, sizeof(a))
                      : "unchanged",
             exp == p->last_expiry   ? "unchanged"
             : exp == T2S_TSTAMP_MAX ? "none"
                                     : fmt_time(exp, b, sizeof(b)));
      return;
    }
    p->res->outputs++;
    p->last_expiry = exp;
    take(p);
  }
}

static void feed(rp *p, const t2s_rec_record *in) {
  t2s_engine *e = p->e;
  t2s_tstamp now = in->now;
  int64_t rv = 0;
  bool has_rv = true;
  switch (in->kind) {
  case T2S_REC_DEV_IN:
    rv = t2s_engine_input_ex(e, in->data, in->datalen, in->u32a, now);
    break;
  case T2S_REC_EXPIRY:
    rv = t2s_engine_handle_expiry(e, now);
    break;
  case T2S_REC_STREAM_OPENED:
    has_rv = false;
    t2s_engine_stream_opened(e, in->id, (int)in->rv, now);
    break;
  case T2S_REC_STREAM_RECV:
    rv = (int64_t)t2s_engine_stream_recv(e, in->id, in->data, in->datalen, now);
    break;
  case T2S_REC_STREAM_EOF:
    has_rv = false;
    t2s_engine_stream_eof(e, in->id, now);
    break;
  case T2S_REC_STREAM_WRITABLE:
    has_rv = false;
    t2s_engine_stream_writable(e, in->id, now);
    break;
  case T2S_REC_STREAM_ERROR:
    has_rv = false;
    t2s_engine_stream_error(e, in->id, (int)in->rv, now);
    break;
  case T2S_REC_DGRAM_RECV:
    has_rv = false;
    t2s_engine_dgram_recv(e, in->id, in->data, in->datalen, now);
    break;
  case T2S_REC_DGRAM_ERROR:
    has_rv = false;
    t2s_engine_dgram_error(e, in->id, (int)in->rv, now);
    break;
  case T2S_REC_NET_EVENT:
    has_rv = false;
    t2s_engine_network_event(e, &in->nev, now);
    break;
  case T2S_REC_RESET_ALL:
    rv = (int64_t)t2s_engine_reset_all(e, now);
    break;
  case T2S_REC_SET_PROXIES:
  case T2S_REC_REPLACE_PROXIES: {
    t2s_rec_proxies *px = &p->proxies;
    if (t2s_rec_proxies_decode(in->data, in->datalen, px) != 0) {
      p->have = T2S_REC_ERR_CORRUPT; /* the reader checked it: not reached */
      return;
    }
    const t2s_proxy_health_config *h = px->has_health ? &px->health : NULL;
    rv = in->kind == T2S_REC_SET_PROXIES ? t2s_engine_set_proxies(e, px->list, px->n, h, now)
                                         : t2s_engine_replace_proxies(e, px->list, px->n, h, now);
    break;
  }
  case T2S_REC_PROXY_SET_ADDR:
    rv = t2s_engine_proxy_set_addr(e, in->u32a, &in->addr, now);
    break;
  case T2S_REC_PROXY_PROBE:
    has_rv = false;
    t2s_engine_proxy_probe_result(e, in->u32a, (int)in->rv, now);
    break;
  case T2S_REC_STREAM_MULTIPATH:
    has_rv = false;
    t2s_engine_stream_multipath(e, in->id, (t2s_stream_mp)in->u32a, in->u32b, now);
    break;
  case T2S_REC_SET_RUNTIME: {
    has_rv = false;
    t2s_engine_config cfg = p->rd.hdr.cfg;
    if (t2s_rec_runtime_decode(in->data, in->datalen, &cfg) != 0) {
      p->have = T2S_REC_ERR_CORRUPT;
      return;
    }
    t2s_engine_set_runtime(e, &cfg);
    break;
  }
  case T2S_REC_ENGINE_DEL:
    p->e = NULL;
    t2s_engine_del(e);
    p->res->engine_deleted = true;
    return;
  }
  check_after(p, has_rv, rv);
}

static t2s_replay_status bad(t2s_replay_result *res, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(res->msg, sizeof(res->msg), fmt, ap);
  va_end(ap);
  return res->status = T2S_REPLAY_BAD_FILE;
}

/* Builds the fake-IP table from the header's configuration and loads the FAKEDNS_STATE
 * records that follow the header; the first other record is left for next(). Returns NULL
 * or why it failed. */
static const char *load_fake_dns(rp *p) {
  if (t2s_fakedns_new(&p->fake_dns, p->rd.hdr.fakedns) != 0) {
    return "the engine refuses its configuration";
  }
  char *text = NULL;
  size_t len = 0;
  const char *why = NULL;
  for (;;) {
    int rv = t2s_rec_reader_next(&p->rd, &p->next);
    if (rv != 1 || p->next.kind != T2S_REC_FAKEDNS_STATE) {
      p->have =
          rv == 1 && t2s_rec_kind_is_note(p->next.kind) && p->next.kind != T2S_REC_END ? 2 : rv;
      p->res->records += rv == 1;
      break;
    }
    p->res->records++;
    char *grown = realloc(text, len + p->next.datalen + 1);
    if (grown == NULL) {
      why = "out of memory";
      break;
    }
    text = grown;
    memcpy(text + len, p->next.data, p->next.datalen);
    len += p->next.datalen;
  }
  if (why == NULL && (p->have < 0 || len == 0)) {
    why = p->have < 0 ? t2s_rec_strerror(p->have) : "its state records are missing";
  }
  if (why == NULL && t2s_fakedns_state_load(p->fake_dns, text, len, NULL, NULL) != 0) {
    why = "its state records are not a state";
  }
  free(text);
  return why;
}

static t2s_replay_status run(rp *p, const uint8_t *buf, size_t len) {
  t2s_replay_result *res = p->res;
  int rv = t2s_rec_reader_init(&p->rd, buf, len);
  if (rv != 0) {
    return bad(res, "the recording's header is unreadable: %s", t2s_rec_strerror(rv));
  }
  const t2s_rec_header *h = &p->rd.hdr;
  res->seed = h->cfg.seed;
  snprintf(res->build, sizeof(res->build), "%s", h->build);
  if ((h->flags & T2S_REC_FLAG_FAKE_DNS) && !(h->flags & T2S_REC_FLAG_FAKE_DNS_TABLE)) {
    return bad(res, "recorded with --fake-dns by a build that did not record the fake-IP table, "
                    "so the simulator cannot honour it");
  }
  if (h->flags & T2S_REC_FLAG_RING_CUT) {
    return bad(res, "a ring recording whose oldest records were dropped cannot be replayed from "
                    "a fresh engine (record with a larger --record-max)");
  }
  t2s_engine_config cfg = h->cfg;
  cfg.mem = &p->mem;
  p->have = 2; /* nothing read yet (load_fake_dns may leave the next record read) */
  if (h->fakedns) {
    const char *why = load_fake_dns(p);
    if (why) {
      return bad(res, "the recorded fake-IP table cannot be rebuilt: %s", why);
    }
    cfg.fake_dns = p->fake_dns;
  }
  t2s_device dev = {&replay_dev_ops, p};
  t2s_upstream up = {&replay_up_ops, p};
  t2s_monitor mon = {&replay_mon_ops, p};
  t2s_engine_hooks hooks = {on_event, p};
  p->last_expiry = T2S_TSTAMP_MAX;
  rv = t2s_engine_new(&p->e, &cfg, &dev, &up, &hooks);
  if (rv != 0) {
    return bad(res, "the recorded options cannot be honoured: the engine refused them (%s)",
               t2s_strerror(rv));
  }
  t2s_engine_set_monitor(p->e, &mon);
  bool first = true;
  t2s_tstamp last = 0;
  while (!p->diff) {
    const t2s_rec_record *r = next(p);
    if (r == NULL) {
      break;
    }
    if (r->kind == T2S_REC_END) {
      res->ended = true;
      res->end_reason = r->u32a;
      take(p);
      continue; /* nothing may follow but the file's end */
    }
    if (res->ended) {
      p->have = T2S_REC_ERR_CORRUPT;
      break;
    }
    if (!t2s_rec_kind_is_input(r->kind)) {
      differ(p, r->now, "recorded %s (flow %" PRIu64 "), replayed nothing",
             t2s_rec_kind_name(r->kind), r->kind == T2S_REC_EVENT ? r->eev.flow_id : r->id);
      break;
    }
    if (p->e == NULL) {
      p->have = T2S_REC_ERR_CORRUPT; /* an input after the engine was deleted */
      break;
    }
    if (!first && r->now < last) {
      p->have = T2S_REC_ERR_CORRUPT; /* time goes backwards */
      break;
    }
    if (r->now > p->opts->until) {
      res->until_reached = true;
      break;
    }
    if (first) {
      res->first_now = r->now;
      first = false;
    }
    last = res->last_now = r->now;
    p->input = *r;
    p->input_recno = res->records;
    res->inputs++;
    take(p);
    feed(p, &p->input);
  }
  if (p->e) {
    p->teardown = true;
    t2s_engine_del(p->e);
    p->e = NULL;
  } else {
    res->leaked_blocks = p->mem.live;
  }
  if (p->diff) {
    return res->status = T2S_REPLAY_DIFFERENT;
  }
  if (p->have < 0) {
    return bad(res, "the recording is %s at record #%" PRIu64 " (byte %zu)",
               t2s_rec_strerror(p->have), res->records + 1, p->rd.pos);
  }
  return res->status = T2S_REPLAY_IDENTICAL;
}

t2s_replay_status t2s_replay_run(const uint8_t *buf, size_t len, const t2s_replay_opts *opts,
                                 t2s_replay_result *res) {
  memset(res, 0, sizeof(*res));
  rp *p = calloc(1, sizeof(*p));
  if (p == NULL) {
    return bad(res, "out of memory");
  }
  t2s_replay_opts def = {.until = T2S_TSTAMP_MAX};
  p->opts = opts ? opts : &def;
  p->res = res;
  t2s_replay_status st = run(p, buf, len);
  t2s_fakedns_del(p->fake_dns); /* after the engine that used it */
  free(p);
  return st;
}
