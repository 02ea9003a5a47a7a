/* sim_world.c: the simulated world: engine setup, timers, replays, the end-of-run record. */
#include "sim_world.h"

#include "packet.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "drop.h"
#include "sim_check.h"
#include "sim_client.h"
#include "sim_fakedns.h"
#include "sim_net.h"
#include "sim_proxy.h"
#include "sim_util.h"

static void replay_free(struct sim_replay *rp);

const char *sim_origin_name(sim_origin o) {
  switch (o) {
  case SIM_ORIGIN_PCAP:
    return "pcap";
  case SIM_ORIGIN_INJECT:
    return "inject";
  case SIM_ORIGIN_CLIENT:
    return "client";
  default:
    return "unknown";
  }
}

static void on_engine_event(void *arg, const t2s_engine_event *ev) {
  sim_world *w = arg;
  sim_log *log = &w->log;
  sim_check_on_event(w, ev);
  if (ev->type == T2S_EV_PROXY_PROBE || ev->type == T2S_EV_PROXY_DOWN ||
      ev->type == T2S_EV_PROXY_UP || ev->type == T2S_EV_PROXY_FAILURES) {
    sim_proxy_on_event(w, ev); /* probes answered later; downs and ups counted */
  }
  if (log->f == NULL) {
    return;
  }
  sim_log_begin(log, w->loop.now, t2s_engine_event_name(ev->type));
  if (ev->flow_id) {
    sim_log_u64(log, "flow", ev->flow_id);
  }
  if (ev->src.family) {
    sim_log_addr(log, "src", &ev->src);
  }
  if (ev->dst.family) {
    sim_log_addr(log, "dst", &ev->dst);
  }
  if (ev->type == T2S_EV_DROP) {
    sim_log_str(log, "reason", t2s_drop_name(ev->reason));
  } else if (ev->type == T2S_EV_NET_STATE) {
    sim_log_str(log, "state", t2s_net_state_name((t2s_net_state)ev->reason));
  } else if (ev->type == T2S_EV_NET_EVENT) {
    sim_log_i64(log, "type", ev->reason);
  } else if (ev->type == T2S_EV_NET_DECISION) {
    sim_log_i64(log, "flows_reset", ev->reason);
  } else if (ev->type == T2S_EV_PROXY_PROBE || ev->type == T2S_EV_PROXY_DOWN ||
             ev->type == T2S_EV_PROXY_UP || ev->type == T2S_EV_PROXY_FAILURES) {
    if (ev->type != T2S_EV_PROXY_UP) {
      sim_log_str(log, "cause", t2s_proxy_cause_name((t2s_proxy_cause)ev->reason));
    }
  } else if (ev->type == T2S_EV_TCP_RETRY) {
    sim_log_u64(log, "proxy", (uint64_t)ev->reason); /* bytes_up: the old flow id */
  } else if (ev->type == T2S_EV_EGRESS) {
    const t2s_egress *eg = t2s_engine_get_egress(w->engine);
    sim_log_str(log, "dev", eg->ifindex ? eg->ifname : "none"); /* src: the egress source */
  } else if (ev->reason != 0) {
    sim_log_str(log, "err", t2s_strerror(ev->reason));
  }
  if (ev->bytes_up || ev->bytes_down) {
    sim_log_u64(log, "bytes_up", ev->bytes_up);
    sim_log_u64(log, "bytes_down", ev->bytes_down);
  }
  sim_log_end(log);
}

static t2s_tstamp engine_timer_expiry(void *arg) {
  sim_world *w = arg;
  return w->engine && !w->fatal ? w->loop.deadline : T2S_TSTAMP_MAX;
}

static void engine_timer_handle(void *arg, t2s_tstamp now) {
  sim_world *w = arg;
  w->loop.deadline = T2S_TSTAMP_MAX;
  int rv = t2s_engine_handle_expiry(w->engine, now);
  if (rv != 0 && t2s_err_is_fatal(rv)) {
    w->fatal = rv;
    sim_loop_stop(&w->loop);
  }
}

/* After every step the runner re-arms the engine's timer, as the real runner does. */
static void after_step(void *arg, t2s_tstamp now) {
  sim_world *w = arg;
  if (w->engine) {
    t2s_clock clk = sim_loop_clock(&w->loop);
    clk.ops->timer_arm(clk.self, t2s_engine_get_expiry(w->engine));
  }
  sim_check_step(w, now);
}

