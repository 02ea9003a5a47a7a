/*
 * sim_main.c: tun2sock-sim, the deterministic simulator.
 *
 *   tun2sock-sim --replay IN.pcap [--pcap-out OUT.pcap] [--events-out F] [--seed N]
 *   tun2sock-sim --scenario FILE  [--pcap-out OUT.pcap] [--events-out F] [--seed N]
 *
 * Exit status: 0 success, 1 a failed expectation or invariant (or the step bound reached in
 * a scenario), 2 a usage, scenario or input error, 3 a fatal engine error.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drop.h"
#include "sim_check.h"
#include "sim_client.h"
#include "sim_replay_record.h"
#include "sim_scenario.h"
#include "sim_world.h"

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define EXIT_FATAL 3

#define DEFAULT_MAX_STEPS 50000000ULL

static void usage(FILE *f) {
  fprintf(f, "usage: tun2sock-sim --replay IN.pcap [--pcap-out OUT.pcap] [--events-out FILE]\n"
             "                    [--seed N] [--until T] [--max-steps N] [--quiet]\n"
             "       tun2sock-sim --scenario FILE [--pcap-out OUT.pcap] [--events-out FILE]\n"
             "                    [--seed N] [--until T] [--max-steps N] [--quiet]\n"
             "       tun2sock-sim --replay-record FILE [--until T] [--events-out FILE] [--quiet]\n"
             "\n"
             "Runs the tun2sock engine on a virtual clock. --replay injects a capture's packets\n"
             "at their recorded times; --scenario runs a scenario file (docs/scenarios.md).\n"
             "--seed overrides the scenario's seed (default 1). --until bounds virtual time\n"
             "(default: the scenario's 'run until', else 1h, in replay mode 1h after the last\n"
             "record); --max-steps bounds the number of events run.\n"
             "Exit: 0 ok, 1 expectation or invariant failed, 2 usage or input error, 3 fatal.\n");
}

static int parse_u64(const char *s, uint64_t *v) {
  char *end;
  if (s == NULL || *s == 0 || *s == '-') {
    return -1;
  }
  unsigned long long x = strtoull(s, &end, 0);
  if (*end != 0) {
    return -1;
  }
  *v = x;
  return 0;
}

/* "2s", "500ms", "1h", "10m", "0". */
static int parse_time(const char *s, t2s_tstamp *out) {
  char *end;
  if (s == NULL || *s == 0 || *s == '-') {
    return -1;
  }
  unsigned long long x = strtoull(s, &end, 10);
  t2s_tstamp mul;
  if (strcmp(end, "ns") == 0) {
    mul = 1;
  } else if (strcmp(end, "us") == 0) {
    mul = T2S_MICROSECONDS;
  } else if (strcmp(end, "ms") == 0) {
    mul = T2S_MILLISECONDS;
  } else if (strcmp(end, "s") == 0) {
    mul = T2S_SECONDS;
  } else if (strcmp(end, "m") == 0) {
    mul = 60 * T2S_SECONDS;
  } else if (strcmp(end, "h") == 0) {
    mul = 3600 * T2S_SECONDS;
  } else if (*end == 0 && x == 0) {
    mul = 1;
  } else {
    return -1;
  }
  if (x > UINT64_MAX / mul) {
    return -1;
  }
  *out = x * mul;
  return 0;
}

