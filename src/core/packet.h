/*
 * packet.h: the packet codec. Parses IPv4/IPv6 packets as they come out of a TUN
 * (no link header) into a t2s_pkt view, and builds the packets the stack sends.
 *
 * Parsing checks every length before reading a field. A packet that cannot be used yields a
 * t2s_drop_reason (drop.h), never a crash. The view points into the caller's buffer; nothing
 * is copied or allocated.
 */
#ifndef T2S_PACKET_H
#define T2S_PACKET_H

#include "common.h"
#include "drop.h"

enum {
  T2S_IPPROTO_ICMP = 1,
  T2S_IPPROTO_TCP = 6,
  T2S_IPPROTO_UDP = 17,
  T2S_IPPROTO_ICMPV6 = 58,
};

/* TCP flag bits as they sit in byte 13 of the header. */
enum {
  T2S_TCP_FIN = 0x01,
  T2S_TCP_SYN = 0x02,
  T2S_TCP_RST = 0x04,
  T2S_TCP_PSH = 0x08,
  T2S_TCP_ACK = 0x10,
  T2S_TCP_URG = 0x20,
  T2S_TCP_ECE = 0x40,
  T2S_TCP_CWR = 0x80,
};

#define T2S_TCP_MAX_SACK_BLOCKS 4
#define T2S_IPV6_MAX_EXT_HEADERS 8 /* bound on the extension-header walk */

/* TCP options as parsed from, or to be written into, a segment. */
typedef struct t2s_tcp_opts {
  bool has_mss;
  bool has_wscale;
  bool sack_permitted;
  bool has_ts;
  uint16_t mss;
  uint8_t wscale; /* as sent (may exceed 14; the receiver clamps) */
  uint32_t ts_val;
  uint32_t ts_ecr;
  uint8_t nsack; /* number of SACK blocks, at most T2S_TCP_MAX_SACK_BLOCKS */
  struct {
    uint32_t left, right; /* [left, right) */
  } sack[T2S_TCP_MAX_SACK_BLOCKS];
} t2s_tcp_opts;

typedef struct t2s_tcp_hdr {
  uint32_t seq;
  uint32_t ack;
  uint8_t flags; /* T2S_TCP_* */
  uint16_t wnd;  /* raw, unscaled */
  uint16_t urg;
  uint8_t hdrlen; /* data offset in bytes */
  t2s_tcp_opts opts;
} t2s_tcp_hdr;

typedef struct t2s_udp_hdr {
  uint16_t len; /* from the header */
} t2s_udp_hdr;

typedef struct t2s_icmp_hdr {
  uint8_t type;
  uint8_t code;
  uint16_t id;  /* echo only */
  uint16_t seq; /* echo only */
} t2s_icmp_hdr;

/* A parsed packet: a view into the caller's buffer. */
typedef struct t2s_pkt {
  const uint8_t *data; /* start of the IP header */
  size_t len;          /* IP length per header (trailing bytes beyond it are ignored) */
  uint8_t ipver;       /* 4 or 6 */
  uint8_t proto;       /* final upper-layer protocol (after IPv6 extension headers) */
  uint8_t ttl;         /* TTL or hop limit */
  uint8_t tos;         /* TOS / traffic class */
  size_t l4off;        /* offset of the upper-layer header from data */
  bool l4_csum_valid;  /* the device vouched for the L4 checksum: it was not verified */
  t2s_addr src;        /* with the TCP/UDP source port (0 otherwise) */
  t2s_addr dst;        /* with the TCP/UDP destination port (0 otherwise) */
  /* Fragment info (IPv4 flags/offset or IPv6 fragment header). */
  bool is_fragment;       /* MF set or offset != 0 */
  bool more_frags;        /* MF */
  uint16_t frag_off;      /* in bytes */
  uint32_t frag_id;       /* IPv4 id or IPv6 identification */
  size_t frag_hdroff;     /* IPv6: offset of the fragment header; IPv4: 0 */
  const uint8_t *payload; /* upper-layer payload (after the TCP/UDP/ICMP header) */
  size_t payload_len;
  union {
    t2s_tcp_hdr tcp;
    t2s_udp_hdr udp;
    t2s_icmp_hdr icmp;
  } l4;
} t2s_pkt;

