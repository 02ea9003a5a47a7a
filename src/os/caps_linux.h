/*
 * caps_linux.h: Linux capabilities without libcap (raw capget/capset and prctl).
 *
 * The binary needs CAP_NET_ADMIN to create and configure its TUN; afterwards it keeps only
 * what it still uses (CAP_NET_ADMIN for SO_MARK and for taking its addresses back from a TUN
 * that outlives it, CAP_NET_RAW for SO_BINDTODEVICE on kernels before 5.7) and drops the rest.
 */
#ifndef T2S_CAPS_LINUX_H
#define T2S_CAPS_LINUX_H

#include <stdbool.h>
#include <stdint.h>

/* True when cap (CAP_*) is in the effective set. */
bool t2s_caps_have(int cap);

/* Keeps only the capabilities in the bit mask `keep` (1ull << CAP_*) that are held now, in the
 * effective and permitted sets; clears the inheritable and ambient sets; drops the others from
 * the bounding set when CAP_SETPCAP allows it; sets no_new_privs. Returns 0, or the T2S_ERR_*
 * of the first failing call with *perrno its errno. */
int t2s_caps_restrict(uint64_t keep, int *perrno);

/* True when the running kernel is older than major.minor. */
bool t2s_kernel_older_than(int major, int minor);

#endif
