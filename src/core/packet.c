/*
 * packet.c: the packet codec (parser and builders). Checksums live in checksum.c.
 *
 * Every read is preceded by a length check against the IP length from the header (pkt->len),
 * which itself was checked against the buffer. Nothing is allocated or copied on input.
 */
#include "packet.h"

#include <string.h>

enum {
  IPV4_HDRLEN = 20,
  IPV6_HDRLEN = 40,
  TCP_HDRLEN = 20,
  UDP_HDRLEN = 8,
  ICMP_HDRLEN = 8,
  TCP_MAX_OPTLEN = 40,
  BUILD_TTL = 64,
};

enum {
  IPV6_NH_HOPOPTS = 0,
  IPV6_NH_ROUTING = 43,
  IPV6_NH_FRAGMENT = 44,
  IPV6_NH_NONE = 59,
  IPV6_NH_DSTOPTS = 60,
};

enum {
  TCPOPT_EOL = 0,
  TCPOPT_NOP = 1,
  TCPOPT_MSS = 2,
  TCPOPT_WS = 3,
  TCPOPT_SACK_PERM = 4,
  TCPOPT_SACK = 5,
  TCPOPT_TS = 8,
};

enum {
  ICMP4_ECHO_REPLY = 0,
  ICMP4_UNREACH = 3,
  ICMP4_ECHO_REQUEST = 8,
  ICMP6_UNREACH = 1,
  ICMP6_ECHO_REQUEST = 128,
  ICMP6_ECHO_REPLY = 129,
};

#define IPV4_MF 0x2000u
#define IPV4_DF 0x4000u
#define IPV4_OFFMASK 0x1fffu
#define IPV6_JUMBO_OPT 0xc2u
#define ICMP4_QUOTE_MAX 576u  /* RFC 1812 4.3.2.3 */
#define ICMP6_QUOTE_MAX 1280u /* RFC 4443 2.4 (c) */

/* ---- address classification ---- */

static bool v4_is_multicast(const uint8_t *ip) {
  return (ip[0] & 0xf0) == 0xe0;
}
static bool v4_is_bcast(const uint8_t *ip) {
  return ip[0] == 255 && ip[1] == 255 && ip[2] == 255 && ip[3] == 255;
}
static bool v4_is_any(const uint8_t *ip) {
  return (ip[0] | ip[1] | ip[2] | ip[3]) == 0;
}
static bool v6_is_any(const uint8_t *ip) {
  uint8_t acc = 0;
  for (int i = 0; i < 16; i++) {
    acc |= ip[i];
  }
  return acc == 0;
}

bool t2s_addr_is_valid_src(const t2s_addr *a) {
  if (a->family == T2S_AF_INET) {
    return !v4_is_multicast(a->ip) && !v4_is_bcast(a->ip) && !v4_is_any(a->ip);
  }
  return a->family == T2S_AF_INET6 && a->ip[0] != 0xff && !v6_is_any(a->ip);
}

/* Verifies an upper-layer checksum with the pseudo-header: true when it is correct (or the
 * device vouched for it). */
static bool l4_csum_ok(const t2s_pkt *pkt, const uint8_t *l4, size_t l4len) {
  if (pkt->l4_csum_valid && (pkt->proto == T2S_IPPROTO_TCP || pkt->proto == T2S_IPPROTO_UDP)) {
    return true; /* offloads cover TCP and UDP only: ICMP is always verified */
  }
  uint32_t s = t2s_csum_pseudo(&pkt->src, &pkt->dst, pkt->proto, (uint32_t)l4len);
  return t2s_csum_fold(t2s_csum_add(s, l4, l4len)) == 0;
}

/* ---- TCP options ---- */

