/* dns.c: the strict query parser and the answer builder of the fake-IP responder. */
#include "dns.h"

#include <string.h>

#define FLAG_QR 0x8000u
#define FLAG_OPCODE 0x7800u
#define FLAG_RD 0x0100u
#define FLAG_RA 0x0080u
#define FLAG_CD 0x0010u
#define FLAG_TC 0x0200u

int t2s_dns_read_name(const uint8_t *msg, size_t len, size_t off, uint8_t wire[T2S_DNS_NAME_MAX],
                      size_t *pwirelen, size_t *pnext) {
  size_t pos = off;
  size_t wirelen = 0;
  size_t limit = off; /* a pointer must point strictly before this */
  bool jumped = false;
  /* Each step either consumes a label (at most 128 fit in 255 octets) or takes a pointer to a
   * strictly smaller offset: the loop ends. The bound is a second guard. */
  for (unsigned steps = 0; steps < 2 * T2S_DNS_NAME_MAX + 2; steps++) {
    if (pos >= len) {
      return T2S_ERR_MALFORMED;
    }
    uint8_t b = msg[pos];
    if (b == 0) {
      if (wirelen + 1 > T2S_DNS_NAME_MAX) {
        return T2S_ERR_MALFORMED;
      }
      wire[wirelen++] = 0;
      if (!jumped) {
        *pnext = pos + 1;
      }
      *pwirelen = wirelen;
      return 0;
    }
    if ((b & 0xc0) == 0xc0) {
      if (pos + 1 >= len) {
        return T2S_ERR_MALFORMED;
      }
      size_t target = ((size_t)(b & 0x3f) << 8) | msg[pos + 1];
      if (target < T2S_DNS_HEADER_LEN || target >= limit || target >= pos) {
        return T2S_ERR_MALFORMED;
      }
      if (!jumped) {
        *pnext = pos + 2;
        jumped = true;
      }
      limit = target;
      pos = target;
      continue;
    }
    if ((b & 0xc0) != 0) {
      return T2S_ERR_MALFORMED; /* 0x40 (extended) and 0x80 label types */
    }
    if (pos + 1 + b > len || wirelen + 1 + b + 1 > T2S_DNS_NAME_MAX) {
      return T2S_ERR_MALFORMED;
    }
    memcpy(wire + wirelen, msg + pos, (size_t)1 + b);
    wirelen += (size_t)1 + b;
    pos += (size_t)1 + b;
  }
  return T2S_ERR_MALFORMED;
}

/* The text form of a wire name: lower case, dots between labels. Returns whether every label
 * is plain (printable ASCII, no '.', '\\', space), in which case the text is exact. */
static bool wire_to_text(const uint8_t *wire, size_t wirelen, char *out, size_t *poutlen) {
  size_t pos = 0, n = 0;
  bool plain = true;
  while (pos < wirelen && wire[pos] != 0) {
    uint8_t l = wire[pos++];
    if (n > 0) {
      out[n++] = '.';
    }
    for (uint8_t i = 0; i < l; i++) {
      uint8_t c = wire[pos++];
      if (c < 0x21 || c > 0x7e || c == '.' || c == '\\') {
        plain = false;
        c = '?';
      } else if (c >= 'A' && c <= 'Z') {
        c = (uint8_t)(c - 'A' + 'a');
      }
      out[n++] = (char)c;
    }
  }
  /* A wire name of at most 255 octets has a text form of at most 253 characters. */
  out[n] = '\0';
  *poutlen = n;
  return plain;
}

/* Reads one resource record's fixed part after its name. */
static int read_rr(const uint8_t *msg, size_t len, size_t *poff, uint16_t *ptype, uint16_t *pclass,
                   uint32_t *pttl, size_t *prdata, size_t *prdlen, size_t *pnamewirelen) {
  uint8_t wire[T2S_DNS_NAME_MAX];
  size_t wirelen, next;
  if (t2s_dns_read_name(msg, len, *poff, wire, &wirelen, &next) != 0) {
    return T2S_ERR_MALFORMED;
  }
  if (next + 10 > len) {
    return T2S_ERR_MALFORMED;
  }
  *ptype = t2s_get16(msg + next);
  *pclass = t2s_get16(msg + next + 2);
  *pttl = t2s_get32(msg + next + 4);
  size_t rdlen = t2s_get16(msg + next + 8);
  if (next + 10 + rdlen > len) {
    return T2S_ERR_MALFORMED;
  }
  *prdata = next + 10;
  *prdlen = rdlen;
  *pnamewirelen = wirelen;
  *poff = next + 10 + rdlen;
  return 0;
}

