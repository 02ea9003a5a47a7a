/* cli_parse.c: pure parsers for command-line values (see cli_parse.h). */
#include "cli_parse.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

static int fail(const char **pwhy, const char *why, int err) {
  if (pwhy) {
    *pwhy = why;
  }
  return err;
}

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

static const struct {
  const char *name;
  uint64_t ns;
} duration_units[] = {
    {"ns", 1},       {"us", 1000},      {"\xc2\xb5s", 1000}, /* µs */
    {"ms", 1000000}, {"s", 1000000000}, {"m", 60ull * 1000000000}, {"h", 3600ull * 1000000000},
};

int t2s_parse_duration(const char *s, uint64_t *pns, const char **pwhy) {
  if (!s || !*s) {
    return fail(pwhy, "empty duration", T2S_ERR_MALFORMED);
  }
  uint64_t total = 0;
  const char *p = s;
  while (*p) {
    if (!is_digit(*p) && *p != '.') {
      return fail(pwhy, "expected a number (like 500ms, 10s, 2m)", T2S_ERR_MALFORMED);
    }
    uint64_t whole = 0;
    bool any_digit = false;
    while (is_digit(*p)) {
      if (whole > (UINT64_MAX - 9) / 10) {
        return fail(pwhy, "duration too large", T2S_ERR_MALFORMED);
      }
      whole = whole * 10 + (uint64_t)(*p - '0');
      any_digit = true;
      p++;
    }
    uint64_t frac = 0, frac_scale = 1;
    if (*p == '.') {
      p++;
      while (is_digit(*p)) {
        if (frac_scale < 1000000000000000000ull) { /* extra digits beyond 1e-18 are ignored */
          frac = frac * 10 + (uint64_t)(*p - '0');
          frac_scale *= 10;
        }
        any_digit = true;
        p++;
      }
    }
    if (!any_digit) {
      return fail(pwhy, "expected a number (like 500ms, 10s, 2m)", T2S_ERR_MALFORMED);
    }
    uint64_t unit = 0;
    size_t unitlen = 0;
    if (*p == '\0' && p == s + strlen(s) && total == 0 && unitlen == 0) {
      unit = 1000000000; /* a bare number: seconds */
    } else {
      for (size_t i = 0; i < T2S_ARRAY_LEN(duration_units); i++) {
        size_t n = strlen(duration_units[i].name);
        /* "m" must not swallow the "m" of "ms": prefer the longest unit that matches. */
        if (strncmp(p, duration_units[i].name, n) == 0 && n > unitlen) {
          unit = duration_units[i].ns;
          unitlen = n;
        }
      }
      if (unitlen == 0) {
        return fail(pwhy,
                    *p ? "unknown unit (use ns, us, ms, s, m or h)"
                       : "missing unit after a number (use ns, us, ms, s, m or h)",
                    T2S_ERR_MALFORMED);
      }
      p += unitlen;
    }
    if (whole > UINT64_MAX / unit) {
      return fail(pwhy, "duration too large", T2S_ERR_MALFORMED);
    }
    uint64_t part = whole * unit;
    /* frac < frac_scale <= 1e18 and unit <= 3.6e12: compute frac * unit / frac_scale without
     * overflow by splitting the unit. */
    uint64_t fpart = (unit / frac_scale) * frac + ((unit % frac_scale) * frac) / frac_scale;
    if (part > UINT64_MAX - fpart || total > UINT64_MAX - part - fpart) {
      return fail(pwhy, "duration too large", T2S_ERR_MALFORMED);
    }
    total += part + fpart;
  }
  *pns = total;
  return 0;
}

int t2s_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *pval, const char **pwhy) {
  if (!s || !*s) {
    return fail(pwhy, "empty number", T2S_ERR_MALFORMED);
  }
  uint64_t v = 0;
  const char *p = s;
  unsigned base = 10;
  if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
    base = 16;
    p += 2;
    if (!*p) {
      return fail(pwhy, "not a number", T2S_ERR_MALFORMED);
    }
  }
  for (; *p; p++) {
    unsigned d;
    if (is_digit(*p)) {
      d = (unsigned)(*p - '0');
    } else if (base == 16 && *p >= 'a' && *p <= 'f') {
      d = (unsigned)(*p - 'a' + 10);
    } else if (base == 16 && *p >= 'A' && *p <= 'F') {
      d = (unsigned)(*p - 'A' + 10);
    } else {
      return fail(pwhy, "not a number", T2S_ERR_MALFORMED);
    }
    if (v > (UINT64_MAX - d) / base) {
      return fail(pwhy, "number too large", T2S_ERR_MALFORMED);
    }
    v = v * base + d;
  }
  if (v < min) {
    return fail(pwhy, "number too small", T2S_ERR_INVALID_ARGUMENT);
  }
  if (v > max) {
    return fail(pwhy, "number too large", T2S_ERR_INVALID_ARGUMENT);
  }
  *pval = v;
  return 0;
}

