/*
 * fuzz_harness.c: the stubs and checks shared by the engine fuzz targets (fuzz_harness.h).
 */
#include "fuzz_harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"

void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "\n%s:%d: fuzz check failed: %s: ", file, line, cond);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  abort();
}

/* ---------------- input reader ---------------- */

void fz_in_init(fz_in *in, const uint8_t *data, size_t len) {
  in->p = data;
  in->len = len;
  in->off = 0;
}

bool fz_in_empty(const fz_in *in) {
  return in->off >= in->len;
}

size_t fz_in_left(const fz_in *in) {
  return in->off < in->len ? in->len - in->off : 0;
}

uint8_t fz_u8(fz_in *in) {
  return in->off < in->len ? in->p[in->off++] : 0;
}

uint16_t fz_u16(fz_in *in) {
  uint16_t hi = fz_u8(in);
  return (uint16_t)((hi << 8) | fz_u8(in));
}

uint32_t fz_u32(fz_in *in) {
  uint32_t hi = fz_u16(in);
  return (hi << 16) | fz_u16(in);
}

const uint8_t *fz_bytes(fz_in *in, size_t n, size_t *pn) {
  size_t left = fz_in_left(in);
  if (n > left) {
    n = left;
  }
  const uint8_t *p = in->p + in->off;
  in->off += n;
  *pn = n;
  return p;
}

/* ---------------- device ---------------- */

static void track_peer(fz_world *w, const t2s_pkt *pkt) {
  if (pkt->proto != T2S_IPPROTO_TCP) {
    return;
  }
  for (int i = 0; i < FZ_TUPLES; i++) {
    if (t2s_addr_eq(&pkt->src, &w->tuple_server[i]) &&
        t2s_addr_eq(&pkt->dst, &w->tuple_client[i])) {
      fz_peer *p = &w->peer[i];
      uint32_t len = (uint32_t)pkt->payload_len;
      len += (pkt->l4.tcp.flags & T2S_TCP_SYN) ? 1 : 0;
      len += (pkt->l4.tcp.flags & T2S_TCP_FIN) ? 1 : 0;
      p->seen = true;
      p->seq = pkt->l4.tcp.seq;
      p->seq_end = pkt->l4.tcp.seq + len;
      p->ack = pkt->l4.tcp.ack;
      p->wnd = pkt->l4.tcp.wnd;
      return;
    }
  }
}

static int dev_send(void *self, const uint8_t *pkt, size_t len) {
  fz_world *w = self;
  FZ_CHECK(w->in_engine, "device send outside an engine call");
  FZ_CHECK(len > 0 && len <= sizeof(w->last_out), "packet of %zu bytes", len);
  /* Every packet the engine sends must parse (ASan also sees the whole buffer read). */
  memcpy(w->last_out, pkt, len);
  w->last_out_len = len;
  t2s_pkt p;
  t2s_drop_reason r = t2s_pkt_parse(w->last_out, len, &p);
  FZ_CHECK(r == T2S_DROP_NONE, "the engine sent a packet that does not parse: %s (%zu bytes)",
           t2s_drop_name(r), len);
  FZ_CHECK(p.len == len, "packet of %zu bytes with %zu bytes of trailer", p.len, len - p.len);
  size_t limit = w->mtu;
  if (p.ipver == 6 && limit < 1280) {
    limit = 1280;
  }
  FZ_CHECK(len <= limit,
           "IPv%u packet (proto %u, %zu bytes of payload) of %zu bytes over the mtu %u", p.ipver,
           p.proto, p.payload_len, len, w->mtu);
  track_peer(w, &p);
  w->packets_out++;
  return 0;
}

static void dev_get_caps(void *self, t2s_device_caps *caps) {
  fz_world *w = self;
  caps->mtu = w->mtu;
  caps->offloads = 0;
}

static const t2s_device_ops dev_ops = {
    .recv = NULL,
    .send = dev_send,
    .get_caps = dev_get_caps,
};

