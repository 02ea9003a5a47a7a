/*
 * rec_format.c: the recording format's codec (docs/recording.md). Each record kind has a
 * layout string, one letter per field, shared by the encoder and the strict decoder.
 */
#include "rec_format.h"

#include <string.h>

const char *t2s_rec_strerror(int err) {
  switch (err) {
  case 0:
    return "ok";
  case T2S_REC_ERR_TRUNCATED:
    return "truncated";
  case T2S_REC_ERR_MAGIC:
    return "not a tun2sock recording (bad magic)";
  case T2S_REC_ERR_VERSION:
    return "another format version";
  case T2S_REC_ERR_CORRUPT:
    return "corrupt";
  case T2S_REC_ERR_NOMEM:
    return "out of memory";
  case T2S_REC_ERR_IO:
    return "write failed";
  default:
    return "unknown error";
  }
}

/*
 * Layouts: i id (u64), r rv (i64), e err (i32, into rv), a u32a, b u32b, f flag (u8, 0 or 1),
 * t t1 (u64), A addr, E egress, R route, N net event, V engine event, H an output's length
 * (u32) and hash (u64), D the bytes (the rest; after H: the first T2S_REC_OUTPUT_PREFIX).
 */
static const struct {
  const char *name;
  const char *layout;
} kinds[] = {
    [T2S_REC_DEV_IN] = {"dev_in", "aD"},
    [T2S_REC_EXPIRY] = {"expiry", ""},
    [T2S_REC_STREAM_OPENED] = {"stream_opened", "ie"},
    [T2S_REC_STREAM_RECV] = {"stream_recv", "iD"},
    [T2S_REC_STREAM_EOF] = {"stream_eof", "i"},
    [T2S_REC_STREAM_WRITABLE] = {"stream_writable", "i"},
    [T2S_REC_STREAM_ERROR] = {"stream_error", "ie"},
    [T2S_REC_DGRAM_RECV] = {"dgram_recv", "iD"},
    [T2S_REC_DGRAM_ERROR] = {"dgram_error", "ie"},
    [T2S_REC_NET_EVENT] = {"net_event", "N"},
    [T2S_REC_RESET_ALL] = {"reset_all", ""},
    [T2S_REC_ENGINE_DEL] = {"engine_del", ""},
    [T2S_REC_SET_PROXIES] = {"set_proxies", "D"},
    [T2S_REC_REPLACE_PROXIES] = {"replace_proxies", "D"},
    [T2S_REC_PROXY_SET_ADDR] = {"proxy_set_addr", "aA"},
    [T2S_REC_PROXY_PROBE] = {"proxy_probe", "ae"},
    [T2S_REC_STREAM_MULTIPATH] = {"stream_multipath", "iab"},
    [T2S_REC_SET_RUNTIME] = {"set_runtime", "D"},
    [T2S_REC_RET] = {"return", "r"},
    [T2S_REC_TIMER] = {"timer", "t"},
    [T2S_REC_DEV_CAPS] = {"dev_caps", "ab"},
    [T2S_REC_DEV_SEND] = {"dev_send", "eHD"},
    [T2S_REC_STREAM_OPEN] = {"stream_open", "iAEe"},
    [T2S_REC_STREAM_WRITE] = {"stream_write", "irHD"},
    [T2S_REC_STREAM_SHUTDOWN] = {"stream_shutdown", "ie"},
    [T2S_REC_STREAM_PAUSE] = {"stream_pause", "if"},
    [T2S_REC_STREAM_CLOSE] = {"stream_close", "if"},
    [T2S_REC_DGRAM_OPEN] = {"dgram_open", "iAEe"},
    [T2S_REC_DGRAM_SEND] = {"dgram_send", "ieHD"},
    [T2S_REC_DGRAM_CLOSE] = {"dgram_close", "i"},
    [T2S_REC_ROUTE_GET] = {"route_get", "AaeR"},
    [T2S_REC_EVENT] = {"event", "V"},
    [T2S_REC_CLOCK_NOW] = {"clock_now", "t"},
    [T2S_REC_CLOCK_BOOT] = {"clock_boot", "t"},
    [T2S_REC_TIMER_ARM] = {"timer_arm", "t"},
    [T2S_REC_NOTE] = {"note", "D"},
    [T2S_REC_END] = {"end", "a"},
    [T2S_REC_FAKEDNS_STATE] = {"fakedns_state", "D"},
};

static const char *layout_of(int kind) {
  if (kind <= 0 || (size_t)kind >= T2S_ARRAY_LEN(kinds)) {
    return NULL;
  }
  return kinds[kind].layout;
}

