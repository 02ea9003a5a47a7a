/* mptcp_linux.c: Multipath TCP sockets (see mptcp_linux.h). */
#include "mptcp_linux.h"

#include <errno.h>
#include <linux/mptcp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

#ifndef SOL_MPTCP
#define SOL_MPTCP 284
#endif
#ifndef TCP_IS_MPTCP
#define TCP_IS_MPTCP 43 /* linux/tcp.h since 5.16 */
#endif
#ifndef MPTCP_SUBFLOW_ADDRS
#define MPTCP_SUBFLOW_ADDRS 3
#endif

int t2s_mptcp_socket(int af) {
  return socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_MPTCP);
}

bool t2s_mptcp_unsupported(int err) {
  return err == EPROTONOSUPPORT || err == ENOPROTOOPT || err == EINVAL || err == EAFNOSUPPORT ||
         err == ESOCKTNOSUPPORT;
}

static void from_sockaddr(const struct sockaddr_storage *ss, t2s_addr *out) {
  memset(out, 0, sizeof(*out));
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    out->family = T2S_AF_INET;
    memcpy(out->ip, &sin->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    out->family = T2S_AF_INET6;
    memcpy(out->ip, &sin6->sin6_addr, 16);
  }
}

int t2s_mptcp_status_get(int fd, t2s_mptcp_status *out) {
  memset(out, 0, sizeof(*out));
  int is = 0;
  socklen_t len = sizeof(is);
  if (getsockopt(fd, IPPROTO_TCP, TCP_IS_MPTCP, &is, &len) < 0) {
    return -errno;
  }
  if (!is) {
    /* A fallen-back connection answers as its one TCP subflow. */
    out->mp = T2S_STREAM_FALLBACK;
    return 0;
  }
  out->mp = T2S_STREAM_MULTIPATH;
  struct {
    struct mptcp_subflow_data d;
    struct mptcp_subflow_addrs a[T2S_MPTCP_MAX_SUBFLOW_ADDRS];
  } buf;
  memset(&buf, 0, sizeof(buf));
  buf.d.size_subflow_data = sizeof(buf.d);
  buf.d.size_user = sizeof(buf.a[0]);
  len = sizeof(buf);
  if (getsockopt(fd, SOL_MPTCP, MPTCP_SUBFLOW_ADDRS, &buf, &len) < 0) {
    return 0; /* before 5.17: multipath, subflows unknown */
  }
  out->subflows = buf.d.num_subflows;
  out->naddrs = T2S_MIN((size_t)buf.d.num_subflows, (size_t)T2S_MPTCP_MAX_SUBFLOW_ADDRS);
  for (size_t i = 0; i < out->naddrs; i++) {
    struct sockaddr_storage ss;
    memcpy(&ss, &buf.a[i].ss_local, sizeof(ss));
    from_sockaddr(&ss, &out->local[i]);
  }
  return 0;
}

void t2s_mptcp_log_status(uint64_t id, const t2s_mptcp_status *st) {
  if (st->mp == T2S_STREAM_FALLBACK) {
    T2S_DEBUG("upstream stream %llu: fell back to TCP (the proxy or the path has no MPTCP)",
              (unsigned long long)id);
    return;
  }
  char list[T2S_MPTCP_MAX_SUBFLOW_ADDRS * 48] = "";
  size_t used = 0;
  for (size_t i = 0; i < st->naddrs && used < sizeof(list); i++) {
    char a[64];
    t2s_addr_format(&st->local[i], false, a, sizeof(a));
    used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", a);
  }
  T2S_DEBUG("upstream stream %llu: multipath, %u subflow%s%s%s%s", (unsigned long long)id,
            st->subflows, st->subflows == 1 ? "" : "s", used ? " (from " : "", list,
            used ? ")" : "");
}