int t2s_dns_parse_query(const uint8_t *msg, size_t len, t2s_dns_query *q) {
  memset(q, 0, sizeof(*q));
  if (len < T2S_DNS_HEADER_LEN || len > 65535) {
    return T2S_ERR_MALFORMED;
  }
  q->id = t2s_get16(msg);
  q->flags = t2s_get16(msg + 2);
  if (q->flags & FLAG_QR) {
    return T2S_ERR_MALFORMED; /* a response: never answered */
  }
  q->header_ok = true;
  if ((q->flags & FLAG_OPCODE) != 0) {
    return T2S_ERR_UNSUPPORTED;
  }
  uint16_t qd = t2s_get16(msg + 4), an = t2s_get16(msg + 6), ns = t2s_get16(msg + 8),
           ar = t2s_get16(msg + 10);
  if (qd != 1 || an != 0 || ns != 0 || ar > T2S_DNS_MAX_ADDITIONAL) {
    return T2S_ERR_MALFORMED;
  }
  size_t off = T2S_DNS_HEADER_LEN, next;
  if (t2s_dns_read_name(msg, len, off, q->qname_wire, &q->qname_wirelen, &next) != 0 ||
      next + 4 > len) {
    return T2S_ERR_MALFORMED;
  }
  q->qtype = t2s_get16(msg + next);
  q->qclass = t2s_get16(msg + next + 2);
  off = next + 4;
  q->qname_plain = wire_to_text(q->qname_wire, q->qname_wirelen, q->qname, &q->qnamelen);
  for (uint16_t i = 0; i < ar; i++) {
    uint16_t type, class;
    uint32_t ttl;
    size_t rdata, rdlen, namewirelen;
    if (read_rr(msg, len, &off, &type, &class, &ttl, &rdata, &rdlen, &namewirelen) != 0) {
      return T2S_ERR_MALFORMED;
    }
    if (type != T2S_DNS_TYPE_OPT) {
      continue;
    }
    if (q->edns || namewirelen != 1) {
      return T2S_ERR_MALFORMED; /* a second OPT, or one not owned by the root (RFC 6891 6.1.1) */
    }
    /* Options: code, length, data; each must fit in RDATA exactly. */
    size_t o = rdata, end = rdata + rdlen;
    while (o < end) {
      if (o + 4 > end || o + 4 + t2s_get16(msg + o + 2) > end) {
        return T2S_ERR_MALFORMED;
      }
      o += 4 + (size_t)t2s_get16(msg + o + 2);
    }
    q->edns = true;
    q->edns_size = class < T2S_DNS_UDP_MIN ? T2S_DNS_UDP_MIN : class;
    q->edns_version = (uint8_t)(ttl >> 16);
  }
  if (off != len) {
    return T2S_ERR_MALFORMED; /* trailing bytes */
  }
  return 0;
}

t2s_ssize t2s_dns_name_to_wire(const char *text, uint8_t *out, size_t outlen) {
  size_t tlen = strlen(text);
  if (tlen > 0 && text[tlen - 1] == '.') {
    tlen--;
  }
  size_t n = 0, i = 0;
  while (i < tlen) {
    size_t j = i;
    while (j < tlen && text[j] != '.') {
      j++;
    }
    size_t l = j - i;
    if (l == 0 || l > 63) {
      return T2S_ERR_MALFORMED;
    }
    if (n + 1 + l + 1 > T2S_DNS_NAME_MAX) {
      return T2S_ERR_MALFORMED;
    }
    if (n + 1 + l > outlen) {
      return T2S_ERR_NOBUF;
    }
    out[n] = (uint8_t)l;
    memcpy(out + n + 1, text + i, l);
    n += 1 + l;
    i = j + 1;
    if (j + 1 == tlen) {
      return T2S_ERR_MALFORMED; /* "a..": an empty label before the end */
    }
  }
  if (n + 1 > outlen) {
    return T2S_ERR_NOBUF;
  }
  out[n++] = 0;
  return (t2s_ssize)n;
}

static bool ends_with(const char *s, size_t slen, const char *suffix) {
  size_t n = strlen(suffix);
  return slen >= n && memcmp(s + slen - n, suffix, n) == 0;
}

