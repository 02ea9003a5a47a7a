/* main.c: the CUnit runner. Each test file exposes one t2s_test_register_<area>() that adds
 * its suite; the list below is the whole unit-test inventory. */
#include <CUnit/Basic.h>
#include <stdio.h>

#include "test_util.h"

typedef int (*register_fn)(void);

static const struct {
  const char *name;
  register_fn fn;
} suites[] = {
    {"common", t2s_test_register_common},
    {"assert", t2s_test_register_assert},
    {"cli", t2s_test_register_cli},
    {"socks5", t2s_test_register_socks5},
    {"packet", t2s_test_register_packet},
    {"corpus", t2s_test_register_corpus},
    {"bsd_route", t2s_test_register_bsd_route},
    {"monitor_linux", t2s_test_register_monitor_linux},
    {"flow", t2s_test_register_flow},
    {"engine_net", t2s_test_register_engine_net},
    {"engine_batch", t2s_test_register_engine_batch},
    {"tun_uring", t2s_test_register_tun_uring},
    {"tcp_handshake", t2s_test_register_tcp_handshake},
    {"frag", t2s_test_register_frag},
    {"udp", t2s_test_register_udp},
    {"tcp_data", t2s_test_register_tcp_data},
    {"tcp_tso", t2s_test_register_tcp_tso},
    {"tcp_close", t2s_test_register_tcp_close},
    {"tcp_timers", t2s_test_register_tcp_timers},
    {"tcp_recovery", t2s_test_register_tcp_recovery},
    {"fuzz_regressions", t2s_test_register_fuzz_regressions},
    {"metrics", t2s_test_register_metrics},
    {"dns", t2s_test_register_dns},
    {"fakedns", t2s_test_register_fakedns},
    {"engine_fakedns", t2s_test_register_engine_fakedns},
    {"recording", t2s_test_register_recording},
    {"iface_wrap", t2s_test_register_iface_wrap},
    {"sleep_merge", t2s_test_register_sleep_merge},
    {"host_monitor", t2s_test_register_host_monitor},
    {"embed_packets", t2s_test_register_embed_packets},
    {"embed_memory", t2s_test_register_embed_memory},
    {"embed_protect", t2s_test_register_embed_protect},
    {"embed_abi", t2s_test_register_embed_abi},
    {"os_error", t2s_test_register_os_error},
    {"clock_test_offset", t2s_test_register_clock_test_offset},
    {"runner_loop", t2s_test_register_runner_loop},
    {"scenario_parse", t2s_test_register_scenario_parse},
    {"proxy_health", t2s_test_register_proxy_health},
    {"config", t2s_test_register_config},
    {"engine_reload", t2s_test_register_engine_reload},
};

int main(int argc, char **argv) {
  (void)argv;
  if (CU_initialize_registry() != CUE_SUCCESS) {
    return 2;
  }
  for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
    if (suites[i].fn() != 0) {
      fprintf(stderr, "cannot register suite %s\n", suites[i].name);
      CU_cleanup_registry();
      return 2;
    }
  }
  CU_basic_set_mode(argc > 1 ? CU_BRM_VERBOSE : CU_BRM_NORMAL);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_tests_failed() + CU_get_number_of_failures();
  CU_cleanup_registry();
  return failed ? 1 : 0;
}