t2s_drop_reason t2s_tcp_opts_parse(const uint8_t *opt, size_t optlen, t2s_tcp_opts *opts) {
  memset(opts, 0, sizeof(*opts));
  size_t i = 0;
  while (i < optlen) {
    uint8_t kind = opt[i];
    if (kind == TCPOPT_EOL) {
      break;
    }
    if (kind == TCPOPT_NOP) {
      i++;
      continue;
    }
    if (optlen - i < 2) {
      return T2S_DROP_TCP_BAD_OPTION;
    }
    size_t l = opt[i + 1];
    if (l < 2 || l > optlen - i) {
      return T2S_DROP_TCP_BAD_OPTION;
    }
    const uint8_t *o = opt + i;
    /* A known option with the wrong length is ignored, as Linux does. */
    switch (kind) {
    case TCPOPT_MSS:
      if (l == 4) {
        opts->has_mss = true;
        opts->mss = t2s_get16(o + 2);
      }
      break;
    case TCPOPT_WS:
      if (l == 3) {
        opts->has_wscale = true;
        opts->wscale = o[2];
      }
      break;
    case TCPOPT_SACK_PERM:
      if (l == 2) {
        opts->sack_permitted = true;
      }
      break;
    case TCPOPT_SACK:
      if (l >= 10 && (l - 2) % 8 == 0 && (l - 2) / 8 <= T2S_TCP_MAX_SACK_BLOCKS) {
        opts->nsack = (uint8_t)((l - 2) / 8);
        for (size_t b = 0; b < opts->nsack; b++) {
          opts->sack[b].left = t2s_get32(o + 2 + 8 * b);
          opts->sack[b].right = t2s_get32(o + 6 + 8 * b);
        }
      }
      break;
    case TCPOPT_TS:
      if (l == 10) {
        opts->has_ts = true;
        opts->ts_val = t2s_get32(o + 2);
        opts->ts_ecr = t2s_get32(o + 6);
      }
      break;
    default:
      break;
    }
    i += l;
  }
  return T2S_DROP_NONE;
}

t2s_ssize t2s_tcp_opts_write(const t2s_tcp_opts *opts, uint8_t *buf, size_t buflen) {
  if (opts == NULL) {
    return 0;
  }
  /* Layout as Linux writes it: every option group starts 4-aligned, NOPs in front. */
  size_t need = 0;
  if (opts->has_mss) {
    need += 4;
  }
  if (opts->has_ts || opts->sack_permitted) {
    need += opts->has_ts ? 12 : 4;
  }
  if (opts->has_wscale) {
    need += 4;
  }
  size_t nsack = T2S_MIN((size_t)opts->nsack, (size_t)T2S_TCP_MAX_SACK_BLOCKS);
  if (nsack > 0) {
    size_t room = TCP_MAX_OPTLEN - need; /* need <= 20 here */
    nsack = room >= 12 ? T2S_MIN(nsack, (room - 4) / 8) : 0;
    need += nsack ? 4 + 8 * nsack : 0;
  }
  if (need > buflen) {
    return T2S_ERR_NOBUF;
  }
  uint8_t *p = buf;
  if (opts->has_mss) {
    p[0] = TCPOPT_MSS;
    p[1] = 4;
    t2s_put16(p + 2, opts->mss);
    p += 4;
  }
  if (opts->has_ts) {
    if (opts->sack_permitted) {
      p[0] = TCPOPT_SACK_PERM;
      p[1] = 2;
    } else {
      p[0] = TCPOPT_NOP;
      p[1] = TCPOPT_NOP;
    }
    p[2] = TCPOPT_TS;
    p[3] = 10;
    t2s_put32(p + 4, opts->ts_val);
    t2s_put32(p + 8, opts->ts_ecr);
    p += 12;
  } else if (opts->sack_permitted) {
    p[0] = TCPOPT_NOP;
    p[1] = TCPOPT_NOP;
    p[2] = TCPOPT_SACK_PERM;
    p[3] = 2;
    p += 4;
  }
  if (opts->has_wscale) {
    p[0] = TCPOPT_NOP;
    p[1] = TCPOPT_WS;
    p[2] = 3;
    p[3] = opts->wscale;
    p += 4;
  }
  if (nsack > 0) {
    p[0] = TCPOPT_NOP;
    p[1] = TCPOPT_NOP;
    p[2] = TCPOPT_SACK;
    p[3] = (uint8_t)(2 + 8 * nsack);
    p += 4;
    for (size_t b = 0; b < nsack; b++) {
      t2s_put32(p, opts->sack[b].left);
      t2s_put32(p + 4, opts->sack[b].right);
      p += 8;
    }
  }
  return (t2s_ssize)(p - buf);
}

/* ---- upper layers ---- */

