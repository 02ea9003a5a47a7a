/* sim_upstream_front.c: the simulated upstream's fronts (a proxy in front of a stream or of
 * the datagrams) and its paths (sim_net.h); the streams and datagrams are in sim_upstream.c. */
#include <stdio.h>
#include <string.h>

#include "engine.h"
#include "sim_upstream_internal.h"

/* ---------------- fronts ---------------- */

void sim_upstream_set_dgram_front(sim_upstream *up, const sim_up_dgram_front_ops *ops,
                                  void *front) {
  up->dfront_ops = ops;
  up->dfront = front;
}

void sim_upstream_dgram_emit(sim_upstream *up, uint64_t id, const uint8_t *data, size_t len,
                             t2s_tstamp at) {
  size_t idx;
  if (sup_find_dgram(up, id, &idx) == NULL) {
    return;
  }
  sim_loop_schedule(&up->w->loop, at, SIM_EV_UPSTREAM, sup_stream_event, up, idx, SEV_DGRAM, data,
                    len);
}

void sim_up_stream_set_front(sim_up_stream *s, const sim_up_front_ops *ops, void *front) {
  s->front_ops = ops;
  s->front = front;
}

void sim_up_stream_override_connect(sim_up_stream *s, sim_up_kind kind) {
  s->connect_override = true;
  s->connect_kind = kind;
}

size_t sim_upstream_reset_dst(sim_upstream *up, const t2s_addr *dst, t2s_tstamp now) {
  size_t n = 0;
  for (size_t i = 0; i < up->nstreams; i++) {
    sim_up_stream *s = up->streams[i];
    if (s->state == ST_CLOSED || s->reset_pending || !t2s_addr_eq(&s->dst, dst)) {
      continue;
    }
    s->reset_pending = true;
    s->front_err = T2S_ERR_RESET;
    sup_schedule(s, now + s->beh.latency, SEV_RESET, NULL, 0);
    n++;
  }
  return n;
}

const t2s_addr *sim_up_stream_dst(const sim_up_stream *s) {
  return &s->dst;
}

int sim_up_stream_emit(sim_up_stream *s, const uint8_t *data, size_t len, t2s_tstamp now) {
  if (s->state == ST_CLOSED) {
    return T2S_ERR_CLOSED;
  }
  int rv = sim_bytes_append(&s->out, data, len);
  if (rv == 0) {
    sup_schedule_deliver(s, now + s->beh.latency);
  }
  return rv;
}

void sim_up_stream_front_done(sim_up_stream *s, const t2s_addr *target, t2s_tstamp now) {
  if (s->front_ops && s->front_ops->del) {
    s->front_ops->del(s->front);
  }
  s->front_ops = NULL;
  s->front = NULL;
  s->beh = *sim_upstream_lookup(s->up, target);
  s->beh.latency += s->path.latency; /* 0 without a simulated network */
  s->target = *target;
  sup_draw_stream_faults(s, false, now);
  sup_log_stream(s, now, "up_front_done");
  sim_log_addr(&s->up->w->log, "target", target);
  sim_log_str(&s->up->w->log, "behaviour", sim_up_kind_name(s->beh.kind));
  sim_log_end(&s->up->w->log);
  /* Offsets of the pattern restart at the target's first byte. */
  s->tx_base = s->tx + sim_bytes_len(&s->out); /* the front's replies, delivered or queued */
  s->rx = 0;
  s->rx_bad = 0;
  s->rx_hash = SIM_FNV_INIT;
  sup_beh_start(s, now);
}

void sim_up_stream_set_target(sim_up_stream *s, const t2s_addr *target) {
  s->target = *target;
}

void sim_up_stream_front_fail(sim_up_stream *s, int err, t2s_tstamp now) {
  if (err == 0) {
    s->eof_queued = true;
    sup_schedule_deliver(s, now + s->beh.latency);
    return;
  }
  if (!s->reset_pending) {
    s->reset_pending = true;
    s->front_err = err;
    sup_schedule(s, now + s->beh.latency, SEV_RESET, NULL, 0);
  }
}

/* ---------------- paths (sim_net.h) ---------------- */

void sim_upstream_set_mptcp(sim_upstream *up, bool on, const t2s_addr *server) {
  up->mptcp = on;
  up->has_mp_server = server != NULL;
  if (server != NULL) {
    up->mp_server = *server;
  }
}

void sim_upstream_paths_changed(sim_upstream *up, t2s_tstamp now) {
  for (size_t i = 0; i < up->nstreams; i++) {
    sim_up_stream *s = up->streams[i];
    if (s->state == ST_OPEN && s->mp == T2S_STREAM_MULTIPATH && s->has_path) {
      sup_mp_report(s, now); /* a subflow on a path that appeared, or gone with one that died */
    }
    if (s->state == ST_CLOSED || !s->has_path || !sup_path_ok(s)) {
      continue;
    }
    if (s->open_stalled) {
      s->open_stalled = false;
      sup_schedule(s, now + s->beh.latency, SEV_OPEN, NULL, 0);
    }
    if (s->stalled) {
      s->stalled = false;
      sup_schedule_deliver(s, now + s->path.latency);
    }
  }
}

size_t sim_upstream_dst_ifaces(const sim_upstream *up, const t2s_addr *dst, char *buf,
                               size_t buflen) {
  size_t n = 0, used = 0;
  buf[0] = 0;
  for (size_t i = 0; i < up->nstreams + up->ndgrams; i++) {
    const sim_net_path *p;
    if (i < up->nstreams) {
      const sim_up_stream *s = up->streams[i];
      if (!s->has_path || s->open_err != 0 || !sup_dst_match(dst, &s->target)) {
        continue;
      }
      p = &s->path;
    } else {
      const up_dgram *d = &up->dgrams[i - up->nstreams];
      if (!d->has_path || !sup_dst_match(dst, &d->relay)) {
        continue;
      }
      p = &d->path;
    }
    n++;
    /* Distinct names, in the order first used. */
    char key[T2S_IFNAMSIZ + 2];
    snprintf(key, sizeof(key), ",%s,", p->ifname);
    char padded[512];
    snprintf(padded, sizeof(padded), ",%s,", buf);
    if (strstr(padded, key) == NULL && used + strlen(p->ifname) + 2 < buflen) {
      used += (size_t)snprintf(buf + used, buflen - used, "%s%s", used ? "," : "", p->ifname);
    }
  }
  return n;
}
