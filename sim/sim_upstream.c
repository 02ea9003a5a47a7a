/* sim_upstream.c: the plain simulated upstream (streams and datagrams over the event queue). */
#include "sim_upstream.h"

#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "idmap.h"
#include "sim_net.h"
#include "sim_util.h"
#include "sim_world.h"

#include "sim_upstream_internal.h"

const char *sim_up_kind_name(sim_up_kind k) {
  static const char *const names[] = {"echo",   "sink",      "source",
                                      "refuse", "blackhole", "unreachable"};
  return (size_t)k < T2S_ARRAY_LEN(names) ? names[k] : "unknown";
}

/* ---------------- rules ---------------- */

sim_upstream *sim_upstream_new(sim_world *w) {
  sim_upstream *up = calloc(1, sizeof(*up));
  if (up == NULL) {
    return NULL;
  }
  up->w = w;
  t2s_idmap_init(&up->smap); /* not counted: the engine's budget is the engine's */
  t2s_idmap_init(&up->dmap);
  up->def.kind = SIM_UP_ECHO;
  up->def.reset_after = UINT64_MAX;
  up->def.latency = 1 * T2S_MILLISECONDS;
  /* Drawn after the engine's, the device's and the client hosts' seeds (sim_world_init). */
  t2s_rand_init(&up->rand, t2s_rand_u64(&w->rand));
  return up;
}

static void stream_release(sim_up_stream *s) {
  sim_bytes_free(&s->out);
  if (s->front_ops && s->front_ops->del) {
    s->front_ops->del(s->front);
  }
  s->front_ops = NULL;
  s->front = NULL;
}

void sim_upstream_del(sim_upstream *up) {
  if (up == NULL) {
    return;
  }
  for (size_t i = 0; i < up->nstreams; i++) {
    stream_release(up->streams[i]);
    free(up->streams[i]);
  }
  free(up->streams);
  free(up->dgrams);
  free(up->rules);
  t2s_idmap_free(&up->smap);
  t2s_idmap_free(&up->dmap);
  free(up);
}

void sim_upstream_set_default(sim_upstream *up, const sim_up_behaviour *b) {
  up->def = *b;
}

int sim_upstream_add_rule(sim_upstream *up, const t2s_addr *dst, const sim_up_behaviour *b) {
  up_rule *r = realloc(up->rules, (up->nrules + 1) * sizeof(*r));
  if (r == NULL) {
    return T2S_ERR_NOMEM;
  }
  up->rules = r;
  up->rules[up->nrules].dst = *dst;
  up->rules[up->nrules].beh = *b;
  up->nrules++;
  return 0;
}

/* The rule for dst, or NULL when none matches. */
static const sim_up_behaviour *lookup_rule(const sim_upstream *up, const t2s_addr *dst) {
  for (size_t i = 0; i < up->nrules; i++) {
    if (up->rules[i].dst.port != 0 && t2s_addr_eq(&up->rules[i].dst, dst)) {
      return &up->rules[i].beh;
    }
  }
  for (size_t i = 0; i < up->nrules; i++) {
    if (up->rules[i].dst.port == 0 && t2s_addr_ip_eq(&up->rules[i].dst, dst)) {
      return &up->rules[i].beh;
    }
  }
  return NULL;
}

const sim_up_behaviour *sim_upstream_lookup(const sim_upstream *up, const t2s_addr *dst) {
  const sim_up_behaviour *b = lookup_rule(up, dst);
  return b ? b : &up->def;
}

bool sup_dst_match(const t2s_addr *pattern, const t2s_addr *a) {
  return pattern->port == 0 ? t2s_addr_ip_eq(pattern, a) : t2s_addr_eq(pattern, a);
}

void sim_upstream_dst_stats(const sim_upstream *up, const t2s_addr *dst, sim_up_dst_stats *out) {
  memset(out, 0, sizeof(*out));
  for (size_t i = 0; i < up->nstreams; i++) {
    const sim_up_stream *s = up->streams[i];
    if (!sup_dst_match(dst, &s->target)) {
      continue;
    }
    out->streams++;
    out->rx_bytes += s->rx;
    out->tx_bytes += s->tx;
    out->rx_bad_pattern += s->rx_bad;
  }
  for (size_t i = 0; i < up->ndgrams; i++) {
    if (sup_dst_match(dst, &up->dgrams[i].relay)) {
      out->datagrams += up->dgrams[i].rx;
    }
  }
}