int t2s_dns_ptr_addr(const char *name, t2s_addr *out) {
  size_t len = strlen(name);
  memset(out, 0, sizeof(*out));
  if (ends_with(name, len, ".in-addr.arpa")) {
    /* d.c.b.a.in-addr.arpa: four decimal labels 0..255 without leading zeros. */
    size_t end = len - strlen(".in-addr.arpa"), i = 0;
    int parts = 0;
    uint8_t ip[4];
    while (i < end) {
      unsigned v = 0;
      size_t start = i;
      while (i < end && name[i] >= '0' && name[i] <= '9' && i - start < 3) {
        v = v * 10 + (unsigned)(name[i] - '0');
        i++;
      }
      if (i == start || v > 255 || (i - start > 1 && name[start] == '0') || parts == 4) {
        return T2S_ERR_NOT_FOUND;
      }
      ip[3 - parts++] = (uint8_t)v;
      if (i < end) {
        if (name[i] != '.' || i + 1 == end) {
          return T2S_ERR_NOT_FOUND;
        }
        i++;
      }
    }
    if (parts != 4) {
      return T2S_ERR_NOT_FOUND;
    }
    out->family = T2S_AF_INET;
    memcpy(out->ip, ip, 4);
    return 0;
  }
  if (ends_with(name, len, ".ip6.arpa")) {
    /* 32 single hex digits, least significant nibble first. */
    if (len != 64 + strlen(".ip6.arpa") - 1) {
      return T2S_ERR_NOT_FOUND;
    }
    for (int k = 0; k < 32; k++) {
      int v = t2s_hexval(name[2 * k]);
      if (v < 0 || name[2 * k + 1] != '.' || (name[2 * k] >= 'A' && name[2 * k] <= 'F')) {
        return T2S_ERR_NOT_FOUND;
      }
      int nib = 31 - k; /* nibble index from the most significant */
      if (nib % 2 == 0) {
        out->ip[nib / 2] = (uint8_t)(out->ip[nib / 2] | (v << 4));
      } else {
        out->ip[nib / 2] = (uint8_t)(out->ip[nib / 2] | v);
      }
    }
    out->family = T2S_AF_INET6;
    return 0;
  }
  return T2S_ERR_NOT_FOUND;
}

size_t t2s_dns_udp_limit(const t2s_dns_query *q) {
  return q->edns ? q->edns_size : T2S_DNS_UDP_MIN;
}

static void put_header(uint8_t *buf, const t2s_dns_query *q, int rcode, bool tc, uint16_t qd,
                       uint16_t an, uint16_t ar) {
  uint16_t flags = (uint16_t)(FLAG_QR | (q->flags & (FLAG_OPCODE | FLAG_RD | FLAG_CD)) | FLAG_RA |
                              (rcode & 0xf));
  if (tc) {
    flags |= FLAG_TC;
  }
  t2s_put16(buf, q->id);
  t2s_put16(buf + 2, flags);
  t2s_put16(buf + 4, qd);
  t2s_put16(buf + 6, an);
  t2s_put16(buf + 8, 0);
  t2s_put16(buf + 10, ar);
}

t2s_ssize t2s_dns_build_header_error(uint8_t *buf, size_t buflen, const t2s_dns_query *q,
                                     int rcode) {
  if (buflen < T2S_DNS_HEADER_LEN) {
    return T2S_ERR_NOBUF;
  }
  put_header(buf, q, rcode & 0xf, false, 0, 0, 0);
  return T2S_DNS_HEADER_LEN;
}

#define OPT_LEN 11 /* root name, type, class, TTL, RDLENGTH 0 */

t2s_ssize t2s_dns_build_answer(uint8_t *buf, size_t buflen, size_t maxlen, const t2s_dns_query *q,
                               int rcode, const uint8_t *rdata, size_t rdatalen, uint32_t ttl) {
  if ((rcode > 15 && !q->edns) || rcode < 0 || rcode > 4095 || rdatalen > 65535) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  size_t question = q->qname_wirelen + 4;
  size_t opt = q->edns ? OPT_LEN : 0;
  size_t bare = T2S_DNS_HEADER_LEN + question + opt;
  size_t answer = rdata ? 2 + 10 + rdatalen : 0;
  bool tc = false;
  if (bare + answer > maxlen) {
    tc = true; /* the client's limit: it retries over TCP */
    answer = 0;
  }
  if (bare + answer > buflen) {
    return T2S_ERR_NOBUF;
  }
  put_header(buf, q, rcode, tc, 1, answer ? 1 : 0, q->edns ? 1 : 0);
  size_t n = T2S_DNS_HEADER_LEN;
  memcpy(buf + n, q->qname_wire, q->qname_wirelen);
  n += q->qname_wirelen;
  t2s_put16(buf + n, q->qtype);
  t2s_put16(buf + n + 2, q->qclass);
  n += 4;
  if (answer) {
    t2s_put16(buf + n, 0xc000 | T2S_DNS_HEADER_LEN); /* the question's name */
    t2s_put16(buf + n + 2, q->qtype);
    t2s_put16(buf + n + 4, q->qclass);
    t2s_put32(buf + n + 6, ttl);
    t2s_put16(buf + n + 10, (uint16_t)rdatalen);
    memcpy(buf + n + 12, rdata, rdatalen);
    n += answer;
  }
  if (opt) {
    buf[n] = 0;
    t2s_put16(buf + n + 1, T2S_DNS_TYPE_OPT);
    t2s_put16(buf + n + 3, T2S_DNS_EDNS_SIZE);
    /* Extended RCODE (upper 8 bits), version 0, DO 0, Z 0. */
    t2s_put32(buf + n + 5, (uint32_t)((rcode >> 4) & 0xff) << 24);
    t2s_put16(buf + n + 9, 0);
    n += OPT_LEN;
  }
  return (t2s_ssize)n;
}
