/*
 * scn_check.h: the expectation checker (docs/scenarios.md, "What must be true"). After the run
 * sim_scenario_check (sim_scenario.h) evaluates each scn_expect against the world and logs an
 * `expect` event for it; the expectations about a moment ("... after T") read the sample the
 * executor took then (scn_exec.c).
 */
#ifndef T2S_SIM_SCN_CHECK_H
#define T2S_SIM_SCN_CHECK_H

#include "scn_model.h"

/* Samples into *sm what the sampled expectation e (scn_expect_sampled) looks at, now: the
 * egress interface, the network state or the number of UDP sessions. */
void scn_take_sample(const scn_expect *e, sim_world *w, scn_sample *sm);
/* actual OP want. */
bool scn_compare(uint64_t actual, scn_cmp op, uint64_t want);

#endif