size_t sim_upstream_nstreams(const sim_upstream *up) {
  return up->nstreams;
}

void sim_upstream_stream_info(const sim_upstream *up, size_t i, sim_up_stream_info *out) {
  const sim_up_stream *s = up->streams[i];
  memset(out, 0, sizeof(*out));
  out->id = s->id;
  out->dst = s->dst;
  out->target = s->target;
  out->kind = s->beh.kind;
  out->open = s->state != ST_CLOSED;
  out->reset = s->reset_pending;
  out->rx = s->rx;
  out->tx = s->tx - s->tx_base;
  out->rx_bad = s->rx_bad;
}

void sim_upstream_fault_counts(const sim_upstream *up, uint64_t *refused, uint64_t *reset,
                               uint64_t *stalled) {
  *refused = up->faults_refused;
  *reset = up->faults_reset;
  *stalled = up->faults_stalled;
}

uint64_t sim_upstream_open_streams(const sim_upstream *up) {
  return up->open_streams;
}

void sim_upstream_set_front_factory(sim_upstream *up, sim_up_front_factory f, void *arg) {
  up->front_factory = f;
  up->front_arg = arg;
}

/* ---------------- stream helpers ---------------- */

void sup_schedule(sim_up_stream *s, t2s_tstamp at, int what, const uint8_t *data, size_t len) {
  sim_loop_schedule(&s->up->w->loop, at, SIM_EV_UPSTREAM, sup_stream_event, s->up, s->idx,
                    (uint64_t)what, data, len);
}

void sup_schedule_deliver(sim_up_stream *s, t2s_tstamp at) {
  if (!s->deliver_pending) {
    s->deliver_pending = true;
    sup_schedule(s, at, SEV_DELIVER, NULL, 0);
  }
}

void sup_log_stream(sim_up_stream *s, t2s_tstamp now, const char *ev) {
  sim_log *log = &s->up->w->log;
  sim_log_begin(log, now, ev);
  sim_log_u64(log, "id", s->id);
  sim_log_addr(log, "dst", &s->dst);
}

static void log_path(sim_log *log, const sim_net_path *p) {
  sim_log_str(log, "dev", p->ifname);
  if (p->src.family) {
    sim_log_addr(log, "src", &p->src);
  }
}

/* Multipath: the path a new subflow toward the stream's destination would take now (the
 * route's), when it carries packets and differs from the stream's own. */
static bool mp_other_path(const sim_up_stream *s, sim_net_path *p) {
  const sim_net *n = s->up->w->net;
  return sim_net_path_open(n, &s->dst, NULL, p) == 0 && sim_net_path_alive(n, p) &&
         (p->ifindex != s->path.ifindex || !t2s_addr_ip_eq(&p->src, &s->path.src));
}

/* Multipath: its subflows now: its own path's when alive, and one on the route's path. */
static uint32_t mp_subflows(const sim_up_stream *s) {
  sim_net_path p;
  return (sim_net_path_alive(s->up->w->net, &s->path) ? 1u : 0u) + (mp_other_path(s, &p) ? 1u : 0u);
}

/* Tells the engine what the stream is (after the connect) or that its subflows changed, as a
 * real connector would (t2s_engine_stream_multipath); logged as up_mptcp. */
void sup_mp_report(sim_up_stream *s, t2s_tstamp now) {
  uint32_t n = s->mp == T2S_STREAM_MULTIPATH && s->has_path ? mp_subflows(s) : 0;
  if (s->mp == T2S_STREAM_MULTIPATH && n == 0) {
    n = 1;
  }
  if (s->mp_subflows == n && s->mp_subflows != 0) {
    return;
  }
  s->mp_subflows = n;
  sim_log *log = &s->up->w->log;
  sim_log_begin(log, now, "up_mptcp");
  sim_log_u64(log, "id", s->id);
  sim_log_str(log, "path", s->mp == T2S_STREAM_MULTIPATH ? "multipath" : "fallback");
  sim_log_u64(log, "subflows", n);
  sim_log_end(log);
  t2s_engine_stream_multipath(s->up->w->engine, s->id, (t2s_stream_mp)s->mp, n, now);
}

