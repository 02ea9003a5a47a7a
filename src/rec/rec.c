/*
 * rec.c: the flight recorder: the writer (stop or ring), the middleware that records what the
 * engine does through its ops, and the recorded engine.h entry points.
 */
#include "rec.h"

#include <stdlib.h>
#include <string.h>

#define PENDING_FLUSH (64u * 1024) /* stop mode: hand bytes to the sink past this */

struct t2s_rec {
  t2s_rec_opts opts;
  uint8_t *hdr;       /* the encoded header */
  uint32_t hdr_flags; /* its flags (T2S_REC_FLAG_FAKE_DNS); RING_CUT is added at a flush */
  size_t hdrlen;
  /* stop mode: bytes not yet handed to the sink */
  uint8_t *pend;
  size_t pendlen, pendcap;
  /* ring mode: records in a circular buffer */
  uint8_t *ring;
  size_t ringcap, ringhead, ringused;
  t2s_rec_stats st;
  t2s_tstamp now;         /* of the input being handled (outputs carry it) */
  t2s_tstamp last_expiry; /* the engine's expiry last recorded */
  uint8_t *scratch;       /* one encoded record */
  size_t scratchcap;
  /* the wrapped interfaces */
  t2s_device dev;
  t2s_upstream up;
  t2s_monitor mon;
  t2s_clock clk;
  t2s_engine_hooks hooks;
};

/* ---------------- the writer ---------------- */

static void fail(t2s_rec *rec, int err) {
  if (rec->st.error == 0) {
    rec->st.error = err;
  }
  rec->st.stopped = true;
}

static int sink_write(t2s_rec *rec, const uint8_t *d, size_t n) {
  if (n == 0) {
    return 0;
  }
  if (rec->opts.sink.write(rec->opts.sink.arg, d, n) != 0) {
    fail(rec, T2S_REC_ERR_IO);
    return T2S_REC_ERR_IO;
  }
  return 0;
}

static int pend_flush(t2s_rec *rec) {
  int rv = sink_write(rec, rec->pend, rec->pendlen);
  rec->pendlen = 0;
  return rv;
}

static bool pend_append(t2s_rec *rec, const uint8_t *d, size_t n) {
  if (rec->pendlen + n > rec->pendcap) {
    size_t cap = T2S_MAX(rec->pendcap * 2, rec->pendlen + n);
    uint8_t *p = realloc(rec->pend, cap);
    if (p == NULL) {
      fail(rec, T2S_REC_ERR_NOMEM);
      return false;
    }
    rec->pend = p;
    rec->pendcap = cap;
  }
  memcpy(rec->pend + rec->pendlen, d, n);
  rec->pendlen += n;
  if (rec->pendlen >= PENDING_FLUSH) {
    pend_flush(rec);
  }
  return true;
}

/* The body length of the record at ring offset off. */
static size_t ring_reclen(const t2s_rec *rec, size_t off) {
  uint32_t blen = 0;
  for (size_t i = 0; i < 4; i++) {
    blen |= (uint32_t)rec->ring[(off + 1 + i) % rec->ringcap] << (8 * i);
  }
  return T2S_REC_RECORD_HEAD + blen;
}

static void ring_append(t2s_rec *rec, const uint8_t *d, size_t n) {
  if (n > rec->ringcap) {
    rec->st.dropped++;
    return;
  }
  while (rec->ringused + n > rec->ringcap) {
    size_t old = ring_reclen(rec, rec->ringhead);
    rec->ringhead = (rec->ringhead + old) % rec->ringcap;
    rec->ringused -= old;
    rec->st.dropped++;
  }
  size_t tail = (rec->ringhead + rec->ringused) % rec->ringcap;
  size_t first = T2S_MIN(n, rec->ringcap - tail);
  memcpy(rec->ring + tail, d, first);
  memcpy(rec->ring, d + first, n - first);
  rec->ringused += n;
}