int sim_world_init(sim_world *w, uint64_t seed, FILE *log, sim_pcap_writer *pcap_out) {
  memset(w, 0, sizeof(*w));
  sim_loop_init(&w->loop);
  w->log.f = log;
  w->seed = seed;
  w->pcap_out = pcap_out;
  t2s_rand_init(&w->rand, seed);
  /* Fixed derivation order: engine, device faults, client hosts (sim_client.c), echo ids. */
  t2s_engine_config_default(&w->cfg);
  w->cfg.seed = t2s_rand_u64(&w->rand);
  w->cfg.proxy_kind = T2S_PROXY_NONE;
  sim_device_init(&w->dev, w, t2s_rand_u64(&w->rand));
  w->client_seed = t2s_rand_u64(&w->rand);
  w->next_inject_id = 1 + t2s_rand_below(&w->rand, 0xfff0);
  w->up = sim_upstream_new(w);
  if (w->up == NULL || sim_check_new(w) != 0) {
    return T2S_ERR_NOMEM;
  }
  w->loop.after_step = after_step;
  w->loop.after_step_arg = w;
  sim_timer_src ts = {engine_timer_expiry, engine_timer_handle, w};
  return sim_loop_add_timer(&w->loop, &ts);
}

/* Monitor events go to the engine at the loop's time. */
static void on_net_event(void *arg, const t2s_net_event *ev) {
  sim_world *w = arg;
  if (w->engine != NULL) {
    t2s_engine_network_event(w->engine, ev, w->loop.now);
  }
}

int sim_world_start(sim_world *w) {
  t2s_device dev = sim_device_iface(&w->dev);
  t2s_upstream up = sim_upstream_iface(w->up);
  t2s_engine_hooks hooks = {on_engine_event, w};
  if (w->net != NULL && !w->cfg.egress_pinned) {
    /* The egress at start, chosen as the binary does (route_linux.c): the interface of the
     * route to the proxy; unbound when the proxy is local or unreachable. */
    t2s_route r;
    memset(&w->cfg.egress, 0, sizeof(w->cfg.egress));
    w->cfg.egress.mark = w->cfg.fwmark;
    if (w->cfg.proxy_kind != T2S_PROXY_NONE && sim_net_route_get(w->net, &w->cfg.proxy, &r) == 0 &&
        !r.local) {
      w->cfg.egress.ifindex = r.ifindex;
      memcpy(w->cfg.egress.ifname, r.ifname, sizeof(r.ifname));
    }
  }
  int rv = t2s_engine_new(&w->engine, &w->cfg, &dev, &up, &hooks);
  if (rv != 0) {
    return rv;
  }
  rv = sim_proxy_engine_started(w, w->loop.now); /* several proxies: their health */
  if (rv != 0) {
    return rv;
  }
  if (w->net != NULL) {
    w->monitor = sim_net_monitor(w->net);
    t2s_engine_set_monitor(w->engine, &w->monitor);
    w->monitor.ops->start(w->monitor.self, on_net_event, w);
  }
  sim_log_begin(&w->log, w->loop.now, "start");
  sim_log_u64(&w->log, "seed", w->seed);
  sim_log_u64(&w->log, "mtu", w->dev.mtu);
  sim_log_end(&w->log);
  after_step(w, w->loop.now);
  return 0;
}