/* Parses an IPv4 or IPv6 literal (no brackets, no port) of exactly len bytes. */
static int parse_ip(const char *s, size_t len, t2s_addr *out) {
  char tmp[64];
  if (len == 0 || len >= sizeof(tmp)) {
    return T2S_ERR_MALFORMED;
  }
  memcpy(tmp, s, len);
  tmp[len] = '\0';
  memset(out, 0, sizeof(*out));
  if (inet_pton(AF_INET, tmp, out->ip) == 1) {
    out->family = T2S_AF_INET;
    return 0;
  }
  if (inet_pton(AF_INET6, tmp, out->ip) == 1) {
    out->family = T2S_AF_INET6;
    return 0;
  }
  return T2S_ERR_MALFORMED;
}

int t2s_parse_cidr(const char *s, t2s_cidr *out, const char **pwhy) {
  if (!s || !*s) {
    return fail(pwhy, "empty address", T2S_ERR_MALFORMED);
  }
  const char *slash = strchr(s, '/');
  size_t addrlen = slash ? (size_t)(slash - s) : strlen(s);
  t2s_cidr c;
  memset(&c, 0, sizeof(c));
  if (parse_ip(s, addrlen, &c.addr) != 0) {
    return fail(pwhy, "not an IPv4 or IPv6 address (like 198.18.0.1/15 or fd00:18::1/64)",
                T2S_ERR_MALFORMED);
  }
  unsigned maxlen = c.addr.family == T2S_AF_INET ? 32 : 128;
  if (slash) {
    uint64_t len;
    if (t2s_parse_uint(slash + 1, 0, maxlen, &len, NULL) != 0) {
      return fail(pwhy,
                  c.addr.family == T2S_AF_INET ? "prefix length must be 0..32"
                                               : "prefix length must be 0..128",
                  T2S_ERR_MALFORMED);
    }
    c.prefixlen = (uint8_t)len;
  } else {
    c.prefixlen = (uint8_t)maxlen;
  }
  *out = c;
  return 0;
}

/* Copies s[0..len) into out percent-decoding it. Returns the decoded length or -1. */
static int pct_decode(const char *s, size_t len, char *out, size_t outlen) {
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= len) {
        return -1;
      }
      int hi = t2s_hexval(s[i + 1]), lo = t2s_hexval(s[i + 2]);
      if (hi < 0 || lo < 0) {
        return -1;
      }
      c = (char)(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0' || o + 1 >= outlen) {
      return -1;
    }
    out[o++] = c;
  }
  out[o] = '\0';
  return (int)o;
}

/* Splits "host:port", "[v6]:port", "host", "[v6]" (port optional when default_port != 0). */
static int split_hostport(const char *s, size_t len, char *host, size_t hostlen, uint16_t *pport,
                          bool port_required, const char **pwhy) {
  const char *hs, *he, *port = NULL;
  const char *end = s + len;
  if (len > 0 && s[0] == '[') {
    const char *rb = memchr(s, ']', len);
    if (!rb) {
      return fail(pwhy, "missing ']' after an IPv6 address", T2S_ERR_MALFORMED);
    }
    hs = s + 1;
    he = rb;
    if (rb + 1 < end) {
      if (rb[1] != ':') {
        return fail(pwhy, "expected ':PORT' after ']'", T2S_ERR_MALFORMED);
      }
      port = rb + 2;
    }
    t2s_addr a;
    if (parse_ip(hs, (size_t)(he - hs), &a) != 0 || a.family != T2S_AF_INET6) {
      return fail(pwhy, "not an IPv6 address inside [ ]", T2S_ERR_MALFORMED);
    }
  } else {
    const char *colon = NULL;
    for (const char *p = s; p < end; p++) {
      if (*p == ':') {
        if (colon) {
          return fail(pwhy, "an IPv6 address must be written in brackets: [2001:db8::1]:1080",
                      T2S_ERR_MALFORMED);
        }
        colon = p;
      }
    }
    hs = s;
    he = colon ? colon : end;
    port = colon ? colon + 1 : NULL;
  }
  size_t hl = (size_t)(he - hs);
  if (hl + 1 > hostlen) {
    return fail(pwhy, "host name too long", T2S_ERR_MALFORMED);
  }
  for (const char *p = hs; p < he; p++) {
    if ((unsigned char)*p <= ' ' || *p == '/' || *p == '@' || *p == '?' || *p == '#') {
      return fail(pwhy, "invalid character in host", T2S_ERR_MALFORMED);
    }
  }
  memcpy(host, hs, hl);
  host[hl] = '\0';
  if (!port) {
    if (port_required) {
      return fail(pwhy, "missing ':PORT'", T2S_ERR_MALFORMED);
    }
    return 0;
  }
  char pbuf[8];
  size_t pl = (size_t)(end - port);
  if (pl == 0 || pl >= sizeof(pbuf)) {
    return fail(pwhy, "port must be 1..65535", T2S_ERR_MALFORMED);
  }
  memcpy(pbuf, port, pl);
  pbuf[pl] = '\0';
  uint64_t v;
  for (size_t i = 0; i < pl; i++) {
    if (!is_digit(pbuf[i])) {
      return fail(pwhy, "port must be 1..65535", T2S_ERR_MALFORMED);
    }
  }
  if (t2s_parse_uint(pbuf, 1, 65535, &v, NULL) != 0) {
    return fail(pwhy, "port must be 1..65535", T2S_ERR_MALFORMED);
  }
  *pport = (uint16_t)v;
  return 0;
}