static t2s_drop_reason parse_tcp(t2s_pkt *pkt) {
  const uint8_t *l4 = pkt->data + pkt->l4off;
  size_t l4len = pkt->len - pkt->l4off;
  if (l4len < TCP_HDRLEN) {
    return T2S_DROP_TCP_TRUNCATED;
  }
  size_t doff = (size_t)(l4[12] >> 4) * 4;
  if (doff < TCP_HDRLEN || doff > l4len) {
    return T2S_DROP_TCP_BAD_DATA_OFFSET;
  }
  if (!l4_csum_ok(pkt, l4, l4len)) {
    return T2S_DROP_TCP_BAD_CHECKSUM;
  }
  uint16_t sport = t2s_get16(l4);
  uint16_t dport = t2s_get16(l4 + 2);
  if (sport == 0 || dport == 0) {
    return T2S_DROP_TCP_BAD_PORT;
  }
  uint8_t flags = l4[13];
  const uint8_t basic =
      T2S_TCP_FIN | T2S_TCP_SYN | T2S_TCP_RST | T2S_TCP_PSH | T2S_TCP_ACK | T2S_TCP_URG;
  if ((flags & basic) == 0 || ((flags & T2S_TCP_SYN) && (flags & (T2S_TCP_RST | T2S_TCP_FIN)))) {
    return T2S_DROP_TCP_BAD_FLAGS;
  }
  t2s_tcp_hdr *th = &pkt->l4.tcp;
  t2s_drop_reason r = t2s_tcp_opts_parse(l4 + TCP_HDRLEN, doff - TCP_HDRLEN, &th->opts);
  if (r != T2S_DROP_NONE) {
    return r;
  }
  pkt->src.port = sport;
  pkt->dst.port = dport;
  th->seq = t2s_get32(l4 + 4);
  th->ack = t2s_get32(l4 + 8);
  th->flags = flags;
  th->wnd = t2s_get16(l4 + 14);
  th->urg = t2s_get16(l4 + 18);
  th->hdrlen = (uint8_t)doff;
  pkt->payload = l4 + doff;
  pkt->payload_len = l4len - doff;
  return T2S_DROP_NONE;
}

static t2s_drop_reason parse_udp(t2s_pkt *pkt) {
  const uint8_t *l4 = pkt->data + pkt->l4off;
  size_t l4len = pkt->len - pkt->l4off;
  if (l4len < UDP_HDRLEN) {
    return T2S_DROP_UDP_TRUNCATED;
  }
  size_t ulen = t2s_get16(l4 + 4);
  if (ulen < UDP_HDRLEN || ulen > l4len) {
    return T2S_DROP_UDP_BAD_LENGTH;
  }
  uint16_t ck = t2s_get16(l4 + 6);
  if (ck == 0 && !pkt->l4_csum_valid) {
    if (pkt->ipver == 6) {
      return T2S_DROP_UDP_BAD_CHECKSUM; /* RFC 8200 8.1: mandatory over IPv6 */
    }
  } else if (!l4_csum_ok(pkt, l4, ulen)) {
    return T2S_DROP_UDP_BAD_CHECKSUM;
  }
  pkt->src.port = t2s_get16(l4);
  pkt->dst.port = t2s_get16(l4 + 2);
  pkt->l4.udp.len = (uint16_t)ulen;
  pkt->payload = l4 + UDP_HDRLEN;
  pkt->payload_len = ulen - UDP_HDRLEN;
  return T2S_DROP_NONE;
}

/* ICMPv4 and ICMPv6: every message type of both has an 8-byte header (type, code, checksum
 * and 4 type-specific bytes), so shorter messages are truncated whatever their type. */
static t2s_drop_reason parse_icmp(t2s_pkt *pkt) {
  const uint8_t *l4 = pkt->data + pkt->l4off;
  size_t l4len = pkt->len - pkt->l4off;
  if (l4len < ICMP_HDRLEN) {
    return T2S_DROP_ICMP_TRUNCATED;
  }
  bool ok;
  if (pkt->ipver == 4) {
    ok = t2s_csum_fold(t2s_csum_add(0, l4, l4len)) == 0;
  } else {
    ok = l4_csum_ok(pkt, l4, l4len);
  }
  if (!ok) {
    return T2S_DROP_ICMP_BAD_CHECKSUM;
  }
  t2s_icmp_hdr *ih = &pkt->l4.icmp;
  ih->type = l4[0];
  ih->code = l4[1];
  bool echo = pkt->ipver == 4 ? (ih->type == ICMP4_ECHO_REQUEST || ih->type == ICMP4_ECHO_REPLY)
                              : (ih->type == ICMP6_ECHO_REQUEST || ih->type == ICMP6_ECHO_REPLY);
  if (echo) {
    ih->id = t2s_get16(l4 + 4);
    ih->seq = t2s_get16(l4 + 6);
  }
  pkt->payload = l4 + ICMP_HDRLEN;
  pkt->payload_len = l4len - ICMP_HDRLEN;
  return T2S_DROP_NONE;
}