/* Appends one record (stop mode: unless the bound is reached; then END closes the file). */
static void append(t2s_rec *rec, const t2s_rec_record *r) {
  if (rec->st.stopped) {
    return;
  }
  size_t n = t2s_rec_record_len(r);
  if (n > rec->scratchcap) {
    uint8_t *p = realloc(rec->scratch, n);
    if (p == NULL) {
      fail(rec, T2S_REC_ERR_NOMEM);
      return;
    }
    rec->scratch = p;
    rec->scratchcap = n;
  }
  t2s_rec_encode_record(r, rec->scratch);
  if (rec->opts.mode == T2S_REC_MODE_RING) {
    ring_append(rec, rec->scratch, n);
    rec->st.records++;
    rec->st.bytes = rec->hdrlen + rec->ringused;
    return;
  }
  const size_t endlen = T2S_REC_RECORD_HEAD + 4;
  if (rec->opts.max_bytes && rec->st.bytes + n + endlen > rec->opts.max_bytes) {
    uint8_t end[T2S_REC_RECORD_HEAD + 4];
    t2s_rec_record e = {.kind = T2S_REC_END, .now = r->now, .u32a = T2S_REC_END_MAX};
    t2s_rec_encode_record(&e, end);
    pend_append(rec, end, endlen);
    rec->st.bytes += endlen;
    pend_flush(rec);
    rec->st.stopped = true;
    return;
  }
  if (pend_append(rec, rec->scratch, n)) {
    rec->st.records++;
    rec->st.bytes += n;
  }
}

/* The fake-IP table's entries at the start (a --fake-dns-state file may have filled it), as
 * FAKEDNS_STATE records: the replay loads them into its own table before the first input. */
static int record_fakedns_state(t2s_rec *rec, const t2s_fakedns *table) {
  size_t len = t2s_fakedns_state_len(table);
  char *text = malloc(len + 1);
  if (text == NULL) {
    return T2S_REC_ERR_NOMEM;
  }
  t2s_ssize n = t2s_fakedns_state_write(table, text, len + 1);
  for (size_t off = 0; n > 0 && off < (size_t)n; off += T2S_REC_FAKEDNS_STATE_CHUNK) {
    t2s_rec_record r = {.kind = T2S_REC_FAKEDNS_STATE,
                        .data = (const uint8_t *)text + off,
                        .datalen = T2S_MIN((size_t)n - off, (size_t)T2S_REC_FAKEDNS_STATE_CHUNK)};
    append(rec, &r);
  }
  free(text);
  return n < 0 ? T2S_REC_ERR_NOMEM : 0;
}

int t2s_rec_new(t2s_rec **prec, const t2s_rec_opts *opts, const t2s_engine_config *cfg) {
  *prec = NULL;
  if (opts->sink.write == NULL ||
      (opts->mode == T2S_REC_MODE_RING && (opts->max_bytes == 0 || opts->sink.rewind == NULL))) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  t2s_rec *rec = calloc(1, sizeof(*rec));
  uint8_t *hdr = malloc(T2S_REC_MAX_HEADER);
  if (rec == NULL || hdr == NULL) {
    free(rec);
    free(hdr);
    return T2S_REC_ERR_NOMEM;
  }
  rec->opts = *opts;
  rec->opts.build = rec->opts.options = NULL; /* borrowed only for the header */
  rec->last_expiry = T2S_TSTAMP_MAX;
  t2s_rec_header h = {.version = T2S_REC_VERSION, .build = opts->build, .options = opts->options};
  h.cfg = *cfg;
  h.cfg.mem = NULL;
  h.cfg.fake_dns = NULL;
  t2s_fakedns_config fdcfg;
  if (cfg->fake_dns) {
    t2s_fakedns_get_config(cfg->fake_dns, &fdcfg);
    h.fakedns = &fdcfg;
    h.flags = T2S_REC_FLAG_FAKE_DNS | T2S_REC_FLAG_FAKE_DNS_TABLE;
  }
  rec->hdr_flags = h.flags;
  t2s_ssize n = t2s_rec_encode_header(&h, hdr, T2S_REC_MAX_HEADER);
  if (n < 0 || (opts->max_bytes && (uint64_t)n + 64 > opts->max_bytes)) {
    free(rec);
    free(hdr);
    return n < 0 ? (int)n : T2S_ERR_INVALID_ARGUMENT;
  }
  rec->hdr = hdr;
  rec->hdrlen = (size_t)n;
  rec->st.bytes = rec->hdrlen;
  if (opts->mode == T2S_REC_MODE_RING) {
    rec->ringcap = (size_t)(opts->max_bytes - rec->hdrlen);
    rec->ring = malloc(rec->ringcap);
    if (rec->ring == NULL) {
      t2s_rec_del(rec);
      return T2S_REC_ERR_NOMEM;
    }
    /* Touched now, at start: its page faults would otherwise land in the first pass of
     * traffic (a 256 MiB ring cut the first benchmark run to an eighth). */
    memset(rec->ring, 0xa5, rec->ringcap); /* not 0: malloc + memset 0 may become calloc */
  } else if (!pend_append(rec, hdr, rec->hdrlen)) {
    t2s_rec_del(rec);
    return T2S_REC_ERR_NOMEM;
  }
  if (cfg->fake_dns && record_fakedns_state(rec, cfg->fake_dns) != 0) {
    t2s_rec_del(rec);
    return T2S_REC_ERR_NOMEM;
  }
  *prec = rec;
  return 0;
}