/* One 8-byte little-endian word. */
static uint64_t le64(const uint8_t *p) {
  uint64_t w;
  memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

static uint64_t mix(uint64_t h, uint64_t w) {
  h = (h ^ w) * 0x9e3779b97f4a7c15ull;
  return h ^ (h >> 29);
}

static uint64_t rotl(uint64_t x, int r) {
  return (x << r) | (x >> (64 - r));
}

uint64_t t2s_rec_hash(const uint8_t *data, size_t len) {
  /* Four lanes over 32-byte blocks (independent multiplies), then the tail in lane 0. */
  uint64_t h[4] = {0x9e3779b97f4a7c15ull ^ (uint64_t)len, 0xc2b2ae3d27d4eb4full,
                   0x165667b19e3779f9ull, 0x27d4eb2f165667c5ull};
  size_t i = 0;
  for (; i + 32 <= len; i += 32) {
    h[0] = mix(h[0], le64(data + i));
    h[1] = mix(h[1], le64(data + i + 8));
    h[2] = mix(h[2], le64(data + i + 16));
    h[3] = mix(h[3], le64(data + i + 24));
  }
  for (; i + 8 <= len; i += 8) {
    h[0] = mix(h[0], le64(data + i));
  }
  if (i < len) {
    uint8_t last[8] = {0};
    memcpy(last, data + i, len - i);
    h[0] = mix(h[0], le64(last));
  }
  uint64_t x = h[0] ^ rotl(h[1], 17) ^ rotl(h[2], 31) ^ rotl(h[3], 47);
  x ^= x >> 32;
  return x * 0x9e3779b97f4a7c15ull;
}

void t2s_rec_set_output_bytes(t2s_rec_record *r, const uint8_t *data, size_t len) {
  r->fulllen = (uint32_t)len;
  r->hash = t2s_rec_hash(data, len);
  r->data = data;
  r->datalen = T2S_MIN(len, (size_t)T2S_REC_OUTPUT_PREFIX);
}

const char *t2s_rec_kind_name(int kind) {
  return layout_of(kind) ? kinds[kind].name : NULL;
}

enum {
  ADDR_LEN = 19,
  EGRESS_LEN = 4 + T2S_IFNAMSIZ + ADDR_LEN + 4,
  ROUTE_LEN = 4 + T2S_IFNAMSIZ + ADDR_LEN + 1,
  NEV_LEN = 1 + 4 + T2S_IFNAMSIZ + 1 + ADDR_LEN + 1 + 1 + 8,
  EEV_LEN = 1 + 8 + ADDR_LEN + ADDR_LEN + 4 + 8 + 8,
};

/* ---------------- writing ---------------- */

typedef struct wcur {
  uint8_t *p;
} wcur;

static void w_u8(wcur *c, uint8_t v) {
  *c->p++ = v;
}
static void w_u16(wcur *c, uint16_t v) {
  w_u8(c, (uint8_t)v);
  w_u8(c, (uint8_t)(v >> 8));
}
static void w_u32(wcur *c, uint32_t v) {
  w_u16(c, (uint16_t)v);
  w_u16(c, (uint16_t)(v >> 16));
}
static void w_u64(wcur *c, uint64_t v) {
  w_u32(c, (uint32_t)v);
  w_u32(c, (uint32_t)(v >> 32));
}
static void w_bytes(wcur *c, const void *d, size_t n) {
  if (n) {
    memcpy(c->p, d, n);
    c->p += n;
  }
}
static void w_addr(wcur *c, const t2s_addr *a) {
  w_u8(c, a->family);
  w_bytes(c, a->ip, 16);
  w_u16(c, a->port);
}
static void w_ifname(wcur *c, const char *name) {
  uint8_t b[T2S_IFNAMSIZ] = {0};
  size_t n = strnlen(name, T2S_IFNAMSIZ - 1);
  memcpy(b, name, n);
  w_bytes(c, b, sizeof(b));
}

static size_t body_len(const t2s_rec_record *r) {
  const char *l = layout_of(r->kind);
  size_t n = 0;
  for (; l && *l; l++) {
    switch (*l) {
    case 'i':
    case 'r':
    case 't':
      n += 8;
      break;
    case 'e':
    case 'a':
    case 'b':
      n += 4;
      break;
    case 'f':
      n += 1;
      break;
    case 'A':
      n += ADDR_LEN;
      break;
    case 'E':
      n += EGRESS_LEN;
      break;
    case 'R':
      n += ROUTE_LEN;
      break;
    case 'N':
      n += NEV_LEN;
      break;
    case 'V':
      n += EEV_LEN;
      break;
    case 'H':
      n += 12;
      break;
    case 'D':
      n += r->datalen;
      break;
    }
  }
  return n;
}

size_t t2s_rec_record_len(const t2s_rec_record *r) {
  return T2S_REC_RECORD_HEAD + body_len(r);
}

size_t t2s_rec_encode_record(const t2s_rec_record *r, uint8_t *buf) {
  wcur c = {buf};
  size_t blen = body_len(r);
  w_u8(&c, r->kind);
  w_u32(&c, (uint32_t)blen);
  w_u64(&c, r->now);
  for (const char *l = layout_of(r->kind); l && *l; l++) {
    switch (*l) {
    case 'i':
      w_u64(&c, r->id);
      break;
    case 'r':
      w_u64(&c, (uint64_t)r->rv);
      break;
    case 'e':
      w_u32(&c, (uint32_t)(int32_t)r->rv);
      break;
    case 'a':
      w_u32(&c, r->u32a);
      break;
    case 'b':
      w_u32(&c, r->u32b);
      break;
    case 'f':
      w_u8(&c, r->flag ? 1 : 0);
      break;
    case 't':
      w_u64(&c, r->t1);
      break;
    case 'A':
      w_addr(&c, &r->addr);
      break;
    case 'E':
      w_u32(&c, r->egress.ifindex);
      w_ifname(&c, r->egress.ifname);
      w_addr(&c, &r->egress.src);
      w_u32(&c, r->egress.mark);
      break;
    case 'R':
      w_u32(&c, r->route.ifindex);
      w_ifname(&c, r->route.ifname);
      w_addr(&c, &r->route.src);
      w_u8(&c, r->route.local ? 1 : 0);
      break;
    case 'N':
      w_u8(&c, (uint8_t)r->nev.type);
      w_u32(&c, r->nev.ifindex);
      w_ifname(&c, r->nev.ifname);
      w_u8(&c, r->nev.family);
      w_addr(&c, &r->nev.addr);
      w_u8(&c, r->nev.prefixlen);
      w_u8(&c, r->nev.removed ? 1 : 0);
      w_u64(&c, r->nev.slept_ns);
      break;
    case 'V':
      w_u8(&c, (uint8_t)r->eev.type);
      w_u64(&c, r->eev.flow_id);
      w_addr(&c, &r->eev.src);
      w_addr(&c, &r->eev.dst);
      w_u32(&c, (uint32_t)r->eev.reason);
      w_u64(&c, r->eev.bytes_up);
      w_u64(&c, r->eev.bytes_down);
      break;
    case 'H':
      w_u32(&c, r->fulllen);
      w_u64(&c, r->hash);
      break;
    case 'D':
      w_bytes(&c, r->data, r->datalen);
      break;
    }
  }
  return (size_t)(c.p - buf);
}

static size_t str_len(const char *s) {
  return s ? strnlen(s, T2S_REC_MAX_STRING) : 0;
}

/* A string: u16 length (0xffff = NULL), the bytes. */
static void w_str(wcur *c, const char *s) {
  if (s == NULL) {
    w_u16(c, 0xffff);
    return;
  }
  size_t n = str_len(s);
  w_u16(c, (uint16_t)n);
  w_bytes(c, s, n);
}

/* Header tags. */
enum { TAG_BUILD = 1, TAG_OPTIONS = 2, TAG_CONFIG = 3, TAG_FAKEDNS = 4, TAG_MAX_ };

static void w_config(wcur *c, const t2s_engine_config *cfg) {
  w_u64(c, cfg->seed);
  w_u32(c, cfg->mtu);
  w_u8(c, (uint8_t)cfg->proxy_kind);
  w_addr(c, &cfg->proxy);
  w_str(c, cfg->username);
  w_str(c, cfg->password);
  w_u32(c, cfg->egress.ifindex);
  w_ifname(c, cfg->egress.ifname);
  w_addr(c, &cfg->egress.src);
  w_u32(c, cfg->egress.mark);
  w_u8(c, cfg->socks5_pipelined);
  w_u64(c, cfg->tcp_connect_timeout);
  w_u32(c, cfg->tcp_sndbuf);
  w_u32(c, cfg->tcp_rcvbuf);
  w_u32(c, cfg->max_tcp_flows);
  w_u32(c, cfg->max_pending_syn);
  w_u64(c, cfg->tcp_time_wait);
  w_u32(c, cfg->tcp_max_retries);
  w_u64(c, cfg->tcp_keepalive_idle);
  w_u64(c, cfg->udp_timeout);
  w_u64(c, cfg->dns_timeout);
  w_u32(c, cfg->max_udp_sessions);
  w_u8(c, cfg->icmp_echo_reply);
  w_u8(c, cfg->icmp_unreach_on_refuse);
  w_u8(c, (uint8_t)cfg->on_network_change);
  w_u64(c, cfg->network_debounce);
  w_u32(c, cfg->fwmark);
  w_u8(c, cfg->egress_pinned);
  w_addr(c, &cfg->dns_hijack);
  w_u64(c, cfg->memory_budget);
}

t2s_ssize t2s_rec_proxies_encode(const t2s_engine_proxy *list, size_t n,
                                 const t2s_proxy_health_config *health, uint8_t *buf) {
  if (n == 0 || n > T2S_PROXY_MAX) {
    return T2S_REC_ERR_CORRUPT;
  }
  wcur c = {buf};
  w_u8(&c, (uint8_t)n);
  for (size_t i = 0; i < n; i++) {
    if ((list[i].username && strnlen(list[i].username, 256) > 255) ||
        (list[i].password && strnlen(list[i].password, 256) > 255)) {
      return T2S_REC_ERR_CORRUPT;
    }
    w_addr(&c, &list[i].addr);
    w_str(&c, list[i].username);
    w_str(&c, list[i].password);
  }
  w_u8(&c, health != NULL);
  if (health) {
    w_u32(&c, health->down_after);
    w_u64(&c, health->probe_interval);
    w_u64(&c, health->probe_interval_max);
    w_u64(&c, health->report_interval);
  }
  return (t2s_ssize)(c.p - buf);
}

void t2s_rec_runtime_encode(const t2s_engine_config *cfg, uint8_t buf[T2S_REC_RUNTIME_LEN]) {
  wcur c = {buf};
  w_u64(&c, cfg->tcp_connect_timeout);
  w_u64(&c, cfg->udp_timeout);
  w_u64(&c, cfg->dns_timeout);
  w_u8(&c, (uint8_t)cfg->on_network_change);
  w_u64(&c, cfg->network_debounce);
  w_u8(&c, cfg->icmp_unreach_on_refuse);
  w_u8(&c, cfg->socks5_pipelined);
}

/* The fake-IP table's configuration: the two pools with their prefixes, size, seed, the
 * exclusions (u8 count, strings) and the avoided addresses (u8 count, addresses). */
static size_t fakedns_len(const t2s_fakedns_config *f) {
  size_t n = 2 * (ADDR_LEN + 1) + 4 + 8 + 1 + 1 + f->navoid * ADDR_LEN;
  for (size_t i = 0; i < f->nexclude; i++) {
    n += 2 + str_len(f->exclude[i]);
  }
  return n;
}

static void w_fakedns(wcur *c, const t2s_fakedns_config *f) {
  w_addr(c, &f->pool4);
  w_u8(c, f->pool4_prefix);
  w_addr(c, &f->pool6);
  w_u8(c, f->pool6_prefix);
  w_u32(c, f->size);
  w_u64(c, f->seed);
  w_u8(c, (uint8_t)f->nexclude);
  for (size_t i = 0; i < f->nexclude; i++) {
    w_str(c, f->exclude[i] ? f->exclude[i] : "");
  }
  w_u8(c, (uint8_t)f->navoid);
  for (size_t i = 0; i < f->navoid; i++) {
    w_addr(c, &f->avoid[i]);
  }
}

t2s_ssize t2s_rec_encode_header(const t2s_rec_header *hdr, uint8_t *buf, size_t buflen) {
  size_t cfglen = 8 + 4 + 1 + ADDR_LEN + 2 + str_len(hdr->cfg.username) + 2 +
                  str_len(hdr->cfg.password) + EGRESS_LEN + 1 + 8 + 4 * 4 + 8 + 4 + 8 * 3 + 4 + 3 +
                  8 + 4 + 1 + ADDR_LEN + 8;
  const t2s_fakedns_config *fd = hdr->fakedns;
  if (fd && (fd->nexclude > T2S_FAKEDNS_MAX_EXCLUDE || fd->navoid > T2S_FAKEDNS_MAX_AVOID)) {
    return T2S_REC_ERR_NOMEM;
  }
  size_t fdlen = fd ? fakedns_len(fd) : 0;
  size_t body =
      3 * 6 + 2 + str_len(hdr->build) + 2 + str_len(hdr->options) + cfglen + (fd ? 6 + fdlen : 0);
  size_t total = T2S_REC_MAGIC_LEN + 12 + body;
  if (total > buflen || total > T2S_REC_MAX_HEADER) {
    return T2S_REC_ERR_NOMEM;
  }
  wcur c = {buf};
  w_bytes(&c, T2S_REC_MAGIC, T2S_REC_MAGIC_LEN);
  w_u32(&c, T2S_REC_VERSION);
  w_u32(&c, hdr->flags);
  w_u32(&c, (uint32_t)body);
  w_u16(&c, TAG_BUILD);
  w_u32(&c, (uint32_t)(2 + str_len(hdr->build)));
  w_str(&c, hdr->build ? hdr->build : "");
  w_u16(&c, TAG_OPTIONS);
  w_u32(&c, (uint32_t)(2 + str_len(hdr->options)));
  w_str(&c, hdr->options ? hdr->options : "");
  w_u16(&c, TAG_CONFIG);
  w_u32(&c, (uint32_t)cfglen);
  uint8_t *cfg_start = c.p;
  w_config(&c, &hdr->cfg);
  T2S_ASSERT((size_t)(c.p - cfg_start) == cfglen);
  (void)cfg_start;
  if (fd) {
    w_u16(&c, TAG_FAKEDNS);
    w_u32(&c, (uint32_t)fdlen);
    w_fakedns(&c, fd);
  }
  T2S_ASSERT((size_t)(c.p - buf) == total);
  return (t2s_ssize)total;
}

/* ---------------- reading ---------------- */

typedef struct rcur {
  const uint8_t *p, *end;
  bool bad; /* read past the end, or a value out of range */
} rcur;

static bool r_need(rcur *c, size_t n) {
  if (c->bad || (size_t)(c->end - c->p) < n) {
    c->bad = true;
    return false;
  }
  return true;
}
static uint8_t r_u8(rcur *c) {
  return r_need(c, 1) ? *c->p++ : 0;
}
static uint16_t r_u16(rcur *c) {
  if (!r_need(c, 2)) {
    return 0;
  }
  uint16_t v = (uint16_t)(c->p[0] | (c->p[1] << 8));
  c->p += 2;
  return v;
}
static uint32_t r_u32(rcur *c) {
  uint32_t lo = r_u16(c);
  return lo | ((uint32_t)r_u16(c) << 16);
}
static uint64_t r_u64(rcur *c) {
  uint64_t lo = r_u32(c);
  return lo | ((uint64_t)r_u32(c) << 32);
}
static bool r_bool(rcur *c) {
  uint8_t v = r_u8(c);
  if (v > 1) {
    c->bad = true;
  }
  return v == 1;
}
static void r_bytes(rcur *c, void *d, size_t n) {
  if (r_need(c, n)) {
    memcpy(d, c->p, n);
    c->p += n;
  }
}
static void r_addr(rcur *c, t2s_addr *a) {
  a->family = r_u8(c);
  r_bytes(c, a->ip, 16);
  a->port = r_u16(c);
  if (a->family != 0 && a->family != T2S_AF_INET && a->family != T2S_AF_INET6) {
    c->bad = true;
  }
}
/* An interface name: NUL-terminated inside its 16 bytes, zero-padded. */
static void r_ifname(rcur *c, char *name) {
  r_bytes(c, name, T2S_IFNAMSIZ);
  const char *nul = c->bad ? NULL : memchr(name, 0, T2S_IFNAMSIZ);
  if (nul == NULL) {
    c->bad = true;
  } else {
    for (const char *q = nul; q < name + T2S_IFNAMSIZ; q++) {
      if (*q) {
        c->bad = true; /* the padding is zero: one encoding per name */
      }
    }
  }
  if (c->bad) {
    name[0] = 0;
  }
}

int t2s_rec_reader_next(t2s_rec_reader *rd, t2s_rec_record *out) {
  memset(out, 0, sizeof(*out));
  if (rd->err) {
    return rd->err;
  }
  if (rd->pos == rd->len) {
    return 0;
  }
  size_t left = rd->len - rd->pos;
  if (left < T2S_REC_RECORD_HEAD) {
    return rd->err = T2S_REC_ERR_TRUNCATED;
  }
  rcur h = {rd->buf + rd->pos, rd->buf + rd->len, false};
  uint8_t kind = r_u8(&h);
  uint32_t blen = r_u32(&h);
  t2s_tstamp now = r_u64(&h);
  const char *layout = layout_of(kind);
  if (layout == NULL || blen > T2S_REC_MAX_BODY) {
    return rd->err = T2S_REC_ERR_CORRUPT;
  }
  if (left - T2S_REC_RECORD_HEAD < blen) {
    return rd->err = T2S_REC_ERR_TRUNCATED;
  }
  rcur c = {h.p, h.p + blen, false};
  out->kind = kind;
  out->now = now;
  for (const char *l = layout; *l && !c.bad; l++) {
    switch (*l) {
    case 'i':
      out->id = r_u64(&c);
      break;
    case 'r':
      out->rv = (int64_t)r_u64(&c);
      break;
    case 'e':
      out->rv = (int32_t)r_u32(&c);
      break;
    case 'a':
      out->u32a = r_u32(&c);
      break;
    case 'b':
      out->u32b = r_u32(&c);
      break;
    case 'f':
      out->flag = r_bool(&c);
      break;
    case 't':
      out->t1 = r_u64(&c);
      break;
    case 'A':
      r_addr(&c, &out->addr);
      break;
    case 'E':
      out->egress.ifindex = r_u32(&c);
      r_ifname(&c, out->egress.ifname);
      r_addr(&c, &out->egress.src);
      out->egress.mark = r_u32(&c);
      break;
    case 'R':
      out->route.ifindex = r_u32(&c);
      r_ifname(&c, out->route.ifname);
      r_addr(&c, &out->route.src);
      out->route.local = r_bool(&c);
      break;
    case 'N': {
      uint8_t t = r_u8(&c);
      if (t < T2S_NET_LINK_UP || t > T2S_NET_RESUMED) {
        c.bad = true;
      }
      out->nev.type = (t2s_net_event_type)t;
      out->nev.ifindex = r_u32(&c);
      r_ifname(&c, out->nev.ifname);
      out->nev.family = r_u8(&c);
      r_addr(&c, &out->nev.addr);
      out->nev.prefixlen = r_u8(&c);
      out->nev.removed = r_bool(&c);
      out->nev.slept_ns = r_u64(&c);
      break;
    }
    case 'V': {
      uint8_t t = r_u8(&c);
      if (t < T2S_EV_DROP || t > T2S_EV_TCP_RETRY) {
        c.bad = true;
      }
      out->eev.type = (t2s_engine_event_type)t;
      out->eev.now = now;
      out->eev.flow_id = r_u64(&c);
      r_addr(&c, &out->eev.src);
      r_addr(&c, &out->eev.dst);
      out->eev.reason = (int32_t)r_u32(&c);
      out->eev.bytes_up = r_u64(&c);
      out->eev.bytes_down = r_u64(&c);
      break;
    }
    case 'H':
      out->fulllen = r_u32(&c);
      out->hash = r_u64(&c);
      if ((size_t)(c.end - c.p) != T2S_MIN((size_t)out->fulllen, (size_t)T2S_REC_OUTPUT_PREFIX)) {
        c.bad = true; /* the prefix is exactly the first bytes */
      }
      break;
    case 'D':
      out->data = c.p;
      out->datalen = (size_t)(c.end - c.p);
      c.p = c.end;
      break;
    }
  }
  if (!c.bad && (kind == T2S_REC_SET_PROXIES || kind == T2S_REC_REPLACE_PROXIES)) {
    t2s_rec_proxies scratch; /* only validated here: the replay decodes it again */
    c.bad = t2s_rec_proxies_decode(out->data, out->datalen, &scratch) != 0;
  } else if (!c.bad && kind == T2S_REC_SET_RUNTIME) {
    t2s_engine_config scratch;
    c.bad = t2s_rec_runtime_decode(out->data, out->datalen, &scratch) != 0;
  } else if (!c.bad && kind == T2S_REC_STREAM_MULTIPATH && out->u32a > T2S_STREAM_FALLBACK) {
    c.bad = true;
  }
  if (c.bad || c.p != c.end) {
    memset(out, 0, sizeof(*out));
    return rd->err = T2S_REC_ERR_CORRUPT;
  }
  rd->pos += T2S_REC_RECORD_HEAD + blen;
  rd->nrec++;
  return 1;
}

/* Reads a string into dst (T2S_REC_MAX_STRING + 1 bytes): NULL for the 0xffff length. */
static const char *r_str(rcur *c, char *dst) {
  uint16_t n = r_u16(c);
  if (n == 0xffff) {
    return NULL;
  }
  if (n > T2S_REC_MAX_STRING || !r_need(c, n)) {
    c->bad = true;
    return NULL;
  }
  memcpy(dst, c->p, n);
  dst[n] = 0;
  c->p += n;
  if (memchr(dst, 0, n) != NULL) {
    c->bad = true; /* an embedded NUL */
  }
  return dst;
}

static void r_config(rcur *c, t2s_engine_config *cfg, char *user, char *pass) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->seed = r_u64(c);
  cfg->mtu = r_u32(c);
  uint8_t pk = r_u8(c);
  if (pk > T2S_PROXY_SOCKS5) {
    c->bad = true;
  }
  cfg->proxy_kind = (t2s_proxy_kind)pk;
  r_addr(c, &cfg->proxy);
  cfg->username = r_str(c, user);
  cfg->password = r_str(c, pass);
  cfg->egress.ifindex = r_u32(c);
  r_ifname(c, cfg->egress.ifname);
  r_addr(c, &cfg->egress.src);
  cfg->egress.mark = r_u32(c);
  cfg->socks5_pipelined = r_bool(c);
  cfg->tcp_connect_timeout = r_u64(c);
  cfg->tcp_sndbuf = r_u32(c);
  cfg->tcp_rcvbuf = r_u32(c);
  cfg->max_tcp_flows = r_u32(c);
  cfg->max_pending_syn = r_u32(c);
  cfg->tcp_time_wait = r_u64(c);
  cfg->tcp_max_retries = r_u32(c);
  cfg->tcp_keepalive_idle = r_u64(c);
  cfg->udp_timeout = r_u64(c);
  cfg->dns_timeout = r_u64(c);
  cfg->max_udp_sessions = r_u32(c);
  cfg->icmp_echo_reply = r_bool(c);
  cfg->icmp_unreach_on_refuse = r_bool(c);
  uint8_t pol = r_u8(c);
  if (pol > T2S_NETCHANGE_NONE) {
    c->bad = true;
  }
  cfg->on_network_change = (t2s_netchange_policy)pol;
  cfg->network_debounce = r_u64(c);
  cfg->fwmark = r_u32(c);
  cfg->egress_pinned = r_bool(c);
  r_addr(c, &cfg->dns_hijack);
  cfg->memory_budget = r_u64(c);
}

