/*
 * sim_scenario.h: the scenario language (docs/scenarios.md). A scenario is parsed whole
 * before anything runs: a mistake names its line and nothing is simulated. Then it
 * configures the world (device, upstream), schedules its timed actions, and after the run
 * checks its expectations.
 *
 * The parts (docs/simulator.md): scn_lex.c tokens and values, scn_parse*.c the commands into
 * the model of scn_model.h, scn_exec.c configuring and scheduling, scn_check.c the
 * expectations; sim_scenario.c reads the file and owns the scenario.
 */
#ifndef T2S_SIM_SCENARIO_H
#define T2S_SIM_SCENARIO_H

#include <stdio.h>

#include "common.h"
#include "sim_world.h"

typedef struct sim_scenario sim_scenario;

/* Reads and parses the scenario file at path. Returns 0, or T2S_ERR_MALFORMED with
 * "PATH:LINE: reason" in err (T2S_ERR_NOT_FOUND when the file cannot be read). */
int sim_scenario_load(sim_scenario **pscn, const char *path, char *err, size_t errlen);
/* Parses scenario text; name is used in messages, basedir resolves relative file names
 * ("" = the current directory). Same results as sim_scenario_load. */
int sim_scenario_parse(sim_scenario **pscn, const char *text, const char *name, const char *basedir,
                       char *err, size_t errlen);
/* The scenario of replay mode: `upstream default echo latency 1ms` and `at 0 replay path`. */
int sim_scenario_new_replay(sim_scenario **pscn, const char *path, char *err, size_t errlen);
void sim_scenario_del(sim_scenario *scn);

/* The seed the scenario sets (`seed N`): true and *seed set, or false when it sets none. */
bool sim_scenario_seed(const sim_scenario *scn, uint64_t *seed);
/* The time bound of `run until T`, or T2S_TSTAMP_MAX when the scenario has none. */
t2s_tstamp sim_scenario_until(const sim_scenario *scn);
/* The time bound without `run until`: 1 h, or in replay mode 1 h after the capture's last
 * record. */
t2s_tstamp sim_scenario_default_until(const sim_scenario *scn);
/* True when the scenario starts client hosts. */
bool sim_scenario_has_clients(const sim_scenario *scn);

/* Applies the configuration lines to w (before sim_world_start). Returns 0 or an error
 * (message in err). */
int sim_scenario_configure(sim_scenario *scn, sim_world *w, char *err, size_t errlen);
/* Schedules the timed actions (after sim_world_start). Returns 0 or an error. */
int sim_scenario_schedule(sim_scenario *scn, sim_world *w, char *err, size_t errlen);
/* Checks every expectation, logs each result, writes failures to out (may be NULL).
 * Returns how many failed. *ppassed receives how many passed. */
int sim_scenario_check(const sim_scenario *scn, sim_world *w, FILE *out, int *ppassed);

#endif