static t2s_drop_reason parse_l4(t2s_pkt *pkt) {
  switch (pkt->proto) {
  case T2S_IPPROTO_TCP:
    return parse_tcp(pkt);
  case T2S_IPPROTO_UDP:
    return parse_udp(pkt);
  case T2S_IPPROTO_ICMP:
    return pkt->ipver == 4 ? parse_icmp(pkt) : T2S_DROP_UNSUPPORTED_PROTO;
  case T2S_IPPROTO_ICMPV6:
    return pkt->ipver == 6 ? parse_icmp(pkt) : T2S_DROP_UNSUPPORTED_PROTO;
  default:
    return T2S_DROP_UNSUPPORTED_PROTO;
  }
}

/* ---- IP ---- */

static t2s_drop_reason parse_ipv4(const uint8_t *buf, size_t len, t2s_pkt *pkt) {
  if (len < IPV4_HDRLEN) {
    return T2S_DROP_TRUNCATED;
  }
  size_t ihl = (size_t)(buf[0] & 0x0f) * 4;
  if (ihl < IPV4_HDRLEN || ihl > len) {
    return T2S_DROP_IPV4_BAD_IHL;
  }
  size_t tot = t2s_get16(buf + 2);
  if (tot < ihl || tot > len) {
    return T2S_DROP_IPV4_BAD_TOTAL_LEN;
  }
  if (t2s_csum_fold(t2s_csum_add(0, buf, ihl)) != 0) {
    return T2S_DROP_IPV4_BAD_CHECKSUM;
  }
  pkt->len = tot;
  pkt->ipver = 4;
  pkt->tos = buf[1];
  pkt->ttl = buf[8];
  pkt->proto = buf[9];
  pkt->l4off = ihl;
  pkt->src.family = T2S_AF_INET;
  pkt->dst.family = T2S_AF_INET;
  memcpy(pkt->src.ip, buf + 12, 4);
  memcpy(pkt->dst.ip, buf + 16, 4);
  uint16_t fo = t2s_get16(buf + 6);
  pkt->more_frags = (fo & IPV4_MF) != 0;
  pkt->frag_off = (uint16_t)((fo & IPV4_OFFMASK) * 8);
  pkt->frag_id = t2s_get16(buf + 4);
  pkt->is_fragment = pkt->more_frags || pkt->frag_off != 0;
  const uint8_t *s = pkt->src.ip, *d = pkt->dst.ip;
  if (v4_is_multicast(s) || v4_is_bcast(s) || v4_is_any(s)) {
    return T2S_DROP_BAD_SRC_ADDR;
  }
  if (v4_is_multicast(d) || v4_is_bcast(d) || v4_is_any(d)) {
    return T2S_DROP_BAD_DST_ADDR;
  }
  if (pkt->is_fragment) {
    return T2S_DROP_FRAGMENT;
  }
  return parse_l4(pkt);
}

/* True when the hop-by-hop header at buf[40..] (bounded by len) carries a jumbo payload
 * option (RFC 2675). Used only when the payload length is 0, so the header itself may lie
 * beyond the (zero) payload length. */
static bool v6_has_jumbo_opt(const uint8_t *buf, size_t len) {
  if (buf[6] != IPV6_NH_HOPOPTS || len < IPV6_HDRLEN + 8) {
    return false;
  }
  size_t end = IPV6_HDRLEN + ((size_t)buf[IPV6_HDRLEN + 1] + 1) * 8;
  end = T2S_MIN(end, len);
  size_t i = IPV6_HDRLEN + 2;
  while (i < end) {
    if (buf[i] == 0) { /* Pad1 */
      i++;
      continue;
    }
    if (buf[i] == IPV6_JUMBO_OPT) {
      return true;
    }
    if (end - i < 2) {
      break;
    }
    i += 2 + (size_t)buf[i + 1];
  }
  return false;
}