/* Multipath: the stream's path died; if another path reaches its destination, the stream
 * moves there after the switch's stall (SEV_MP_SWITCH). */
static void mp_begin_switch(sim_up_stream *s) {
  sim_net_path p;
  if (s->switching || !mp_other_path(s, &p)) {
    return; /* no path at all: it waits for sim_upstream_paths_changed */
  }
  s->switching = true;
  t2s_tstamp now = s->up->w->loop.now;
  sup_log_stream(s, now, "up_mptcp_stall");
  sim_log_str(&s->up->w->log, "dev", s->path.ifname);
  sim_log_end(&s->up->w->log);
  sup_schedule(s, now + SIM_MPTCP_SWITCH_NS, SEV_MP_SWITCH, NULL, 0);
}

/* True while the stream's path carries packets (always without a simulated network). A
 * multipath stream whose path died starts moving to another one. */
bool sup_path_ok(sim_up_stream *s) {
  if (!s->has_path || s->up->w->net == NULL || sim_net_path_alive(s->up->w->net, &s->path)) {
    return true;
  }
  if (s->mp == T2S_STREAM_MULTIPATH) {
    mp_begin_switch(s);
  }
  return false;
}

/* SEV_MP_SWITCH: the stream takes the route's path (its latency instead of the old one's) and
 * carries on: the connect, the bytes held and the writable that waited for a path. */
static void mp_switch(sim_up_stream *s, t2s_tstamp now) {
  s->switching = false;
  sim_net_path p;
  if (!sim_net_path_alive(s->up->w->net, &s->path)) {
    if (!mp_other_path(s, &p)) {
      return; /* that path went too: sim_upstream_paths_changed tries again */
    }
    s->beh.latency = s->beh.latency - s->path.latency + p.latency;
    s->path = p;
    sup_log_stream(s, now, "up_mptcp_switch");
    log_path(&s->up->w->log, &s->path);
    sim_log_end(&s->up->w->log);
  }
  if (s->open_stalled) {
    s->open_stalled = false;
    sup_schedule(s, now + s->beh.latency, SEV_OPEN, NULL, 0);
  }
  if (s->stalled || s->want_writable) {
    s->stalled = false;
    sup_schedule_deliver(s, now);
  }
  if (s->state == ST_OPEN) {
    sup_mp_report(s, now);
  }
}

/* Marks s closed and forgets its id (the struct stays until sim_upstream_del). */
static void stream_forget(sim_up_stream *s) {
  if (s->state == ST_CLOSED) {
    return;
  }
  s->state = ST_CLOSED;
  t2s_idmap_del(&s->up->smap, s->id);
  s->up->open_streams--;
  stream_release(s);
}

static void check_reset(sim_up_stream *s, t2s_tstamp now) {
  if (!s->reset_pending && s->beh.reset_after != UINT64_MAX &&
      s->rx + s->tx >= s->beh.reset_after) {
    s->reset_pending = true;
    sup_schedule(s, now + s->beh.latency, SEV_RESET, NULL, 0);
  }
}

/* The behaviour takes bytes from the engine. Returns how many it took. */
/* True while the seeded faults of the far end apply (before the liveness phase). */
static bool up_faults_on(const sim_upstream *up, t2s_tstamp now) {
  t2s_tstamp until = up->w->dev.faults.until;
  return until == 0 || now < until;
}

static void log_fault(sim_up_stream *s, t2s_tstamp now, const char *kind) {
  sim_log *log = &s->up->w->log;
  sim_log_begin(log, now, "up_fault");
  sim_log_u64(log, "id", s->id);
  sim_log_addr(log, "dst", &s->dst);
  sim_log_str(log, "kind", kind);
}

