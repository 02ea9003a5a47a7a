/* sim_events.c: JSON-lines event log and packet summaries. */
#include "sim_events.h"

#include "packet.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

static void put_escaped(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"':
      fputs("\\\"", f);
      break;
    case '\\':
      fputs("\\\\", f);
      break;
    case '\n':
      fputs("\\n", f);
      break;
    case '\r':
      fputs("\\r", f);
      break;
    case '\t':
      fputs("\\t", f);
      break;
    default:
      if (*p < 0x20 || *p >= 0x7f) {
        fprintf(f, "\\u%04x", *p);
      } else {
        fputc(*p, f);
      }
    }
  }
  fputc('"', f);
}

static void key(sim_log *log, const char *k) {
  if (!log->nocomma) {
    fputc(',', log->f);
  }
  log->nocomma = false;
  put_escaped(log->f, k);
  fputc(':', log->f);
}

void sim_log_begin(sim_log *log, t2s_tstamp t, const char *ev) {
  if (log->f == NULL) {
    return;
  }
  fprintf(log->f, "{\"t\":%" PRIu64 ",\"event\":", t);
  put_escaped(log->f, ev);
  log->nocomma = false;
}

void sim_log_str(sim_log *log, const char *k, const char *val) {
  if (log->f == NULL) {
    return;
  }
  key(log, k);
  put_escaped(log->f, val);
}

void sim_log_u64(sim_log *log, const char *k, uint64_t v) {
  if (log->f == NULL) {
    return;
  }
  key(log, k);
  fprintf(log->f, "%" PRIu64, v);
}

void sim_log_i64(sim_log *log, const char *k, int64_t v) {
  if (log->f == NULL) {
    return;
  }
  key(log, k);
  fprintf(log->f, "%" PRId64, v);
}

void sim_log_bool(sim_log *log, const char *k, bool v) {
  if (log->f == NULL) {
    return;
  }
  key(log, k);
  fputs(v ? "true" : "false", log->f);
}

void sim_log_addr(sim_log *log, const char *k, const t2s_addr *a) {
  if (log->f == NULL) {
    return;
  }
  char buf[64];
  t2s_addr_format(a, a->port != 0, buf, sizeof(buf));
  sim_log_str(log, k, buf);
}

void sim_log_open_obj(sim_log *log, const char *k) {
  if (log->f == NULL) {
    return;
  }
  key(log, k);
  fputc('{', log->f);
  log->nocomma = true;
}

void sim_log_close_obj(sim_log *log) {
  if (log->f == NULL) {
    return;
  }
  fputc('}', log->f);
  log->nocomma = false;
}

void sim_log_end(sim_log *log) {
  if (log->f == NULL) {
    return;
  }
  fputs("}\n", log->f);
}

/* ---------------- packet summaries ---------------- */

typedef struct sumbuf {
  char *p;
  size_t len, cap;
} sumbuf;

__attribute__((format(printf, 2, 3))) static void add(sumbuf *b, const char *fmt, ...) {
  if (b->len + 1 >= b->cap) {
    return;
  }
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
  va_end(ap);
  if (n > 0) {
    b->len += (size_t)n;
    if (b->len >= b->cap) {
      b->len = b->cap - 1;
    }
  }
}

static void fmt_ep(sumbuf *b, const t2s_addr *a, bool with_port) {
  char s[64];
  t2s_addr_format(a, with_port, s, sizeof(s));
  add(b, "%s", s);
}

static const char *icmp4_name(uint8_t type) {
  switch (type) {
  case 0:
    return "echo-reply";
  case 3:
    return "unreachable";
  case 8:
    return "echo-request";
  case 11:
    return "time-exceeded";
  default:
    return NULL;
  }
}

static const char *icmp6_name(uint8_t type) {
  switch (type) {
  case 1:
    return "unreachable";
  case 2:
    return "packet-too-big";
  case 3:
    return "time-exceeded";
  case 128:
    return "echo-request";
  case 129:
    return "echo-reply";
  case 133:
    return "router-solicitation";
  case 135:
    return "neighbor-solicitation";
  default:
    return NULL;
  }
}

