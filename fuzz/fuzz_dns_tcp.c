/*
 * fuzz_dns_tcp.c: libFuzzer entry point of the dns_tcp target; the interpreter is fuzz_dnstcp.c
 * (shared with tests/test_engine_fakedns.c).
 */
#include "fuzz_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fz_run_dns_tcp(data, size);
  return 0;
}
