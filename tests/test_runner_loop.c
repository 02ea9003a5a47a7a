/* test_runner_loop.c: the binary's event loop (src/os/runner_loop.c) and its engine timer
 * (src/os/clock_linux.c), on a real libevent base with no TUN and no root: the timerfd is set
 * only when a deadline moves earlier and never fires the engine early; --busy-poll keeps
 * polling after I/O for its window, not after timers, and stops when the window ends. The
 * loop's device is a SOCK_SEQPACKET socketpair (packet boundaries, as a TUN keeps them). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock_linux.h"
#include "engine_fake.h"
#include "runner_loop.h"
#include "test_util.h"

#define MS (T2S_SECONDS / 1000)

/* ---------------- the engine timer ---------------- */

typedef struct fire_log {
  int fired;
  t2s_tstamp at;
} fire_log;

static void on_fire(void *arg, t2s_tstamp now) {
  fire_log *f = arg;
  f->fired++;
  f->at = now;
}

static void stop_base(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  event_base_loopbreak(arg);
}

/* Runs base until f fired or `ms` passed (a guard timer breaks the loop). */
static void run_until_fired(struct event_base *base, fire_log *f, int ms) {
  struct event *guard = evtimer_new(base, stop_base, base);
  struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
  evtimer_add(guard, &tv);
  for (int i = 0; i < 1000 && !f->fired && !event_base_got_break(base); i++) {
    event_base_loop(base, EVLOOP_ONCE);
  }
  event_free(guard);
}

/* The loop arms the engine's expiry after every callback; most of the time it has not moved,
 * or moved later. Only an earlier deadline costs a timerfd_settime. */
static void test_timer_set_only_when_earlier(void) {
  struct event_base *base = event_base_new();
  CU_ASSERT_FATAL(base != NULL);
  t2s_clock_linux clk;
  fire_log f = {0};
  CU_ASSERT_FATAL(t2s_clock_linux_init(&clk, base, on_fire, &f) == 0);
  t2s_tstamp t0 = t2s_clock_monotonic_ns();
  t2s_clock_linux_arm(&clk, t0 + 50 * MS);
  CU_ASSERT_EQUAL(clk.sets, 1);
  t2s_clock_linux_arm(&clk, t0 + 50 * MS); /* unchanged */
  CU_ASSERT_EQUAL(clk.sets, 1);
  t2s_clock_linux_arm(&clk, t0 + 80 * MS); /* later: only noted */
  CU_ASSERT_EQUAL(clk.sets, 1);
  t2s_clock_linux_arm(&clk, t0 + 30 * MS); /* earlier: set */
  CU_ASSERT_EQUAL(clk.sets, 2);
  t2s_clock_linux_arm(&clk, T2S_TSTAMP_MAX); /* none: left to fire for nothing */
  CU_ASSERT_EQUAL(clk.sets, 2);
  t2s_clock_linux_arm(&clk, t0 + 30 * MS); /* what it holds */
  CU_ASSERT_EQUAL(clk.sets, 2);
  run_until_fired(base, &f, 2000);
  CU_ASSERT_EQUAL(f.fired, 1);
  CU_ASSERT(f.at >= t0 + 30 * MS);
  CU_ASSERT_EQUAL(clk.sets, 2);
  t2s_clock_linux_free(&clk);
  event_base_free(base);
}

/* A deadline moved later after the timerfd was set: the early wake sets it again for the
 * rest, and the engine is called at the later deadline, not before. */