/* Draws the faults decided once per stream (refusal, reset point) when its behaviour is set. */
void sup_draw_stream_faults(sim_up_stream *s, bool may_refuse, t2s_tstamp now) {
  sim_upstream *up = s->up;
  if (!up_faults_on(up, now)) {
    return;
  }
  if (may_refuse && s->beh.kind != SIM_UP_BLACKHOLE &&
      t2s_rand_chance(&up->rand, s->beh.refuse_num, s->beh.refuse_den)) {
    s->beh.kind = SIM_UP_REFUSE;
    up->faults_refused++;
    log_fault(s, now, "refuse");
    sim_log_end(&up->w->log);
  }
  if (t2s_rand_chance(&up->rand, s->beh.reset_num, s->beh.reset_den)) {
    uint64_t within = s->beh.reset_within ? s->beh.reset_within : 1024 * 1024;
    uint64_t at = t2s_rand_below(&up->rand, within);
    if (at < s->beh.reset_after) {
      s->beh.reset_after = at;
    }
    up->faults_reset++;
    log_fault(s, now, "reset");
    sim_log_u64(&up->w->log, "after", at);
    sim_log_end(&up->w->log);
  }
  s->slow_at = now;
}

/* True (and *until set) while the far end stalls; may start a seeded stall now. */
static bool stalled(sim_up_stream *s, t2s_tstamp now) {
  sim_upstream *up = s->up;
  if (now < s->fault_stall_until) {
    return true;
  }
  if (s->beh.stall_num == 0 || !up_faults_on(up, now) ||
      !t2s_rand_chance(&up->rand, s->beh.stall_num, s->beh.stall_den)) {
    return false;
  }
  s->fault_stall_until = now + s->beh.stall_for;
  up->faults_stalled++;
  log_fault(s, now, "stall");
  sim_log_u64(&up->w->log, "for_ns", s->beh.stall_for);
  sim_log_end(&up->w->log);
  return s->beh.stall_for > 0;
}

/* slow-read: how many of len bytes the far end reads now (a token bucket of at most 100 ms
 * worth of bytes, at least 1500); *pwait is when the next 1500 bytes will be readable. */
static size_t slow_take(sim_up_stream *s, size_t len, t2s_tstamp now, t2s_tstamp *pwait) {
  uint64_t rate = s->beh.slow_read;
  if (rate == 0) {
    return len;
  }
  uint64_t cap = T2S_MAX(rate / 10, 1500);
  t2s_tstamp dt = now - s->slow_at;
  if (dt > T2S_SECONDS) {
    dt = T2S_SECONDS;
  }
  s->slow_tokens = T2S_MIN(cap, s->slow_tokens + dt * rate / T2S_SECONDS);
  s->slow_at = now;
  size_t n = (size_t)T2S_MIN((uint64_t)len, s->slow_tokens);
  s->slow_tokens -= n;
  uint64_t need = 1500 > s->slow_tokens ? 1500 - s->slow_tokens : 0;
  *pwait = now + (need * T2S_SECONDS + rate - 1) / rate;
  return n;
}

static size_t beh_input(sim_up_stream *s, const uint8_t *data, size_t len, t2s_tstamp now) {
  if (stalled(s, now)) {
    s->want_writable = true;
    s->write_blocked_until = s->fault_stall_until;
    sup_schedule_deliver(s, s->fault_stall_until);
    return 0;
  }
  t2s_tstamp wait = 0;
  size_t offered = len;
  len = slow_take(s, len, now, &wait);
  if (len < offered) {
    s->want_writable = true;
    s->write_blocked_until = wait;
    sup_schedule_deliver(s, wait);
    if (len == 0) {
      return 0;
    }
  }
  size_t n = len;
  if (s->beh.kind == SIM_UP_ECHO) {
    uint64_t held = s->inflight + sim_bytes_len(&s->out);
    size_t room = held >= SOCKBUF ? 0 : (size_t)(SOCKBUF - held);
    n = T2S_MIN(len, room);
    if (n > 0) {
      s->inflight += n;
      sup_schedule(s, now + s->beh.latency, SEV_ECHO, data, n);
    }
  }
  if (n < len) {
    s->want_writable = true;
  }
  s->rx_bad += sim_pattern_mismatches(data, s->rx, n);
  s->rx_hash = sim_fnv(s->rx_hash, data, n);
  s->rx += n;
  check_reset(s, now);
  return n;
}

/* The connect succeeded: start the behaviour's own sending. */
void sup_beh_start(sim_up_stream *s, t2s_tstamp now) {
  if (s->beh.kind == SIM_UP_SOURCE) {
    s->source_left = s->beh.source_len;
    s->eof_queued = true;
    sup_schedule_deliver(s, now);
  }
  check_reset(s, now);
}