int t2s_rec_proxies_decode(const uint8_t *data, size_t len, t2s_rec_proxies *out) {
  memset(out, 0, sizeof(*out));
  rcur c = {data, data + len, false};
  out->n = r_u8(&c);
  if (out->n == 0 || out->n > T2S_PROXY_MAX) {
    return T2S_REC_ERR_CORRUPT;
  }
  for (size_t i = 0; i < out->n && !c.bad; i++) {
    r_addr(&c, &out->list[i].addr);
    for (int k = 0; k < 2; k++) {
      char tmp[T2S_REC_MAX_STRING + 1];
      const char *s = r_str(&c, tmp);
      if (s && strlen(s) > 255) {
        c.bad = true;
      } else if (s) {
        memcpy(out->strings[i][k], s, strlen(s) + 1);
        s = out->strings[i][k];
      }
      if (k == 0) {
        out->list[i].username = s;
      } else {
        out->list[i].password = s;
      }
    }
  }
  out->has_health = r_bool(&c);
  if (out->has_health) {
    out->health.down_after = r_u32(&c);
    out->health.probe_interval = r_u64(&c);
    out->health.probe_interval_max = r_u64(&c);
    out->health.report_interval = r_u64(&c);
  }
  return c.bad || c.p != c.end ? T2S_REC_ERR_CORRUPT : 0;
}

