/* runner_loop.c: the libevent loop around the engine (see runner_loop.h). */
#include "runner_loop.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock_linux.h"
#include "log.h"
#include "packet.h"

/* --busy-poll: non-blocking polls per call of run_busy; t2s_loop_run checks for a stop
 * between calls, and the window goes on in the next. */
#define BUSY_POLLS_MAX 1024

/* ---------------- after every callback ---------------- */

void t2s_loop_rearm(t2s_loop *l) {
  if (!l->engine) {
    return;
  }
  if (l->tun) {
    int rv = t2s_tun_flush(l->tun); /* the packets this callback queued */
    if (t2s_err_is_fatal(rv)) {
      t2s_loop_fatal(l, "writing the TUN", rv);
      return;
    }
  }
  t2s_upstream_sock_poll(l->up);
  l->clock.ops->timer_arm(l->clock.self, t2s_engine_get_expiry(l->engine));
}

void t2s_loop_after(void *arg) {
  t2s_loop *l = arg;
  l->io_events++; /* an upstream socket's callback */
  t2s_loop_rearm(l);
}

void t2s_loop_fatal(t2s_loop *l, const char *what, int err) {
  T2S_ERROR("%s: %s; stopping", what, t2s_strerror(err));
  l->result = err;
  event_base_loopbreak(l->base);
}

void t2s_loop_on_timer(void *arg, t2s_tstamp now) {
  t2s_loop *l = arg;
  int rv = t2s_rec_handle_expiry(l->rec, l->engine, now);
  if (l->hooks.engine_call_end) {
    l->hooks.engine_call_end(l->hooks.arg, now);
  }
  if (t2s_err_is_fatal(rv)) {
    t2s_loop_fatal(l, "engine timers", rv);
    return;
  }
  t2s_loop_rearm(l);
}

/* Reads one packet, *ppkt: where the device lends it (recv_ref), else into l->pkt[slot];
 * returns its length, 0 when the device has no more (would block or a non-fatal error,
 * logged), or a fatal error. */
static t2s_ssize read_one(t2s_loop *l, int slot, const uint8_t **ppkt, unsigned *pflags) {
  t2s_ssize n =
      l->dev.ops->recv_ref ? l->dev.ops->recv_ref(l->dev.self, ppkt) : T2S_ERR_UNSUPPORTED;
  if (n == T2S_ERR_UNSUPPORTED) {
    n = l->dev.ops->recv(l->dev.self, l->pkt[slot], sizeof(l->pkt[slot]));
    *ppkt = l->pkt[slot];
  }
  if (n == T2S_ERR_WOULDBLOCK) {
    return 0;
  }
  if (n < 0) {
    if (t2s_err_is_fatal((int)n)) {
      return n;
    }
    T2S_DEBUG("reading the device: %s", t2s_strerror((int)n));
    return 0;
  }
  *pflags = l->dev.ops->rx_flags ? l->dev.ops->rx_flags(l->dev.self) : 0;
  return n;
}

/* The first packet of a wakeup is a lone one (no read ahead) when reading ahead costs a system
 * call (lone_skip), it is not TCP (nothing to coalesce: a datagram goes upstream on its own
 * anyway) and the device was quiet for LONE_GAP_NS before this wakeup: a request of a
 * ping-pong, a DNS query. A burst (a UDP flood) brings the loop back within the gap and is read
 * ahead as before; a packet left queued behind a lone one makes the level-triggered fd ready
 * again at once (one epoll_wait instead of the read that would block: no worse). */
static bool lone_packet(t2s_loop *l, const uint8_t *pkt, size_t len) {
  /* IPv6 extension headers are not followed: such a TCP segment counts as not TCP, which
   * costs at most its burst's coalescing. */
  return l->lone_skip && t2s_ip_l4proto(pkt, len) != T2S_IPPROTO_TCP &&
         t2s_clock_monotonic_ns() - l->dev_last >= T2S_LOOP_LONE_GAP_NS;
}

/* The device's driver logs a read error with its errno; here only the code counts. The loop
 * reads one packet ahead: a packet goes to the engine with T2S_INPUT_MORE when the next one is
 * already read, so the last of the burst (the read after it would block, or the batch is full)
 * ends it and the engine sends one ACK and one upstream write per flow for the whole burst.
 * No extra system call: the read that would block was made before too. A lone datagram
 * (lone_packet) is not read ahead of: that read would only fail. */