static void deliver(sim_upstream *up, sim_up_stream *s, t2s_tstamp now) {
  t2s_engine *e = up->w->engine;
  s->deliver_pending = false;
  if (s->state != ST_OPEN || s->paused) {
    return;
  }
  if (stalled(s, now)) {
    sup_schedule_deliver(s, s->fault_stall_until);
    return;
  }
  if (!sup_path_ok(s)) {
    s->stalled = true; /* sim_upstream_paths_changed resumes it */
    return;
  }
  /* Each iteration hands over at least one byte or stops: bounded by the queued bytes. */
  for (;;) {
    if (sim_bytes_len(&s->out) == 0 && s->source_left > 0) {
      uint8_t chunk[4096];
      size_t n = (size_t)T2S_MIN((uint64_t)sizeof(chunk), s->source_left);
      sim_pattern_fill(chunk, s->source_off, n);
      if (sim_bytes_append(&s->out, chunk, n) != 0) {
        break;
      }
      s->source_off += n;
      s->source_left -= n;
    }
    size_t avail = sim_bytes_len(&s->out);
    if (avail == 0) {
      break;
    }
    size_t space = t2s_engine_stream_recv_space(e, s->id);
    if (space == 0) {
      if (!s->paused) {
        sup_schedule_deliver(s, now + POLL_NS);
      }
      return;
    }
    size_t n = T2S_MIN(T2S_MIN(avail, space), (size_t)CHUNK);
    size_t taken = t2s_engine_stream_recv(e, s->id, sim_bytes_data(&s->out), n, now);
    if (s->state != ST_OPEN) {
      return; /* the engine closed it meanwhile */
    }
    if (taken > n) {
      taken = n;
    }
    sim_bytes_consume(&s->out, taken);
    s->tx += taken;
    check_reset(s, now);
    if (taken < n) {
      if (!s->paused) {
        sup_schedule_deliver(s, now + POLL_NS);
      }
      return;
    }
    if (s->paused) {
      return;
    }
  }
  if (s->eof_queued && !s->eof_sent && sim_bytes_len(&s->out) == 0 && s->source_left == 0 &&
      s->inflight == 0) {
    s->eof_sent = true;
    sup_log_stream(s, now, "up_eof_out");
    sim_log_u64(&up->w->log, "tx", s->tx);
    sim_log_end(&up->w->log);
    t2s_engine_stream_eof(e, s->id, now);
    if (s->state != ST_OPEN) {
      return;
    }
  }
  if (s->want_writable && now < s->write_blocked_until) {
    sup_schedule_deliver(s, s->write_blocked_until);
  } else if (s->want_writable && s->inflight + sim_bytes_len(&s->out) < SOCKBUF / 2) {
    s->want_writable = false;
    t2s_engine_stream_writable(e, s->id, now);
  }
}

