/* netlink_linux.c: one-shot rtnetlink requests with libmnl (see netlink_linux.h). */
#include "netlink_linux.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <net/if.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The kernel's answers to one request are small: 8 KiB holds them. */
#define NL_BUFSIZE 8192

struct mnl_socket *t2s_nl_socket_open(int flags, unsigned groups) {
  struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | flags);
  if (nl && mnl_socket_bind(nl, groups, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(nl);
    errno = err;
    return NULL;
  }
  return nl;
}

int t2s_nl_talk(struct mnl_socket *nl, struct nlmsghdr *nlh, unsigned seq, void *buf, size_t buflen,
                unsigned max_reads, mnl_cb_t cb, void *arg) {
  if ((nlh->nlmsg_flags & NLM_F_DUMP) != NLM_F_DUMP) {
    nlh->nlmsg_flags |= NLM_F_ACK;
  }
  nlh->nlmsg_seq = seq;
  if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
    return -errno;
  }
  unsigned portid = mnl_socket_get_portid(nl);
  /* Bounded by max_reads. */
  for (unsigned rounds = 0; rounds < max_reads; rounds++) {
    ssize_t n = mnl_socket_recvfrom(nl, buf, buflen);
    if (n < 0) {
      return -errno;
    }
    int r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, arg);
    if (r < 0) {
      return -errno;
    }
    if (r == MNL_CB_STOP) {
      return 0;
    }
  }
  return -EIO;
}

/* One request on a socket of its own: the kernel answers with a handful of messages and one
 * ACK. Returns 0 or -errno. */
static int nl_transact(struct nlmsghdr *nlh, mnl_cb_t cb, void *arg) {
  struct mnl_socket *nl = t2s_nl_socket_open(0, 0);
  if (!nl) {
    return -errno;
  }
  char buf[NL_BUFSIZE];
  int rv = t2s_nl_talk(nl, nlh, (unsigned)time(NULL), buf, sizeof(buf), 64, cb, arg);
  mnl_socket_close(nl);
  return rv;
}

static void put_ip(const t2s_addr *a, uint8_t *out, size_t *plen) {
  *plen = a->family == T2S_AF_INET ? 4 : 16;
  memcpy(out, a->ip, *plen);
}

int t2s_nl_addr(uint32_t ifindex, const t2s_addr *addr, uint8_t prefixlen, bool add) {
  char buf[NL_BUFSIZE];
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = add ? RTM_NEWADDR : RTM_DELADDR;
  nlh->nlmsg_flags = NLM_F_REQUEST | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
  struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
  ifa->ifa_family = addr->family == T2S_AF_INET ? AF_INET : AF_INET6;
  ifa->ifa_prefixlen = prefixlen;
  ifa->ifa_index = ifindex;
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  if (addr->family == T2S_AF_INET6) {
    ifa->ifa_flags = IFA_F_NODAD;
  }
  uint8_t ip[16];
  size_t iplen;
  put_ip(addr, ip, &iplen);
  mnl_attr_put(nlh, IFA_LOCAL, iplen, ip);
  mnl_attr_put(nlh, IFA_ADDRESS, iplen, ip);
  if (addr->family == T2S_AF_INET6) {
    mnl_attr_put_u32(nlh, IFA_FLAGS, IFA_F_NODAD);
  }
  return nl_transact(nlh, NULL, NULL);
}

/* Starts an RTM_NEWLINK/RTM_DELLINK request about ifindex in buf; returns its ifinfomsg. */
static struct ifinfomsg *link_request(char *buf, uint16_t type, uint32_t ifindex,
                                      struct nlmsghdr **pnlh) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = (int)ifindex;
  *pnlh = nlh;
  return ifi;
}

int t2s_nl_link_set(uint32_t ifindex, uint32_t mtu, bool up) {
  char buf[NL_BUFSIZE];
  struct nlmsghdr *nlh;
  struct ifinfomsg *ifi = link_request(buf, RTM_NEWLINK, ifindex, &nlh);
  ifi->ifi_change = IFF_UP;
  ifi->ifi_flags = up ? IFF_UP : 0;
  if (mtu) {
    mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
  }
  return nl_transact(nlh, NULL, NULL);
}

