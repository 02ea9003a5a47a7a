/*
 * fuzz_engine_sequence.c: libFuzzer entry point of the sequence target; the interpreter is
 * fuzz_sequence.c (shared with tests/test_fuzz_regressions.c).
 */
#include "fuzz_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_run_sequence(data, size);
  return 0;
}
