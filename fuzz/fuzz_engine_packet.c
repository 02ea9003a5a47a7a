/*
 * fuzz_engine_packet.c: libFuzzer entry point of the one-packet target; the body is
 * fuzz_packet.c (shared with tests/test_fuzz_regressions.c).
 */
#include "fuzz_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_run_packet(data, size);
  return 0;
}
