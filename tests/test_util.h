/* test_util.h: the suite registration functions, one per test file, and shared helpers. */
#ifndef T2S_TEST_UTIL_H
#define T2S_TEST_UTIL_H

#include <CUnit/CUnit.h>

/* Each returns 0 on success. Add yours here and in the list in main.c. */
int t2s_test_register_common(void);
int t2s_test_register_assert(void);
int t2s_test_register_flow(void);
int t2s_test_register_cli(void);
int t2s_test_register_socks5(void);
int t2s_test_register_packet(void);
int t2s_test_register_corpus(void);
int t2s_test_register_bsd_route(void);
int t2s_test_register_monitor_linux(void);
int t2s_test_register_engine_net(void);
int t2s_test_register_engine_batch(void);
int t2s_test_register_tun_uring(void);
int t2s_test_register_frag(void);
int t2s_test_register_udp(void);
int t2s_test_register_tcp_handshake(void);
int t2s_test_register_tcp_close(void);
int t2s_test_register_tcp_timers(void);
int t2s_test_register_tcp_recovery(void);
int t2s_test_register_tcp_data(void);
int t2s_test_register_tcp_tso(void);
int t2s_test_register_fuzz_regressions(void);
int t2s_test_register_metrics(void);
int t2s_test_register_dns(void);
int t2s_test_register_fakedns(void);
int t2s_test_register_engine_fakedns(void);
int t2s_test_register_recording(void);
int t2s_test_register_iface_wrap(void);
int t2s_test_register_sleep_merge(void);
int t2s_test_register_host_monitor(void);
int t2s_test_register_embed_packets(void);
int t2s_test_register_embed_memory(void);
int t2s_test_register_embed_protect(void);
int t2s_test_register_embed_abi(void);
int t2s_test_register_os_error(void);
int t2s_test_register_clock_test_offset(void);
int t2s_test_register_runner_loop(void);
int t2s_test_register_scenario_parse(void);
int t2s_test_register_proxy_health(void);
int t2s_test_register_config(void);
int t2s_test_register_engine_reload(void);

#endif