/* ---------------- upstream connector ---------------- */

static fz_stream *stream_find(fz_world *w, uint64_t id) {
  for (int i = 0; i < FZ_MAX_STREAMS; i++) {
    if (w->streams[i].state != FZ_ST_FREE && w->streams[i].id == id) {
      return &w->streams[i];
    }
  }
  return NULL;
}

static fz_dgram *dgram_find(fz_world *w, uint64_t id) {
  for (int i = 0; i < FZ_MAX_DGRAMS; i++) {
    if (w->dgrams[i].used && w->dgrams[i].id == id) {
      return &w->dgrams[i];
    }
  }
  return NULL;
}

/* Reads every byte (so ASan checks the buffer) and folds them into a value. */
static uint32_t touch(const uint8_t *data, size_t len) {
  uint32_t h = 0;
  for (size_t i = 0; i < len; i++) {
    h = h * 31 + data[i];
  }
  return h;
}

static int up_stream_open(void *self, uint64_t id, const t2s_addr *dst, const t2s_egress *egress) {
  fz_world *w = self;
  if (getenv("T2S_FUZZ_VERBOSE")) {
    fprintf(stderr, "  stream_open %llu\n", (unsigned long long)id);
  }
  FZ_CHECK(w->in_engine, "stream_open outside an engine call");
  FZ_CHECK(id != 0, "stream id 0");
  FZ_CHECK(stream_find(w, id) == NULL, "stream id %llu reused while open", (unsigned long long)id);
  FZ_CHECK(dst != NULL && (dst->family == T2S_AF_INET || dst->family == T2S_AF_INET6),
           "stream_open without a destination");
  FZ_CHECK(egress != NULL, "stream_open without an egress");
  if (w->fail_next_open) {
    w->fail_next_open = false;
    return T2S_ERR_UNREACHABLE;
  }
  for (int i = 0; i < FZ_MAX_STREAMS; i++) {
    if (w->streams[i].state == FZ_ST_FREE) {
      memset(&w->streams[i], 0, sizeof(w->streams[i]));
      w->streams[i].id = id;
      w->streams[i].state = FZ_ST_CONNECTING;
      w->opens++;
      return 0;
    }
  }
  return T2S_ERR_LIMIT; /* like a connector out of sockets */
}

static t2s_ssize up_stream_write(void *self, uint64_t id, const uint8_t *data, size_t len) {
  fz_world *w = self;
  FZ_CHECK(w->in_engine, "stream_write outside an engine call");
  fz_stream *s = stream_find(w, id);
  FZ_CHECK(s != NULL, "write to stream %llu, which is not open", (unsigned long long)id);
  FZ_CHECK(s->state == FZ_ST_OPEN, "write to stream %llu before its connect completed",
           (unsigned long long)id);
  FZ_CHECK(!s->shut, "write to stream %llu after shutdown_write", (unsigned long long)id);
  (void)touch(data, len);
  if (w->fail_next_write) {
    w->fail_next_write = false;
    return T2S_ERR_RESET; /* the socket failed under the write */
  }
  size_t n = len < w->write_cap ? len : w->write_cap;
  if (n < len) {
    s->short_write = true;
  }
  s->written += n;
  return (t2s_ssize)n;
}

static int up_stream_shutdown_write(void *self, uint64_t id) {
  fz_world *w = self;
  FZ_CHECK(w->in_engine, "shutdown_write outside an engine call");
  fz_stream *s = stream_find(w, id);
  FZ_CHECK(s != NULL, "shutdown_write of stream %llu, which is not open", (unsigned long long)id);
  FZ_CHECK(s->state == FZ_ST_OPEN, "shutdown_write of stream %llu before its connect completed",
           (unsigned long long)id);
  FZ_CHECK(!s->shut, "second shutdown_write of stream %llu", (unsigned long long)id);
  s->shut = true;
  return 0;
}