int t2s_rec_flush(t2s_rec *rec) {
  if (rec->opts.mode == T2S_REC_MODE_STOP) {
    if (rec->st.error) {
      return T2S_REC_ERR_IO;
    }
    return pend_flush(rec);
  }
  if (rec->opts.sink.rewind(rec->opts.sink.arg) != 0) {
    fail(rec, T2S_REC_ERR_IO);
    return T2S_REC_ERR_IO;
  }
  /* The header's flags word follows the magic and the version. */
  uint32_t flags = rec->hdr_flags | (rec->st.dropped ? T2S_REC_FLAG_RING_CUT : 0);
  for (size_t i = 0; i < 4; i++) {
    rec->hdr[T2S_REC_MAGIC_LEN + 4 + i] = (uint8_t)(flags >> (8 * i));
  }
  int rv = sink_write(rec, rec->hdr, rec->hdrlen);
  size_t first = T2S_MIN(rec->ringused, rec->ringcap - rec->ringhead);
  if (rv == 0) {
    rv = sink_write(rec, rec->ring + rec->ringhead, first);
  }
  if (rv == 0) {
    rv = sink_write(rec, rec->ring, rec->ringused - first);
  }
  return rv;
}

int t2s_rec_finish(t2s_rec *rec) {
  t2s_rec_record r = {.kind = T2S_REC_END, .now = rec->now, .u32a = T2S_REC_END_STOP};
  append(rec, &r);
  return t2s_rec_flush(rec);
}

void t2s_rec_del(t2s_rec *rec) {
  if (rec == NULL) {
    return;
  }
  free(rec->hdr);
  free(rec->pend);
  free(rec->ring);
  free(rec->scratch);
  free(rec);
}

void t2s_rec_note(t2s_rec *rec, t2s_tstamp now, const char *text) {
  t2s_rec_record r = {.kind = T2S_REC_NOTE, .now = now};
  r.data = (const uint8_t *)text;
  r.datalen = strlen(text);
  append(rec, &r);
}

void t2s_rec_get_stats(const t2s_rec *rec, t2s_rec_stats *st) {
  *st = rec->st;
}

/* ---------------- middleware ---------------- */

static void out1(t2s_rec *rec, uint8_t kind, uint64_t id, int64_t rv) {
  t2s_rec_record r = {.kind = kind, .now = rec->now, .id = id, .rv = rv};
  append(rec, &r);
}

static t2s_ssize dev_recv(void *self, uint8_t *buf, size_t buflen) {
  t2s_rec *rec = self;
  return rec->dev.ops->recv(rec->dev.self, buf, buflen);
}

static int dev_send(void *self, const uint8_t *pkt, size_t len) {
  t2s_rec *rec = self;
  int rv = rec->dev.ops->send(rec->dev.self, pkt, len);
  if (!rec->st.stopped) {
    t2s_rec_record r = {.kind = T2S_REC_DEV_SEND, .now = rec->now, .rv = rv};
    t2s_rec_set_output_bytes(&r, pkt, len);
    append(rec, &r);
  }
  return rv;
}

static void dev_caps(void *self, t2s_device_caps *caps) {
  t2s_rec *rec = self;
  rec->dev.ops->get_caps(rec->dev.self, caps);
  t2s_rec_record r = {.kind = T2S_REC_DEV_CAPS, .now = rec->now};
  r.u32a = caps->mtu;
  r.u32b = caps->offloads;
  append(rec, &r);
}

static unsigned dev_rx_flags(void *self) {
  t2s_rec *rec = self;
  return rec->dev.ops->rx_flags ? rec->dev.ops->rx_flags(rec->dev.self) : 0;
}

static const t2s_device_ops rec_dev_ops = {dev_recv, dev_send, dev_caps, dev_rx_flags, NULL, NULL};

