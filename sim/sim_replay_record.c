/*
 * sim_replay_record.c: tun2sock-sim --replay-record FILE [--until T] [--events-out F]
 * [--quiet]: replays a flight recording (docs/recording.md) into a fresh engine and compares
 * every output with it (src/rec/rec_replay.h does the work; this is the command line).
 *
 * Exit status: 0 identical (one summary line), 1 the first difference (named on stderr),
 * 2 a usage error, or a truncated, corrupt, other-version or unreplayable file.
 */
#include "sim_replay_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drop.h"
#include "rec_replay.h"
#include "sim_events.h"

#define MAX_FILE (4ull << 30)

static int usage_error(const char *msg, const char *arg) {
  fprintf(stderr,
          "tun2sock-sim: %s%s (usage: tun2sock-sim --replay-record FILE [--until T] "
          "[--events-out FILE] [--quiet])\n",
          msg, arg ? arg : "");
  return 2;
}

/* "2s", "500ms", "1h", "10m", "250us", "0". */
static int parse_time(const char *s, t2s_tstamp *out) {
  char *end;
  if (s == NULL || *s == 0 || *s == '-') {
    return -1;
  }
  unsigned long long x = strtoull(s, &end, 10);
  if (end == s) {
    return -1;
  }
  static const struct {
    const char *unit;
    t2s_tstamp mul;
  } units[] = {{"ns", 1},          {"us", T2S_MICROSECONDS}, {"ms", T2S_MILLISECONDS},
               {"s", T2S_SECONDS}, {"m", 60 * T2S_SECONDS},  {"h", 3600 * T2S_SECONDS}};
  for (size_t i = 0; i < T2S_ARRAY_LEN(units); i++) {
    if (strcmp(end, units[i].unit) == 0) {
      if (x > UINT64_MAX / units[i].mul) {
        return -1;
      }
      *out = x * units[i].mul;
      return 0;
    }
  }
  if (*end == 0 && x == 0) {
    *out = 0;
    return 0;
  }
  return -1;
}

/* Reads the whole file. Returns 0, or -1 with a message in err. */
static int read_file(const char *path, uint8_t **pbuf, size_t *plen, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, errlen, "cannot open %s", path);
    return -1;
  }
  size_t cap = 1 << 16, len = 0;
  uint8_t *buf = malloc(cap);
  while (buf) {
    if (len == cap) {
      if (cap >= MAX_FILE) {
        snprintf(err, errlen, "%s is larger than 4 GiB", path);
        free(buf);
        fclose(f);
        return -1;
      }
      uint8_t *nb = realloc(buf, cap * 2);
      if (nb == NULL) {
        free(buf);
        buf = NULL;
        break;
      }
      buf = nb;
      cap *= 2;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0) {
      break;
    }
  }
  bool bad = ferror(f);
  fclose(f);
  if (buf == NULL || bad) {
    snprintf(err, errlen, buf ? "cannot read %s" : "out of memory reading %s", path);
    free(buf);
    return -1;
  }
  *pbuf = buf;
  *plen = len;
  return 0;
}

static void on_event(void *arg, const t2s_engine_event *ev) {
  sim_log *log = arg;
  sim_log_begin(log, ev->now, t2s_engine_event_name(ev->type));
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
  } else if (ev->reason) {
    sim_log_i64(log, "reason", ev->reason);
  }
  if (ev->bytes_up || ev->bytes_down) {
    sim_log_u64(log, "bytes_up", ev->bytes_up);
    sim_log_u64(log, "bytes_down", ev->bytes_down);
  }
  sim_log_end(log);
}

int sim_replay_record_main(int argc, char **argv) {
  const char *path = NULL, *events_out = NULL;
  t2s_tstamp until = T2S_TSTAMP_MAX;
  bool quiet = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--quiet") == 0) {
      quiet = true;
      continue;
    }
    const char *v = i + 1 < argc ? argv[++i] : NULL;
    if (v == NULL) {
      return usage_error("a value is missing after ", a);
    }
    if (strcmp(a, "--replay-record") == 0) {
      path = v;
    } else if (strcmp(a, "--until") == 0) {
      if (parse_time(v, &until) != 0) {
        return usage_error("--until: not a duration (e.g. 30s): ", v);
      }
    } else if (strcmp(a, "--events-out") == 0) {
      events_out = v;
    } else {
      return usage_error("an option --replay-record does not take: ", a);
    }
  }
  if (path == NULL) {
    return usage_error("--replay-record needs a FILE", NULL);
  }
  char err[512];
  uint8_t *buf;
  size_t len;
  if (read_file(path, &buf, &len, err, sizeof(err)) != 0) {
    fprintf(stderr, "tun2sock-sim: %s\n", err);
    return 2;
  }
  sim_log log = {0};
  if (events_out) {
    log.f = fopen(events_out, "w");
    if (log.f == NULL) {
      free(buf);
      fprintf(stderr, "tun2sock-sim: cannot write %s\n", events_out);
      return 2;
    }
  }
  t2s_replay_opts o = {.until = until, .on_event = events_out ? on_event : NULL, .arg = &log};
  t2s_replay_result *res = malloc(sizeof(*res));
  if (res == NULL) {
    free(buf);
    return 2;
  }
  t2s_replay_status st = t2s_replay_run(buf, len, &o, res);
  int code = 0;
  if (st == T2S_REPLAY_IDENTICAL) {
    if (!quiet) {
      printf("tun2sock-sim: replay-record identical: %" PRIu64 " inputs, %" PRIu64
             " outputs compared, t=%" PRIu64 ".%09" PRIu64 "..%" PRIu64 ".%09" PRIu64
             " s, seed %" PRIu64 ", build '%s'%s%s%s\n",
             res->inputs, res->outputs, res->first_now / T2S_SECONDS, res->first_now % T2S_SECONDS,
             res->last_now / T2S_SECONDS, res->last_now % T2S_SECONDS, res->seed, res->build,
             res->until_reached ? ", stopped at --until" : "",
             res->ended && res->end_reason == T2S_REC_END_MAX
                 ? ", the recording stops at its --record-max"
                 : "",
             !res->ended && !res->until_reached ? ", no end record (flushed while running)" : "");
    }
    if (res->engine_deleted && res->leaked_blocks) {
      fprintf(stderr, "tun2sock-sim: the replayed engine left %" PRIu64 " heap blocks\n",
              res->leaked_blocks);
      code = 1;
    }
  } else if (st == T2S_REPLAY_DIFFERENT) {
    fprintf(stderr, "tun2sock-sim: replay-record: %s\n", res->msg);
    code = 1;
  } else {
    fprintf(stderr, "tun2sock-sim: replay-record: %s: %s\n", path, res->msg);
    code = 2;
  }
  if (log.f) {
    fclose(log.f);
  }
  free(res);
  free(buf);
  return code;
}