static t2s_drop_reason parse_ipv6(const uint8_t *buf, size_t len, t2s_pkt *pkt) {
  if (len < IPV6_HDRLEN) {
    return T2S_DROP_TRUNCATED;
  }
  size_t plen = t2s_get16(buf + 4);
  if (plen == 0 && v6_has_jumbo_opt(buf, len)) {
    return T2S_DROP_IPV6_JUMBOGRAM;
  }
  if (plen > len - IPV6_HDRLEN) {
    return T2S_DROP_IPV6_BAD_PAYLOAD_LEN;
  }
  pkt->len = IPV6_HDRLEN + plen;
  pkt->ipver = 6;
  pkt->tos = (uint8_t)(((buf[0] & 0x0f) << 4) | (buf[1] >> 4));
  pkt->ttl = buf[7];
  pkt->src.family = T2S_AF_INET6;
  pkt->dst.family = T2S_AF_INET6;
  memcpy(pkt->src.ip, buf + 8, 16);
  memcpy(pkt->dst.ip, buf + 24, 16);
  if (pkt->src.ip[0] == 0xff || v6_is_any(pkt->src.ip)) {
    return T2S_DROP_BAD_SRC_ADDR;
  }
  if (pkt->dst.ip[0] == 0xff || v6_is_any(pkt->dst.ip)) {
    return T2S_DROP_BAD_DST_ADDR;
  }
  uint8_t nh = buf[6];
  size_t off = IPV6_HDRLEN;
  for (int n = 0;; n++) {
    if (nh != IPV6_NH_HOPOPTS && nh != IPV6_NH_ROUTING && nh != IPV6_NH_FRAGMENT &&
        nh != IPV6_NH_DSTOPTS) {
      break;
    }
    if (n == T2S_IPV6_MAX_EXT_HEADERS) {
      return T2S_DROP_IPV6_EXT_CHAIN_TOO_LONG;
    }
    /* Hop-by-hop options are allowed only right after the IPv6 header (RFC 8200 4.1). */
    if (nh == IPV6_NH_HOPOPTS && off != IPV6_HDRLEN) {
      return T2S_DROP_IPV6_BAD_EXT_HEADER;
    }
    if (pkt->len - off < 8) {
      return T2S_DROP_IPV6_BAD_EXT_HEADER;
    }
    const uint8_t *h = buf + off;
    if (nh == IPV6_NH_FRAGMENT) {
      uint16_t fo = t2s_get16(h + 2);
      uint16_t foff = fo & 0xfff8u;
      bool mf = (fo & 1) != 0;
      pkt->frag_hdroff = off;
      pkt->frag_id = t2s_get32(h + 4);
      pkt->frag_off = foff;
      pkt->more_frags = mf;
      nh = h[0];
      off += 8;
      if (foff != 0 || mf) {
        /* The rest is fragment data: the chain cannot be walked further. */
        pkt->is_fragment = true;
        pkt->proto = nh;
        pkt->l4off = off;
        return T2S_DROP_FRAGMENT;
      }
      /* An atomic fragment (RFC 6946): the whole packet, processed as a non-fragment. */
      continue;
    }
    size_t hlen = ((size_t)h[1] + 1) * 8;
    if (hlen > pkt->len - off) {
      return T2S_DROP_IPV6_BAD_EXT_HEADER;
    }
    /* A routing header with segments left is addressed to a router on the way, not to a final
     * destination we could proxy to; its upper-layer checksum would also use another
     * destination address (RFC 8200 8.1). Linux drops these too (RH0 per RFC 5095, SRH unless
     * seg6 is enabled). */
    if (nh == IPV6_NH_ROUTING && h[3] != 0) {
      return T2S_DROP_IPV6_BAD_EXT_HEADER;
    }
    nh = h[0];
    off += hlen;
  }
  pkt->proto = nh;
  pkt->l4off = off;
  if (nh == IPV6_NH_NONE) {
    return T2S_DROP_UNSUPPORTED_PROTO;
  }
  return parse_l4(pkt);
}

t2s_drop_reason t2s_pkt_parse(const uint8_t *buf, size_t len, t2s_pkt *pkt) {
  return t2s_pkt_parse_ex(buf, len, 0, pkt);
}