void sup_stream_event(void *arg, sim_event *ev, t2s_tstamp now) {
  sim_upstream *up = arg;
  int what = (int)ev->u64b;
  if (what == SEV_DGRAM || what == SEV_DGRAM_ERR) {
    up_dgram *d = &up->dgrams[ev->u64a];
    if (!d->open) {
      return;
    }
    if (what == SEV_DGRAM) {
      if (d->has_path && up->w->net && !sim_net_path_alive(up->w->net, &d->path)) {
        d->lost++;
        return;
      }
      d->tx++;
      t2s_engine_dgram_recv(up->w->engine, d->id, ev->data, ev->len, now);
    } else {
      d->open = false;
      t2s_idmap_del(&up->dmap, d->id);
      t2s_engine_dgram_error(up->w->engine, d->id, T2S_ERR_UNREACHABLE, now);
    }
    return;
  }
  sim_up_stream *s = up->streams[ev->u64a];
  if (s->state == ST_CLOSED) {
    return;
  }
  t2s_engine *e = up->w->engine;
  switch (what) {
  case SEV_OPEN:
    if (s->open_err != 0) {
      sup_log_stream(s, now, "up_unreachable");
      sim_log_end(&up->w->log);
      uint64_t id = s->id;
      int err = s->open_err;
      stream_forget(s);
      t2s_engine_stream_opened(e, id, err, now);
      return;
    }
    if (!sup_path_ok(s)) {
      s->open_stalled = true; /* the SYN goes nowhere until the path returns */
      return;
    }
    if (s->beh.kind == SIM_UP_REFUSE || s->beh.kind == SIM_UP_UNREACHABLE) {
      sup_log_stream(s, now, "up_refused");
      sim_log_end(&up->w->log);
      uint64_t id = s->id;
      int err = s->beh.kind == SIM_UP_REFUSE ? T2S_ERR_REFUSED : T2S_ERR_UNREACHABLE;
      stream_forget(s);
      t2s_engine_stream_opened(e, id, err, now);
      return;
    }
    s->state = ST_OPEN;
    sup_log_stream(s, now, "up_connected");
    sim_log_end(&up->w->log);
    t2s_engine_stream_opened(e, s->id, 0, now);
    if (s->state == ST_OPEN && s->mp != T2S_STREAM_TCP) {
      sup_mp_report(s, now);
    }
    if (s->state == ST_OPEN && s->front_ops == NULL) {
      sup_beh_start(s, now);
    }
    break;
  case SEV_ECHO:
    s->inflight -= ev->len;
    sim_bytes_append(&s->out, ev->data, ev->len);
    sup_schedule_deliver(s, now);
    break;
  case SEV_PEER_EOF:
    sup_log_stream(s, now, "up_eof_in");
    sim_log_u64(&up->w->log, "rx", s->rx);
    sim_log_end(&up->w->log);
    if (s->beh.kind != SIM_UP_SOURCE) {
      s->eof_queued = true;
    }
    sup_schedule_deliver(s, now);
    break;
  case SEV_DELIVER:
    deliver(up, s, now);
    break;
  case SEV_MP_SWITCH:
    mp_switch(s, now);
    break;
  case SEV_RESET: {
    sup_log_stream(s, now, "up_reset");
    sim_log_u64(&up->w->log, "rx", s->rx);
    sim_log_u64(&up->w->log, "tx", s->tx);
    sim_log_end(&up->w->log);
    uint64_t id = s->id;
    int err = s->front_err ? s->front_err : T2S_ERR_RESET;
    stream_forget(s);
    t2s_engine_stream_error(e, id, err, now);
    break;
  }
  default:
    break;
  }
}

/* ---------------- ops ---------------- */

static sim_up_stream *find_stream(sim_upstream *up, uint64_t id) {
  return t2s_idmap_get(&up->smap, id);
}

static int op_stream_open(void *self, uint64_t id, const t2s_addr *dst, const t2s_egress *egress) {
  sim_upstream *up = self;
  t2s_tstamp now = up->w->loop.now;
  if (id == 0 || find_stream(up, id) != NULL) {
    return T2S_ERR_EXISTS;
  }
  if (up->nstreams == up->capstreams) {
    size_t cap = up->capstreams ? up->capstreams * 2 : 64;
    sim_up_stream **v = realloc(up->streams, cap * sizeof(*v));
    if (v == NULL) {
      return T2S_ERR_NOMEM;
    }
    up->streams = v;
    up->capstreams = cap;
  }
  sim_up_stream *s = calloc(1, sizeof(*s));
  if (s == NULL) {
    return T2S_ERR_NOMEM;
  }
  s->up = up;
  s->id = id;
  s->idx = up->nstreams;
  s->dst = *dst;
  s->target = *dst;
  s->beh = *sim_upstream_lookup(up, dst);
  s->rx_hash = SIM_FNV_INIT;
  if (up->mptcp) {
    /* MPTCP end to end only with a far end that speaks it; otherwise the handshake falls back. */
    s->mp = up->has_mp_server && t2s_addr_eq(dst, &up->mp_server) ? T2S_STREAM_MULTIPATH
                                                                  : T2S_STREAM_FALLBACK;
  }
  if (t2s_idmap_put(&up->smap, id, s) != 0) {
    free(s);
    return T2S_ERR_NOMEM;
  }
  up->streams[up->nstreams++] = s;
  up->open_streams++;
  if (up->front_factory) {
    up->front_factory(up->front_arg, s);
  }
  if (s->front_ops != NULL) {
    /* The connect to the front (the proxy) follows only a rule written for its own address:
     * `upstream default ...` is about destinations. */
    const sim_up_behaviour *b = lookup_rule(up, dst);
    if (b != NULL) {
      s->beh = *b;
    } else {
      memset(&s->beh, 0, sizeof(s->beh));
      s->beh.kind = SIM_UP_ECHO;
      s->beh.reset_after = UINT64_MAX;
      s->beh.latency = 1 * T2S_MILLISECONDS;
    }
    if (s->connect_override) {
      s->beh.kind = s->connect_kind;
    }
  }
  if (up->w->net != NULL) {
    s->has_path = true;
    s->open_err = sim_net_path_open(up->w->net, dst, egress, &s->path);
    s->beh.latency += s->path.latency;
  }
  if (s->front_ops == NULL) {
    sup_draw_stream_faults(s, true, now);
  }
  sup_log_stream(s, now, "up_open");
  sim_log_str(&up->w->log, "behaviour", s->front_ops ? "front" : sim_up_kind_name(s->beh.kind));
  if (s->has_path && s->open_err == 0) {
    log_path(&up->w->log, &s->path);
  }
  sim_log_end(&up->w->log);
  if (s->open_err != 0) {
    sup_schedule(s, now, SEV_OPEN, NULL, 0); /* connect(): no route to host */
  } else if (s->beh.kind != SIM_UP_BLACKHOLE) {
    sup_schedule(s, now + s->beh.latency, SEV_OPEN, NULL, 0);
  }
  return 0;
}