static void up_stream_pause_read(void *self, uint64_t id, bool paused) {
  fz_world *w = self;
  FZ_CHECK(w->in_engine, "pause_read outside an engine call");
  fz_stream *s = stream_find(w, id);
  FZ_CHECK(s != NULL, "pause_read of stream %llu, which is not open", (unsigned long long)id);
  s->paused = paused;
}

static void up_stream_close(void *self, uint64_t id, bool abort) {
  fz_world *w = self;
  if (getenv("T2S_FUZZ_VERBOSE")) {
    fprintf(stderr, "  stream_close %llu%s\n", (unsigned long long)id, abort ? " abort" : "");
  }
  FZ_CHECK(w->in_engine, "stream_close outside an engine call");
  fz_stream *s = stream_find(w, id);
  FZ_CHECK(s != NULL, "close of stream %llu, which is not open (closed twice, or after an error)",
           (unsigned long long)id);
  memset(s, 0, sizeof(*s));
  w->closes++;
}

static int up_dgram_open(void *self, uint64_t id, const t2s_addr *relay, const t2s_egress *egress) {
  fz_world *w = self;
  FZ_CHECK(w->in_engine, "dgram_open outside an engine call");
  FZ_CHECK(id != 0, "datagram id 0");
  FZ_CHECK(dgram_find(w, id) == NULL, "datagram id %llu reused while open", (unsigned long long)id);
  FZ_CHECK(relay != NULL && egress != NULL, "dgram_open without relay or egress");
  if (w->fail_next_open) {
    w->fail_next_open = false;
    return T2S_ERR_UNREACHABLE;
  }
  for (int i = 0; i < FZ_MAX_DGRAMS; i++) {
    if (!w->dgrams[i].used) {
      memset(&w->dgrams[i], 0, sizeof(w->dgrams[i]));
      w->dgrams[i].used = true;
      w->dgrams[i].id = id;
      return 0;
    }
  }
  return T2S_ERR_LIMIT;
}

static int up_dgram_send(void *self, uint64_t id, const uint8_t *data, size_t len) {
  fz_world *w = self;
  FZ_CHECK(w->in_engine, "dgram_send outside an engine call");
  fz_dgram *d = dgram_find(w, id);
  FZ_CHECK(d != NULL, "send on datagram socket %llu, which is not open", (unsigned long long)id);
  (void)touch(data, len);
  if (w->fail_next_write) {
    w->fail_next_write = false;
    return T2S_ERR_UNREACHABLE;
  }
  if (w->dgram_wouldblock) {
    return T2S_ERR_WOULDBLOCK;
  }
  d->sent++;
  return 0;
}

static void up_dgram_close(void *self, uint64_t id) {
  fz_world *w = self;
  FZ_CHECK(w->in_engine, "dgram_close outside an engine call");
  fz_dgram *d = dgram_find(w, id);
  FZ_CHECK(d != NULL, "close of datagram socket %llu, which is not open", (unsigned long long)id);
  memset(d, 0, sizeof(*d));
}

static const t2s_upstream_ops up_ops = {
    .stream_open = up_stream_open,
    .stream_write = up_stream_write,
    .stream_shutdown_write = up_stream_shutdown_write,
    .stream_pause_read = up_stream_pause_read,
    .stream_close = up_stream_close,
    .dgram_open = up_dgram_open,
    .dgram_send = up_dgram_send,
    .dgram_close = up_dgram_close,
};

/* ---------------- network monitor ---------------- */

static int mon_start(void *self, t2s_net_event_cb cb, void *arg) {
  (void)self;
  (void)cb;
  (void)arg;
  FZ_CHECK(false, "the engine must not start the monitor");
}

static void mon_stop(void *self) {
  (void)self;
  FZ_CHECK(false, "the engine must not stop the monitor");
}