/* The engine counters the end-of-run "stats" record holds, in its order. */
#define STAT(name)                                                                                 \
  { #name, offsetof(t2s_engine_stats, name) }
static const struct {
  const char *name;
  size_t off; /* of a uint64_t in t2s_engine_stats */
} logged_stats[] = {STAT(packets_in),          STAT(packets_out),       STAT(bytes_up),
                    STAT(bytes_down),          STAT(tcp_flows_active),  STAT(tcp_pending_syn),
                    STAT(tcp_flows_total),     STAT(tcp_resets_sent),   STAT(tcp_retransmits),
                    STAT(udp_sessions_active), STAT(icmp_echo_replies), STAT(upstream_errors),
                    STAT(flows_reset)};
#undef STAT

static void log_stats(sim_world *w) {
  sim_log *log = &w->log;
  t2s_engine_stats st;
  memset(&st, 0, sizeof(st));
  if (w->engine) {
    t2s_engine_get_stats(w->engine, &st);
  }
  sim_log_open_obj(log, "stats");
  for (size_t k = 0; k < T2S_ARRAY_LEN(logged_stats); k++) {
    uint64_t v;
    memcpy(&v, (const char *)&st + logged_stats[k].off, sizeof(v));
    sim_log_u64(log, logged_stats[k].name, v);
  }
  sim_log_open_obj(log, "drops");
  for (int r = 1; r < T2S_DROP_MAX; r++) {
    if (st.drops[r]) {
      sim_log_u64(log, t2s_drop_name(r), st.drops[r]);
    }
  }
  sim_log_close_obj(log);
  sim_log_close_obj(log);
}

sim_end_reason sim_world_run(sim_world *w, t2s_tstamp until, uint64_t max_steps, bool settle) {
  sim_end_reason r = sim_loop_run(&w->loop, until, max_steps);
  if ((r == SIM_END_UNTIL || (r == SIM_END_IDLE && settle)) && w->loop.now < until) {
    /* Nothing happens between the last event and the bound: the clock still gets there. */
    w->loop.now = until;
  }
  sim_check_end(w);
  sim_log *log = &w->log;
  sim_log_begin(log, w->loop.now, "end");
  sim_log_str(log, "reason", w->fatal ? "fatal" : sim_end_reason_name(r));
  sim_log_u64(log, "steps", w->loop.steps);
  sim_log_u64(log, "packets_in",
              w->counts.in_by_origin[SIM_ORIGIN_PCAP] + w->counts.in_by_origin[SIM_ORIGIN_INJECT] +
                  w->counts.in_by_origin[SIM_ORIGIN_CLIENT]);
  sim_log_u64(log, "packets_out", w->counts.out);
  sim_log_u64(log, "faults_lost", w->dev.lost);
  sim_log_u64(log, "faults_reordered", w->dev.reordered);
  sim_log_u64(log, "faults_duplicated", w->dev.duplicated);
  sim_log_u64(log, "faults_corrupted", w->dev.corrupted[0] + w->dev.corrupted[1]);
  sim_log_u64(log, "faults_corrupt_to_engine", w->dev.corrupt_arrived);
  uint64_t refused, reset, stalled;
  sim_upstream_fault_counts(w->up, &refused, &reset, &stalled);
  sim_log_u64(log, "faults_up_refused", refused);
  sim_log_u64(log, "faults_up_reset", reset);
  sim_log_u64(log, "faults_up_stalled", stalled);
  uint64_t live, baseline;
  sim_check_mem(w, &live, &baseline);
  sim_log_u64(log, "engine_mem_blocks", live);
  sim_log_u64(log, "engine_mem_baseline", baseline);
  sim_log_u64(log, "invariant_failures", w->invariant_failures);
  log_stats(w);
  sim_log_end(log);
  return r;
}

void sim_world_free(sim_world *w) {
  if (w->engine) {
    t2s_engine_del(w->engine);
    w->engine = NULL;
  }
  sim_clients_del(w->clients);
  w->clients = NULL;
  sim_fakedns_free(w);
  while (w->replays) {
    replay_free(w->replays);
  }
  sim_loop_free(&w->loop);
  sim_upstream_del(w->up);
  w->up = NULL;
  sim_proxy_free(w);
  sim_net_del(w->net);
  w->net = NULL;
  sim_device_free(&w->dev);
  sim_check_del(w);
  sim_pcap_writer_close(w->pcap_out);
  w->pcap_out = NULL;
  free(w->first_invariant);
  w->first_invariant = NULL;
}

void sim_world_to_engine(sim_world *w, const uint8_t *pkt, size_t len, sim_origin origin,
                         t2s_tstamp now) {
  sim_device_link(&w->dev, SIM_DIR_TO_ENGINE, pkt, len, (uint64_t)origin, now);
}

void sim_world_invariant(sim_world *w, t2s_tstamp now, const char *what) {
  w->invariant_failures++;
  if (w->first_invariant == NULL) {
    w->first_invariant = strdup(what);
  }
  sim_log_begin(&w->log, now, "invariant_failed");
  sim_log_str(&w->log, "what", what);
  sim_log_end(&w->log);
}

/* ---------------- replay ---------------- */

typedef struct sim_replay replay;
struct sim_replay {
  replay *next; /* in w->replays */
  sim_world *w;
  sim_pcap_reader *r;
  char *path;
  t2s_tstamp base; /* virtual time of the first record */
  t2s_tstamp first_ts;
  t2s_tstamp last_at;
  bool started;
  uint64_t count;
};

static void replay_free(replay *rp) {
  for (replay **pp = &rp->w->replays; *pp; pp = &(*pp)->next) {
    if (*pp == rp) {
      *pp = rp->next;
      break;
    }
  }
  sim_pcap_reader_close(rp->r);
  free(rp->path);
  free(rp);
}

static void replay_event(void *arg, sim_event *ev, t2s_tstamp now);

/* Reads the next record and schedules it; at the end, logs and frees the replay. */
static void replay_next(replay *rp, t2s_tstamp now) {
  const uint8_t *pkt;
  size_t len;
  t2s_tstamp ts;
  char err[256];
  int rv = sim_pcap_reader_next(rp->r, &pkt, &len, &ts, err, sizeof(err));
  if (rv == 1) {
    if (!rp->started) {
      rp->started = true;
      rp->first_ts = ts;
      rp->last_at = rp->base;
    }
    t2s_tstamp at = rp->base + (ts > rp->first_ts ? ts - rp->first_ts : 0);
    if (at < rp->last_at) {
      at = rp->last_at; /* records out of time order keep file order */
    }
    rp->last_at = at;
    sim_loop_schedule(&rp->w->loop, at, SIM_EV_PCAP, replay_event, rp, 0, 0, pkt, len);
    return;
  }
  sim_world *w = rp->w;
  w->counts.pcap_skipped += sim_pcap_reader_skipped(rp->r);
  sim_log_begin(&w->log, now, "replay_end");
  sim_log_str(&w->log, "file", rp->path);
  sim_log_u64(&w->log, "packets", rp->count);
  sim_log_u64(&w->log, "skipped", sim_pcap_reader_skipped(rp->r));
  if (rv < 0) {
    sim_log_str(&w->log, "error", err);
  }
  sim_log_end(&w->log);
  replay_free(rp);
}

static void replay_event(void *arg, sim_event *ev, t2s_tstamp now) {
  replay *rp = arg;
  rp->count++;
  sim_world_to_engine(rp->w, ev->data, ev->len, SIM_ORIGIN_PCAP, now);
  replay_next(rp, now);
}

static void replay_start(void *arg, sim_event *ev, t2s_tstamp now) {
  replay *rp = arg;
  (void)ev;
  sim_log_begin(&rp->w->log, now, "replay_start");
  sim_log_str(&rp->w->log, "file", rp->path);
  sim_log_end(&rp->w->log);
  replay_next(rp, now);
}

int sim_world_replay(sim_world *w, const char *path, t2s_tstamp at, char *err, size_t errlen) {
  replay *rp = calloc(1, sizeof(*rp));
  if (rp == NULL) {
    snprintf(err, errlen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  int rv = sim_pcap_reader_open(&rp->r, path, err, errlen);
  if (rv != 0) {
    free(rp);
    return rv;
  }
  rp->w = w;
  rp->base = at;
  rp->path = strdup(path);
  if (rp->path == NULL) {
    sim_pcap_reader_close(rp->r);
    free(rp);
    snprintf(err, errlen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  rp->next = w->replays;
  w->replays = rp;
  /* The replay starts as a scripted event, so it sorts with the other actions at `at`. */
  return sim_loop_schedule(&w->loop, at, SIM_EV_SCENARIO, replay_start, rp, 0, 0, NULL, 0);
}

/* ---------------- echo requests ---------------- */

static uint16_t csum_fold(uint32_t sum) {
  while (sum >> 16) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return (uint16_t)~sum;
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len) {
  for (size_t i = 0; i + 1 < len; i += 2) {
    sum += t2s_get16(p + i);
    sum = (sum & 0xffff) + (sum >> 16);
  }
  if (len & 1) {
    sum += (uint32_t)p[len - 1] << 8;
    sum = (sum & 0xffff) + (sum >> 16);
  }
  return sum;
}

t2s_ssize sim_build_echo_request(uint8_t *buf, size_t buflen, const t2s_addr *src,
                                 const t2s_addr *dst, uint16_t id, uint16_t seq, size_t size) {
  if (src->family != dst->family || src->family == 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  bool v4 = src->family == T2S_AF_INET;
  size_t iph = v4 ? 20 : 40;
  size_t total = iph + 8 + size;
  if (total > buflen || total > 65535 + (v4 ? 0 : 40)) {
    return T2S_ERR_NOBUF;
  }
  memset(buf, 0, iph + 8);
  uint8_t *icmp = buf + iph;
  if (v4) {
    buf[0] = 0x45;
    t2s_put16(buf + 2, (uint16_t)total);
    t2s_put16(buf + 4, seq);
    buf[8] = 64;
    buf[9] = T2S_IPPROTO_ICMP;
    memcpy(buf + 12, src->ip, 4);
    memcpy(buf + 16, dst->ip, 4);
    t2s_put16(buf + 10, csum_fold(csum_add(0, buf, 20)));
    icmp[0] = 8;
  } else {
    buf[0] = 0x60;
    t2s_put16(buf + 4, (uint16_t)(8 + size));
    buf[6] = T2S_IPPROTO_ICMPV6;
    buf[7] = 64;
    memcpy(buf + 8, src->ip, 16);
    memcpy(buf + 24, dst->ip, 16);
    icmp[0] = 128;
  }
  t2s_put16(icmp + 4, id);
  t2s_put16(icmp + 6, seq);
  sim_pattern_fill(icmp + 8, 0, size);
  uint32_t sum = 0;
  if (!v4) {
    uint8_t ph[40];
    memcpy(ph, src->ip, 16);
    memcpy(ph + 16, dst->ip, 16);
    t2s_put32(ph + 32, (uint32_t)(8 + size));
    t2s_put32(ph + 36, T2S_IPPROTO_ICMPV6);
    sum = csum_add(sum, ph, sizeof(ph));
  }
  sum = csum_add(sum, icmp, 8 + size);
  t2s_put16(icmp + 2, csum_fold(sum));
  return (t2s_ssize)total;
}
