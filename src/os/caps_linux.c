/* caps_linux.c: capability dropping with raw syscalls (see caps_linux.h). */
#include "caps_linux.h"

#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "os_error.h"

static int cap_get(struct __user_cap_data_struct data[2]) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  memset(data, 0, 2 * sizeof(data[0]));
  return (int)syscall(SYS_capget, &hdr, data);
}

static int cap_set(struct __user_cap_data_struct data[2]) {
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  return (int)syscall(SYS_capset, &hdr, data);
}

bool t2s_caps_have(int cap) {
  struct __user_cap_data_struct d[2];
  if (cap < 0 || cap >= 64 || cap_get(d) != 0) {
    return false;
  }
  return (d[cap / 32].effective >> (cap % 32)) & 1u;
}

static int last_cap(void) {
  FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "r");
  int last = CAP_LAST_CAP;
  if (f) {
    if (fscanf(f, "%d", &last) != 1) {
      last = CAP_LAST_CAP;
    }
    fclose(f);
  }
  return last < 63 ? last : 63;
}

/* errno of a failed call: kept for the caller's message, translated for its code. */
static int failed(int *perrno) {
  *perrno = errno;
  return t2s_err_from_errno(errno);
}

int t2s_caps_restrict(uint64_t keep, int *perrno) {
  *perrno = 0;
  struct __user_cap_data_struct d[2];
  if (cap_get(d) != 0) {
    return failed(perrno);
  }
  uint64_t eff = (uint64_t)d[0].effective | ((uint64_t)d[1].effective << 32);
  uint64_t perm = (uint64_t)d[0].permitted | ((uint64_t)d[1].permitted << 32);
  /* The bounding set first: it needs CAP_SETPCAP, which is about to go. */
  if (eff & (1ull << CAP_SETPCAP)) {
    int last = last_cap();
    for (int c = 0; c <= last; c++) {
      if (!(keep & (1ull << c))) {
        prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
      }
    }
  }
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  uint64_t new_perm = perm & keep;
  uint64_t new_eff = new_perm; /* what is kept is also in effect */
  d[0].effective = (uint32_t)new_eff;
  d[1].effective = (uint32_t)(new_eff >> 32);
  d[0].permitted = (uint32_t)new_perm;
  d[1].permitted = (uint32_t)(new_perm >> 32);
  d[0].inheritable = 0;
  d[1].inheritable = 0;
  if (cap_set(d) != 0) {
    return failed(perrno);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return failed(perrno);
  }
  return 0;
}

bool t2s_kernel_older_than(int major, int minor) {
  struct utsname u;
  int ma = 0, mi = 0;
  if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2) {
    return true; /* unknown: assume the conservative answer */
  }
  return ma < major || (ma == major && mi < minor);
}
