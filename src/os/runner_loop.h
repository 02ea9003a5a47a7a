/*
 * runner_loop.h: the binary's event loop, and nothing else: it reads the device, fires the
 * engine's timer, runs the upstream connector's housekeeping and stops. Everything it touches
 * it reaches through interfaces the composition root (runner.c) hands it:
 *
 *   device readable -> dev.ops->recv() then t2s_engine_input_ex(), at most T2S_RUNNER_BATCH
 *     packets; each but the last of a burst with T2S_INPUT_MORE, so the engine coalesces ACKs
 *     and upstream writes over the burst (a lone datagram after a quiet spell is handed
 *     without the read ahead that would only fail);
 *                      packets per wakeup
 *   timer           -> t2s_engine_handle_expiry() (t2s_loop_on_timer, given to the clock driver)
 *   after each callback that called the engine (its own, the connector's through
 *   t2s_loop_after, the network watch's through t2s_loop_rearm): t2s_upstream_sock_poll(),
 *   then clock.ops->timer_arm(t2s_engine_get_expiry())
 *   SIGINT/SIGTERM/SIGQUIT, t2s_loop_stop() -> a clean stop; SIGHUP -> hooks.reload when set
 *   (--config), else a clean stop; SIGUSR1 -> hooks.stats, SIGUSR2 -> hooks.flush
 *
 * Busy polling (--busy-poll USEC, off by default): after a wakeup that handled I/O (device
 * packets or an upstream socket's callback; not a timer or a signal) the loop keeps polling
 * without blocking (epoll_wait with a zero timeout) until USEC microseconds pass without I/O,
 * then blocks again. A ping-pong then finds its next packet while tun2sock is still running,
 * instead of paying a sleep and a wakeup per packet; the price is CPU spent spinning for up to
 * USEC after each burst of traffic (none while idle).
 *
 * The device is whatever t2s_device the root built (the TUN's ops, or a wrapper around them);
 * the loop knows only the fd to wait on.
 */
#ifndef T2S_RUNNER_LOOP_H
#define T2S_RUNNER_LOOP_H

#include <event2/event.h>

#include "engine.h"
#include "rec.h"
#include "tun_linux.h"
#include "upstream_sock.h"

#define T2S_RUNNER_BATCH 64 /* packets read from the device per wakeup */
/* A non-TCP packet after this long without device wakeups is not read ahead of (see
 * device_readable): longer than a burst's gap between wakeups, shorter than a round trip. */
#define T2S_LOOP_LONE_GAP_NS (20 * T2S_MICROSECONDS)

typedef struct t2s_loop_hooks {
  /* After an engine call that may have taken a network decision (the timer): started is the
   * time the call began (the network watch measures the reset there). May be NULL. */
  void (*engine_call_end)(void *arg, t2s_tstamp started);
  /* SIGUSR1: the counters to the log. May be NULL. */
  void (*stats)(void *arg);
  /* SIGUSR2: --record and --pcap flushed to their files. May be NULL. */
  void (*flush)(void *arg);
  /* SIGHUP: the config file read again (docs/config.md). NULL: SIGHUP stops. */
  void (*reload)(void *arg);
  void *arg;
} t2s_loop_hooks;

typedef struct t2s_loop {
  struct event_base *base; /* borrowed */
  t2s_engine *engine;      /* borrowed; NULL until t2s_loop_attach */
  t2s_rec *rec;            /* --record: inputs go through it (rec.h); NULL = none */
  t2s_device dev;          /* read on readability */
  t2s_clock clock;         /* now() for input, timer_arm() for the engine's expiry */
  t2s_upstream_sock *up;   /* housekeeping after every callback */
  t2s_tun *tun;            /* flushed after every callback (queued writes); NULL = none */
  t2s_loop_hooks hooks;
  struct event *dev_ev;
  struct event *sig_ev[6];
  int stop_fd; /* eventfd written by t2s_loop_stop */
  struct event *stop_ev;
  int result;              /* 0, or the T2S_ERR_* that stopped the loop */
  bool stopping;           /* a stop was asked for */
  t2s_tstamp busy_poll_ns; /* --busy-poll: spin this long after the last I/O; 0 = block */
  uint64_t io_events;      /* callbacks that handled I/O (device packets, upstream sockets) */
  uint64_t busy_polls;     /* non-blocking polls made while busy polling */
  uint64_t busy_hits;      /* ... of which found I/O (a sleep and a wakeup saved) */
  bool lone_skip;          /* reading ahead costs a system call (a TUN with offloads: readv) */
  t2s_tstamp dev_last;     /* monotonic time the last device callback ended (with lone_skip) */
  uint64_t lone_packets;   /* packets handed without reading ahead (a read that would block) */
  bool busy_open;          /* a busy-poll window is open (since busy_last_io) */
  t2s_tstamp busy_last_io; /* the monotonic time of the window's last I/O */
  /* Two IP packets (a TSO super-packet is at most 64 KiB): the loop reads one ahead, so it knows
   * whether the packet it hands the engine ends the burst (T2S_INPUT_MORE). */
  uint8_t pkt[2][65536 + 256];
} t2s_loop;

/* Prepares l on base with its stop event. Returns 0, or T2S_ERR_* after logging why. */
int t2s_loop_init(t2s_loop *l, struct event_base *base);
/* Gives the loop what it drives (borrowed). Call before t2s_loop_watch_device. */
void t2s_loop_attach(t2s_loop *l, t2s_engine *engine, const t2s_device *dev, const t2s_clock *clock,
                     t2s_upstream_sock *up, const t2s_loop_hooks *hooks);
/* The TUN whose queued writes are flushed after every callback (t2s_tun_flush) and whose
 * batched reads bring the loop back (t2s_tun_rx_pending). Borrowed; NULL = none. */
void t2s_loop_set_tun(t2s_loop *l, t2s_tun *tun);
/* Waits on fd for the device's packets. Returns 0, or T2S_ERR_* after logging why. */
int t2s_loop_watch_device(t2s_loop *l, int fd);
/* Installs the SIGINT/TERM/HUP/QUIT/USR1 handlers and ignores SIGPIPE (the binary; not for
 * embedders). Returns 0, or T2S_ERR_* after logging why. */
int t2s_loop_handle_signals(t2s_loop *l);

/* The clock driver's on_fire (clock_linux.h): the engine's timers. */
void t2s_loop_on_timer(void *l, t2s_tstamp now);
/* The connector's after-hook (upstream_sock.h): the same as t2s_loop_rearm. */
void t2s_loop_after(void *l);
/* Housekeeping, then the timer re-armed to the engine's expiry. */
void t2s_loop_rearm(t2s_loop *l);
/* Logs "what: error; stopping" and stops with err. */
void t2s_loop_fatal(t2s_loop *l, const char *what, int err);

/* --busy-poll: after a wakeup that handled I/O, poll without blocking until usec microseconds
 * pass without I/O (0: off, the default). Call before t2s_loop_run. */
void t2s_loop_set_busy_poll(t2s_loop *l, uint32_t usec);

/* Runs until stopped. Returns 0 after a stop, or the T2S_ERR_* of a fatal error. */
int t2s_loop_run(t2s_loop *l);
/* Asks a running loop to stop. Safe from any thread and from a signal handler. */
void t2s_loop_stop(t2s_loop *l);
/* Frees the loop's events (not the base). */
void t2s_loop_free(t2s_loop *l);

#endif