static int mon_route_get(void *self, const t2s_addr *dst, uint32_t mark, t2s_route *out) {
  fz_world *w = self;
  (void)mark;
  FZ_CHECK(dst != NULL && out != NULL, "route_get without dst or out");
  if (w->route_err != 0) {
    return w->route_err;
  }
  memset(out, 0, sizeof(*out));
  out->ifindex = w->route_ifindex;
  snprintf(out->ifname, sizeof(out->ifname), "fz%u", w->route_ifindex % 100);
  out->src.family = dst->family;
  out->src.ip[0] = dst->family == T2S_AF_INET ? 192 : 0x20;
  out->src.ip[1] = dst->family == T2S_AF_INET ? 0 : 0x01;
  out->src.ip[3] = (uint8_t)w->route_ifindex;
  return 0;
}

static const t2s_monitor_ops mon_ops = {
    .start = mon_start,
    .stop = mon_stop,
    .route_get = mon_route_get,
};

/* ---------------- the world ---------------- */

static void set_addr(t2s_addr *a, bool v6, uint8_t host, uint16_t port) {
  memset(a, 0, sizeof(*a));
  if (v6) {
    static const uint8_t pfx[4] = {0x20, 0x01, 0x0d, 0xb8};
    a->family = T2S_AF_INET6;
    memcpy(a->ip, pfx, sizeof(pfx));
    a->ip[15] = host;
  } else {
    a->family = T2S_AF_INET;
    a->ip[0] = 198;
    a->ip[1] = 18;
    a->ip[2] = 0;
    a->ip[3] = host;
  }
  a->port = port;
}

static void on_event(void *arg, const t2s_engine_event *ev) {
  (void)arg;
  char a[64], b[64];
  fprintf(stderr, "  event %s flow %llu %s -> %s reason %d\n", t2s_engine_event_name(ev->type),
          (unsigned long long)ev->flow_id, t2s_addr_format(&ev->src, true, a, sizeof(a)),
          t2s_addr_format(&ev->dst, true, b, sizeof(b)), ev->reason);
}

int fz_world_init(fz_world *w, const t2s_engine_config *cfg, uint32_t mtu) {
  memset(w, 0, sizeof(*w));
  w->mtu = mtu;
  w->write_cap = 65536;
  w->route_ifindex = 1;
  w->now = 1 * T2S_SECONDS;
  w->dev.ops = &dev_ops;
  w->dev.self = w;
  w->up.ops = &up_ops;
  w->up.self = w;
  w->mon.ops = &mon_ops;
  w->mon.self = w;
  /* Tuples 0..3 IPv4, 4..7 IPv6: two clients and two servers each. Servers of IPv4 tuples
   * are 203.0.113.x (TEST-NET-3 stands for the Internet here). */
  for (int i = 0; i < FZ_TUPLES; i++) {
    bool v6 = i >= 4;
    set_addr(&w->tuple_client[i], v6, (uint8_t)(2 + (i & 1)), (uint16_t)(40000 + (i & 1)));
    set_addr(&w->tuple_server[i], v6, (uint8_t)(10 + ((i >> 1) & 1)), ((i >> 1) & 1) ? 443 : 80);
    if (!v6) {
      w->tuple_server[i].ip[0] = 203;
      w->tuple_server[i].ip[1] = 0;
      w->tuple_server[i].ip[2] = 113;
    }
  }
  w->in_engine = true;
  /* T2S_FUZZ_VERBOSE=1: the engine's events on stderr (to read a reproducer's story). */
  t2s_engine_hooks hooks = {.on_event = on_event, .arg = w};
  bool verbose = getenv("T2S_FUZZ_VERBOSE") != NULL;
  int rv = t2s_engine_new(&w->engine, cfg, &w->dev, &w->up, verbose ? &hooks : NULL);
  if (rv == 0) {
    t2s_engine_set_monitor(w->engine, &w->mon);
  }
  w->in_engine = false;
  return rv;
}

size_t fz_streams_open(const fz_world *w) {
  size_t n = 0;
  for (int i = 0; i < FZ_MAX_STREAMS; i++) {
    n += w->streams[i].state != FZ_ST_FREE;
  }
  return n;
}

