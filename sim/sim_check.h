/*
 * sim_check.h: invariant checkers of the simulator, outside the code under test.
 *
 *   - at every step: no upstream stream outlives its connection (open streams never exceed the
 *     engine's live TCP flows, pending SYNs and UDP sessions);
 *   - at the end of the run, for every TCP client and the upstream stream of its flow: the
 *     bytes the client sent reached the upstream in order and exactly once (a prefix of what
 *     was sent, all of it when the client finished cleanly), and the reverse;
 *   - with `liveness after T` (faults stop at T), at the end: every client ended, no TCP flow,
 *     pending SYN, UDP session or upstream stream is left, and the engine's allocation count
 *     (alloc.h, counted in the simulator's t2s_mem) is back to its baseline;
 *   - after t2s_engine_del: the engine's allocation count is 0.
 * Every violation is reported with sim_world_invariant(): the run fails.
 */
#ifndef T2S_SIM_CHECK_H
#define T2S_SIM_CHECK_H

#include "sim_world.h"

/* Creates the checker state of w (w->check) and points w->cfg.mem at its allocation counter.
 * Returns 0 or T2S_ERR_NOMEM. */
int sim_check_new(sim_world *w);
/* Frees it (after the engine). */
void sim_check_del(sim_world *w);
/* An engine event (every one, logged or not): remembers each TCP flow's addresses. */
void sim_check_on_event(sim_world *w, const t2s_engine_event *ev);
/* After every step of the loop (the first call comes right after the engine was created and
 * takes the allocation baseline). */
void sim_check_step(sim_world *w, t2s_tstamp now);
/* At the end of the run (before the end record). */
void sim_check_end(sim_world *w);
/* Deletes the engine and checks that it freed every block it allocated. */
void sim_check_teardown(sim_world *w);
/* The engine's allocation counter (live blocks now, and the baseline taken after creation). */
void sim_check_mem(const sim_world *w, uint64_t *live, uint64_t *baseline);

#endif
