/*
 * netlink_linux.h: synchronous rtnetlink requests through libmnl (what `ip addr`, `ip link`
 * and `ip route get` do, without running them). Each call opens its own NETLINK_ROUTE socket,
 * sends one request and waits for the kernel's answer.
 *
 * Errors are returned as negative errno values (-EPERM, -EEXIST, -ENODEV, ...), so callers
 * can tell a missing privilege from the rest.
 */
#ifndef T2S_NETLINK_LINUX_H
#define T2S_NETLINK_LINUX_H

#include <libmnl/libmnl.h>

#include "common.h"

/* Opens a NETLINK_ROUTE socket, close-on-exec with the extra SOCK_* flags (SOCK_NONBLOCK or 0),
 * bound to the multicast groups (0: none, for requests and dumps). Returns it, or NULL with
 * errno set. Close it with mnl_socket_close(). */
struct mnl_socket *t2s_nl_socket_open(int flags, unsigned groups);

/* One request or dump on nl, the loop every rtnetlink conversation here shares: sends nlh with
 * sequence number seq (a dump when NLM_F_DUMP is set; otherwise NLM_F_ACK is added and the
 * answer ends at the kernel's ACK), then reads the answers into buf (buflen bytes) and runs each
 * message through cb (NULL: none) until NLMSG_DONE, the ACK or an error. Reads at most max_reads
 * datagrams. Returns 0, or -errno (the kernel's NLMSG_ERROR, a socket error, or -EIO when
 * max_reads ran out). */
int t2s_nl_talk(struct mnl_socket *nl, struct nlmsghdr *nlh, unsigned seq, void *buf, size_t buflen,
                unsigned max_reads, mnl_cb_t cb, void *arg);

/* Adds (add=true) or removes an address on interface ifindex. IPv6 addresses are added with
 * IFA_F_NODAD so they are usable at once. Returns 0 or -errno (-EEXIST when already there,
 * -EADDRNOTAVAIL when removing an absent one). */
int t2s_nl_addr(uint32_t ifindex, const t2s_addr *addr, uint8_t prefixlen, bool add);

/* Sets the MTU (when mtu != 0) and brings the link up (up=true) or down. Returns 0 or -errno. */
int t2s_nl_link_set(uint32_t ifindex, uint32_t mtu, bool up);

/* Sets the transmit queue length (IFLA_TXQLEN, `ip link set DEV txqueuelen N`; on a TUN the
 * queue of packets waiting for the reader), leaving the link's flags alone. Returns 0 or
 * -errno. */
int t2s_nl_link_txqlen(uint32_t ifindex, uint32_t txqlen);

/* Deletes the link ifindex. Returns 0 or -errno. */
int t2s_nl_link_del(uint32_t ifindex);

/* The answer to RTM_GETROUTE. */
typedef struct t2s_nl_route {
  uint32_t oif;     /* output interface (0 when none) */
  uint8_t type;     /* RTN_UNICAST, RTN_LOCAL, ... */
  t2s_addr prefsrc; /* family 0 when absent */
  t2s_addr gateway; /* family 0 when absent */
} t2s_nl_route;

/* Asks the kernel how it reaches dst (`ip route get DST mark MARK`, mark 0 = none).
 * Returns 0, or -errno (-ENETUNREACH, -EHOSTUNREACH when there is no route). */
int t2s_nl_route_get(const t2s_addr *dst, uint32_t mark, t2s_nl_route *out);

#endif