static t2s_ssize op_stream_write(void *self, uint64_t id, const uint8_t *data, size_t len) {
  sim_upstream *up = self;
  t2s_tstamp now = up->w->loop.now;
  sim_up_stream *s = find_stream(up, id);
  if (s == NULL || s->state != ST_OPEN) {
    return T2S_ERR_CLOSED;
  }
  if (!sup_path_ok(s)) {
    s->want_writable = true; /* nothing leaves: the socket buffer stays full */
    s->stalled = true;
    return 0;
  }
  size_t done = 0;
  if (s->front_ops != NULL) {
    t2s_ssize n = s->front_ops->input(s->front, s, data, len, now);
    if (n < 0) {
      sim_up_stream_front_fail(s, (int)n, now);
      return (t2s_ssize)len;
    }
    done = (size_t)n;
    if (s->front_ops != NULL || done >= len) {
      return (t2s_ssize)done;
    }
  }
  return (t2s_ssize)(done + beh_input(s, data + done, len - done, now));
}

static int op_stream_shutdown_write(void *self, uint64_t id) {
  sim_upstream *up = self;
  sim_up_stream *s = find_stream(up, id);
  if (s == NULL) {
    return T2S_ERR_CLOSED;
  }
  sup_schedule(s, up->w->loop.now + s->beh.latency, SEV_PEER_EOF, NULL, 0);
  return 0;
}

static void op_stream_pause_read(void *self, uint64_t id, bool paused) {
  sim_upstream *up = self;
  sim_up_stream *s = find_stream(up, id);
  if (s == NULL) {
    return;
  }
  s->paused = paused;
  if (!paused) {
    sup_schedule_deliver(s, up->w->loop.now);
  }
}

static void op_stream_close(void *self, uint64_t id, bool abort) {
  sim_upstream *up = self;
  sim_up_stream *s = find_stream(up, id);
  if (s == NULL) {
    return;
  }
  sup_log_stream(s, up->w->loop.now, "up_close");
  if (!t2s_addr_eq(&s->target, &s->dst)) {
    sim_log_addr(&up->w->log, "target", &s->target);
  }
  sim_log_bool(&up->w->log, "abort", abort);
  sim_log_u64(&up->w->log, "rx", s->rx);
  sim_log_u64(&up->w->log, "tx", s->tx);
  sim_log_u64(&up->w->log, "rx_bad_pattern", s->rx_bad);
  sim_log_end(&up->w->log);
  stream_forget(s);
}

up_dgram *sup_find_dgram(sim_upstream *up, uint64_t id, size_t *pidx) {
  uintptr_t v = (uintptr_t)t2s_idmap_get(&up->dmap, id);
  if (v == 0) {
    return NULL;
  }
  *pidx = (size_t)(v - 1);
  return &up->dgrams[v - 1];
}