void t2s_rec_wrap_device(t2s_rec *rec, const t2s_device *inner, t2s_device *out) {
  rec->dev = *inner;
  out->ops = &rec_dev_ops;
  out->self = rec;
}

static int up_stream_open(void *self, uint64_t id, const t2s_addr *dst, const t2s_egress *eg) {
  t2s_rec *rec = self;
  int rv = rec->up.ops->stream_open(rec->up.self, id, dst, eg);
  t2s_rec_record r = {.kind = T2S_REC_STREAM_OPEN, .now = rec->now, .id = id, .rv = rv};
  r.addr = *dst;
  r.egress = *eg;
  append(rec, &r);
  return rv;
}

static t2s_ssize up_stream_write(void *self, uint64_t id, const uint8_t *data, size_t len) {
  t2s_rec *rec = self;
  t2s_ssize rv = rec->up.ops->stream_write(rec->up.self, id, data, len);
  if (!rec->st.stopped) {
    t2s_rec_record r = {.kind = T2S_REC_STREAM_WRITE, .now = rec->now, .id = id, .rv = rv};
    t2s_rec_set_output_bytes(&r, data, len);
    append(rec, &r);
  }
  return rv;
}

static int up_stream_shutdown(void *self, uint64_t id) {
  t2s_rec *rec = self;
  int rv = rec->up.ops->stream_shutdown_write(rec->up.self, id);
  out1(rec, T2S_REC_STREAM_SHUTDOWN, id, rv);
  return rv;
}

static void up_stream_pause(void *self, uint64_t id, bool paused) {
  t2s_rec *rec = self;
  rec->up.ops->stream_pause_read(rec->up.self, id, paused);
  t2s_rec_record r = {.kind = T2S_REC_STREAM_PAUSE, .now = rec->now, .id = id, .flag = paused};
  append(rec, &r);
}

static void up_stream_close(void *self, uint64_t id, bool abort) {
  t2s_rec *rec = self;
  rec->up.ops->stream_close(rec->up.self, id, abort);
  t2s_rec_record r = {.kind = T2S_REC_STREAM_CLOSE, .now = rec->now, .id = id, .flag = abort};
  append(rec, &r);
}

static int up_dgram_open(void *self, uint64_t id, const t2s_addr *relay, const t2s_egress *eg) {
  t2s_rec *rec = self;
  int rv = rec->up.ops->dgram_open(rec->up.self, id, relay, eg);
  t2s_rec_record r = {.kind = T2S_REC_DGRAM_OPEN, .now = rec->now, .id = id, .rv = rv};
  r.addr = *relay;
  r.egress = *eg;
  append(rec, &r);
  return rv;
}

static int up_dgram_send(void *self, uint64_t id, const uint8_t *data, size_t len) {
  t2s_rec *rec = self;
  int rv = rec->up.ops->dgram_send(rec->up.self, id, data, len);
  if (!rec->st.stopped) {
    t2s_rec_record r = {.kind = T2S_REC_DGRAM_SEND, .now = rec->now, .id = id, .rv = rv};
    t2s_rec_set_output_bytes(&r, data, len);
    append(rec, &r);
  }
  return rv;
}

static void up_dgram_close(void *self, uint64_t id) {
  t2s_rec *rec = self;
  rec->up.ops->dgram_close(rec->up.self, id);
  out1(rec, T2S_REC_DGRAM_CLOSE, id, 0);
}

static const t2s_upstream_ops rec_up_ops = {
    up_stream_open,  up_stream_write, up_stream_shutdown, up_stream_pause,
    up_stream_close, up_dgram_open,   up_dgram_send,      up_dgram_close,
};

void t2s_rec_wrap_upstream(t2s_rec *rec, const t2s_upstream *inner, t2s_upstream *out) {
  rec->up = *inner;
  out->ops = &rec_up_ops;
  out->self = rec;
}

static int mon_start(void *self, t2s_net_event_cb cb, void *arg) {
  t2s_rec *rec = self;
  return rec->mon.ops->start(rec->mon.self, cb, arg);
}

static void mon_stop(void *self) {
  t2s_rec *rec = self;
  rec->mon.ops->stop(rec->mon.self);
}