void fz_world_free(fz_world *w) {
  w->in_engine = true;
  t2s_engine_del(w->engine);
  w->in_engine = false;
  w->engine = NULL;
  for (int i = 0; i < FZ_MAX_STREAMS; i++) {
    FZ_CHECK(w->streams[i].state == FZ_ST_FREE,
             "stream %llu still open after t2s_engine_del (opens %llu, closes %llu)",
             (unsigned long long)w->streams[i].id, (unsigned long long)w->opens,
             (unsigned long long)w->closes);
  }
  for (int i = 0; i < FZ_MAX_DGRAMS; i++) {
    FZ_CHECK(!w->dgrams[i].used, "datagram socket %llu still open after t2s_engine_del",
             (unsigned long long)w->dgrams[i].id);
  }
}

void fz_input(fz_world *w, const uint8_t *pkt, size_t len) {
  fz_input_ex(w, pkt, len, 0);
}

void fz_input_ex(fz_world *w, const uint8_t *pkt, size_t len, unsigned flags) {
  w->in_engine = true;
  int rv = t2s_engine_input_ex(w->engine, pkt, len, flags, w->now);
  w->in_engine = false;
  FZ_CHECK(rv == 0, "t2s_engine_input returned %d (%s)", rv, t2s_strerror(rv));
}

void fz_advance(fz_world *w, t2s_tstamp to, unsigned max_fires) {
  for (unsigned fires = 0; fires < max_fires; fires++) {
    t2s_tstamp exp = t2s_engine_get_expiry(w->engine);
    if (exp > to) {
      break;
    }
    t2s_tstamp t = exp > w->now ? exp : w->now;
    w->now = t;
    w->in_engine = true;
    int rv = t2s_engine_handle_expiry(w->engine, t);
    w->in_engine = false;
    FZ_CHECK(rv == 0, "t2s_engine_handle_expiry returned %d (%s)", rv, t2s_strerror(rv));
    t2s_tstamp next = t2s_engine_get_expiry(w->engine);
    FZ_CHECK(next > t, "a timer is still due after handle_expiry(%llu): expiry %llu",
             (unsigned long long)t, (unsigned long long)next);
  }
  if (to > w->now) {
    w->now = to;
  }
}

/* The idx-th (modulo) stream for which ok(s) holds, or NULL. */
static fz_stream *pick_stream(fz_world *w, unsigned idx, bool (*ok)(const fz_stream *)) {
  fz_stream *c[FZ_MAX_STREAMS];
  unsigned n = 0;
  for (int i = 0; i < FZ_MAX_STREAMS; i++) {
    if (w->streams[i].state != FZ_ST_FREE && ok(&w->streams[i])) {
      c[n++] = &w->streams[i];
    }
  }
  return n ? c[idx % n] : NULL;
}

static bool is_connecting(const fz_stream *s) {
  return s->state == FZ_ST_CONNECTING;
}
static bool is_readable(const fz_stream *s) {
  return s->state == FZ_ST_OPEN && !s->paused && !s->eof_sent;
}
static bool is_open_no_eof(const fz_stream *s) {
  return s->state == FZ_ST_OPEN && !s->eof_sent;
}
static bool is_any(const fz_stream *s) {
  (void)s;
  return true;
}
static bool is_short_written(const fz_stream *s) {
  return s->state == FZ_ST_OPEN && s->short_write;
}

bool fz_complete_open(fz_world *w, unsigned idx, int err) {
  fz_stream *s = pick_stream(w, idx, is_connecting);
  if (s == NULL) {
    return false;
  }
  uint64_t id = s->id;
  if (err != 0) {
    memset(s, 0, sizeof(*s)); /* the connector forgets a stream whose connect failed */
  } else {
    s->state = FZ_ST_OPEN;
  }
  w->in_engine = true;
  t2s_engine_stream_opened(w->engine, id, err, w->now);
  w->in_engine = false;
  return true;
}

