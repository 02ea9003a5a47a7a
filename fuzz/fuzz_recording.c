/*
 * fuzz_recording.c: the flight recorder's reader and replay (src/rec, docs/recording.md) on
 * hostile files.
 *
 * Input: a recording. The strict reader must return a record, the end or one of its errors,
 * never read beyond the buffer, and stick to its error once it returned one. Whatever the
 * reader accepts, re-encoding the record gives back the bytes it was read from. The replay
 * then runs the whole file into a fresh engine and must end with one of its three verdicts;
 * a recording whose options ask for large buffers is capped first (the engine would honour
 * them, and the fuzzer's memory limit is not what is under test).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_harness.h"
#include "rec_format.h"
#include "rec_replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static t2s_rec_reader rd;
  int rv = t2s_rec_reader_init(&rd, data, size);
  FZ_CHECK(rv == 0 || rv == T2S_REC_ERR_TRUNCATED || rv == T2S_REC_ERR_MAGIC ||
               rv == T2S_REC_ERR_VERSION || rv == T2S_REC_ERR_CORRUPT,
           "reader_init returned %d", rv);
  if (rv != 0) {
    FZ_CHECK(t2s_rec_reader_next(&rd, &(t2s_rec_record){0}) == rv, "error not sticky");
    return 0;
  }
  t2s_rec_record r;
  static uint8_t again[T2S_REC_RECORD_HEAD + T2S_REC_MAX_BODY];
  for (;;) {
    size_t at = rd.pos;
    rv = t2s_rec_reader_next(&rd, &r);
    if (rv != 1) {
      FZ_CHECK(rv == 0 || rv == T2S_REC_ERR_TRUNCATED || rv == T2S_REC_ERR_CORRUPT,
               "reader_next returned %d", rv);
      FZ_CHECK(t2s_rec_reader_next(&rd, &r) == rv, "result not sticky");
      break;
    }
    FZ_CHECK(rd.pos <= size, "read beyond the input");
    size_t n = t2s_rec_encode_record(&r, again);
    FZ_CHECK(n == rd.pos - at && memcmp(again, data + at, n) == 0,
             "record at %zu does not re-encode to its bytes", at);
  }
  const t2s_engine_config *c = &rd.hdr.cfg;
  if (c->tcp_sndbuf > (1u << 20) || c->tcp_rcvbuf > (1u << 20) || c->max_tcp_flows > 4096 ||
      c->max_udp_sessions > 4096 || c->max_pending_syn > 4096 || c->memory_budget == 0 ||
      c->memory_budget > (256u << 20)) {
    return 0;
  }
  t2s_replay_result res;
  t2s_replay_status st = t2s_replay_run(data, size, NULL, &res);
  FZ_CHECK(st == T2S_REPLAY_IDENTICAL || st == T2S_REPLAY_DIFFERENT || st == T2S_REPLAY_BAD_FILE,
           "replay returned %d", (int)st);
  FZ_CHECK(st == T2S_REPLAY_IDENTICAL || res.msg[0] != 0, "a verdict without a message");
  return 0;
}