static void test_timer_later_deadline_not_fired_early(void) {
  struct event_base *base = event_base_new();
  CU_ASSERT_FATAL(base != NULL);
  t2s_clock_linux clk;
  fire_log f = {0};
  CU_ASSERT_FATAL(t2s_clock_linux_init(&clk, base, on_fire, &f) == 0);
  t2s_tstamp t0 = t2s_clock_monotonic_ns();
  t2s_clock_linux_arm(&clk, t0 + 10 * MS);
  t2s_clock_linux_arm(&clk, t0 + 40 * MS);
  CU_ASSERT_EQUAL(clk.sets, 1);
  run_until_fired(base, &f, 2000);
  CU_ASSERT_EQUAL(f.fired, 1);
  CU_ASSERT(f.at >= t0 + 40 * MS);
  CU_ASSERT_EQUAL(clk.sets, 2); /* the re-arm at the early wake */
  /* A deadline already past (0 too: an all-zero timerfd value would disarm it) fires now. */
  f.fired = 0;
  t2s_clock_linux_arm(&clk, 0);
  run_until_fired(base, &f, 2000);
  CU_ASSERT_EQUAL(f.fired, 1);
  t2s_clock_linux_free(&clk);
  event_base_free(base);
}

/* A deadline given up (T2S_TSTAMP_MAX) after the timerfd was set: it wakes, calls nothing. */
static void test_timer_given_up_calls_nothing(void) {
  struct event_base *base = event_base_new();
  CU_ASSERT_FATAL(base != NULL);
  t2s_clock_linux clk;
  fire_log f = {0};
  CU_ASSERT_FATAL(t2s_clock_linux_init(&clk, base, on_fire, &f) == 0);
  t2s_clock_linux_arm(&clk, t2s_clock_monotonic_ns() + 5 * MS);
  t2s_clock_linux_arm(&clk, T2S_TSTAMP_MAX);
  run_until_fired(base, &f, 60);
  CU_ASSERT_EQUAL(f.fired, 0);
  CU_ASSERT_EQUAL(clk.armed, T2S_TSTAMP_MAX); /* it did wake (and read the timerfd) */
  t2s_clock_linux_free(&clk);
  event_base_free(base);
}

/* ---------------- the loop with --busy-poll ---------------- */

typedef struct loop_rig {
  struct event_base *base;
  engine_fake fake;
  t2s_engine *engine;
  t2s_upstream_sock *up;
  t2s_clock_linux clk;
  t2s_clock clock;
  t2s_loop *loop;
  int sv[2];         /* sv[0]: the loop's device; the test writes packets into sv[1] */
  unsigned packets;  /* packets the device handed over */
  unsigned calls;    /* reads of the device (the ones that would block too) */
  uint8_t proto;     /* the IPv4 protocol of the packets sent (default 17, UDP) */
  unsigned burst;    /* packets sent at each send time (default 1) */
  uint64_t snapshot; /* busy_polls when the idle phase was checked */
} loop_rig;

static t2s_ssize dev_recv(void *self, uint8_t *buf, size_t buflen) {
  loop_rig *r = self;
  r->calls++;
  ssize_t n = recv(r->sv[0], buf, buflen, MSG_DONTWAIT);
  if (n < 0) {
    return errno == EAGAIN || errno == EWOULDBLOCK ? T2S_ERR_WOULDBLOCK : T2S_ERR_CLOSED;
  }
  r->packets++;
  return (t2s_ssize)n;
}

static int dev_send(void *self, const uint8_t *pkt, size_t len) {
  (void)self;
  (void)pkt;
  (void)len;
  return 0;
}

static void dev_caps(void *self, t2s_device_caps *caps) {
  (void)self;
  caps->mtu = 1500;
  caps->offloads = 0;
}

static const t2s_device_ops rig_dev_ops = {
    .recv = dev_recv, .send = dev_send, .get_caps = dev_caps};