static void print_summary(FILE *f, sim_world *w, sim_end_reason why, int passed, int failed,
                          bool have_expects) {
  t2s_engine_stats st;
  memset(&st, 0, sizeof(st));
  if (w->engine) {
    t2s_engine_get_stats(w->engine, &st);
  }
  const sim_counts *c = &w->counts;
  uint64_t in = c->in_by_origin[SIM_ORIGIN_PCAP] + c->in_by_origin[SIM_ORIGIN_INJECT] +
                c->in_by_origin[SIM_ORIGIN_CLIENT];
  fprintf(f,
          "tun2sock-sim: seed %" PRIu64 ", ended (%s) at %" PRIu64 ".%09" PRIu64
          " s virtual after %" PRIu64 " steps\n",
          w->seed, w->fatal ? "fatal" : sim_end_reason_name(why), w->loop.now / T2S_SECONDS,
          w->loop.now % T2S_SECONDS, w->loop.steps);
  fprintf(f,
          "packets in: %" PRIu64 " (capture %" PRIu64 ", injected %" PRIu64 ", clients %" PRIu64
          "), out: %" PRIu64 "\n",
          in, c->in_by_origin[SIM_ORIGIN_PCAP], c->in_by_origin[SIM_ORIGIN_INJECT],
          c->in_by_origin[SIM_ORIGIN_CLIENT], c->out);
  if (c->pcap_skipped) {
    fprintf(f, "capture records without an IP packet (skipped): %" PRIu64 "\n", c->pcap_skipped);
  }
  fprintf(f, "echo replies: %" PRIu64 "\n", st.icmp_echo_replies);
  fprintf(f,
          "tcp: flows %" PRIu64 ", active %" PRIu64 ", resets sent %" PRIu64
          ", retransmits %" PRIu64 "; bytes up %" PRIu64 ", down %" PRIu64 "\n",
          st.tcp_flows_total, st.tcp_flows_active, st.tcp_resets_sent, st.tcp_retransmits,
          st.bytes_up, st.bytes_down);
  uint64_t corrupted = w->dev.corrupted[0] + w->dev.corrupted[1];
  if (w->dev.lost || w->dev.reordered || w->dev.duplicated || corrupted) {
    fprintf(f,
            "faults: lost %" PRIu64 ", reordered %" PRIu64 ", duplicated %" PRIu64
            ", corrupted %" PRIu64 "\n",
            w->dev.lost, w->dev.reordered, w->dev.duplicated, corrupted);
  }
  uint64_t refused, reset, stalled;
  sim_upstream_fault_counts(w->up, &refused, &reset, &stalled);
  if (refused || reset || stalled) {
    fprintf(f,
            "upstream faults: connects refused %" PRIu64 ", streams reset %" PRIu64
            ", stalls %" PRIu64 "\n",
            refused, reset, stalled);
  }
  fprintf(f, "drops:");
  bool any = false;
  for (int r = 1; r < T2S_DROP_MAX; r++) {
    if (st.drops[r]) {
      fprintf(f, "%s %s %" PRIu64, any ? "," : "", t2s_drop_name(r), st.drops[r]);
      any = true;
    }
  }
  fprintf(f, "%s\n", any ? "" : " none");
  if (w->invariant_failures) {
    fprintf(f, "invariant failures: %" PRIu64 " (first: %s)\n", w->invariant_failures,
            w->first_invariant ? w->first_invariant : "?");
  }
  sim_clients_print(w->clients, f, w->loop.now);
  if (have_expects) {
    fprintf(f, "expectations: %d passed, %d failed\n", passed, failed);
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) { /* a flight recording: its own mode (docs/recording.md) */
    if (strcmp(argv[i], "--replay-record") == 0) {
      return sim_replay_record_main(argc, argv);
    }
  }
  const char *replay = NULL, *scenario = NULL, *pcap_out = NULL, *events_out = NULL;
  uint64_t seed = 1, max_steps = DEFAULT_MAX_STEPS;
  bool seed_given = false, quiet = false;
  t2s_tstamp until = 0;
  bool until_given = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return 0;
    } else if (strcmp(a, "--quiet") == 0) {
      quiet = true;
      continue;
    }
    if (v == NULL) {
      fprintf(stderr, "tun2sock-sim: %s needs a value (see --help)\n", a);
      return EXIT_USAGE;
    }
    i++;
    if (strcmp(a, "--replay") == 0) {
      replay = v;
    } else if (strcmp(a, "--scenario") == 0) {
      scenario = v;
    } else if (strcmp(a, "--pcap-out") == 0) {
      pcap_out = v;
    } else if (strcmp(a, "--events-out") == 0) {
      events_out = v;
    } else if (strcmp(a, "--seed") == 0) {
      if (parse_u64(v, &seed) != 0) {
        fprintf(stderr, "tun2sock-sim: --seed: '%s' is not a number\n", v);
        return EXIT_USAGE;
      }
      seed_given = true;
    } else if (strcmp(a, "--max-steps") == 0) {
      if (parse_u64(v, &max_steps) != 0 || max_steps == 0) {
        fprintf(stderr, "tun2sock-sim: --max-steps: '%s' is not a positive number\n", v);
        return EXIT_USAGE;
      }
    } else if (strcmp(a, "--until") == 0) {
      if (parse_time(v, &until) != 0) {
        fprintf(stderr, "tun2sock-sim: --until: '%s' is not a duration (e.g. 30s)\n", v);
        return EXIT_USAGE;
      }
      until_given = true;
    } else {
      fprintf(stderr, "tun2sock-sim: unknown option %s (see --help)\n", a);
      return EXIT_USAGE;
    }
  }
  if ((replay == NULL) == (scenario == NULL)) {
    fprintf(stderr, "tun2sock-sim: give exactly one of --replay and --scenario\n\n");
    usage(stderr);
    return EXIT_USAGE;
  }

  char err[1024] = {0};
  sim_scenario *scn = NULL;
  int rv = replay ? sim_scenario_new_replay(&scn, replay, err, sizeof(err))
                  : sim_scenario_load(&scn, scenario, err, sizeof(err));
  if (rv != 0) {
    fprintf(stderr, "tun2sock-sim: %s\n", err);
    return EXIT_USAGE;
  }
  uint64_t scn_seed;
  if (!seed_given && sim_scenario_seed(scn, &scn_seed)) {
    seed = scn_seed;
  }
  if (!until_given) {
    until = sim_scenario_until(scn);
    if (until == T2S_TSTAMP_MAX) {
      until = sim_scenario_default_until(scn);
    }
  }

  FILE *log = NULL;
  if (events_out) {
    log = fopen(events_out, "w");
    if (log == NULL) {
      fprintf(stderr, "tun2sock-sim: cannot write %s\n", events_out);
      sim_scenario_del(scn);
      return EXIT_USAGE;
    }
  }
  sim_pcap_writer *pw = NULL;
  if (pcap_out && sim_pcap_writer_open(&pw, pcap_out, err, sizeof(err)) != 0) {
    fprintf(stderr, "tun2sock-sim: %s\n", err);
    if (log) {
      fclose(log);
    }
    sim_scenario_del(scn);
    return EXIT_USAGE;
  }

  sim_world *w = calloc(1, sizeof(*w));
  if (w == NULL || sim_world_init(w, seed, log, pw) != 0) {
    fprintf(stderr, "tun2sock-sim: out of memory\n");
    return EXIT_FATAL;
  }
  int code = 0;
  rv = sim_scenario_configure(scn, w, err, sizeof(err));
  if (rv == 0) {
    rv = sim_world_start(w);
    if (rv != 0) {
      snprintf(err, sizeof(err), "the engine did not start: %s", t2s_strerror(rv));
    }
  }
  if (rv == 0) {
    rv = sim_scenario_schedule(scn, w, err, sizeof(err));
  }
  if (rv != 0) {
    fprintf(stderr, "tun2sock-sim: %s\n", err);
    code = EXIT_USAGE;
  } else {
    bool settle = until_given || sim_scenario_until(scn) != T2S_TSTAMP_MAX;
    sim_end_reason why = sim_world_run(w, until, max_steps, settle);
    int passed = 0;
    int failed = sim_scenario_check(scn, w, stderr, &passed);
    if (!quiet) {
      print_summary(stdout, w, why, passed, failed, passed + failed > 0);
    }
    /* The engine must free every block it allocated (an invariant failure otherwise). */
    sim_check_teardown(w);
    if (w->fatal) {
      fprintf(stderr, "tun2sock-sim: fatal engine error: %s\n", t2s_strerror(w->fatal));
      code = EXIT_FATAL;
    } else if (failed > 0 || w->invariant_failures > 0) {
      if (w->invariant_failures) {
        fprintf(stderr, "tun2sock-sim: invariant failed: %s\n", w->first_invariant);
      }
      code = EXIT_FAILED;
    } else if (why == SIM_END_STEPS) {
      fprintf(stderr,
              "tun2sock-sim: the step bound (%" PRIu64 ") was reached at virtual %" PRIu64 " ns\n",
              max_steps, w->loop.now);
      code = scenario ? EXIT_FAILED : 0;
    }
    if (code == EXIT_FAILED || code == EXIT_FATAL) {
      fprintf(stderr, "tun2sock-sim: reproduce with --seed %" PRIu64 "\n", seed);
    }
  }
  sim_world_free(w);
  free(w);
  sim_scenario_del(scn);
  if (log) {
    fclose(log);
  }
  return code;
}