/*
 * Parses one IP packet (no link header) of len bytes at buf into *pkt.
 * Checks: version, header lengths, IPv4 header checksum, IPv6 extension chain (hop-by-hop,
 * routing, fragment, destination options; at most T2S_IPV6_MAX_EXT_HEADERS), and for
 * non-fragments the TCP/UDP/ICMP header, options and checksum.
 * A fragment (IPv4 MF/offset, IPv6 fragment header) is parsed at the IP level only:
 * is_fragment is set and the upper layer is not read; it returns T2S_DROP_FRAGMENT so a caller
 * that reassembles can take it from there.
 * Returns T2S_DROP_NONE (0) on success or the reason for dropping it.
 */
t2s_drop_reason t2s_pkt_parse(const uint8_t *buf, size_t len, t2s_pkt *pkt);

/* Flags for t2s_pkt_parse_ex() and t2s_engine_input_ex(). */
enum {
  /* The device vouches for the TCP/UDP checksum (virtio NEEDS_CSUM or DATA_VALID: the packet
   * came from the local kernel's stack, its checksum field may hold only the pseudo-header
   * sum): the parser neither verifies it nor reads it. Never set for bytes from elsewhere. */
  T2S_PARSE_L4_CSUM_VALID = 1u << 0,
};

/* t2s_pkt_parse with T2S_PARSE_* flags. */
t2s_drop_reason t2s_pkt_parse_ex(const uint8_t *buf, size_t len, unsigned flags, t2s_pkt *pkt);

/* True when a packet may come from a: IPv4 neither 0.0.0.0, multicast nor 255.255.255.255;
 * IPv6 neither :: nor multicast (the source checks of t2s_pkt_parse). */
bool t2s_addr_is_valid_src(const t2s_addr *a);

/* Parses TCP options from opt/optlen into *opts (zeroed first). Unknown options are skipped
 * by their length; returns T2S_DROP_NONE or T2S_DROP_TCP_BAD_OPTION. */
t2s_drop_reason t2s_tcp_opts_parse(const uint8_t *opt, size_t optlen, t2s_tcp_opts *opts);

/* Writes the options in *opts (MSS, SACK-permitted, timestamps, window scale, SACK blocks, in
 * that order, NOP-padded to 4 bytes) into buf. Returns the length written (a multiple of 4,
 * at most 40; SACK blocks that do not fit are left out) or T2S_ERR_NOBUF. */
t2s_ssize t2s_tcp_opts_write(const t2s_tcp_opts *opts, uint8_t *buf, size_t buflen);

/* ---- checksums (RFC 1071, incremental per RFC 1624) ---- */

/* Adds len bytes at data to the 32-bit one's-complement accumulator sum (not folded; the
 * result is <= 0xffff, so any number of calls can be chained). An odd length is padded with a
 * zero byte, so when a checksummed area is summed in several chunks, every chunk but the last
 * must have an even length (each chunk must start at an even offset of the area). */
uint32_t t2s_csum_add(uint32_t sum, const void *data, size_t len);
/* Folds and complements an accumulator into the 16-bit checksum value (network order value as
 * a host integer: store it with t2s_put16). */
uint16_t t2s_csum_fold(uint32_t sum);
/* The pseudo-header sum for an upper-layer checksum: src/dst from the addresses (ports
 * ignored), protocol and upper-layer length. */
uint32_t t2s_csum_pseudo(const t2s_addr *src, const t2s_addr *dst, uint8_t proto, uint32_t l4len);
/* Incremental update of checksum `csum` when a 16-bit field changes from old to new. */
uint16_t t2s_csum_update16(uint16_t csum, uint16_t oldv, uint16_t newv);
/* Incremental update for a 32-bit field. */
uint16_t t2s_csum_update32(uint16_t csum, uint32_t oldv, uint32_t newv);