static int mon_route_get(void *self, const t2s_addr *dst, uint32_t mark, t2s_route *out) {
  t2s_rec *rec = self;
  memset(out, 0, sizeof(*out));
  int rv = rec->mon.ops->route_get(rec->mon.self, dst, mark, out);
  t2s_rec_record r = {.kind = T2S_REC_ROUTE_GET, .now = rec->now, .rv = rv, .u32a = mark};
  r.addr = *dst;
  r.route = *out;
  append(rec, &r);
  return rv;
}

static const t2s_monitor_ops rec_mon_ops = {mon_start, mon_stop, mon_route_get};

void t2s_rec_wrap_monitor(t2s_rec *rec, const t2s_monitor *inner, t2s_monitor *out) {
  rec->mon = *inner;
  out->ops = &rec_mon_ops;
  out->self = rec;
}

static t2s_tstamp clk_now(void *self) {
  t2s_rec *rec = self;
  t2s_tstamp t = rec->clk.ops->now(rec->clk.self);
  if (rec->opts.clock_reads) {
    t2s_rec_record r = {.kind = T2S_REC_CLOCK_NOW, .now = t, .t1 = t};
    append(rec, &r);
  }
  return t;
}

static t2s_tstamp clk_boottime(void *self) {
  t2s_rec *rec = self;
  t2s_tstamp t = rec->clk.ops->boottime(rec->clk.self);
  if (rec->opts.clock_reads) {
    t2s_rec_record r = {.kind = T2S_REC_CLOCK_BOOT, .now = rec->now, .t1 = t};
    append(rec, &r);
  }
  return t;
}

static void clk_arm(void *self, t2s_tstamp deadline) {
  t2s_rec *rec = self;
  rec->clk.ops->timer_arm(rec->clk.self, deadline);
  if (rec->opts.clock_reads) {
    t2s_rec_record r = {.kind = T2S_REC_TIMER_ARM, .now = rec->now, .t1 = deadline};
    append(rec, &r);
  }
}

static const t2s_clock_ops rec_clk_ops = {clk_now, clk_boottime, clk_arm};

void t2s_rec_wrap_clock(t2s_rec *rec, const t2s_clock *inner, t2s_clock *out) {
  rec->clk = *inner;
  out->ops = &rec_clk_ops;
  out->self = rec;
}

static void on_event(void *arg, const t2s_engine_event *ev) {
  t2s_rec *rec = arg;
  t2s_rec_record r = {.kind = T2S_REC_EVENT, .now = ev->now, .eev = *ev};
  append(rec, &r);
  if (rec->hooks.on_event) {
    rec->hooks.on_event(rec->hooks.arg, ev);
  }
}

void t2s_rec_wrap_hooks(t2s_rec *rec, const t2s_engine_hooks *inner, t2s_engine_hooks *out) {
  if (inner) {
    rec->hooks = *inner;
  }
  out->on_event = on_event;
  out->arg = rec;
}

/* ---------------- the recorded entry points ---------------- */

static void in_begin(t2s_rec *rec, t2s_rec_record *r) {
  rec->now = r->now;
  append(rec, r);
}

/* After an input: its return value (when it has one) and the engine's expiry if it moved. */
static void in_end(t2s_rec *rec, t2s_engine *e, bool has_rv, int64_t rv) {
  if (has_rv) {
    t2s_rec_record r = {.kind = T2S_REC_RET, .now = rec->now, .rv = rv};
    append(rec, &r);
  }
  t2s_tstamp exp = t2s_engine_get_expiry(e);
  if (exp != rec->last_expiry) {
    rec->last_expiry = exp;
    t2s_rec_record r = {.kind = T2S_REC_TIMER, .now = rec->now, .t1 = exp};
    append(rec, &r);
  }
}

int t2s_rec_input_ex(t2s_rec *rec, t2s_engine *e, const uint8_t *pkt, size_t len, unsigned flags,
                     t2s_tstamp now) {
  if (rec == NULL) {
    return t2s_engine_input_ex(e, pkt, len, flags, now);
  }
  t2s_rec_record r = {.kind = T2S_REC_DEV_IN, .now = now, .u32a = flags, .data = pkt};
  r.datalen = len;
  in_begin(rec, &r);
  int rv = t2s_engine_input_ex(e, pkt, len, flags, now);
  in_end(rec, e, true, rv);
  return rv;
}

int t2s_rec_handle_expiry(t2s_rec *rec, t2s_engine *e, t2s_tstamp now) {
  if (rec == NULL) {
    return t2s_engine_handle_expiry(e, now);
  }
  t2s_rec_record r = {.kind = T2S_REC_EXPIRY, .now = now};
  in_begin(rec, &r);
  int rv = t2s_engine_handle_expiry(e, now);
  in_end(rec, e, true, rv);
  return rv;
}