static void rig_init(loop_rig *r, uint32_t busy_poll_us) {
  memset(r, 0, sizeof(*r));
  r->proto = 17;
  r->burst = 1;
  r->base = event_base_new();
  CU_ASSERT_FATAL(r->base != NULL);
  CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, r->sv) ==
                  0);
  engine_fake_init(&r->fake);
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  CU_ASSERT_FATAL(t2s_engine_new(&r->engine, &cfg, &r->fake.dev, &r->fake.up, NULL) == 0);
  CU_ASSERT_FATAL(t2s_upstream_sock_new(&r->up, r->base, NULL) == 0);
  r->loop = calloc(1, sizeof(*r->loop));
  CU_ASSERT_FATAL(r->loop != NULL);
  CU_ASSERT_FATAL(t2s_loop_init(r->loop, r->base) == 0);
  t2s_loop_set_busy_poll(r->loop, busy_poll_us);
  CU_ASSERT_FATAL(t2s_clock_linux_init(&r->clk, r->base, t2s_loop_on_timer, r->loop) == 0);
  t2s_clock_linux_ops(&r->clk, &r->clock);
  t2s_upstream_sock_set_engine(r->up, r->engine, t2s_loop_after, r->loop);
  t2s_device dev = {.ops = &rig_dev_ops, .self = r};
  t2s_loop_hooks hooks = {0};
  t2s_loop_attach(r->loop, r->engine, &dev, &r->clock, r->up, &hooks);
  CU_ASSERT_FATAL(t2s_loop_watch_device(r->loop, r->sv[0]) == 0);
}

static void rig_free(loop_rig *r) {
  t2s_loop_free(r->loop);
  free(r->loop);
  t2s_clock_linux_free(&r->clk);
  t2s_engine_del(r->engine);
  t2s_upstream_sock_del(r->up);
  event_base_free(r->base);
  close(r->sv[0]);
  close(r->sv[1]);
}

static void send_packet(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  loop_rig *r = arg;
  uint8_t junk[40] = {0x45}; /* an IPv4 header with a bad checksum: the engine drops it */
  junk[9] = r->proto;
  for (unsigned i = 0; i < r->burst; i++) {
    CU_ASSERT(send(r->sv[1], junk, sizeof(junk), MSG_DONTWAIT) == (ssize_t)sizeof(junk));
  }
}

static void take_snapshot(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  loop_rig *r = arg;
  r->snapshot = r->loop->busy_polls;
}

static void stop_loop(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_loop_stop(((loop_rig *)arg)->loop);
}

/* Schedules cb(r) at ms on the rig's base; the events are freed by rig_run. */
static struct event *at_ms(loop_rig *r, int ms, event_callback_fn cb) {
  struct event *ev = evtimer_new(r->base, cb, r);
  struct timeval tv = {.tv_sec = 0, .tv_usec = ms * 1000};
  CU_ASSERT_FATAL(ev != NULL && evtimer_add(ev, &tv) == 0);
  return ev;
}

/* nsends (0..2) sends of r->burst packets at 10 and 20 ms, the idle phase checked at check_ms,
 * the stop 30 ms later. */
static void rig_run(loop_rig *r, int nsends, int check_ms) {
  struct event *ev[4];
  int n = 0;
  for (int i = 0; i < nsends && i < 2; i++) {
    ev[n++] = at_ms(r, 10 * (i + 1), send_packet);
  }
  ev[n++] = at_ms(r, check_ms, take_snapshot);
  ev[n++] = at_ms(r, check_ms + 30, stop_loop);
  CU_ASSERT_EQUAL(t2s_loop_run(r->loop), 0);
  for (int i = 0; i < n; i++) {
    event_free(ev[i]);
  }
}

/* With a 100 ms window, the second packet (10 ms after the first) is found by a non-blocking
 * poll; 100 ms after it the loop blocks again: nothing spins through the idle phase (checked
 * from 400 ms on: wide margins for a loaded machine). */
static void test_busy_poll_spins_after_io_then_blocks(void) {
  loop_rig r;
  rig_init(&r, 100000);
  rig_run(&r, 2, 400);
  CU_ASSERT_EQUAL(r.packets, 2);
  CU_ASSERT(r.loop->busy_polls > 0);
  CU_ASSERT(r.loop->busy_hits >= 1);
  CU_ASSERT_EQUAL(r.loop->busy_polls, r.snapshot); /* no poll between 400 and 430 ms */
  rig_free(&r);
}

/* Off (the default): the loop only blocks. */
static void test_busy_poll_off_never_polls(void) {
  loop_rig r;
  rig_init(&r, 0);
  rig_run(&r, 2, 50);
  CU_ASSERT_EQUAL(r.packets, 2);
  CU_ASSERT_EQUAL(r.loop->busy_polls, 0);
  rig_free(&r);
}

