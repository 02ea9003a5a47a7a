/*
 * sim_device.c: the simulated device. The engine's t2s_device (every packet it sends toward
 * the TUN is written to the output capture, logged, and carried to a client host when one
 * owns the destination), and the link between the device and the rest of the world with
 * seeded faults: loss, reordering (a packet is held back until the next one in the same
 * direction has passed, or the reorder window ends), duplication, delay jitter, and
 * corruption that the Internet checksum always catches (a burst of 1 to 15 bits inside the
 * bytes the TCP/ICMP checksum covers). A corrupted packet must be dropped by its receiver:
 * one that is accepted is an invariant failure. No fault after faults.until (liveness).
 */
#include <stdlib.h>
#include <string.h>

#include "packet.h"
#include "sim_world.h"

static const char *const dir_names[] = {"to_engine", "to_client"};

/* Marks a corrupted packet in the origin word that travels with it. */
#define CORRUPT_FLAG (1ULL << 32)
#define ORIGIN_MASK 0xffffffffULL
/* Longest burst of flipped bits: the ones' complement sum catches every burst shorter than 16. */
#define MAX_BURST_BITS 15

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

/* Every drop the engine has counted. */
static uint64_t drops_total(t2s_engine *e) {
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  uint64_t n = 0;
  for (int r = 0; r < T2S_DROP_MAX; r++) {
    n += st.drops[r];
  }
  return n;
}