t2s_drop_reason t2s_pkt_parse_ex(const uint8_t *buf, size_t len, unsigned flags, t2s_pkt *pkt) {
  memset(pkt, 0, sizeof(*pkt));
  pkt->data = buf;
  pkt->l4_csum_valid = (flags & T2S_PARSE_L4_CSUM_VALID) != 0;
  if (len < 1) {
    return T2S_DROP_TRUNCATED;
  }
  switch (buf[0] >> 4) {
  case 4:
    return parse_ipv4(buf, len, pkt);
  case 6:
    return parse_ipv6(buf, len, pkt);
  default:
    return T2S_DROP_BAD_VERSION;
  }
}

/* ---- builders ---- */

size_t t2s_ip_hdrlen(uint8_t family) {
  switch (family) {
  case T2S_AF_INET:
    return IPV4_HDRLEN;
  case T2S_AF_INET6:
    return IPV6_HDRLEN;
  default:
    return 0;
  }
}

/* Checks the address pair and the lengths of a packet with an l4len-byte upper layer. Returns
 * the IP header length, or an error. */
static t2s_ssize ip_check(size_t buflen, const t2s_addr *src, const t2s_addr *dst, size_t l4len) {
  size_t hl = t2s_ip_hdrlen(src->family);
  if (hl == 0 || dst->family != src->family) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  size_t iplimit = src->family == T2S_AF_INET ? 65535 - IPV4_HDRLEN : 65535;
  if (l4len > iplimit) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (buflen < hl || l4len > buflen - hl) {
    return T2S_ERR_NOBUF;
  }
  return (t2s_ssize)hl;
}

/* Writes the IP header (20 or 40 bytes) for an l4len-byte upper layer of protocol proto. */
static void ip_write(uint8_t *buf, const t2s_addr *src, const t2s_addr *dst, uint8_t proto,
                     size_t l4len) {
  if (src->family == T2S_AF_INET) {
    buf[0] = 0x45;
    buf[1] = 0;
    t2s_put16(buf + 2, (uint16_t)(IPV4_HDRLEN + l4len));
    t2s_put16(buf + 4, 0);
    t2s_put16(buf + 6, IPV4_DF);
    buf[8] = BUILD_TTL;
    buf[9] = proto;
    t2s_put16(buf + 10, 0);
    memcpy(buf + 12, src->ip, 4);
    memcpy(buf + 16, dst->ip, 4);
    t2s_put16(buf + 10, t2s_csum_fold(t2s_csum_add(0, buf, IPV4_HDRLEN)));
  } else {
    t2s_put32(buf, 0x60000000u);
    t2s_put16(buf + 4, (uint16_t)l4len);
    buf[6] = proto;
    buf[7] = BUILD_TTL;
    memcpy(buf + 8, src->ip, 16);
    memcpy(buf + 24, dst->ip, 16);
  }
}

/* The checksum of an upper layer written at l4 (its checksum field zeroed). */
static uint16_t l4_csum(const t2s_addr *src, const t2s_addr *dst, uint8_t proto, const uint8_t *l4,
                        size_t l4len) {
  return t2s_csum_fold(t2s_csum_add(t2s_csum_pseudo(src, dst, proto, (uint32_t)l4len), l4, l4len));
}

static void copy_in(uint8_t *dst, const uint8_t *src, size_t len) {
  if (len > 0) {
    memcpy(dst, src, len);
  }
}

t2s_ssize t2s_build_tcp(uint8_t *buf, size_t buflen, const t2s_addr *src, const t2s_addr *dst,
                        uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
                        const t2s_tcp_opts *opts, const uint8_t *p1, size_t len1, const uint8_t *p2,
                        size_t len2) {
  return t2s_build_tcp_ex(buf, buflen, src, dst, seq, ack, flags, wnd, opts, p1, len1, p2, len2, 0);
}

/* The one's-complement sum of the payload pieces as they follow a header of even length: a
 * piece that starts at an odd offset contributes its sum byte-swapped (RFC 1071 2.B). */
static uint32_t csum_pieces(uint32_t sum, const uint8_t *p1, size_t len1, const uint8_t *p2,
                            size_t len2) {
  if (len1 > 0) {
    sum = t2s_csum_add(sum, p1, len1);
  }
  if (len2 > 0) {
    uint32_t s2 = t2s_csum_add(0, p2, len2);
    if (len1 & 1) {
      s2 = ((s2 & 0xffu) << 8) | (s2 >> 8);
    }
    sum += s2; /* both <= 0xffff: one end-around carry folds it */
    sum = (sum & 0xffffu) + (sum >> 16);
  }
  return sum;
}