/* Delivers bytes to stream id as a connector would: at most recv_space, and all of it taken. */
static bool deliver_id(fz_world *w, uint64_t id, const uint8_t *data, size_t len) {
  fz_stream *s = stream_find(w, id);
  if (s == NULL || !is_readable(s)) {
    return false;
  }
  size_t space = t2s_engine_stream_recv_space(w->engine, id);
  if (space == 0 || len == 0) {
    return false;
  }
  if (len > space) {
    len = space;
  }
  w->in_engine = true;
  size_t taken = t2s_engine_stream_recv(w->engine, id, data, len, w->now);
  w->in_engine = false;
  FZ_CHECK(taken <= len, "stream_recv took %zu of %zu bytes", taken, len);
  FZ_CHECK(taken == len, "stream_recv took %zu of %zu bytes although recv_space was %zu", taken,
           len, space);
  return true;
}

bool fz_deliver(fz_world *w, unsigned idx, const uint8_t *data, size_t len) {
  fz_stream *s = pick_stream(w, idx, is_readable);
  return s != NULL && deliver_id(w, s->id, data, len);
}

bool fz_deliver_eof(fz_world *w, unsigned idx) {
  fz_stream *s = pick_stream(w, idx, is_open_no_eof);
  if (s == NULL) {
    return false;
  }
  s->eof_sent = true;
  w->in_engine = true;
  t2s_engine_stream_eof(w->engine, s->id, w->now);
  w->in_engine = false;
  return true;
}

bool fz_deliver_error(fz_world *w, unsigned idx, int err) {
  fz_stream *s = pick_stream(w, idx, is_any);
  if (s == NULL) {
    return false;
  }
  uint64_t id = s->id;
  memset(s, 0, sizeof(*s)); /* the connector forgets a failed stream */
  w->in_engine = true;
  t2s_engine_stream_error(w->engine, id, err, w->now);
  w->in_engine = false;
  return true;
}

bool fz_deliver_writable(fz_world *w, unsigned idx) {
  fz_stream *s = pick_stream(w, idx, is_short_written);
  if (s == NULL) {
    return false;
  }
  s->short_write = false;
  w->in_engine = true;
  t2s_engine_stream_writable(w->engine, s->id, w->now);
  w->in_engine = false;
  return true;
}

bool fz_dgram_deliver(fz_world *w, unsigned idx, const uint8_t *data, size_t len) {
  fz_dgram *c[FZ_MAX_DGRAMS];
  unsigned n = 0;
  for (int i = 0; i < FZ_MAX_DGRAMS; i++) {
    if (w->dgrams[i].used) {
      c[n++] = &w->dgrams[i];
    }
  }
  if (n == 0) {
    return false;
  }
  w->in_engine = true;
  t2s_engine_dgram_recv(w->engine, c[idx % n]->id, data, len, w->now);
  w->in_engine = false;
  return true;
}

bool fz_dgram_fail(fz_world *w, unsigned idx, int err) {
  fz_dgram *c[FZ_MAX_DGRAMS];
  unsigned n = 0;
  for (int i = 0; i < FZ_MAX_DGRAMS; i++) {
    if (w->dgrams[i].used) {
      c[n++] = &w->dgrams[i];
    }
  }
  if (n == 0) {
    return false;
  }
  uint64_t id = c[idx % n]->id;
  memset(c[idx % n], 0, sizeof(fz_dgram)); /* the connector forgets a failed socket */
  w->in_engine = true;
  t2s_engine_dgram_error(w->engine, id, err, w->now);
  w->in_engine = false;
  return true;
}

