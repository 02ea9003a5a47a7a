/*
 * os_error.h: the OS layer's one error dialect. Every driver API in src/os returns 0 or a
 * negative T2S_ERR_* (common.h), like the core. errno is translated where it is read, by
 * t2s_err_from_errno(); a driver whose caller words a message from the errno (strerror) hands
 * it out beside the code (an `int *perrno` or a `why` buffer). Exit codes exist only in
 * src/main.c.
 */
#ifndef T2S_OS_ERROR_H
#define T2S_OS_ERROR_H

#include "common.h"

/* The T2S_ERR_* for a positive errno value: EPERM/EACCES -> PERMISSION, ENOENT/ENODEV/ESRCH/
 * EADDRNOTAVAIL -> NOT_FOUND, EEXIST/EADDRINUSE/EBUSY -> EXISTS, EINVAL -> INVALID_ARGUMENT,
 * EAGAIN -> WOULDBLOCK, ENOMEM -> NOMEM, ENOTSUP/EAFNOSUPPORT/ENOSYS -> UNSUPPORTED,
 * ETIMEDOUT -> TIMEOUT, ECONNREFUSED -> REFUSED, ENETUNREACH/EHOSTUNREACH/ENETDOWN ->
 * UNREACHABLE, EMFILE/ENFILE/ENOBUFS -> LIMIT, anything else (and 0) -> INTERNAL. */
int t2s_err_from_errno(int err);

#endif