/* A packet arrives at the end of the link. */
static void arrive(void *arg, sim_event *ev, t2s_tstamp now) {
  sim_device *d = arg;
  sim_world *w = d->w;
  bool corrupt = (ev->u64b & CORRUPT_FLAG) != 0;
  if (ev->u64a == SIM_DIR_TO_ENGINE) {
    sim_origin origin = (sim_origin)(ev->u64b & ORIGIN_MASK);
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
    uint64_t drops_before = corrupt ? drops_total(w->engine) : 0;
    /* A burst is every packet that reaches the engine at the same virtual time: the next
     * queued event (the loop popped this one) tells whether another follows, as a device
     * read loop knows it from its next read. */
    const sim_event *next = w->loop.nheap > 0 ? &w->loop.heap[0] : NULL;
    bool more = next != NULL && next->at == now && next->fn == arrive && next->arg == arg &&
                next->u64a == SIM_DIR_TO_ENGINE;
    int rv = t2s_engine_input_ex(w->engine, ev->data, ev->len, more ? T2S_INPUT_MORE : 0, now);
    if (rv != 0 && t2s_err_is_fatal(rv)) {
      w->fatal = rv;
      sim_loop_stop(&w->loop);
    }
    if (corrupt) {
      d->corrupt_arrived++;
      if (w->engine != NULL && drops_total(w->engine) == drops_before) {
        d->corrupt_accepted++;
        sim_world_invariant(w, now, "the engine accepted a corrupted packet (no drop counted)");
      }
    }
  } else if (w->clients) {
    if (corrupt) {
      t2s_pkt p;
      if (t2s_pkt_parse(ev->data, ev->len, &p) == T2S_DROP_NONE) {
        d->corrupt_accepted++;
        sim_world_invariant(w, now, "a corrupted packet toward a client parses as valid");
      }
    }
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

static void log_fault_open(sim_device *d, t2s_tstamp now, const char *kind, sim_dir dir,
                           const uint8_t *pkt, size_t len) {
  sim_log *log = &d->w->log;
  char sum[256];
  sim_log_begin(log, now, "fault");
  sim_log_str(log, "kind", kind);
  sim_log_str(log, "dir", dir_names[dir]);
  sim_log_u64(log, "len", len);
  sim_log_str(log, "sum", sim_pkt_summary(pkt, len, sum, sizeof(sum)));
}

static void log_fault(sim_device *d, t2s_tstamp now, const char *kind, sim_dir dir,
                      const uint8_t *pkt, size_t len) {
  if (d->w->log.f == NULL) {
    return;
  }
  log_fault_open(d, now, kind, dir, pkt, len);
  sim_log_end(&d->w->log);
}

/* True while faults are injected (before faults.until; 0 = always). */
static bool faults_on(const sim_device *d, t2s_tstamp now) {
  return d->faults.until == 0 || now < d->faults.until;
}

/*
 * Returns a copy of pkt with a burst of 1..15 flipped bits (the first and last bit of the
 * burst flipped, those between at random; half of the bursts are single bits) inside the
 * bytes its TCP or ICMP checksum covers, or NULL when the packet is not eligible (it does not
 * parse, or its protocol has no checksum that is always verified: UDP over IPv4 may carry
 * none). The ones' complement sum detects every such burst, so the receiver must drop it.
 */
static uint8_t *corrupt_copy(sim_device *d, const uint8_t *pkt, size_t len, uint64_t *pbits,
                             uint64_t *pat) {
  t2s_pkt p;
  if (t2s_pkt_parse(pkt, len, &p) != T2S_DROP_NONE) {
    return NULL;
  }
  bool covered = p.proto == T2S_IPPROTO_TCP || p.proto == T2S_IPPROTO_ICMP ||
                 p.proto == T2S_IPPROTO_ICMPV6 || (p.proto == T2S_IPPROTO_UDP && p.ipver == 6);
  if (!covered || p.len <= p.l4off) {
    return NULL;
  }
  uint64_t region_bits = (uint64_t)(p.len - p.l4off) * 8;
  uint64_t burst = t2s_rand_chance(&d->rand, 1, 2) ? 1 : 2 + t2s_rand_below(&d->rand, 14);
  if (burst > region_bits) {
    burst = region_bits;
  }
  uint64_t start = t2s_rand_below(&d->rand, region_bits - burst + 1);
  uint8_t *copy = malloc(len);
  if (copy == NULL) {
    return NULL;
  }
  memcpy(copy, pkt, len);
  for (uint64_t i = 0; i < burst; i++) {
    bool flip = i == 0 || i == burst - 1 || t2s_rand_chance(&d->rand, 1, 2);
    if (flip) {
      uint64_t bit = (uint64_t)p.l4off * 8 + start + i;
      copy[bit / 8] ^= (uint8_t)(0x80u >> (bit % 8));
    }
  }
  *pbits = burst;
  *pat = p.l4off + start / 8;
  return copy;
}

/* Arrival time of a packet sent now: the latency plus the jitter drawn for it. */
static t2s_tstamp arrival(sim_device *d, t2s_tstamp now, bool faults) {
  t2s_tstamp at = now + d->faults.latency;
  if (faults && d->faults.jitter > 0) {
    at += t2s_rand_below(&d->rand, d->faults.jitter + 1);
  }
  return at;
}

void sim_device_link(sim_device *d, sim_dir dir, const uint8_t *pkt, size_t len, uint64_t origin,
                     t2s_tstamp now) {
  sim_faults *f = &d->faults;
  bool faults = faults_on(d, now);
  t2s_tstamp at = arrival(d, now, faults);
  if (faults && t2s_rand_chance(&d->rand, f->loss_num, f->loss_den)) {
    d->lost++;
    log_fault(d, now, "loss", dir, pkt, len);
    return;
  }
  uint8_t *corrupted = NULL;
  if (faults && t2s_rand_chance(&d->rand, f->corrupt_num, f->corrupt_den)) {
    uint64_t bits = 0, byte_at = 0;
    corrupted = corrupt_copy(d, pkt, len, &bits, &byte_at);
    if (corrupted != NULL) {
      d->corrupted[dir]++;
      if (d->w->log.f) {
        log_fault_open(d, now, "corrupt", dir, pkt, len);
        sim_log_u64(&d->w->log, "bits", bits);
        sim_log_u64(&d->w->log, "at", byte_at);
        sim_log_end(&d->w->log);
      }
      pkt = corrupted;
      origin |= CORRUPT_FLAG;
    }
  }
  bool dup = faults && t2s_rand_chance(&d->rand, f->dup_num, f->dup_den);
  if (d->held[dir].data == NULL && faults &&
      t2s_rand_chance(&d->rand, f->reorder_num, f->reorder_den)) {
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
    sim_loop_schedule(&d->w->loop, arrival(d, now, faults), SIM_EV_DEVICE, arrive, d, (uint64_t)dir,
                      origin, pkt ? pkt : d->held[dir].data, len);
  }
  /* A packet held back earlier is overtaken by this one: it follows right behind. */
  if (pkt != NULL && d->held[dir].data != NULL) {
    uint8_t *held = d->held[dir].data;
    d->held[dir].data = NULL;
    sim_loop_schedule(&d->w->loop, at, SIM_EV_DEVICE, arrive, d, (uint64_t)dir, d->held[dir].origin,
                      held, d->held[dir].len);
    free(held);
  }
  free(corrupted);
}
