/* common.c: error names and address helpers. */
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "drop.h"

#ifdef T2S_ENABLE_ASSERTS
_Noreturn void t2s_assert_fail(const char *file, int line, const char *cond) {
  fprintf(stderr, "%s:%d: assertion failed: %s\n", file, line, cond);
  fflush(stderr);
  abort();
}
#endif

const char *t2s_strerror(int err) {
  switch (err) {
  case T2S_OK:
    return "ok";
  case T2S_ERR_INVALID_ARGUMENT:
    return "invalid argument";
  case T2S_ERR_NOBUF:
    return "buffer too small";
  case T2S_ERR_WOULDBLOCK:
    return "would block";
  case T2S_ERR_NOT_FOUND:
    return "not found";
  case T2S_ERR_EXISTS:
    return "already exists";
  case T2S_ERR_PERMISSION:
    return "permission denied";
  case T2S_ERR_MALFORMED:
    return "malformed";
  case T2S_ERR_PROTO:
    return "protocol violation";
  case T2S_ERR_CLOSED:
    return "closed";
  case T2S_ERR_RESET:
    return "connection reset";
  case T2S_ERR_TIMEOUT:
    return "timed out";
  case T2S_ERR_REFUSED:
    return "connection refused";
  case T2S_ERR_UNREACHABLE:
    return "unreachable";
  case T2S_ERR_AUTH:
    return "authentication failed";
  case T2S_ERR_LIMIT:
    return "limit reached";
  case T2S_ERR_UNSUPPORTED:
    return "unsupported";
  case T2S_ERR_NETWORK_CHANGED:
    return "network changed";
  case T2S_ERR_NOMEM:
    return "out of memory";
  case T2S_ERR_INTERNAL:
    return "internal error";
  default:
    return err <= T2S_ERR_FATAL ? "fatal error" : "unknown error";
  }
}

static const char *const drop_names[] = {
#define T2S_DROP_LABEL(name, label) label,
    T2S_DROP_REASONS(T2S_DROP_LABEL)
#undef T2S_DROP_LABEL
};

const char *t2s_drop_name(int reason) {
  if (reason < 0 || reason >= T2S_DROP_MAX) {
    return "unknown";
  }
  return drop_names[reason];
}

static size_t addr_iplen(const t2s_addr *a) {
  return a->family == T2S_AF_INET ? 4 : 16;
}

bool t2s_addr_ip_eq(const t2s_addr *a, const t2s_addr *b) {
  return a->family == b->family && memcmp(a->ip, b->ip, addr_iplen(a)) == 0;
}

bool t2s_addr_eq(const t2s_addr *a, const t2s_addr *b) {
  return t2s_addr_ip_eq(a, b) && a->port == b->port;
}

static char *format_v6(const uint8_t *ip, char *out, size_t outlen) {
  /* RFC 5952: longest run (>= 2) of zero groups becomes "::". */
  uint16_t g[8];
  for (int i = 0; i < 8; i++) {
    g[i] = t2s_get16(ip + 2 * i);
  }
  int best = -1, bestlen = 0;
  for (int i = 0; i < 8;) {
    if (g[i] != 0) {
      i++;
      continue;
    }
    int j = i;
    while (j < 8 && g[j] == 0) {
      j++;
    }
    if (j - i > bestlen && j - i >= 2) {
      best = i;
      bestlen = j - i;
    }
    i = j;
  }
  size_t n = 0;
  out[0] = 0;
  for (int i = 0; i < 8; i++) {
    if (i == best) {
      n += (size_t)snprintf(out + n, outlen - n, "::");
      i += bestlen - 1;
      continue;
    }
    if (n > 0 && out[n - 1] != ':') {
      n += (size_t)snprintf(out + n, outlen - n, ":");
    }
    n += (size_t)snprintf(out + n, outlen - n, "%x", g[i]);
    if (n >= outlen) {
      break;
    }
  }
  return out;
}

char *t2s_addr_format(const t2s_addr *a, bool with_port, char *buf, size_t buflen) {
  char ip[48];
  if (buflen == 0) {
    return buf;
  }
  if (a->family == T2S_AF_INET) {
    snprintf(ip, sizeof(ip), "%u.%u.%u.%u", a->ip[0], a->ip[1], a->ip[2], a->ip[3]);
    if (with_port) {
      snprintf(buf, buflen, "%s:%u", ip, a->port);
    } else {
      snprintf(buf, buflen, "%s", ip);
    }
  } else if (a->family == T2S_AF_INET6) {
    format_v6(a->ip, ip, sizeof(ip));
    if (with_port) {
      snprintf(buf, buflen, "[%s]:%u", ip, a->port);
    } else {
      snprintf(buf, buflen, "%s", ip);
    }
  } else {
    snprintf(buf, buflen, "-");
  }
  return buf;
}

static int parse_port(const char *s, uint16_t *port) {
  unsigned long v = 0;
  if (*s == 0) {
    return T2S_ERR_MALFORMED;
  }
  for (; *s; s++) {
    if (*s < '0' || *s > '9') {
      return T2S_ERR_MALFORMED;
    }
    v = v * 10 + (unsigned long)(*s - '0');
    if (v > 65535) {
      return T2S_ERR_MALFORMED;
    }
  }
  *port = (uint16_t)v;
  return 0;
}

