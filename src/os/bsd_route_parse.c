/* bsd_route_parse.c: BSD routing-socket messages to network events (bsd_route_parse.h). */
#include "bsd_route_parse.h"

#include <string.h>

static uint16_t rd16(const uint8_t *p) {
  uint16_t v;
  memcpy(&v, p, 2); /* host byte order, as the kernel writes it */
  return v;
}

static int32_t rd32(const uint8_t *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Bytes a sockaddr of length sa_len occupies (Darwin's ROUNDUP to 4, 0 taking 4). */
static size_t sa_space(uint8_t sa_len) {
  return sa_len == 0 ? 4 : ((size_t)sa_len + 3) & ~(size_t)3;
}

static void sa_ip(const uint8_t *sa, t2s_addr *out) {
  memset(out, 0, sizeof(*out));
  uint8_t len = sa[0], fam = sa[1];
  if (fam == T2S_BSD_AF_INET && len >= 8) {
    out->family = T2S_AF_INET;
    memcpy(out->ip, sa + 4, 4);
  } else if (fam == T2S_BSD_AF_INET6 && len >= 24) {
    out->family = T2S_AF_INET6;
    memcpy(out->ip, sa + 8, 16);
    /* KAME embeds the scope in bytes 2-3 of link-local addresses inside the kernel's
     * messages: clear it, the index is in the message. */
    if (out->ip[0] == 0xfe && (out->ip[1] & 0xc0) == 0x80) {
      out->ip[2] = out->ip[3] = 0;
    }
  }
}

static void sa_link_name(const uint8_t *sa, char *out) {
  uint8_t len = sa[0], nlen = len >= 8 ? sa[5] : 0;
  if (sa[1] != T2S_BSD_AF_LINK || nlen == 0 || 8u + nlen > len || nlen >= T2S_IFNAMSIZ) {
    return;
  }
  memcpy(out, sa + 8, nlen);
  out[nlen] = 0;
}

/* A netmask sockaddr's prefix length: inet masks start at byte 4, inet6 at byte 8; a
 * shortened mask covers only its leading bytes. family is the destination's (the mask's own
 * family may be 0). */
static int sa_prefixlen(const uint8_t *sa, uint8_t family) {
  size_t off = family == T2S_AF_INET6 ? 8 : 4;
  size_t max = family == T2S_AF_INET6 ? 16 : 4;
  size_t have = sa[0] > off ? sa[0] - off : 0;
  if (have > max) {
    have = max;
  }
  int bits = 0;
  for (size_t i = 0; i < have; i++) {
    uint8_t b = sa[off + i];
    if (b == 0xff) {
      bits += 8;
      continue;
    }
    while (b & 0x80) {
      bits++;
      b = (uint8_t)(b << 1);
    }
    break;
  }
  return bits;
}

t2s_ssize t2s_bsd_route_parse(const uint8_t *buf, size_t len, t2s_bsd_route_msg *out,
                              size_t *pskip) {
  memset(out, 0, sizeof(*out));
  out->prefixlen = -1;
  if (pskip) {
    *pskip = 0;
  }
  if (len < 4) {
    return T2S_ERR_MALFORMED;
  }
  size_t msglen = rd16(buf);
  uint8_t version = buf[2], type = buf[3];
  if (msglen < 4 || msglen > len) {
    return T2S_ERR_MALFORMED;
  }
  size_t hdr;
  switch (type) {
  case T2S_BSD_RTM_ADD:
  case T2S_BSD_RTM_DELETE:
  case T2S_BSD_RTM_CHANGE:
    hdr = T2S_BSD_RT_MSGHDR_LEN;
    break;
  case T2S_BSD_RTM_IFINFO:
    hdr = T2S_BSD_IF_MSGHDR_LEN;
    break;
  case T2S_BSD_RTM_NEWADDR:
  case T2S_BSD_RTM_DELADDR:
    hdr = T2S_BSD_IFA_MSGHDR_LEN;
    break;
  default:
    hdr = 0;
    break;
  }
  if (hdr == 0 || version != T2S_BSD_RTM_VERSION) {
    if (pskip) {
      *pskip = msglen;
    }
    return 0;
  }
  if (msglen < hdr) {
    return T2S_ERR_MALFORMED;
  }
  out->type = type;
  if (hdr == T2S_BSD_RT_MSGHDR_LEN) {
    out->index = rd16(buf + 4);
    out->flags = rd32(buf + 8);
    out->addrs = rd32(buf + 12);
  } else {
    out->addrs = rd32(buf + 4);
    out->flags = rd32(buf + 8);
    out->index = rd16(buf + 12);
  }
  const uint8_t *netmask = NULL;
  size_t off = hdr;
  for (int bit = 0; bit < T2S_BSD_RTAX_MAX; bit++) {
    if (!(out->addrs & (1 << bit))) {
      continue;
    }
    if (off + 2 > msglen) {
      return T2S_ERR_MALFORMED;
    }
    const uint8_t *sa = buf + off;
    size_t space = sa_space(sa[0]);
    if (sa[0] > msglen - off) {
      return T2S_ERR_MALFORMED; /* the sockaddr runs past the message */
    }
    switch (1 << bit) {
    case T2S_BSD_RTA_DST:
      sa_ip(sa, &out->dst);
      break;
    case T2S_BSD_RTA_GATEWAY:
      sa_ip(sa, &out->gateway);
      if (sa[1] == T2S_BSD_AF_LINK) {
        out->gateway_is_link = true;
        if (!out->ifname[0]) {
          sa_link_name(sa, out->ifname);
        }
      }
      break;
    case T2S_BSD_RTA_NETMASK:
      netmask = sa;
      break;
    case T2S_BSD_RTA_IFP:
      sa_link_name(sa, out->ifname);
      break;
    case T2S_BSD_RTA_IFA:
      sa_ip(sa, &out->ifa);
      break;
    default:
      break;
    }
    off += space;
    if (off > msglen) {
      off = msglen; /* the last sockaddr's padding may be cut at the end of the message */
    }
  }
  if (netmask) {
    uint8_t fam = out->dst.family ? out->dst.family : out->ifa.family;
    if (fam == 0) {
      fam = netmask[1] == T2S_BSD_AF_INET6 ? T2S_AF_INET6 : T2S_AF_INET;
    }
    out->prefixlen = sa_prefixlen(netmask, fam);
  }
  return (t2s_ssize)msglen;
}

static bool is_unspecified(const t2s_addr *a) {
  static const uint8_t zero[16];
  return a->family != 0 && memcmp(a->ip, zero, a->family == T2S_AF_INET ? 4 : 16) == 0;
}

bool t2s_bsd_route_event(const t2s_bsd_route_msg *m, t2s_net_event *ev) {
  memset(ev, 0, sizeof(*ev));
  ev->ifindex = m->index;
  memcpy(ev->ifname, m->ifname, sizeof(ev->ifname));
  switch (m->type) {
  case T2S_BSD_RTM_IFINFO:
    ev->type = (m->flags & T2S_BSD_IFF_UP) && (m->flags & T2S_BSD_IFF_RUNNING) ? T2S_NET_LINK_UP
                                                                               : T2S_NET_LINK_DOWN;
    return true;
  case T2S_BSD_RTM_NEWADDR:
  case T2S_BSD_RTM_DELADDR:
    if (m->ifa.family == 0) {
      return false;
    }
    ev->type = m->type == T2S_BSD_RTM_NEWADDR ? T2S_NET_ADDR_ADDED : T2S_NET_ADDR_REMOVED;
    ev->family = m->ifa.family;
    ev->addr = m->ifa;
    ev->prefixlen = m->prefixlen < 0 ? 0 : (uint8_t)m->prefixlen;
    return true;
  case T2S_BSD_RTM_ADD:
  case T2S_BSD_RTM_DELETE:
  case T2S_BSD_RTM_CHANGE:
    if (m->dst.family == 0 || (m->flags & (T2S_BSD_RTF_WASCLONED | T2S_BSD_RTF_LLINFO))) {
      return false;
    }
    ev->family = m->dst.family;
    /* The default route: 0.0.0.0 or :: with a zero (or absent) netmask, not a host route. */
    if (is_unspecified(&m->dst) && m->prefixlen <= 0 && !(m->flags & T2S_BSD_RTF_HOST)) {
      ev->type = T2S_NET_DEFAULT_ROUTE_CHANGED;
      ev->removed = m->type == T2S_BSD_RTM_DELETE;
      if (!m->gateway_is_link) {
        ev->addr = m->gateway;
      }
      return true;
    }
    ev->type = T2S_NET_ROUTE_CHANGED;
    ev->addr = m->dst;
    ev->prefixlen = m->prefixlen < 0 ? (uint8_t)(m->dst.family == T2S_AF_INET ? 32 : 128)
                                     : (uint8_t)m->prefixlen;
    return true;
  default:
    return false;
  }
}