char *sim_pkt_summary(const uint8_t *pkt, size_t len, char *buf, size_t buflen) {
  sumbuf b = {buf, 0, buflen};
  if (buflen == 0) {
    return buf;
  }
  buf[0] = 0;
  if (len < 1) {
    add(&b, "empty");
    return buf;
  }
  t2s_addr src, dst;
  memset(&src, 0, sizeof(src));
  memset(&dst, 0, sizeof(dst));
  uint8_t proto;
  size_t l4, iplen;
  bool frag = false;
  int ver = pkt[0] >> 4;
  if (ver == 4) {
    if (len < 20) {
      add(&b, "IP truncated len=%zu", len);
      return buf;
    }
    size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;
    iplen = t2s_get16(pkt + 2);
    if (ihl < 20 || ihl > len) {
      add(&b, "IP bad-ihl len=%zu", len);
      return buf;
    }
    src.family = dst.family = T2S_AF_INET;
    memcpy(src.ip, pkt + 12, 4);
    memcpy(dst.ip, pkt + 16, 4);
    proto = pkt[9];
    l4 = ihl;
    frag = (t2s_get16(pkt + 6) & 0x3fff) != 0;
    add(&b, "IP ");
  } else if (ver == 6) {
    if (len < 40) {
      add(&b, "IP6 truncated len=%zu", len);
      return buf;
    }
    iplen = 40 + (size_t)t2s_get16(pkt + 4);
    src.family = dst.family = T2S_AF_INET6;
    memcpy(src.ip, pkt + 8, 16);
    memcpy(dst.ip, pkt + 24, 16);
    proto = pkt[6];
    l4 = 40;
    /* Walk a bounded number of extension headers. */
    for (int i = 0; i < 8; i++) {
      if (proto == 0 || proto == 43 || proto == 60) {
        if (l4 + 2 > len) {
          break;
        }
        uint8_t nh = pkt[l4];
        l4 += ((size_t)pkt[l4 + 1] + 1) * 8;
        proto = nh;
      } else if (proto == 44) {
        if (l4 + 8 > len) {
          break;
        }
        frag = (t2s_get16(pkt + l4 + 2) & 0xfff9) != 0;
        proto = pkt[l4];
        l4 += 8;
      } else {
        break;
      }
    }
    add(&b, "IP6 ");
  } else {
    add(&b, "bad-version(%d) len=%zu", ver, len);
    return buf;
  }
  if (iplen > len) {
    iplen = len;
  }
  bool ports = !frag && (proto == T2S_IPPROTO_TCP || proto == T2S_IPPROTO_UDP) && l4 + 4 <= len;
  if (ports) {
    src.port = t2s_get16(pkt + l4);
    dst.port = t2s_get16(pkt + l4 + 2);
  }
  fmt_ep(&b, &src, ports);
  add(&b, " > ");
  fmt_ep(&b, &dst, ports);
  if (frag) {
    add(&b, " frag proto=%u len=%zu", proto, len);
    return buf;
  }
  if (proto == T2S_IPPROTO_TCP) {
    if (l4 + 20 > len) {
      add(&b, " TCP truncated len=%zu", len);
      return buf;
    }
    const uint8_t *t = pkt + l4;
    size_t doff = (size_t)(t[12] >> 4) * 4;
    uint8_t fl = t[13];
    char flags[12];
    size_t nf = 0;
    static const struct {
      uint8_t bit;
      char c;
    } fmap[] = {{0x02, 'S'}, {0x01, 'F'}, {0x04, 'R'}, {0x08, 'P'},
                {0x20, 'U'}, {0x40, 'E'}, {0x80, 'W'}, {0x10, '.'}};
    for (size_t i = 0; i < T2S_ARRAY_LEN(fmap); i++) {
      if (fl & fmap[i].bit) {
        flags[nf++] = fmap[i].c;
      }
    }
    flags[nf] = 0;
    size_t plen = (l4 + doff <= iplen) ? iplen - l4 - doff : 0;
    add(&b, " TCP [%s] seq=%u ack=%u win=%u len=%zu", flags, t2s_get32(t + 4), t2s_get32(t + 8),
        t2s_get16(t + 14), plen);
  } else if (proto == T2S_IPPROTO_UDP) {
    size_t plen = l4 + 8 <= iplen ? iplen - l4 - 8 : 0;
    add(&b, " UDP len=%zu", plen);
  } else if (proto == T2S_IPPROTO_ICMP || proto == T2S_IPPROTO_ICMPV6) {
    if (l4 + 8 > len) {
      add(&b, " ICMP truncated len=%zu", len);
      return buf;
    }
    const uint8_t *c = pkt + l4;
    const char *name = proto == T2S_IPPROTO_ICMP ? icmp4_name(c[0]) : icmp6_name(c[0]);
    add(&b, proto == T2S_IPPROTO_ICMP ? " ICMP " : " ICMP6 ");
    if (name) {
      add(&b, "%s", name);
    } else {
      add(&b, "type=%u", c[0]);
    }
    bool echo = proto == T2S_IPPROTO_ICMP ? (c[0] == 0 || c[0] == 8) : (c[0] == 128 || c[0] == 129);
    if (echo) {
      add(&b, " id=%u seq=%u", t2s_get16(c + 4), t2s_get16(c + 6));
    } else {
      add(&b, " code=%u", c[1]);
    }
    add(&b, " len=%zu", iplen > l4 + 8 ? iplen - l4 - 8 : 0);
  } else {
    add(&b, " proto=%u len=%zu", proto, len);
  }
  return buf;
}