/* Builds the IP and TCP headers into buf and, when copy, the payload after them. Returns the
 * length written (headers only when !copy). Inlined into its two callers, so that each is
 * compiled for its own case (the per-packet cost, scripts/bench --sim). */
#if defined(__GNUC__)
__attribute__((always_inline))
#endif
static inline t2s_ssize
build_tcp(uint8_t *buf, size_t buflen, const t2s_addr *src, const t2s_addr *dst, uint32_t seq,
          uint32_t ack, uint8_t flags, uint16_t wnd, const t2s_tcp_opts *opts, const uint8_t *p1,
          size_t len1, const uint8_t *p2, size_t len2, size_t partial_over, bool copy) {
  t2s_ssize r = ip_check(buflen, src, dst, TCP_HDRLEN);
  if (r < 0) {
    return r;
  }
  size_t hl = (size_t)r;
  uint8_t *th = buf + hl;
  t2s_ssize olen = t2s_tcp_opts_write(opts, th + TCP_HDRLEN, buflen - hl - TCP_HDRLEN);
  if (olen < 0) {
    return olen;
  }
  size_t doff = TCP_HDRLEN + (size_t)olen;
  if (len1 > SIZE_MAX / 2 || len2 > SIZE_MAX / 2) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  size_t l4len = doff + len1 + len2;
  /* The packet's length limit always; the buffer must hold what is written into it. */
  r = ip_check(copy ? buflen : SIZE_MAX, src, dst, l4len);
  if (r < 0) {
    return r;
  }
  t2s_put16(th, src->port);
  t2s_put16(th + 2, dst->port);
  t2s_put32(th + 4, seq);
  t2s_put32(th + 8, ack);
  th[12] = (uint8_t)((doff / 4) << 4);
  th[13] = flags;
  t2s_put16(th + 14, wnd);
  t2s_put16(th + 16, 0);
  t2s_put16(th + 18, 0);
  if (copy) {
    copy_in(th + doff, p1, len1);
    copy_in(th + doff + len1, p2, len2);
  }
  uint32_t psum = t2s_csum_pseudo(src, dst, T2S_IPPROTO_TCP, (uint32_t)l4len);
  if (partial_over != 0 && hl + l4len > partial_over) {
    t2s_put16(th + 16, (uint16_t)~t2s_csum_fold(psum));
  } else if (copy) {
    t2s_put16(th + 16, t2s_csum_fold(t2s_csum_add(psum, th, l4len)));
  } else {
    /* The header ends on a 4-byte boundary: the pieces start at an even offset. */
    uint32_t sum = csum_pieces(t2s_csum_add(psum, th, doff), p1, len1, p2, len2);
    t2s_put16(th + 16, t2s_csum_fold(sum));
  }
  ip_write(buf, src, dst, T2S_IPPROTO_TCP, l4len);
  return (t2s_ssize)(hl + (copy ? l4len : doff));
}

t2s_ssize t2s_build_tcp_ex(uint8_t *buf, size_t buflen, const t2s_addr *src, const t2s_addr *dst,
                           uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
                           const t2s_tcp_opts *opts, const uint8_t *p1, size_t len1,
                           const uint8_t *p2, size_t len2, size_t partial_over) {
  return build_tcp(buf, buflen, src, dst, seq, ack, flags, wnd, opts, p1, len1, p2, len2,
                   partial_over, true);
}

t2s_ssize t2s_build_tcp_hdr(uint8_t *buf, size_t buflen, const t2s_addr *src, const t2s_addr *dst,
                            uint32_t seq, uint32_t ack, uint8_t flags, uint16_t wnd,
                            const t2s_tcp_opts *opts, const uint8_t *p1, size_t len1,
                            const uint8_t *p2, size_t len2, size_t partial_over) {
  return build_tcp(buf, buflen, src, dst, seq, ack, flags, wnd, opts, p1, len1, p2, len2,
                   partial_over, false);
}

