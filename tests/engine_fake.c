/* engine_fake.c: the recording device, upstream and monitor (see engine_fake.h). */
#include "engine_fake.h"

#include <string.h>

#include "packet.h"

/* ---- device ---- */

int engine_fake_send(void *self, const uint8_t *pkt, size_t len) {
  engine_fake *f = self;
  if (f->on_send != NULL) {
    f->on_send(f->on_send_arg, pkt, len);
  }
  if (f->record_pkts && f->npkts < ENGINE_FAKE_MAX_PKTS && len <= sizeof(f->pkts[0].data)) {
    memcpy(f->pkts[f->npkts].data, pkt, len);
    f->pkts[f->npkts].len = len;
    f->npkts++;
  }
  return 0;
}

static t2s_ssize dev_recv(void *self, uint8_t *buf, size_t buflen) {
  (void)self;
  (void)buf;
  (void)buflen;
  return T2S_ERR_WOULDBLOCK;
}

static void dev_caps(void *self, t2s_device_caps *caps) {
  engine_fake *f = self;
  caps->mtu = f->mtu;
  caps->offloads = 0;
}

static const t2s_device_ops dev_ops = {
    .recv = dev_recv, .send = engine_fake_send, .get_caps = dev_caps};

/* ---- upstream ---- */

static engine_fake_stream *find_stream(engine_fake *f, uint64_t id) {
  for (size_t i = 0; i < f->nstreams; i++) {
    if (f->streams[i].id == id) {
      return &f->streams[i];
    }
  }
  return NULL;
}

static engine_fake_dgram *find_dgram(engine_fake *f, uint64_t id) {
  for (size_t i = 0; i < f->ndgrams; i++) {
    if (f->dgrams[i].id == id) {
      return &f->dgrams[i];
    }
  }
  return NULL;
}

static int stream_open(void *self, uint64_t id, const t2s_addr *dst, const t2s_egress *eg) {
  engine_fake *f = self;
  if (f->nstreams >= ENGINE_FAKE_MAX_STREAMS) {
    return T2S_ERR_LIMIT;
  }
  engine_fake_stream *s = &f->streams[f->nstreams++];
  memset(s, 0, sizeof(*s));
  s->id = id;
  s->dst = *dst;
  s->egress = *eg;
  return 0;
}

static t2s_ssize stream_write(void *self, uint64_t id, const uint8_t *data, size_t len) {
  engine_fake_stream *s = find_stream(self, id);
  if (s == NULL) {
    return T2S_ERR_CLOSED;
  }
  if (s->wlen < sizeof(s->written)) { /* once full, only counted (the bench's sink) */
    size_t keep = T2S_MIN(sizeof(s->written) - s->wlen, len);
    memcpy(s->written + s->wlen, data, keep);
    s->wlen += keep;
  }
  s->wtotal += len;
  return (t2s_ssize)len;
}

static int stream_shutdown(void *self, uint64_t id) {
  (void)self;
  (void)id;
  return 0;
}

static void stream_pause(void *self, uint64_t id, bool paused) {
  engine_fake_stream *s = find_stream(self, id);
  if (s != NULL) {
    s->paused = paused;
  }
}

static void stream_close(void *self, uint64_t id, bool abort) {
  engine_fake_stream *s = find_stream(self, id);
  (void)abort;
  if (s != NULL) {
    s->closed = true;
  }
}

static int dgram_open(void *self, uint64_t id, const t2s_addr *relay, const t2s_egress *eg) {
  engine_fake *f = self;
  if (f->ndgrams >= ENGINE_FAKE_MAX_DGRAMS) {
    return T2S_ERR_LIMIT;
  }
  engine_fake_dgram *d = &f->dgrams[f->ndgrams++];
  memset(d, 0, sizeof(*d));
  d->id = id;
  d->relay = *relay;
  d->egress = *eg;
  return 0;
}

static int dgram_send(void *self, uint64_t id, const uint8_t *data, size_t len) {
  engine_fake_dgram *d = find_dgram(self, id);
  if (d == NULL) {
    return T2S_ERR_CLOSED;
  }
  d->lastlen = T2S_MIN(len, sizeof(d->last));
  memcpy(d->last, data, d->lastlen);
  d->sent++;
  return 0;
}

static void dgram_close(void *self, uint64_t id) {
  engine_fake_dgram *d = find_dgram(self, id);
  if (d != NULL) {
    d->closed = true;
  }
}

static const t2s_upstream_ops up_ops = {stream_open,  stream_write, stream_shutdown, stream_pause,
                                        stream_close, dgram_open,   dgram_send,      dgram_close};

/* ---- monitor ---- */

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
  engine_fake *f = self;
  (void)dst;
  (void)mark;
  f->route_queries++;
  if (f->route_rv != 0) {
    return f->route_rv;
  }
  *out = f->route;
  return 0;
}

static const t2s_monitor_ops mon_ops = {mon_start, mon_stop, mon_route_get};

void engine_fake_init(engine_fake *f) {
  memset(f, 0, sizeof(*f));
  f->record_pkts = true;
  f->mtu = 1500;
  f->dev.ops = &dev_ops;
  f->dev.self = f;
  f->up.ops = &up_ops;
  f->up.self = f;
  f->mon.ops = &mon_ops;
  f->mon.self = f;
}

void engine_fake_set_route(engine_fake *f, uint32_t ifindex, const char *ifname, const char *src,
                           bool local) {
  memset(&f->route, 0, sizeof(f->route));
  f->route_rv = 0;
  f->route.ifindex = ifindex;
  strncpy(f->route.ifname, ifname, sizeof(f->route.ifname) - 1);
  t2s_addr_parse(src, &f->route.src);
  f->route.local = local;
}

void engine_fake_run_to(t2s_engine *e, t2s_tstamp t) {
  for (int i = 0; i < 1000; i++) {
    t2s_tstamp x = t2s_engine_get_expiry(e);
    if (x > t) {
      break;
    }
    t2s_engine_handle_expiry(e, x);
  }
}

int engine_fake_syn(t2s_engine *e, uint16_t sport, t2s_tstamp now) {
  t2s_addr src, dst;
  t2s_addr_parse("198.18.0.2", &src);
  t2s_addr_parse("203.0.113.10:80", &dst);
  src.port = sport;
  uint8_t buf[128];
  t2s_ssize n = t2s_build_tcp(buf, sizeof(buf), &src, &dst, 1000u * sport, 0, T2S_TCP_SYN, 65535,
                              NULL, NULL, 0, NULL, 0);
  if (n <= 0) {
    return T2S_ERR_NOBUF; /* not built (never with this buffer) */
  }
  return t2s_engine_input(e, buf, (size_t)n, now);
}