static int op_dgram_open(void *self, uint64_t id, const t2s_addr *relay, const t2s_egress *egress) {
  sim_upstream *up = self;
  size_t idx;
  if (id == 0 || sup_find_dgram(up, id, &idx) != NULL) {
    return T2S_ERR_EXISTS;
  }
  if (up->ndgrams == up->capdgrams) {
    size_t cap = up->capdgrams ? up->capdgrams * 2 : 64;
    up_dgram *v = realloc(up->dgrams, cap * sizeof(*v));
    if (v == NULL) {
      return T2S_ERR_NOMEM;
    }
    up->dgrams = v;
    up->capdgrams = cap;
  }
  up_dgram *d = &up->dgrams[up->ndgrams];
  memset(d, 0, sizeof(*d));
  d->id = id;
  d->relay = *relay;
  d->beh = *sim_upstream_lookup(up, relay);
  d->open = true;
  d->front = up->dfront_ops != NULL && up->dfront_ops->claims(up->dfront, relay);
  if (up->w->net != NULL) {
    if (sim_net_path_open(up->w->net, relay, egress, &d->path) != 0) {
      return T2S_ERR_UNREACHABLE; /* no route to the relay */
    }
    d->has_path = true;
    d->beh.latency += d->path.latency;
  }
  if (t2s_idmap_put(&up->dmap, id, (void *)(uintptr_t)(up->ndgrams + 1)) != 0) {
    return T2S_ERR_NOMEM;
  }
  up->ndgrams++;
  sim_log *log = &up->w->log;
  sim_log_begin(log, up->w->loop.now, "up_dgram_open");
  sim_log_u64(log, "id", id);
  sim_log_addr(log, "relay", relay);
  sim_log_str(log, "behaviour", sim_up_kind_name(d->beh.kind));
  if (d->has_path) {
    log_path(log, &d->path);
  }
  sim_log_end(log);
  return 0;
}

static int op_dgram_send(void *self, uint64_t id, const uint8_t *data, size_t len) {
  sim_upstream *up = self;
  size_t idx;
  up_dgram *d = sup_find_dgram(up, id, &idx);
  if (d == NULL) {
    return T2S_ERR_CLOSED;
  }
  if (d->has_path && up->w->net && !sim_net_path_alive(up->w->net, &d->path)) {
    d->lost++; /* sent into a dead interface: gone */
    return 0;
  }
  d->rx++;
  if (d->front) {
    up->dfront_ops->input(up->dfront, id, data, len, up->w->loop.now);
    return 0;
  }
  t2s_tstamp at = up->w->loop.now + d->beh.latency;
  switch (d->beh.kind) {
  case SIM_UP_ECHO:
  case SIM_UP_SOURCE:
    sim_loop_schedule(&up->w->loop, at, SIM_EV_UPSTREAM, sup_stream_event, up, idx, SEV_DGRAM, data,
                      len);
    break;
  case SIM_UP_REFUSE:
  case SIM_UP_UNREACHABLE:
    sim_loop_schedule(&up->w->loop, at, SIM_EV_UPSTREAM, sup_stream_event, up, idx, SEV_DGRAM_ERR,
                      NULL, 0);
    break;
  case SIM_UP_SINK:
  case SIM_UP_BLACKHOLE:
    break;
  }
  return 0;
}

static void op_dgram_close(void *self, uint64_t id) {
  sim_upstream *up = self;
  size_t idx;
  up_dgram *d = sup_find_dgram(up, id, &idx);
  if (d == NULL) {
    return;
  }
  d->open = false;
  t2s_idmap_del(&up->dmap, id);
  sim_log *log = &up->w->log;
  sim_log_begin(log, up->w->loop.now, "up_dgram_close");
  sim_log_u64(log, "id", id);
  sim_log_u64(log, "rx", d->rx);
  sim_log_u64(log, "tx", d->tx);
  sim_log_end(log);
}

static const t2s_upstream_ops sim_upstream_ops = {
    .stream_open = op_stream_open,
    .stream_write = op_stream_write,
    .stream_shutdown_write = op_stream_shutdown_write,
    .stream_pause_read = op_stream_pause_read,
    .stream_close = op_stream_close,
    .dgram_open = op_dgram_open,
    .dgram_send = op_dgram_send,
    .dgram_close = op_dgram_close,
};

t2s_upstream sim_upstream_iface(sim_upstream *up) {
  t2s_upstream u = {&sim_upstream_ops, up};
  return u;
}