int t2s_rec_runtime_decode(const uint8_t *data, size_t len, t2s_engine_config *cfg) {
  rcur c = {data, data + len, false};
  cfg->tcp_connect_timeout = r_u64(&c);
  cfg->udp_timeout = r_u64(&c);
  cfg->dns_timeout = r_u64(&c);
  uint8_t pol = r_u8(&c);
  if (pol > T2S_NETCHANGE_NONE) {
    c.bad = true;
  }
  cfg->on_network_change = (t2s_netchange_policy)pol;
  cfg->network_debounce = r_u64(&c);
  cfg->icmp_unreach_on_refuse = r_bool(&c);
  cfg->socks5_pipelined = r_bool(&c);
  return c.bad || c.p != c.end ? T2S_REC_ERR_CORRUPT : 0;
}

static void r_fakedns(rcur *c, t2s_rec_reader *rd) {
  t2s_fakedns_config *f = &rd->fakedns;
  memset(f, 0, sizeof(*f));
  r_addr(c, &f->pool4);
  f->pool4_prefix = r_u8(c);
  r_addr(c, &f->pool6);
  f->pool6_prefix = r_u8(c);
  f->size = r_u32(c);
  f->seed = r_u64(c);
  f->nexclude = r_u8(c);
  if (f->nexclude > T2S_FAKEDNS_MAX_EXCLUDE) {
    c->bad = true;
    return;
  }
  for (size_t i = 0; i < f->nexclude && !c->bad; i++) {
    char tmp[T2S_REC_MAX_STRING + 1];
    const char *s = r_str(c, tmp);
    if (s == NULL || strlen(s) >= T2S_DNS_TEXT_MAX) {
      c->bad = true;
      return;
    }
    memcpy(rd->fakedns_exclude[i], s, strlen(s) + 1);
    f->exclude[i] = rd->fakedns_exclude[i];
  }
  f->navoid = r_u8(c);
  if (f->navoid > T2S_FAKEDNS_MAX_AVOID) {
    c->bad = true;
    return;
  }
  for (size_t i = 0; i < f->navoid; i++) {
    r_addr(c, &f->avoid[i]);
  }
}