bool fz_socks5_accept(fz_world *w, unsigned idx, bool userpass) {
  static const uint8_t method_none[] = {5, 0};
  static const uint8_t method_userpass[] = {5, 2};
  static const uint8_t auth_ok[] = {1, 0};
  static const uint8_t reply[] = {5, 0, 0, 1, 10, 0, 0, 1, 0x04, 0x38};
  fz_stream *s = pick_stream(w, idx, is_readable);
  if (s == NULL) {
    return false;
  }
  uint64_t id = s->id;
  if (userpass) {
    deliver_id(w, id, method_userpass, sizeof(method_userpass));
    deliver_id(w, id, auth_ok, sizeof(auth_ok));
  } else {
    deliver_id(w, id, method_none, sizeof(method_none));
  }
  deliver_id(w, id, reply, sizeof(reply));
  return true;
}

/* ---------------- checksums ---------------- */

static void fix_l4(uint8_t *l4, size_t l4len, uint8_t proto, const t2s_addr *src,
                   const t2s_addr *dst, bool v6) {
  size_t off;
  bool pseudo = true;
  switch (proto) {
  case T2S_IPPROTO_TCP:
    if (l4len < 20) {
      return;
    }
    off = 16;
    break;
  case T2S_IPPROTO_UDP:
    if (l4len < 8) {
      return;
    }
    off = 6;
    break;
  case T2S_IPPROTO_ICMP:
    if (v6 || l4len < 4) {
      return;
    }
    off = 2;
    pseudo = false;
    break;
  case T2S_IPPROTO_ICMPV6:
    if (!v6 || l4len < 4) {
      return;
    }
    off = 2;
    break;
  default:
    return;
  }
  l4[off] = 0;
  l4[off + 1] = 0;
  uint32_t sum = pseudo ? t2s_csum_pseudo(src, dst, proto, (uint32_t)l4len) : 0;
  uint16_t c = t2s_csum_fold(t2s_csum_add(sum, l4, l4len));
  if (proto == T2S_IPPROTO_UDP && c == 0) {
    c = 0xffff;
  }
  t2s_put16(l4 + off, c);
}

void fz_fix_checksums(uint8_t *pkt, size_t len) {
  if (len < 1) {
    return;
  }
  t2s_addr src, dst;
  memset(&src, 0, sizeof(src));
  memset(&dst, 0, sizeof(dst));
  if ((pkt[0] >> 4) == 4) {
    size_t ihl = (size_t)(pkt[0] & 15) * 4;
    if (len < 20 || ihl < 20 || ihl > len) {
      return;
    }
    size_t tot = t2s_get16(pkt + 2);
    if (tot < ihl || tot > len) {
      return;
    }
    pkt[10] = 0;
    pkt[11] = 0;
    t2s_put16(pkt + 10, t2s_csum_fold(t2s_csum_add(0, pkt, ihl)));
    if ((t2s_get16(pkt + 6) & 0x3fff) != 0) {
      return; /* a fragment: no upper-layer header to fix */
    }
    src.family = dst.family = T2S_AF_INET;
    memcpy(src.ip, pkt + 12, 4);
    memcpy(dst.ip, pkt + 16, 4);
    fix_l4(pkt + ihl, tot - ihl, pkt[9], &src, &dst, false);
  } else if ((pkt[0] >> 4) == 6) {
    if (len < 40) {
      return;
    }
    size_t plen = t2s_get16(pkt + 4);
    if (40 + plen > len) {
      return;
    }
    src.family = dst.family = T2S_AF_INET6;
    memcpy(src.ip, pkt + 8, 16);
    memcpy(dst.ip, pkt + 24, 16);
    fix_l4(pkt + 40, plen, pkt[6], &src, &dst, true);
  }
}

int fz_pick_error(uint8_t b) {
  static const int errs[] = {
      T2S_ERR_REFUSED, T2S_ERR_RESET,     T2S_ERR_TIMEOUT,         T2S_ERR_UNREACHABLE,
      T2S_ERR_CLOSED,  T2S_ERR_AUTH,      T2S_ERR_NETWORK_CHANGED, T2S_ERR_PROTO,
      T2S_ERR_LIMIT,   T2S_ERR_MALFORMED,
  };
  return errs[b % T2S_ARRAY_LEN(errs)];
}