/* ---- builders: write a whole IP packet into buf, with correct checksums ---- */

/* The protocol of an IPv4 packet or the first next header of an IPv6 one (extension headers
 * are not followed), or 0 when len cannot hold its fixed header or the version is neither. A
 * cheap peek for the OS layer, before any parse. */
static inline uint8_t t2s_ip_l4proto(const uint8_t *pkt, size_t len) {
  if (len >= 20 && pkt[0] >> 4 == 4) {
    return pkt[9];
  }
  return len >= 40 && pkt[0] >> 4 == 6 ? pkt[6] : 0;
}

/* Length of the IP header the builders write for a family (20 or 40). */
size_t t2s_ip_hdrlen(uint8_t family);

/*
 * Builds an IP+TCP segment from src to dst (ports from the addresses). The payload is given as
 * two pieces (p1,len1) and (p2,len2), either may be empty, so a ring buffer that wraps needs no
 * extra copy. opts may be NULL. Returns the packet length or T2S_ERR_NOBUF.
 */
t2s_ssize t2s_build_tcp(uint8_t *buf, size_t buflen, const t2s_addr *src, const t2s_addr *dst,
                        uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
                        const t2s_tcp_opts *opts, const uint8_t *p1, size_t len1, const uint8_t *p2,
                        size_t len2);
/* The same, but a packet longer than partial_over bytes (0: none) gets a partial checksum: the
 * field holds the pseudo-header sum (folded, not complemented) and the segment is not summed,
 * for a device that completes it (a TSO super-segment: virtio NEEDS_CSUM). */
t2s_ssize t2s_build_tcp_ex(uint8_t *buf, size_t buflen, const t2s_addr *src, const t2s_addr *dst,
                           uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
                           const t2s_tcp_opts *opts, const uint8_t *p1, size_t len1,
                           const uint8_t *p2, size_t len2, size_t partial_over);
/* The same, but only the IP and TCP headers are written into buf: the packet is the headers
 * (the length returned) followed by the payload pieces where they are, for a device that
 * writes it gathered (t2s_device_ops.sendv). The checksum covers the pieces in place. */
t2s_ssize t2s_build_tcp_hdr(uint8_t *buf, size_t buflen, const t2s_addr *src, const t2s_addr *dst,
                            uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
                            const t2s_tcp_opts *opts, const uint8_t *p1, size_t len1,
                            const uint8_t *p2, size_t len2, size_t partial_over);

/* Builds an IP+UDP datagram (ports from the addresses). Returns the length or T2S_ERR_NOBUF. */
t2s_ssize t2s_build_udp(uint8_t *buf, size_t buflen, const t2s_addr *src, const t2s_addr *dst,
                        const uint8_t *payload, size_t len);

/* Builds the echo reply to the parsed echo request *req (ICMPv4 type 8 or ICMPv6 type 128):
 * addresses swapped, same id, sequence and payload. Returns the length or T2S_ERR_NOBUF,
 * T2S_ERR_INVALID_ARGUMENT when req is not an echo request. */
t2s_ssize t2s_build_icmp_echo_reply(uint8_t *buf, size_t buflen, const t2s_pkt *req);

/*
 * Builds an ICMP destination unreachable (v4 type 3 / v6 type 1) from `from` to the sender of
 * *orig, quoting as much of orig as fits in min(buflen, 576 for v4 / 1280 for v6). code is the
 * ICMP code of the family (v4: 1 host, 3 port, 13 admin; v6: 0 no route, 1 admin, 4 port).
 * Returns the length or T2S_ERR_NOBUF.
 */
t2s_ssize t2s_build_icmp_unreach(uint8_t *buf, size_t buflen, const t2s_addr *from,
                                 const t2s_pkt *orig, uint8_t code);

#endif
