/*
 * sim_device.c: the simulated device. The engine's t2s_device (every packet it sends toward
 * the TUN is written to the output capture, logged, and carried to a client host when one
 * owns the destination), and the link between the device and the rest of the world with
 * seeded faults: loss, reordering (a packet is held back until the next one in the same
 * direction has passed, or the reorder window ends) and duplication.
 */
#include <stdlib.h>
#include <string.h>

#include "packet.h"
#include "sim_world.h"

static const char *const dir_names[] = {"to_engine", "to_client"};

static bool is_echo_reply(const uint8_t *pkt, size_t len) {
  if (len >= 20 && (pkt[0] >> 4) == 4) {
    size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;
    return pkt[9] == T2S_IPPROTO_ICMP && (t2s_get16(pkt + 6) & 0x3fff) == 0 && len > ihl &&
           pkt[ihl] == 0;
  }
  if (len >= 41 && (pkt[0] >> 4) == 6) {
    return pkt[6] == T2S_IPPROTO_ICMPV6 && pkt[40] == 129;
  }
  return false;
}

static int dev_send(void *self, const uint8_t *pkt, size_t len) {
  sim_device *d = self;
  sim_world *w = d->w;
  t2s_tstamp now = w->loop.now;
  w->counts.out++;
  if (is_echo_reply(pkt, len)) {
    w->counts.echo_replies_seen++;
  }
  if (w->pcap_out) {
    sim_pcap_writer_write(w->pcap_out, now, pkt, len);
  }
  if (w->log.f) {
    char sum[256];
    sim_log_begin(&w->log, now, "pkt_out");
    sim_log_u64(&w->log, "len", len);
    sim_log_str(&w->log, "sum", sim_pkt_summary(pkt, len, sum, sizeof(sum)));
    sim_log_end(&w->log);
  }
  if (w->clients && sim_clients_owns(w->clients, pkt, len)) {
    w->counts.out_to_clients++;
    sim_device_link(d, SIM_DIR_TO_CLIENT, pkt, len, SIM_ORIGIN_CLIENT, now);
  }
  return 0;
}

static t2s_ssize dev_recv(void *self, uint8_t *buf, size_t buflen) {
  /* The simulator pushes packets into the engine itself (sim_world_to_engine). */
  (void)self;
  (void)buf;
  (void)buflen;
  return T2S_ERR_WOULDBLOCK;
}

static void dev_get_caps(void *self, t2s_device_caps *caps) {
  sim_device *d = self;
  caps->mtu = d->mtu;
  caps->offloads = 0;
}

static const t2s_device_ops sim_device_ops = {
    .recv = dev_recv,
    .send = dev_send,
    .get_caps = dev_get_caps,
};

void sim_device_init(sim_device *d, sim_world *w, uint64_t seed) {
  memset(d, 0, sizeof(*d));
  d->w = w;
  d->mtu = 1500;
  d->faults.reorder_window = 10 * T2S_MILLISECONDS;
  t2s_rand_init(&d->rand, seed);
}

void sim_device_free(sim_device *d) {
  for (int i = 0; i < 2; i++) {
    free(d->held[i].data);
    d->held[i].data = NULL;
  }
}

t2s_device sim_device_iface(sim_device *d) {
  t2s_device dev = {&sim_device_ops, d};
  return dev;
}

/* A packet arrives at the end of the link. */
static void arrive(void *arg, sim_event *ev, t2s_tstamp now) {
  sim_device *d = arg;
  sim_world *w = d->w;
  if (ev->u64a == SIM_DIR_TO_ENGINE) {
    sim_origin origin = (sim_origin)ev->u64b;
    if (w->engine == NULL || w->fatal) {
      return;
    }
    w->counts.in_by_origin[origin]++;
    if (w->log.f) {
      char sum[256];
      sim_log_begin(&w->log, now, "pkt_in");
      sim_log_str(&w->log, "from", sim_origin_name(origin));
      sim_log_u64(&w->log, "len", ev->len);
      sim_log_str(&w->log, "sum", sim_pkt_summary(ev->data, ev->len, sum, sizeof(sum)));
      sim_log_end(&w->log);
    }
    int rv = t2s_engine_input(w->engine, ev->data, ev->len, now);
    if (rv != 0 && t2s_err_is_fatal(rv)) {
      w->fatal = rv;
      sim_loop_stop(&w->loop);
    }
  } else if (w->clients) {
    sim_clients_input(w->clients, ev->data, ev->len, now);
  }
}

