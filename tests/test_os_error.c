/* test_os_error.c: the OS layer's one error dialect (src/os/os_error.c): each errno a driver
 * reads becomes the T2S_ERR_* its callers branch on (src/main.c's exit codes, the embedding
 * API's TUN2SOCK_ERR_CONFIG), never a raw -errno, never 0. */
#include <errno.h>

#include "os_error.h"
#include "test_util.h"

static void test_errno_classes(void) {
  CU_ASSERT_EQUAL(t2s_err_from_errno(EPERM), T2S_ERR_PERMISSION);
  CU_ASSERT_EQUAL(t2s_err_from_errno(EACCES), T2S_ERR_PERMISSION);
  CU_ASSERT_EQUAL(t2s_err_from_errno(ENOENT), T2S_ERR_NOT_FOUND);
  CU_ASSERT_EQUAL(t2s_err_from_errno(ENODEV), T2S_ERR_NOT_FOUND);
  CU_ASSERT_EQUAL(t2s_err_from_errno(EADDRNOTAVAIL), T2S_ERR_NOT_FOUND);
  CU_ASSERT_EQUAL(t2s_err_from_errno(EEXIST), T2S_ERR_EXISTS);
  CU_ASSERT_EQUAL(t2s_err_from_errno(EADDRINUSE), T2S_ERR_EXISTS);
  CU_ASSERT_EQUAL(t2s_err_from_errno(EBUSY), T2S_ERR_EXISTS);
  CU_ASSERT_EQUAL(t2s_err_from_errno(EINVAL), T2S_ERR_INVALID_ARGUMENT);
  CU_ASSERT_EQUAL(t2s_err_from_errno(EAGAIN), T2S_ERR_WOULDBLOCK);
  CU_ASSERT_EQUAL(t2s_err_from_errno(ENOMEM), T2S_ERR_NOMEM);
  CU_ASSERT_EQUAL(t2s_err_from_errno(ENOTSUP), T2S_ERR_UNSUPPORTED);
  CU_ASSERT_EQUAL(t2s_err_from_errno(EAFNOSUPPORT), T2S_ERR_UNSUPPORTED);
  CU_ASSERT_EQUAL(t2s_err_from_errno(ETIMEDOUT), T2S_ERR_TIMEOUT);
  CU_ASSERT_EQUAL(t2s_err_from_errno(ECONNREFUSED), T2S_ERR_REFUSED);
  CU_ASSERT_EQUAL(t2s_err_from_errno(ENETUNREACH), T2S_ERR_UNREACHABLE);
  CU_ASSERT_EQUAL(t2s_err_from_errno(EMFILE), T2S_ERR_LIMIT);
  CU_ASSERT_EQUAL(t2s_err_from_errno(ENOBUFS), T2S_ERR_LIMIT);
  CU_ASSERT_EQUAL(t2s_err_from_errno(EIO), T2S_ERR_INTERNAL);
}

/* Whatever comes in (0, an unknown number, a negative one by mistake), what goes out is a
 * negative T2S_ERR_* with a name: a caller can never mistake it for success or for -errno. */
static void test_always_a_named_error(void) {
  static const int in[] = {0, -1, -EPERM, 4095, 100000, EIO, ELOOP};
  for (size_t i = 0; i < T2S_ARRAY_LEN(in); i++) {
    int e = t2s_err_from_errno(in[i]);
    CU_ASSERT(e <= -200);
    CU_ASSERT_STRING_NOT_EQUAL(t2s_strerror(e), "unknown error");
  }
  CU_ASSERT_STRING_EQUAL(t2s_strerror(T2S_ERR_PERMISSION), "permission denied");
  CU_ASSERT_FALSE(t2s_err_is_fatal(T2S_ERR_PERMISSION));
}

int t2s_test_register_os_error(void) {
  CU_pSuite s = CU_add_suite("os_error", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "errno classes", test_errno_classes) ||
      !CU_add_test(s, "always a named error", test_always_a_named_error)) {
    return -1;
  }
  return 0;
}
