/*
 * bsd_route_parse.h: a parser for BSD routing-socket messages (PF_ROUTE, route(4)) as macOS
 * delivers them: RTM_IFINFO (link flags), RTM_NEWADDR / RTM_DELADDR (interface addresses),
 * RTM_ADD / RTM_DELETE / RTM_CHANGE (routes). Portable: it includes no BSD header; the message
 * layouts and constants are written out below from the route(4) manual and <net/route.h>,
 * <net/if.h> of macOS (Darwin), so it builds and is tested on Linux with byte vectors
 * (tests/test_bsd_route.c). docs/macos.md describes the glue that will feed it. Until a BSD
 * driver uses it, only the unit tests build it (CMakeLists.txt): libt2s_os.a does not ship it.
 *
 * Layouts (Darwin, host byte order, natural alignment):
 *   struct rt_msghdr   (92 bytes)  msglen u16 @0, version u8 @2, type u8 @3, index u16 @4,
 *                                  flags i32 @8, addrs i32 @12, pid i32 @16, seq i32 @20,
 *                                  errno i32 @24, use i32 @28, inits u32 @32, rmx @36 (56)
 *   struct if_msghdr   (112 bytes) msglen @0, version @2, type @3, addrs i32 @4, flags i32 @8,
 *                                  index u16 @12, if_data @16 (96)
 *   struct ifa_msghdr  (20 bytes)  msglen @0, version @2, type @3, addrs i32 @4, flags i32 @8,
 *                                  index u16 @12, metric i32 @16
 * The header is followed by one sockaddr per bit set in `addrs`, in bit order (RTA_DST,
 * RTA_GATEWAY, RTA_NETMASK, RTA_GENMASK, RTA_IFP, RTA_IFA, RTA_AUTHOR, RTA_BRD), each padded
 * to a multiple of 4 bytes (sa_len 0 takes 4). A netmask may be shortened (sa_len covers only
 * its non-zero bytes; sa_family may be 0).
 */
#ifndef T2S_BSD_ROUTE_PARSE_H
#define T2S_BSD_ROUTE_PARSE_H

#include "iface.h"

/* Message types (Darwin <net/route.h>). */
enum {
  T2S_BSD_RTM_ADD = 0x1,
  T2S_BSD_RTM_DELETE = 0x2,
  T2S_BSD_RTM_CHANGE = 0x3,
  T2S_BSD_RTM_GET = 0x4,
  T2S_BSD_RTM_NEWADDR = 0xc,
  T2S_BSD_RTM_DELADDR = 0xd,
  T2S_BSD_RTM_IFINFO = 0xe,
  T2S_BSD_RTM_VERSION = 5,
};

/* rtm_addrs bits. */
enum {
  T2S_BSD_RTA_DST = 0x1,
  T2S_BSD_RTA_GATEWAY = 0x2,
  T2S_BSD_RTA_NETMASK = 0x4,
  T2S_BSD_RTA_GENMASK = 0x8,
  T2S_BSD_RTA_IFP = 0x10,
  T2S_BSD_RTA_IFA = 0x20,
  T2S_BSD_RTA_AUTHOR = 0x40,
  T2S_BSD_RTA_BRD = 0x80,
  T2S_BSD_RTAX_MAX = 8,
};

/* Route flags (rtm_flags) and interface flags (ifm_flags) this parser looks at. */
enum {
  T2S_BSD_RTF_UP = 0x1,
  T2S_BSD_RTF_GATEWAY = 0x2,
  T2S_BSD_RTF_HOST = 0x4,
  T2S_BSD_RTF_LLINFO = 0x400,      /* ARP / neighbour entries */
  T2S_BSD_RTF_WASCLONED = 0x20000, /* a clone of a network route (per destination) */
  T2S_BSD_RTF_IFSCOPE = 0x1000000, /* a scoped route (IP_BOUND_IF) */
  T2S_BSD_IFF_UP = 0x1,
  T2S_BSD_IFF_LOOPBACK = 0x8,
  T2S_BSD_IFF_RUNNING = 0x40,
};

/* Address families as Darwin numbers them. */
enum { T2S_BSD_AF_INET = 2, T2S_BSD_AF_LINK = 18, T2S_BSD_AF_INET6 = 30 };

#define T2S_BSD_RT_MSGHDR_LEN 92
#define T2S_BSD_IF_MSGHDR_LEN 112
#define T2S_BSD_IFA_MSGHDR_LEN 20

/* One parsed message. */
typedef struct t2s_bsd_route_msg {
  uint8_t type;   /* T2S_BSD_RTM_* */
  uint32_t index; /* interface index (rtm_index, ifm_index, ifam_index) */
  int32_t flags;  /* rtm_flags, ifm_flags or ifam_flags */
  int32_t addrs;  /* the RTA_* bits present */
  t2s_addr dst;   /* RTA_DST (inet/inet6), family 0 when absent or another family */
  t2s_addr gateway;
  bool gateway_is_link;      /* RTA_GATEWAY is an AF_LINK sockaddr (a directly connected route) */
  t2s_addr ifa;              /* RTA_IFA: the interface address */
  int prefixlen;             /* from RTA_NETMASK; -1 when absent */
  char ifname[T2S_IFNAMSIZ]; /* from an AF_LINK RTA_IFP (or link gateway), "" when absent */
} t2s_bsd_route_msg;

/*
 * Parses the message at buf (one message; its msglen must fit in len). Returns the message
 * length (so a buffer of several messages can be walked), 0 for a message of a type or
 * version this parser skips (its length is then in *pskip when not NULL), or
 * T2S_ERR_MALFORMED (truncated header or sockaddrs, msglen shorter than the header or longer
 * than len).
 */
t2s_ssize t2s_bsd_route_parse(const uint8_t *buf, size_t len, t2s_bsd_route_msg *out,
                              size_t *pskip);

/*
 * Translates a parsed message into a network event. Returns true and fills *ev for:
 *   RTM_IFINFO: LINK_UP when IFF_UP and IFF_RUNNING, else LINK_DOWN (the caller drops repeats);
 *   RTM_NEWADDR / RTM_DELADDR with an inet/inet6 RTA_IFA: ADDR_ADDED / ADDR_REMOVED;
 *   RTM_ADD / RTM_DELETE / RTM_CHANGE: DEFAULT_ROUTE_CHANGED when the destination is the
 *     default (0.0.0.0 or :: with a zero netmask), removed for RTM_DELETE; otherwise
 *     ROUTE_CHANGED. Cloned and neighbour (LLINFO) routes are skipped.
 * Returns false for everything else.
 */
bool t2s_bsd_route_event(const t2s_bsd_route_msg *msg, t2s_net_event *ev);

#endif