/* An input with an id and an error code. */
static void in_id_err(t2s_rec *rec, uint8_t kind, uint64_t id, int err, t2s_tstamp now) {
  t2s_rec_record r = {.kind = kind, .now = now, .id = id, .rv = err};
  in_begin(rec, &r);
}

void t2s_rec_stream_opened(t2s_rec *rec, t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  if (rec) {
    in_id_err(rec, T2S_REC_STREAM_OPENED, id, err, now);
  }
  t2s_engine_stream_opened(e, id, err, now);
  if (rec) {
    in_end(rec, e, false, 0);
  }
}

size_t t2s_rec_stream_recv(t2s_rec *rec, t2s_engine *e, uint64_t id, const uint8_t *data,
                           size_t len, t2s_tstamp now) {
  if (rec == NULL) {
    return t2s_engine_stream_recv(e, id, data, len, now);
  }
  t2s_rec_record r = {.kind = T2S_REC_STREAM_RECV, .now = now, .id = id, .data = data};
  r.datalen = len;
  in_begin(rec, &r);
  size_t taken = t2s_engine_stream_recv(e, id, data, len, now);
  in_end(rec, e, true, (int64_t)taken);
  return taken;
}

void t2s_rec_stream_eof(t2s_rec *rec, t2s_engine *e, uint64_t id, t2s_tstamp now) {
  if (rec) {
    in_id_err(rec, T2S_REC_STREAM_EOF, id, 0, now);
  }
  t2s_engine_stream_eof(e, id, now);
  if (rec) {
    in_end(rec, e, false, 0);
  }
}

void t2s_rec_stream_writable(t2s_rec *rec, t2s_engine *e, uint64_t id, t2s_tstamp now) {
  if (rec) {
    in_id_err(rec, T2S_REC_STREAM_WRITABLE, id, 0, now);
  }
  t2s_engine_stream_writable(e, id, now);
  if (rec) {
    in_end(rec, e, false, 0);
  }
}

void t2s_rec_stream_error(t2s_rec *rec, t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  if (rec) {
    in_id_err(rec, T2S_REC_STREAM_ERROR, id, err, now);
  }
  t2s_engine_stream_error(e, id, err, now);
  if (rec) {
    in_end(rec, e, false, 0);
  }
}

void t2s_rec_dgram_recv(t2s_rec *rec, t2s_engine *e, uint64_t id, const uint8_t *data, size_t len,
                        t2s_tstamp now) {
  if (rec) {
    t2s_rec_record r = {.kind = T2S_REC_DGRAM_RECV, .now = now, .id = id, .data = data};
    r.datalen = len;
    in_begin(rec, &r);
  }
  t2s_engine_dgram_recv(e, id, data, len, now);
  if (rec) {
    in_end(rec, e, false, 0);
  }
}

void t2s_rec_dgram_error(t2s_rec *rec, t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  if (rec) {
    in_id_err(rec, T2S_REC_DGRAM_ERROR, id, err, now);
  }
  t2s_engine_dgram_error(e, id, err, now);
  if (rec) {
    in_end(rec, e, false, 0);
  }
}

void t2s_rec_network_event(t2s_rec *rec, t2s_engine *e, const t2s_net_event *ev, t2s_tstamp now) {
  if (rec) {
    t2s_rec_record r = {.kind = T2S_REC_NET_EVENT, .now = now, .nev = *ev};
    in_begin(rec, &r);
  }
  t2s_engine_network_event(e, ev, now);
  if (rec) {
    in_end(rec, e, false, 0);
  }
}

size_t t2s_rec_reset_all(t2s_rec *rec, t2s_engine *e, t2s_tstamp now) {
  if (rec == NULL) {
    return t2s_engine_reset_all(e, now);
  }
  t2s_rec_record r = {.kind = T2S_REC_RESET_ALL, .now = now};
  in_begin(rec, &r);
  size_t n = t2s_engine_reset_all(e, now);
  in_end(rec, e, true, (int64_t)n);
  return n;
}

void t2s_rec_engine_del(t2s_rec *rec, t2s_engine *e, t2s_tstamp now) {
  if (rec) {
    t2s_rec_record r = {.kind = T2S_REC_ENGINE_DEL, .now = now};
    in_begin(rec, &r);
  }
  t2s_engine_del(e);
}

