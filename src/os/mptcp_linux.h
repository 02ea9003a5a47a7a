/*
 * mptcp_linux.h: Multipath TCP sockets on Linux (docs/mptcp.md): open one, and ask one what
 * it turned out to be. Thin wrappers over socket(IPPROTO_MPTCP) and getsockopt; no state.
 *
 * After the connect, TCP_IS_MPTCP tells whether the connection is MPTCP end to end (the far
 * end answered MP_CAPABLE) or fell back to TCP (the far end or a middlebox without MPTCP), and
 * MPTCP_SUBFLOW_ADDRS (Linux 5.17) how many subflows it has now and where they leave from.
 */
#ifndef T2S_MPTCP_LINUX_H
#define T2S_MPTCP_LINUX_H

#include "common.h"
#include "iface.h"

/* Subflows whose addresses t2s_mptcp_status reports at most. */
#define T2S_MPTCP_MAX_SUBFLOW_ADDRS 8

typedef struct t2s_mptcp_status {
  t2s_stream_mp mp;  /* T2S_STREAM_MULTIPATH or T2S_STREAM_FALLBACK */
  uint32_t subflows; /* subflows now (0 when fallen back, or the kernel cannot tell) */
  size_t naddrs;     /* of them, the first ones' local addresses */
  t2s_addr local[T2S_MPTCP_MAX_SUBFLOW_ADDRS];
} t2s_mptcp_status;

/* Opens a non-blocking, close-on-exec MPTCP stream socket of family af (AF_INET, AF_INET6).
 * Returns the fd, or -1 with errno set: EPROTONOSUPPORT, ENOPROTOOPT or EINVAL when the kernel
 * has no MPTCP or it is off (net.mptcp.enabled=0); the caller then opens plain TCP. */
int t2s_mptcp_socket(int af);

/* True when errno value err from t2s_mptcp_socket means "no MPTCP here" (not a resource limit). */
bool t2s_mptcp_unsupported(int err);

/* Asks connected MPTCP socket fd what it is now. Returns 0, or -errno when it cannot tell. */
int t2s_mptcp_status_get(int fd, t2s_mptcp_status *out);
/* Logs (debug) what upstream stream id turned out to be: fallen back, or its subflows. */
void t2s_mptcp_log_status(uint64_t id, const t2s_mptcp_status *st);

#endif
