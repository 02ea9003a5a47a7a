/*
 * sim_loop.h: the simulator's virtual clock and event queue.
 *
 * Time jumps from one event to the next. Events are ordered by (time, kind, sequence): the
 * kind gives a fixed precedence between things that happen at the same instant, and the
 * sequence number (assigned at insertion) keeps insertion order among events of one kind.
 * Timer sources (the engine's single timer, a client stack's expiry) are not queued: the loop
 * asks each for its deadline at every step and treats it as an event of kind SIM_EV_TIMER
 * whose sequence number is the source's index. Nothing here reads a real clock.
 */
#ifndef T2S_SIM_LOOP_H
#define T2S_SIM_LOOP_H

#include "common.h"
#include "iface.h"

/* Precedence of events that fall at the same virtual time (lower first). */
typedef enum sim_ev_kind {
  SIM_EV_SCENARIO = 0, /* scripted actions (at T ...) */
  SIM_EV_PCAP,         /* the next record of a replayed capture */
  SIM_EV_DEVICE,       /* a packet reaching the engine or a client host over the device link */
  SIM_EV_UPSTREAM,     /* completions of the simulated upstream */
  SIM_EV_CLIENT,       /* client host actions */
  SIM_EV_TIMER,        /* timer sources (engine, client stacks); never queued */
  SIM_EV_KIND_MAX
} sim_ev_kind;

typedef struct sim_event sim_event;
typedef struct sim_loop sim_loop;

/* Runs one event. now is the event's time (the loop's clock already shows it). */
typedef void (*sim_ev_fn)(void *arg, sim_event *ev, t2s_tstamp now);

struct sim_event {
  t2s_tstamp at;
  uint8_t kind; /* sim_ev_kind */
  uint64_t seq; /* insertion order, assigned by sim_loop_schedule */
  sim_ev_fn fn;
  void *arg;
  uint64_t u64a, u64b; /* payload for the handler */
  uint8_t *data;       /* owned payload (freed after the handler returns), may be NULL */
  size_t len;
};

/* A timer source: get_expiry returns its next deadline (T2S_TSTAMP_MAX: none). */
typedef struct sim_timer_src {
  t2s_tstamp (*get_expiry)(void *arg);
  void (*handle_expiry)(void *arg, t2s_tstamp now);
  void *arg;
} sim_timer_src;

#define SIM_MAX_TIMER_SRCS 8

/* Why sim_loop_run returned. */
typedef enum sim_end_reason {
  SIM_END_IDLE = 0, /* no event left */
  SIM_END_UNTIL,    /* the next event lies beyond the time bound */
  SIM_END_STEPS,    /* the step bound was reached */
  SIM_END_STOPPED,  /* sim_loop_stop was called */
} sim_end_reason;

/* Name of an end reason ("idle"). */
const char *sim_end_reason_name(sim_end_reason r);

struct sim_loop {
  t2s_tstamp now;      /* the virtual clock (monotonic) */
  t2s_tstamp slept;    /* total virtual time spent "asleep" (boottime - now) */
  t2s_tstamp deadline; /* the deadline armed through the t2s_clock interface */
  uint64_t next_seq;
  uint64_t steps;
  bool stop;
  sim_event *heap; /* binary min-heap */
  size_t nheap, capheap;
  sim_timer_src timers[SIM_MAX_TIMER_SRCS];
  size_t ntimers;
  /* Called after every step (the world re-arms timers there). May be NULL. */
  void (*after_step)(void *arg, t2s_tstamp now);
  void *after_step_arg;
};

/* Initialises an empty loop at virtual time 0. */
void sim_loop_init(sim_loop *loop);
/* Frees queued events (and their payloads). */
void sim_loop_free(sim_loop *loop);

/*
 * Queues an event at time `at` (clamped to now when earlier) of the given kind: fn(arg, ev,
 * now) runs then, with u64a/u64b and a copy of data/len (when data is not NULL) in *ev.
 * Returns 0 or T2S_ERR_NOMEM.
 */
int sim_loop_schedule(sim_loop *loop, t2s_tstamp at, sim_ev_kind kind, sim_ev_fn fn, void *arg,
                      uint64_t u64a, uint64_t u64b, const uint8_t *data, size_t len);

/* Adds a timer source; returns 0 or T2S_ERR_LIMIT. */
int sim_loop_add_timer(sim_loop *loop, const sim_timer_src *src);

/* True when no event is queued and no timer source has a deadline. */
bool sim_loop_idle(const sim_loop *loop);

/* Runs events in order until idle, until the next event lies after `until`, until max_steps
 * events have run, or until sim_loop_stop. */
sim_end_reason sim_loop_run(sim_loop *loop, t2s_tstamp until, uint64_t max_steps);

/* Makes sim_loop_run return after the current event. */
void sim_loop_stop(sim_loop *loop);

/* The t2s_clock interface of the simulated world: now() is the virtual time, boottime()
 * adds the virtual time spent asleep, timer_arm() records the deadline in loop->deadline. */
t2s_clock sim_loop_clock(sim_loop *loop);

#endif