/* A proxy list as a SET_PROXIES / REPLACE_PROXIES record (NULL when it cannot be encoded: the
 * engine refuses it too, and the RET record says so). */
static void in_proxies(t2s_rec *rec, uint8_t kind, const t2s_engine_proxy *list, size_t n,
                       const t2s_proxy_health_config *hcfg, t2s_tstamp now) {
  uint8_t body[T2S_REC_PROXIES_MAX];
  t2s_ssize len = t2s_rec_proxies_encode(list, n, hcfg, body);
  t2s_rec_record r = {.kind = kind, .now = now, .data = body};
  r.datalen = len > 0 ? (size_t)len : 0;
  if (len <= 0) {
    r.kind = T2S_REC_NOTE; /* not replayable: say so instead of writing a corrupt record */
    static const char why[] = "a proxy list the format cannot hold was given to the engine";
    r.data = (const uint8_t *)why;
    r.datalen = sizeof(why) - 1;
  }
  in_begin(rec, &r);
}

int t2s_rec_set_proxies(t2s_rec *rec, t2s_engine *e, const t2s_engine_proxy *list, size_t n,
                        const t2s_proxy_health_config *hcfg, t2s_tstamp now) {
  if (rec) {
    in_proxies(rec, T2S_REC_SET_PROXIES, list, n, hcfg, now);
  }
  int rv = t2s_engine_set_proxies(e, list, n, hcfg, now);
  if (rec) {
    in_end(rec, e, true, rv);
  }
  return rv;
}

t2s_ssize t2s_rec_replace_proxies(t2s_rec *rec, t2s_engine *e, const t2s_engine_proxy *list,
                                  size_t n, const t2s_proxy_health_config *hcfg, t2s_tstamp now) {
  if (rec) {
    in_proxies(rec, T2S_REC_REPLACE_PROXIES, list, n, hcfg, now);
  }
  t2s_ssize rv = t2s_engine_replace_proxies(e, list, n, hcfg, now);
  if (rec) {
    in_end(rec, e, true, rv);
  }
  return rv;
}

int t2s_rec_proxy_set_addr(t2s_rec *rec, t2s_engine *e, size_t i, const t2s_addr *addr,
                           t2s_tstamp now) {
  if (rec) {
    t2s_rec_record r = {.kind = T2S_REC_PROXY_SET_ADDR, .now = now, .u32a = (uint32_t)i};
    r.addr = *addr;
    in_begin(rec, &r);
  }
  int rv = t2s_engine_proxy_set_addr(e, i, addr, now);
  if (rec) {
    in_end(rec, e, true, rv);
  }
  return rv;
}

void t2s_rec_proxy_probe_result(t2s_rec *rec, t2s_engine *e, size_t i, int err, t2s_tstamp now) {
  if (rec) {
    t2s_rec_record r = {.kind = T2S_REC_PROXY_PROBE, .now = now, .u32a = (uint32_t)i, .rv = err};
    in_begin(rec, &r);
  }
  t2s_engine_proxy_probe_result(e, i, err, now);
  if (rec) {
    in_end(rec, e, false, 0);
  }
}

void t2s_rec_stream_multipath(t2s_rec *rec, t2s_engine *e, uint64_t id, t2s_stream_mp mp,
                              uint32_t subflows, t2s_tstamp now) {
  if (rec) {
    t2s_rec_record r = {.kind = T2S_REC_STREAM_MULTIPATH, .now = now, .id = id};
    r.u32a = (uint32_t)mp;
    r.u32b = subflows;
    in_begin(rec, &r);
  }
  t2s_engine_stream_multipath(e, id, mp, subflows, now);
  if (rec) {
    in_end(rec, e, false, 0);
  }
}

void t2s_rec_set_runtime(t2s_rec *rec, t2s_engine *e, const t2s_engine_config *cfg,
                         t2s_tstamp now) {
  if (rec) {
    uint8_t body[T2S_REC_RUNTIME_LEN];
    t2s_rec_runtime_encode(cfg, body);
    t2s_rec_record r = {.kind = T2S_REC_SET_RUNTIME, .now = now, .data = body};
    r.datalen = sizeof(body);
    in_begin(rec, &r);
  }
  t2s_engine_set_runtime(e, cfg);
  if (rec) {
    in_end(rec, e, false, 0);
  }
}