/* Held packet of direction dir flushed at the end of its reorder window. */
static void flush_held(void *arg, sim_event *ev, t2s_tstamp now) {
  sim_device *d = arg;
  int dir = (int)ev->u64a;
  if (d->held[dir].data == NULL || d->held[dir].gen != ev->u64b) {
    return;
  }
  uint8_t *data = d->held[dir].data;
  d->held[dir].data = NULL;
  sim_loop_schedule(&d->w->loop, now + d->faults.latency, SIM_EV_DEVICE, arrive, d, (uint64_t)dir,
                    d->held[dir].origin, data, d->held[dir].len);
  free(data);
}

static void log_fault(sim_device *d, t2s_tstamp now, const char *kind, sim_dir dir,
                      const uint8_t *pkt, size_t len) {
  sim_log *log = &d->w->log;
  if (log->f == NULL) {
    return;
  }
  char sum[256];
  sim_log_begin(log, now, "fault");
  sim_log_str(log, "kind", kind);
  sim_log_str(log, "dir", dir_names[dir]);
  sim_log_u64(log, "len", len);
  sim_log_str(log, "sum", sim_pkt_summary(pkt, len, sum, sizeof(sum)));
  sim_log_end(log);
}

void sim_device_link(sim_device *d, sim_dir dir, const uint8_t *pkt, size_t len, uint64_t origin,
                     t2s_tstamp now) {
  sim_faults *f = &d->faults;
  t2s_tstamp at = now + f->latency;
  if (t2s_rand_chance(&d->rand, f->loss_num, f->loss_den)) {
    d->lost++;
    log_fault(d, now, "loss", dir, pkt, len);
    return;
  }
  bool dup = t2s_rand_chance(&d->rand, f->dup_num, f->dup_den);
  if (d->held[dir].data == NULL && t2s_rand_chance(&d->rand, f->reorder_num, f->reorder_den)) {
    uint8_t *copy = malloc(len ? len : 1);
    if (copy != NULL) {
      memcpy(copy, pkt, len);
      d->reordered++;
      log_fault(d, now, "reorder", dir, pkt, len);
      d->held[dir].data = copy;
      d->held[dir].len = len;
      d->held[dir].origin = origin;
      d->held[dir].gen++;
      sim_loop_schedule(&d->w->loop, now + f->reorder_window, SIM_EV_DEVICE, flush_held, d,
                        (uint64_t)dir, d->held[dir].gen, NULL, 0);
      pkt = NULL; /* sent later, unless duplicated now */
    }
  }
  if (pkt != NULL) {
    sim_loop_schedule(&d->w->loop, at, SIM_EV_DEVICE, arrive, d, (uint64_t)dir, origin, pkt, len);
  }
  if (dup) {
    d->duplicated++;
    log_fault(d, now, "duplicate", dir, pkt ? pkt : d->held[dir].data, len);
    sim_loop_schedule(&d->w->loop, at, SIM_EV_DEVICE, arrive, d, (uint64_t)dir, origin,
                      pkt ? pkt : d->held[dir].data, len);
  }
  /* A packet held back earlier is overtaken by this one: it follows right behind. */
  if (pkt != NULL && d->held[dir].data != NULL) {
    uint8_t *held = d->held[dir].data;
    d->held[dir].data = NULL;
    sim_loop_schedule(&d->w->loop, at, SIM_EV_DEVICE, arrive, d, (uint64_t)dir, d->held[dir].origin,
                      held, d->held[dir].len);
    free(held);
  }
}