t2s_ssize t2s_build_udp(uint8_t *buf, size_t buflen, const t2s_addr *src, const t2s_addr *dst,
                        const uint8_t *payload, size_t len) {
  if (len > 65535 - UDP_HDRLEN) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  size_t l4len = UDP_HDRLEN + len;
  t2s_ssize r = ip_check(buflen, src, dst, l4len);
  if (r < 0) {
    return r;
  }
  size_t hl = (size_t)r;
  uint8_t *uh = buf + hl;
  t2s_put16(uh, src->port);
  t2s_put16(uh + 2, dst->port);
  t2s_put16(uh + 4, (uint16_t)l4len);
  t2s_put16(uh + 6, 0);
  copy_in(uh + UDP_HDRLEN, payload, len);
  uint16_t ck = l4_csum(src, dst, T2S_IPPROTO_UDP, uh, l4len);
  t2s_put16(uh + 6, ck == 0 ? 0xffff : ck); /* 0 means "no checksum" (RFC 768) */
  ip_write(buf, src, dst, T2S_IPPROTO_UDP, l4len);
  return (t2s_ssize)(hl + l4len);
}

/* Writes an IP+ICMP message; rest is the type-specific word (bytes 4..7). */
static t2s_ssize build_icmp(uint8_t *buf, size_t buflen, const t2s_addr *src, const t2s_addr *dst,
                            uint8_t type, uint8_t code, uint32_t rest, const uint8_t *body,
                            size_t bodylen) {
  size_t l4len = ICMP_HDRLEN + bodylen;
  t2s_ssize r = ip_check(buflen, src, dst, l4len);
  if (r < 0) {
    return r;
  }
  size_t hl = (size_t)r;
  uint8_t proto = src->family == T2S_AF_INET ? T2S_IPPROTO_ICMP : T2S_IPPROTO_ICMPV6;
  uint8_t *ih = buf + hl;
  /* The body first, with memmove: the quoted packet of an error may sit in buf itself (a
   * caller building in place), and the headers written next would overwrite it. */
  if (bodylen > 0) {
    memmove(ih + ICMP_HDRLEN, body, bodylen);
  }
  ih[0] = type;
  ih[1] = code;
  t2s_put16(ih + 2, 0);
  t2s_put32(ih + 4, rest);
  uint16_t ck;
  if (proto == T2S_IPPROTO_ICMP) {
    ck = t2s_csum_fold(t2s_csum_add(0, ih, l4len));
  } else {
    ck = l4_csum(src, dst, proto, ih, l4len);
  }
  t2s_put16(ih + 2, ck);
  ip_write(buf, src, dst, proto, l4len);
  return (t2s_ssize)(hl + l4len);
}

t2s_ssize t2s_build_icmp_echo_reply(uint8_t *buf, size_t buflen, const t2s_pkt *req) {
  uint8_t type;
  if (req->ipver == 4 && req->proto == T2S_IPPROTO_ICMP &&
      req->l4.icmp.type == ICMP4_ECHO_REQUEST) {
    type = ICMP4_ECHO_REPLY;
  } else if (req->ipver == 6 && req->proto == T2S_IPPROTO_ICMPV6 &&
             req->l4.icmp.type == ICMP6_ECHO_REQUEST) {
    type = ICMP6_ECHO_REPLY;
  } else {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  t2s_addr src = req->dst, dst = req->src;
  src.port = 0;
  dst.port = 0;
  uint32_t rest = ((uint32_t)req->l4.icmp.id << 16) | req->l4.icmp.seq;
  return build_icmp(buf, buflen, &src, &dst, type, 0, rest, req->payload, req->payload_len);
}

t2s_ssize t2s_build_icmp_unreach(uint8_t *buf, size_t buflen, const t2s_addr *from,
                                 const t2s_pkt *orig, uint8_t code) {
  if (from->family != orig->ipver || orig->src.family != orig->ipver || orig->data == NULL) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  bool v4 = from->family == T2S_AF_INET;
  size_t hl = t2s_ip_hdrlen(from->family);
  size_t limit = T2S_MIN(buflen, v4 ? ICMP4_QUOTE_MAX : ICMP6_QUOTE_MAX);
  if (limit < hl + ICMP_HDRLEN) {
    return T2S_ERR_NOBUF;
  }
  size_t quote = T2S_MIN(orig->len, limit - hl - ICMP_HDRLEN);
  /* RFC 792 asks for at least the IP header and the first 8 bytes of the upper layer. */
  if (quote < T2S_MIN(orig->len, orig->l4off + 8)) {
    return T2S_ERR_NOBUF;
  }
  t2s_addr src = *from, dst = orig->src;
  src.port = 0;
  dst.port = 0;
  return build_icmp(buf, buflen, &src, &dst, v4 ? ICMP4_UNREACH : ICMP6_UNREACH, code, 0,
                    orig->data, quote);
}
