/* os_placeholder.c: keeps the OS driver library non-empty on every build. */
#include "common.h"

const char *t2s_os_name(void) {
  return "linux";
}
