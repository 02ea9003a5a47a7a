/*
 * fuzz_scenario.c: scenario text into the simulator's parser (sim_scenario_parse).
 *
 * The input is the scenario text. Parsing must either succeed or fail with a message that names
 * a line ("NAME:LINE: ..."), never crash, leak or loop. A parsed scenario's accessors are
 * called, then it is freed. File names resolve against a directory that does not exist, so a
 * `replay` line cannot open anything but an absolute path; inputs that name device, proc or sys
 * files are skipped (reading /dev/stdin or /dev/zero would block or never end).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_harness.h"
#include "sim_scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 65536) {
    return 0;
  }
  char *text = malloc(size + 1);
  FZ_CHECK(text != NULL, "out of memory");
  memcpy(text, data, size);
  text[size] = 0;
  if (strstr(text, "/dev") || strstr(text, "/proc") || strstr(text, "/sys") ||
      strstr(text, "/run")) {
    free(text);
    return 0;
  }
  sim_scenario *scn = NULL;
  char err[512];
  err[0] = 0;
  int rv = sim_scenario_parse(&scn, text, "fuzz.scn", "/nonexistent-fuzz-dir", err, sizeof(err));
  if (rv == 0) {
    FZ_CHECK(scn != NULL, "parse succeeded without a scenario");
    uint64_t seed;
    (void)sim_scenario_seed(scn, &seed);
    t2s_tstamp until = sim_scenario_until(scn);
    t2s_tstamp def = sim_scenario_default_until(scn);
    (void)until;
    (void)def;
    (void)sim_scenario_has_clients(scn);
    sim_scenario_del(scn);
  } else {
    FZ_CHECK(rv == T2S_ERR_MALFORMED || rv == T2S_ERR_NOMEM, "parse returned %d", rv);
    FZ_CHECK(strlen(err) < sizeof(err), "unterminated message");
    FZ_CHECK(rv == T2S_ERR_NOMEM || strncmp(err, "fuzz.scn:", 9) == 0,
             "message does not name the line: %s", err);
  }
  free(text);
  return 0;
}