int t2s_parse_proxy_url(const char *s, t2s_proxy_url *out, const char **pwhy) {
  t2s_proxy_url u;
  memset(&u, 0, sizeof(u));
  if (!s || !*s) {
    return fail(pwhy, "empty proxy URL", T2S_ERR_MALFORMED);
  }
  const char *sep = strstr(s, "://");
  if (!sep) {
    return fail(pwhy, "expected socks5://[user:pass@]host:port", T2S_ERR_MALFORMED);
  }
  size_t sl = (size_t)(sep - s);
  if (sl == 0 || sl >= sizeof(u.scheme)) {
    return fail(pwhy, "unsupported scheme (only socks5:// is supported)", T2S_ERR_MALFORMED);
  }
  for (size_t i = 0; i < sl; i++) {
    char c = s[i];
    u.scheme[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  if (strcmp(u.scheme, "socks5") != 0 && strcmp(u.scheme, "socks5h") != 0) {
    return fail(pwhy, "unsupported scheme (only socks5:// is supported)", T2S_ERR_MALFORMED);
  }
  strcpy(u.scheme, "socks5");
  const char *auth = sep + 3;
  const char *end = auth + strlen(auth);
  /* Tolerate one trailing '/', reject any other path, query or fragment. */
  if (end > auth && end[-1] == '/') {
    end--;
  }
  for (const char *p = auth; p < end; p++) {
    if (*p == '/' || *p == '?' || *p == '#') {
      return fail(pwhy, "a proxy URL has no path, query or fragment", T2S_ERR_MALFORMED);
    }
  }
  /* The userinfo ends at the last '@' (a password may contain a raw '@'). */
  const char *at = NULL;
  for (const char *p = auth; p < end; p++) {
    if (*p == '@') {
      at = p;
    }
  }
  const char *hostpart = auth;
  if (at) {
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    const char *ue = colon ? colon : at;
    if (ue == auth) {
      return fail(pwhy, "empty user name before '@'", T2S_ERR_MALFORMED);
    }
    if (pct_decode(auth, (size_t)(ue - auth), u.user, sizeof(u.user)) <= 0) {
      return fail(pwhy, "user name: bad %-escape or longer than 255 bytes", T2S_ERR_MALFORMED);
    }
    u.has_user = true;
    if (colon) {
      int n = pct_decode(colon + 1, (size_t)(at - colon - 1), u.pass, sizeof(u.pass));
      if (n < 0) {
        return fail(pwhy, "password: bad %-escape or longer than 255 bytes", T2S_ERR_MALFORMED);
      }
      u.has_pass = true;
    }
    hostpart = at + 1;
  }
  if (hostpart == end) {
    return fail(pwhy, "missing proxy host", T2S_ERR_MALFORMED);
  }
  u.port = 1080;
  int rv = split_hostport(hostpart, (size_t)(end - hostpart), u.host, sizeof(u.host), &u.port,
                          false, pwhy);
  if (rv != 0) {
    return rv;
  }
  if (!u.host[0]) {
    return fail(pwhy, "missing proxy host", T2S_ERR_MALFORMED);
  }
  *out = u;
  return 0;
}

int t2s_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *pport,
                       const char **pwhy) {
  if (!s || !*s) {
    return fail(pwhy, "expected HOST:PORT", T2S_ERR_MALFORMED);
  }
  if (hostlen < 2) {
    return fail(pwhy, "host buffer too small", T2S_ERR_INVALID_ARGUMENT);
  }
  return split_hostport(s, strlen(s), host, hostlen, pport, true, pwhy);
}

char *t2s_format_duration(uint64_t ns, char *buf, size_t buflen) {
  static const struct {
    const char *name;
    uint64_t ns;
  } units[] = {{"h", 3600ull * 1000000000},
               {"m", 60ull * 1000000000},
               {"s", 1000000000},
               {"ms", 1000000},
               {"us", 1000},
               {"ns", 1}};
  for (size_t i = 0; i < T2S_ARRAY_LEN(units); i++) {
    if (ns != 0 && ns % units[i].ns == 0) {
      snprintf(buf, buflen, "%llu%s", (unsigned long long)(ns / units[i].ns), units[i].name);
      return buf;
    }
  }
  snprintf(buf, buflen, "0s");
  return buf;
}