/* Timers alone (the test's own, the engine's) open no window: an idle tunnel does not spin. */
static void test_busy_poll_not_after_timers(void) {
  loop_rig r;
  rig_init(&r, 30000);
  rig_run(&r, 0, 100);
  CU_ASSERT_EQUAL(r.packets, 0);
  CU_ASSERT_EQUAL(r.loop->busy_polls, 0);
  rig_free(&r);
}

/* ---------------- the read ahead ---------------- */

/* With a TUN whose reads cost a system call each (offloads on: lone_skip), a lone datagram
 * after a quiet spell is handed without the read ahead that would only fail (EAGAIN). */
static void test_lone_datagram_not_read_ahead(void) {
  loop_rig r;
  rig_init(&r, 0);
  r.loop->lone_skip = true;
  rig_run(&r, 1, 50);
  CU_ASSERT_EQUAL(r.packets, 1);
  CU_ASSERT_EQUAL(r.calls, 1);
  CU_ASSERT_EQUAL(r.loop->lone_packets, 1);
  rig_free(&r);
}

/* Off (a TUN without offloads reads in batches; an embedder's fd): read ahead as always. */
static void test_lone_datagram_read_ahead_when_off(void) {
  loop_rig r;
  rig_init(&r, 0);
  rig_run(&r, 1, 50);
  CU_ASSERT_EQUAL(r.packets, 1);
  CU_ASSERT_EQUAL(r.calls, 2);
  CU_ASSERT_EQUAL(r.loop->lone_packets, 0);
  rig_free(&r);
}

/* A TCP segment is read ahead of: its burst's ACKs and upstream writes are coalesced. */
static void test_tcp_segment_read_ahead(void) {
  loop_rig r;
  rig_init(&r, 0);
  r.loop->lone_skip = true;
  r.proto = 6;
  rig_run(&r, 1, 50);
  CU_ASSERT_EQUAL(r.packets, 1);
  CU_ASSERT_EQUAL(r.calls, 2);
  CU_ASSERT_EQUAL(r.loop->lone_packets, 0);
  rig_free(&r);
}

/* Datagrams queued behind a lone one are not lost: the fd stays readable and the next wakeup,
 * within the gap, reads the rest with the read ahead. */
static void test_datagrams_behind_a_lone_one_are_read(void) {
  loop_rig r;
  rig_init(&r, 0);
  r.loop->lone_skip = true;
  r.burst = 5;
  rig_run(&r, 2, 60);
  CU_ASSERT_EQUAL(r.packets, 10);
  CU_ASSERT(r.loop->lone_packets >= 2 && r.loop->lone_packets <= 10);
  rig_free(&r);
}

int t2s_test_register_runner_loop(void) {
  CU_pSuite s = CU_add_suite("runner_loop", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "timer set only when the deadline moves earlier",
                   test_timer_set_only_when_earlier) ||
      !CU_add_test(s, "a later deadline is not fired early",
                   test_timer_later_deadline_not_fired_early) ||
      !CU_add_test(s, "a deadline given up calls nothing", test_timer_given_up_calls_nothing) ||
      !CU_add_test(s, "busy poll spins after I/O, then blocks",
                   test_busy_poll_spins_after_io_then_blocks) ||
      !CU_add_test(s, "busy poll off never polls", test_busy_poll_off_never_polls) ||
      !CU_add_test(s, "busy poll not after timers", test_busy_poll_not_after_timers) ||
      !CU_add_test(s, "a lone datagram is not read ahead of", test_lone_datagram_not_read_ahead) ||
      !CU_add_test(s, "a lone datagram is read ahead of when off",
                   test_lone_datagram_read_ahead_when_off) ||
      !CU_add_test(s, "a TCP segment is read ahead of", test_tcp_segment_read_ahead) ||
      !CU_add_test(s, "datagrams behind a lone one are read",
                   test_datagrams_behind_a_lone_one_are_read)) {
    return -1;
  }
  return 0;
}
