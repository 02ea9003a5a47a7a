/* test_assert.c: T2S_ASSERT aborts with file:line and the condition when asserts are compiled
 * in (Debug, ASan, fuzz builds), and does not even evaluate its condition when they are not. */
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "test_util.h"

#ifdef T2S_ENABLE_ASSERTS
/* A child process runs a failing assert; the parent reads its stderr and its end. */
static void test_assert_aborts_with_location(void) {
  int fds[2];
  CU_ASSERT_FATAL(pipe(fds) == 0);
  pid_t pid = fork();
  CU_ASSERT_FATAL(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], STDERR_FILENO);
    volatile int x = 1;
    T2S_ASSERT(x == 2);
    _exit(0);
  }
  close(fds[1]);
  char buf[512];
  size_t len = 0;
  for (int i = 0; i < 64 && len < sizeof(buf) - 1; i++) {
    ssize_t n = read(fds[0], buf + len, sizeof(buf) - 1 - len);
    if (n <= 0) {
      break;
    }
    len += (size_t)n;
  }
  buf[len] = '\0';
  close(fds[0]);
  int status = 0;
  CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
  CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "test_assert.c:"));
  CU_ASSERT_PTR_NOT_NULL(strstr(buf, "assertion failed: x == 2"));
}
#else
static void test_assert_off_does_not_evaluate(void) {
  int n = 0;
  T2S_ASSERT(++n == 5);
  CU_ASSERT_EQUAL(n, 0);
}
#endif

static void test_assert_true_passes(void) {
  int n = 3;
  T2S_ASSERT(n == 3);
  CU_ASSERT_EQUAL(n, 3);
}

int t2s_test_register_assert(void) {
  CU_pSuite s = CU_add_suite("assert", NULL, NULL);
  if (s == NULL) {
    return -1;
  }
#ifdef T2S_ENABLE_ASSERTS
  CU_add_test(s, "assert_aborts_with_location", test_assert_aborts_with_location);
#else
  CU_add_test(s, "assert_off_does_not_evaluate", test_assert_off_does_not_evaluate);
#endif
  CU_add_test(s, "assert_true_passes", test_assert_true_passes);
  return 0;
}