int t2s_nl_link_txqlen(uint32_t ifindex, uint32_t txqlen) {
  char buf[NL_BUFSIZE];
  struct nlmsghdr *nlh;
  (void)link_request(buf, RTM_NEWLINK, ifindex, &nlh); /* ifi_change 0: flags untouched */
  mnl_attr_put_u32(nlh, IFLA_TXQLEN, txqlen);
  return nl_transact(nlh, NULL, NULL);
}

int t2s_nl_link_del(uint32_t ifindex) {
  char buf[NL_BUFSIZE];
  struct nlmsghdr *nlh;
  (void)link_request(buf, RTM_DELLINK, ifindex, &nlh);
  return nl_transact(nlh, NULL, NULL);
}

static void get_ip(const struct nlattr *attr, uint8_t family, t2s_addr *out) {
  size_t want = family == AF_INET ? 4 : 16;
  if (mnl_attr_get_payload_len(attr) != want) {
    return;
  }
  memset(out, 0, sizeof(*out));
  out->family = family == AF_INET ? T2S_AF_INET : T2S_AF_INET6;
  memcpy(out->ip, mnl_attr_get_payload(attr), want);
}

typedef struct route_get_ctx {
  t2s_nl_route *out;
  bool found;
} route_get_ctx;

static int route_attr_cb(const struct nlattr *attr, void *arg) {
  const struct nlattr **tb = arg;
  int type = mnl_attr_get_type(attr);
  if (mnl_attr_type_valid(attr, RTA_MAX) < 0) {
    return MNL_CB_OK;
  }
  tb[type] = attr;
  return MNL_CB_OK;
}

static int route_msg_cb(const struct nlmsghdr *nlh, void *arg) {
  route_get_ctx *ctx = arg;
  if (nlh->nlmsg_type != RTM_NEWROUTE) {
    return MNL_CB_OK;
  }
  const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
  const struct nlattr *tb[RTA_MAX + 1];
  memset(tb, 0, sizeof(tb));
  mnl_attr_parse(nlh, sizeof(*rtm), route_attr_cb, tb);
  memset(ctx->out, 0, sizeof(*ctx->out));
  ctx->out->type = rtm->rtm_type;
  if (tb[RTA_OIF] && mnl_attr_get_payload_len(tb[RTA_OIF]) == 4) {
    ctx->out->oif = mnl_attr_get_u32(tb[RTA_OIF]);
  }
  if (tb[RTA_PREFSRC]) {
    get_ip(tb[RTA_PREFSRC], rtm->rtm_family, &ctx->out->prefsrc);
  }
  if (tb[RTA_GATEWAY]) {
    get_ip(tb[RTA_GATEWAY], rtm->rtm_family, &ctx->out->gateway);
  }
  ctx->found = true;
  return MNL_CB_OK;
}

int t2s_nl_route_get(const t2s_addr *dst, uint32_t mark, t2s_nl_route *out) {
  if (dst->family != T2S_AF_INET && dst->family != T2S_AF_INET6) {
    return -EINVAL;
  }
  char buf[NL_BUFSIZE];
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
  rtm->rtm_family = dst->family == T2S_AF_INET ? AF_INET : AF_INET6;
  rtm->rtm_dst_len = dst->family == T2S_AF_INET ? 32 : 128;
  uint8_t ip[16];
  size_t iplen;
  put_ip(dst, ip, &iplen);
  mnl_attr_put(nlh, RTA_DST, iplen, ip);
  if (mark) {
    mnl_attr_put_u32(nlh, RTA_MARK, mark);
  }
  route_get_ctx ctx = {.out = out, .found = false};
  int rv = nl_transact(nlh, route_msg_cb, &ctx);
  if (rv == 0 && !ctx.found) {
    rv = -ENETUNREACH;
  }
  return rv;
}