int t2s_rec_reader_init(t2s_rec_reader *rd, const uint8_t *buf, size_t len) {
  memset(rd, 0, sizeof(*rd));
  rd->buf = buf;
  rd->len = len;
  if (len == 0) {
    return rd->err = T2S_REC_ERR_TRUNCATED;
  }
  size_t m = T2S_MIN(len, (size_t)T2S_REC_MAGIC_LEN);
  if (memcmp(buf, T2S_REC_MAGIC, m) != 0) {
    return rd->err = T2S_REC_ERR_MAGIC;
  }
  if (len < T2S_REC_MAGIC_LEN + 12) {
    return rd->err = T2S_REC_ERR_TRUNCATED;
  }
  rcur c = {buf + T2S_REC_MAGIC_LEN, buf + len, false};
  rd->hdr.version = r_u32(&c);
  if (rd->hdr.version != T2S_REC_VERSION) {
    return rd->err = T2S_REC_ERR_VERSION;
  }
  rd->hdr.flags = r_u32(&c);
  uint32_t body = r_u32(&c);
  if ((rd->hdr.flags & ~(uint32_t)T2S_REC_FLAGS_KNOWN) != 0 || body > T2S_REC_MAX_HEADER) {
    return rd->err = T2S_REC_ERR_CORRUPT;
  }
  if ((size_t)(c.end - c.p) < body) {
    return rd->err = T2S_REC_ERR_TRUNCATED;
  }
  rcur b = {c.p, c.p + body, false};
  bool seen[TAG_MAX_] = {false};
  while (b.p < b.end && !b.bad) {
    uint16_t tag = r_u16(&b);
    uint32_t flen = r_u32(&b);
    if (b.bad || tag == 0 || tag >= TAG_MAX_ || seen[tag] || flen > (size_t)(b.end - b.p)) {
      return rd->err = T2S_REC_ERR_CORRUPT;
    }
    seen[tag] = true;
    rcur f = {b.p, b.p + flen, false};
    switch (tag) {
    case TAG_BUILD:
      rd->hdr.build = r_str(&f, rd->strings[0]);
      break;
    case TAG_OPTIONS:
      rd->hdr.options = r_str(&f, rd->strings[1]);
      break;
    case TAG_CONFIG:
      r_config(&f, &rd->hdr.cfg, rd->strings[2], rd->strings[3]);
      break;
    case TAG_FAKEDNS:
      r_fakedns(&f, rd);
      rd->hdr.fakedns = &rd->fakedns;
      break;
    }
    if (f.bad || f.p != f.end) {
      return rd->err = T2S_REC_ERR_CORRUPT;
    }
    b.p += flen;
  }
  if (b.bad || !seen[TAG_BUILD] || !seen[TAG_OPTIONS] || !seen[TAG_CONFIG] ||
      rd->hdr.build == NULL || rd->hdr.options == NULL ||
      seen[TAG_FAKEDNS] != ((rd->hdr.flags & T2S_REC_FLAG_FAKE_DNS_TABLE) != 0) ||
      (seen[TAG_FAKEDNS] && !(rd->hdr.flags & T2S_REC_FLAG_FAKE_DNS))) {
    return rd->err = T2S_REC_ERR_CORRUPT;
  }
  rd->pos = T2S_REC_MAGIC_LEN + 12 + body;
  return 0;
}