static void device_readable(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_loop *l = arg;
  int cur = 0;
  unsigned flags = 0;
  const uint8_t *pkt[2] = {NULL, NULL};
  t2s_ssize n = read_one(l, cur, &pkt[cur], &flags);
  bool lone = false;
  if (n > 0) {
    l->io_events++;
    lone = lone_packet(l, pkt[cur], (size_t)n);
    l->lone_packets += lone;
  }
  for (int i = 0; i < T2S_RUNNER_BATCH && n > 0; i++) {
    unsigned next_flags = 0;
    t2s_ssize next = i + 1 < T2S_RUNNER_BATCH && !(i == 0 && lone)
                         ? read_one(l, 1 - cur, &pkt[1 - cur], &next_flags)
                         : 0;
    if (next > 0) {
      flags |= T2S_INPUT_MORE;
    }
    int rv = t2s_rec_input_ex(l->rec, l->engine, pkt[cur], (size_t)n, flags,
                              l->clock.ops->now(l->clock.self));
    if (t2s_err_is_fatal(rv)) {
      t2s_loop_fatal(l, "engine input", rv);
      return;
    }
    cur = 1 - cur;
    flags = next_flags;
    n = next;
  }
  if (n < 0) {
    t2s_loop_fatal(l, "reading the TUN", (int)n);
    return;
  }
  if (l->tun && t2s_tun_rx_pending(l->tun)) {
    event_active(l->dev_ev, EV_READ, 0); /* read in a batch, not handed over yet */
  }
  t2s_loop_rearm(l);
  if (l->lone_skip) {
    l->dev_last = t2s_clock_monotonic_ns();
  }
}

/* ---------------- signals and stop ---------------- */

static void signal_cb(evutil_socket_t sig, short what, void *arg) {
  (void)what;
  t2s_loop *l = arg;
  if (sig == SIGUSR1) {
    if (l->hooks.stats) {
      l->hooks.stats(l->hooks.arg);
    }
    return;
  }
  if (sig == SIGUSR2) {
    if (l->hooks.flush) {
      l->hooks.flush(l->hooks.arg);
    }
    return;
  }
  if (sig == SIGHUP && l->hooks.reload) {
    l->hooks.reload(l->hooks.arg); /* --config: `systemctl reload` (docs/config.md) */
    t2s_loop_rearm(l);
    return;
  }
  /* SIGHUP without --config (the terminal or the session went away) and SIGQUIT would
   * otherwise kill the process and leave --auto-route's rules behind: every stop signal stops
   * cleanly. */
  T2S_INFO("%s: stopping", sig == SIGINT    ? "SIGINT"
                           : sig == SIGHUP  ? "SIGHUP"
                           : sig == SIGQUIT ? "SIGQUIT"
                                            : "SIGTERM");
  l->stopping = true;
  event_base_loopbreak(l->base);
}

static void stop_cb(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  t2s_loop *l = arg;
  uint64_t v;
  if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN) {
    T2S_DEBUG("stop eventfd: %s", strerror(errno));
  }
  l->stopping = true;
  event_base_loopbreak(l->base);
}

void t2s_loop_stop(t2s_loop *l) {
  uint64_t one = 1;
  ssize_t n = write(l->stop_fd, &one, sizeof(one));
  (void)n;
}

/* ---------------- setup ---------------- */

int t2s_loop_init(t2s_loop *l, struct event_base *base) {
  memset(l, 0, offsetof(t2s_loop, pkt));
  l->base = base;
  l->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (l->stop_fd < 0) {
    T2S_ERROR("cannot create the loop's events: %s", strerror(errno));
    return T2S_ERR_INTERNAL;
  }
  l->stop_ev = event_new(base, l->stop_fd, EV_READ | EV_PERSIST, stop_cb, l);
  if (!l->stop_ev || event_add(l->stop_ev, NULL) != 0) {
    T2S_ERROR("cannot register the loop's events");
    return T2S_ERR_INTERNAL;
  }
  return 0;
}

void t2s_loop_attach(t2s_loop *l, t2s_engine *engine, const t2s_device *dev, const t2s_clock *clock,
                     t2s_upstream_sock *up, const t2s_loop_hooks *hooks) {
  l->engine = engine;
  l->dev = *dev;
  l->clock = *clock;
  l->up = up;
  l->hooks = *hooks;
}

