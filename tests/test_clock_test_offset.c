/* test_clock_test_offset.c: the test hook around the clock (src/os/clock_test_offset.c): chosen
 * only when TUN2SOCK_TEST_BOOTTIME_OFFSET_FILE is set; then boottime() adds the file's number
 * (read at each call, missing = 0) and now() and timer_arm() pass through untouched. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "clock_test_offset.h"
#include "test_util.h"

typedef struct fake_clock {
  t2s_tstamp now, boot, armed;
} fake_clock;

static t2s_tstamp f_now(void *self) {
  return ((fake_clock *)self)->now;
}
static t2s_tstamp f_boot(void *self) {
  return ((fake_clock *)self)->boot;
}
static void f_arm(void *self, t2s_tstamp d) {
  ((fake_clock *)self)->armed = d;
}
static const t2s_clock_ops fake_ops = {.now = f_now, .boottime = f_boot, .timer_arm = f_arm};

static void test_not_chosen_without_the_variable(void) {
  fake_clock fc = {.now = 5, .boot = 7};
  t2s_clock clk = {&fake_ops, &fc};
  t2s_clock_test_offset w;
  unsetenv(T2S_CLOCK_TEST_OFFSET_ENV);
  CU_ASSERT_FALSE(t2s_clock_test_offset_from_env(&w, &clk));
  CU_ASSERT_PTR_EQUAL(clk.ops, &fake_ops);
  CU_ASSERT_PTR_EQUAL(clk.self, &fc);
  setenv(T2S_CLOCK_TEST_OFFSET_ENV, "", 1);
  CU_ASSERT_FALSE(t2s_clock_test_offset_from_env(&w, &clk));
  unsetenv(T2S_CLOCK_TEST_OFFSET_ENV);
}

static void test_boottime_offset_from_file(void) {
  char path[] = "/tmp/t2s-clock-offset-XXXXXX";
  int fd = mkstemp(path);
  CU_ASSERT_FATAL(fd >= 0);
  close(fd);
  unlink(path); /* missing at first: offset 0 */
  fake_clock fc = {.now = 1000, .boot = 2000};
  t2s_clock clk = {&fake_ops, &fc};
  t2s_clock_test_offset w;
  setenv(T2S_CLOCK_TEST_OFFSET_ENV, path, 1);
  CU_ASSERT_TRUE(t2s_clock_test_offset_from_env(&w, &clk));
  unsetenv(T2S_CLOCK_TEST_OFFSET_ENV);
  CU_ASSERT_PTR_EQUAL(clk.self, &w);
  CU_ASSERT_EQUAL(clk.ops->boottime(clk.self), 2000);
  FILE *f = fopen(path, "w");
  CU_ASSERT_FATAL(f != NULL);
  fprintf(f, "30000000000\n");
  fclose(f);
  CU_ASSERT_EQUAL(clk.ops->boottime(clk.self), 2000 + 30 * T2S_SECONDS);
  CU_ASSERT_EQUAL(clk.ops->now(clk.self), 1000); /* now() is not moved */
  fc.boot = 2500;
  CU_ASSERT_EQUAL(clk.ops->boottime(clk.self), 2500 + 30 * T2S_SECONDS);
  clk.ops->timer_arm(clk.self, 12345);
  CU_ASSERT_EQUAL(fc.armed, 12345);
  unlink(path);
  CU_ASSERT_EQUAL(clk.ops->boottime(clk.self), 2500);
}

int t2s_test_register_clock_test_offset(void) {
  CU_pSuite s = CU_add_suite("clock_test_offset", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "not chosen without the variable", test_not_chosen_without_the_variable) ||
      !CU_add_test(s, "boottime offset from the file", test_boottime_offset_from_file)) {
    return -1;
  }
  return 0;
}
