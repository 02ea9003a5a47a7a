/* os_error.c: errno to T2S_ERR_* (see os_error.h). */
#include "os_error.h"

#include <errno.h>

int t2s_err_from_errno(int err) {
  switch (err) {
  case EPERM:
  case EACCES:
    return T2S_ERR_PERMISSION;
  case ENOENT:
  case ENODEV:
  case ENXIO:
  case ESRCH:
  case EADDRNOTAVAIL:
    return T2S_ERR_NOT_FOUND;
  case EEXIST:
  case EADDRINUSE:
  case EBUSY:
    return T2S_ERR_EXISTS;
  case EINVAL:
  case ERANGE:
  case E2BIG:
  case ENAMETOOLONG:
    return T2S_ERR_INVALID_ARGUMENT;
  case EAGAIN:
  case EINTR:
    return T2S_ERR_WOULDBLOCK;
  case ENOMEM:
    return T2S_ERR_NOMEM;
  case ENOTSUP:
  case EAFNOSUPPORT:
  case EPROTONOSUPPORT:
  case ENOSYS:
    return T2S_ERR_UNSUPPORTED;
  case ETIMEDOUT:
    return T2S_ERR_TIMEOUT;
  case ECONNREFUSED:
    return T2S_ERR_REFUSED;
  case ENETUNREACH:
  case EHOSTUNREACH:
  case ENETDOWN:
    return T2S_ERR_UNREACHABLE;
  case EMFILE:
  case ENFILE:
  case ENOBUFS:
    return T2S_ERR_LIMIT;
  default:
    return T2S_ERR_INTERNAL;
  }
}