void t2s_loop_set_tun(t2s_loop *l, t2s_tun *tun) {
  l->tun = tun;
  l->lone_skip = false;
  if (tun) {
    t2s_tun_info info;
    t2s_tun_get_info(tun, &info);
    l->lone_skip = info.vnet; /* readv per packet; without offloads io_uring reads in batches */
  }
}

int t2s_loop_watch_device(t2s_loop *l, int fd) {
  l->dev_ev = event_new(l->base, fd, EV_READ | EV_PERSIST, device_readable, l);
  if (!l->dev_ev || event_add(l->dev_ev, NULL) != 0) {
    T2S_ERROR("cannot register the loop's events");
    return T2S_ERR_INTERNAL;
  }
  return 0;
}

int t2s_loop_handle_signals(t2s_loop *l) {
  static const int sigs[T2S_ARRAY_LEN(l->sig_ev)] = {SIGINT,  SIGTERM, SIGHUP,
                                                     SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < T2S_ARRAY_LEN(sigs); i++) {
    l->sig_ev[i] = evsignal_new(l->base, sigs[i], signal_cb, l);
    if (!l->sig_ev[i] || event_add(l->sig_ev[i], NULL) != 0) {
      T2S_ERROR("cannot install the signal handlers");
      return T2S_ERR_INTERNAL;
    }
  }
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

void t2s_loop_set_busy_poll(t2s_loop *l, uint32_t usec) {
  l->busy_poll_ns = (t2s_tstamp)usec * 1000;
}

static bool loop_ending(const t2s_loop *l) {
  return l->stopping || l->result != 0 || event_base_got_break(l->base);
}

/* --busy-poll: one blocking wait; when what it ran handled I/O, non-blocking polls until
 * busy_poll_ns pass without I/O. After BUSY_POLLS_MAX polls it returns with the window still
 * open (busy_open), and the next call goes on polling: the outer loop sees a stop between
 * calls. The window is timed with the monotonic clock itself, not l->clock: a --record
 * wrapper would log every read of that. Returns event_base_loop's result. */
static int run_busy(t2s_loop *l) {
  uint64_t seen = l->io_events;
  int rv;
  if (!l->busy_open) {
    rv = event_base_loop(l->base, EVLOOP_ONCE | EVLOOP_NO_EXIT_ON_EMPTY);
    if (rv != 0 || loop_ending(l) || l->io_events == seen) {
      return rv; /* a timer, a signal, or a stop: block again */
    }
    l->busy_open = true;
    l->busy_last_io = t2s_clock_monotonic_ns();
  }
  for (int i = 0; i < BUSY_POLLS_MAX; i++) {
    seen = l->io_events;
    rv = event_base_loop(l->base, EVLOOP_NONBLOCK | EVLOOP_NO_EXIT_ON_EMPTY);
    l->busy_polls++;
    if (rv != 0 || loop_ending(l)) {
      return rv;
    }
    t2s_tstamp now = t2s_clock_monotonic_ns();
    if (l->io_events != seen) {
      l->busy_hits++;
      l->busy_last_io = now; /* the window starts again */
    } else if (now - l->busy_last_io >= l->busy_poll_ns) {
      l->busy_open = false;
      break;
    }
  }
  return 0;
}

int t2s_loop_run(t2s_loop *l) {
  l->result = 0;
  t2s_loop_rearm(l);
  /* Bounded by the loop's own life: it returns on loopbreak (stop, signal, fatal error). */
  while (!l->stopping && l->result == 0) {
    int rv = l->busy_poll_ns ? run_busy(l) : event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    if (rv < 0) {
      T2S_ERROR("event loop failed");
      l->result = T2S_ERR_INTERNAL;
      break;
    }
    if (event_base_got_break(l->base) || rv == 1) {
      break;
    }
  }
  return l->result;
}

void t2s_loop_free(t2s_loop *l) {
  for (size_t i = 0; i < T2S_ARRAY_LEN(l->sig_ev); i++) {
    if (l->sig_ev[i]) {
      event_free(l->sig_ev[i]);
      l->sig_ev[i] = NULL;
    }
  }
  if (l->dev_ev) {
    event_free(l->dev_ev);
    l->dev_ev = NULL;
  }
  if (l->stop_ev) {
    event_free(l->stop_ev);
    l->stop_ev = NULL;
  }
  if (l->stop_fd >= 0) {
    close(l->stop_fd);
    l->stop_fd = -1;
  }
}
