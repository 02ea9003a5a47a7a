/*
 * rec_replay.h: replays a recording (rec_format.h) into a fresh engine and compares every
 * output with the recording; the body of tun2sock-sim --replay-record (docs/recording.md).
 *
 * The engine is built with the recorded configuration and seed. Each recorded input is fed at
 * its recorded time; the device, upstream and monitor the engine is given answer each call
 * with what the recording says it returned, after checking that the call is the one recorded
 * (kind, id, address, bytes). The engine's events, each input's return value and every change
 * of its expiry are compared too. The first difference stops the replay.
 */
#ifndef T2S_REC_REPLAY_H
#define T2S_REC_REPLAY_H

#include "rec_format.h"

typedef enum t2s_replay_status {
  T2S_REPLAY_IDENTICAL = 0, /* every output matched (up to `until` or the end) */
  T2S_REPLAY_DIFFERENT = 1, /* msg names the first difference */
  T2S_REPLAY_BAD_FILE = 2,  /* truncated, corrupt, another version, or not replayable */
} t2s_replay_status;

typedef struct t2s_replay_opts {
  t2s_tstamp until; /* stop before the first input later than this (T2S_TSTAMP_MAX: none) */
  /* Sees each event of the replayed engine (may be NULL). */
  void (*on_event)(void *arg, const t2s_engine_event *ev);
  void *arg;
} t2s_replay_opts;

typedef struct t2s_replay_result {
  t2s_replay_status status;
  char msg[1024];   /* the first difference, or why the file was refused */
  uint64_t records; /* records read */
  uint64_t inputs;  /* inputs fed to the engine */
  uint64_t outputs; /* outputs compared */
  t2s_tstamp first_now, last_now;
  bool until_reached;     /* stopped at opts.until */
  bool ended;             /* the END record was reached */
  uint32_t end_reason;    /* its T2S_REC_END_* */
  bool engine_deleted;    /* the recording's stop (engine_del) was replayed */
  uint64_t leaked_blocks; /* heap blocks of the engine left after engine_del (0 = none) */
  uint64_t seed;
  char build[128];
} t2s_replay_result;

/*
 * Replays the recording buf[0..len) (borrowed). Fills *res and returns its status. Returns
 * T2S_REPLAY_BAD_FILE also when the engine refuses the recorded configuration.
 */
t2s_replay_status t2s_replay_run(const uint8_t *buf, size_t len, const t2s_replay_opts *opts,
                                 t2s_replay_result *res);

#endif
