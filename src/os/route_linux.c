/* route_linux.c: route queries and the egress choice (see route_linux.h). */
#include "route_linux.h"

#include <errno.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netlink_linux.h"

static bool is_loopback(const char *ifname) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return strcmp(ifname, "lo") == 0;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
  bool lo = false;
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
    lo = (ifr.ifr_flags & IFF_LOOPBACK) != 0;
  } else {
    lo = strcmp(ifname, "lo") == 0;
  }
  close(fd);
  return lo;
}

int t2s_route_query(const t2s_addr *dst, uint32_t mark, t2s_route *out) {
  t2s_nl_route r;
  int rv = t2s_nl_route_get(dst, mark, &r);
  if (rv == -EINVAL) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (rv == -ENETUNREACH || rv == -EHOSTUNREACH || rv == -ENETDOWN || rv == -EACCES ||
      rv == -EPERM || rv == -EINVAL || rv == -ESRCH) {
    return T2S_ERR_UNREACHABLE;
  }
  if (rv < 0) {
    return T2S_ERR_INTERNAL;
  }
  if (r.type != RTN_UNICAST && r.type != RTN_LOCAL) {
    return T2S_ERR_UNREACHABLE; /* blackhole, unreachable, prohibit */
  }
  memset(out, 0, sizeof(*out));
  out->ifindex = r.oif;
  if (r.oif == 0 || !if_indextoname(r.oif, out->ifname)) {
    out->ifname[0] = '\0';
  }
  out->src = r.prefsrc;
  out->local = r.type == RTN_LOCAL || (out->ifname[0] && is_loopback(out->ifname));
  return 0;
}

int t2s_egress_select(const t2s_addr *proxy, uint32_t mark, const char *pin_ifname,
                      uint32_t tun_ifindex, t2s_egress_choice *out, char *why, size_t whylen) {
  memset(out, 0, sizeof(*out));
  out->egress.mark = mark;
  why[0] = '\0';
  if (pin_ifname && pin_ifname[0]) {
    unsigned idx = if_nametoindex(pin_ifname);
    if (idx == 0) {
      snprintf(why, whylen, "--interface %s: no such interface", pin_ifname);
      return T2S_ERR_NOT_FOUND;
    }
    if (idx == tun_ifindex) {
      snprintf(why, whylen, "--interface %s is our own TUN device", pin_ifname);
      return T2S_ERR_PROTO;
    }
    out->egress.ifindex = idx;
    snprintf(out->egress.ifname, sizeof(out->egress.ifname), "%s", pin_ifname);
    out->pinned = true;
    snprintf(why, whylen, "pinned to %s by --interface", pin_ifname);
    return 0;
  }
  t2s_route r;
  char pbuf[64];
  t2s_addr_format(proxy, false, pbuf, sizeof(pbuf));
  int rv = t2s_route_query(proxy, mark, &r);
  if (rv == T2S_ERR_UNREACHABLE) {
    out->no_route = true;
    snprintf(why, whylen, "no route to the proxy %s yet: sockets left unbound", pbuf);
    return 0;
  }
  if (rv != 0) {
    snprintf(why, whylen, "route query for the proxy %s failed: %s", pbuf, t2s_strerror(rv));
    return rv;
  }
  if (r.local) {
    out->local_proxy = true;
    snprintf(why, whylen, "the proxy %s is on this host: sockets left unbound", pbuf);
    return 0;
  }
  if (tun_ifindex != 0 && r.ifindex == tun_ifindex) {
    snprintf(why, whylen,
             "the route to the proxy %s goes through our own TUN %s (a loop): add a route to "
             "the proxy through the real interface, or use --interface or --fwmark",
             pbuf, r.ifname);
    return T2S_ERR_PROTO;
  }
  out->egress.ifindex = r.ifindex;
  memcpy(out->egress.ifname, r.ifname, sizeof(out->egress.ifname));
  snprintf(why, whylen, "the route to the proxy %s leaves through %s", pbuf, r.ifname);
  return 0;
}