static int parse_v4(const char *s, size_t len, uint8_t *ip) {
  int part = 0;
  unsigned v = 0;
  int digits = 0;
  for (size_t i = 0; i <= len; i++) {
    char c = i < len ? s[i] : '.';
    if (c >= '0' && c <= '9') {
      v = v * 10 + (unsigned)(c - '0');
      if (++digits > 3 || v > 255) {
        return T2S_ERR_MALFORMED;
      }
    } else if (c == '.') {
      if (digits == 0 || part >= 4) {
        return T2S_ERR_MALFORMED;
      }
      ip[part++] = (uint8_t)v;
      v = 0;
      digits = 0;
    } else {
      return T2S_ERR_MALFORMED;
    }
  }
  return part == 4 ? 0 : T2S_ERR_MALFORMED;
}

static int parse_v6(const char *s, size_t len, uint8_t *ip) {
  uint16_t head[8], tail[8];
  int nhead = 0, ntail = 0;
  bool dbl = false;
  size_t i = 0;
  if (len >= 2 && s[0] == ':' && s[1] == ':') {
    dbl = true;
    i = 2;
  } else if (len >= 1 && s[0] == ':') {
    return T2S_ERR_MALFORMED;
  }
  while (i < len) {
    /* one group, or an embedded IPv4 at the end */
    size_t j = i;
    unsigned v = 0;
    int digits = 0;
    while (j < len && t2s_hexval(s[j]) >= 0) {
      v = (v << 4) | (unsigned)t2s_hexval(s[j]);
      if (++digits > 4) {
        return T2S_ERR_MALFORMED;
      }
      j++;
    }
    if (j < len && s[j] == '.') {
      uint8_t v4[4];
      if (parse_v4(s + i, len - i, v4) != 0) {
        return T2S_ERR_MALFORMED;
      }
      uint16_t *arr = dbl ? tail : head;
      int *n = dbl ? &ntail : &nhead;
      if (*n + 2 > 8) {
        return T2S_ERR_MALFORMED;
      }
      arr[(*n)++] = (uint16_t)((v4[0] << 8) | v4[1]);
      arr[(*n)++] = (uint16_t)((v4[2] << 8) | v4[3]);
      i = len;
      break;
    }
    if (digits == 0) {
      return T2S_ERR_MALFORMED;
    }
    uint16_t *arr = dbl ? tail : head;
    int *n = dbl ? &ntail : &nhead;
    if (*n >= 8) {
      return T2S_ERR_MALFORMED;
    }
    arr[(*n)++] = (uint16_t)v;
    i = j;
    if (i == len) {
      break;
    }
    if (s[i] != ':') {
      return T2S_ERR_MALFORMED;
    }
    i++;
    if (i < len && s[i] == ':') {
      if (dbl) {
        return T2S_ERR_MALFORMED;
      }
      dbl = true;
      i++;
    } else if (i == len) {
      return T2S_ERR_MALFORMED;
    }
  }
  if (dbl ? nhead + ntail > 7 : nhead != 8) {
    return T2S_ERR_MALFORMED;
  }
  memset(ip, 0, 16);
  for (int k = 0; k < nhead; k++) {
    t2s_put16(ip + 2 * k, head[k]);
  }
  for (int k = 0; k < ntail; k++) {
    t2s_put16(ip + 2 * (8 - ntail + k), tail[k]);
  }
  return 0;
}

int t2s_addr_parse(const char *s, t2s_addr *out) {
  memset(out, 0, sizeof(*out));
  size_t len = strlen(s);
  if (len == 0) {
    return T2S_ERR_MALFORMED;
  }
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL) {
      return T2S_ERR_MALFORMED;
    }
    if (parse_v6(s + 1, (size_t)(close - s - 1), out->ip) != 0) {
      return T2S_ERR_MALFORMED;
    }
    out->family = T2S_AF_INET6;
    if (close[1] == 0) {
      return 0;
    }
    if (close[1] != ':') {
      return T2S_ERR_MALFORMED;
    }
    return parse_port(close + 2, &out->port);
  }
  const char *colon = strchr(s, ':');
  if (colon != NULL && strchr(colon + 1, ':') != NULL) {
    out->family = T2S_AF_INET6;
    return parse_v6(s, len, out->ip);
  }
  size_t iplen = colon ? (size_t)(colon - s) : len;
  if (parse_v4(s, iplen, out->ip) != 0) {
    return T2S_ERR_MALFORMED;
  }
  out->family = T2S_AF_INET;
  if (colon) {
    return parse_port(colon + 1, &out->port);
  }
  return 0;
}

uint64_t t2s_addr_hash(const t2s_addr *a, uint64_t seed) {
  /* FNV-1a over the bytes, then a final avalanche with the seed. */
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  size_t n = addr_iplen(a);
  h = (h ^ a->family) * 0x100000001b3ULL;
  for (size_t i = 0; i < n; i++) {
    h = (h ^ a->ip[i]) * 0x100000001b3ULL;
  }
  h = (h ^ (a->port & 0xff)) * 0x100000001b3ULL;
  h = (h ^ (a->port >> 8)) * 0x100000001b3ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}
