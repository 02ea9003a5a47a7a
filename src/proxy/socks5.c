/* socks5.c: the SOCKS5 client state machine (RFC 1928, RFC 1929) and the UDP header codec. */
#include "socks5.h"

#include <string.h>

enum { STAGE_METHOD = 0, STAGE_AUTH, STAGE_REPLY, STAGE_DONE, STAGE_FAILED };

static const char *const reason_names[] = {
#define T2S_SOCKS5_REASON_LABEL(name, label) label,
    T2S_SOCKS5_REASONS(T2S_SOCKS5_REASON_LABEL)
#undef T2S_SOCKS5_REASON_LABEL
};

const char *t2s_socks5_reason_name(int reason) {
  if (reason < 0 || reason >= T2S_SOCKS5_REASON_MAX) {
    return "unknown";
  }
  return reason_names[reason];
}

/* ---------------- addresses ---------------- */

int t2s_socks5_host_from_addr(t2s_socks5_host *h, const t2s_addr *addr) {
  if (addr == NULL || (addr->family != T2S_AF_INET && addr->family != T2S_AF_INET6)) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  memset(h, 0, sizeof(*h));
  h->atyp = addr->family == T2S_AF_INET ? T2S_SOCKS5_ATYP_IPV4 : T2S_SOCKS5_ATYP_IPV6;
  h->addr = *addr;
  return 0;
}

int t2s_socks5_host_from_domain(t2s_socks5_host *h, const char *domain, uint16_t port) {
  size_t n = domain ? strlen(domain) : 0;
  if (n == 0 || n > 255) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  memset(h, 0, sizeof(*h));
  h->atyp = T2S_SOCKS5_ATYP_DOMAIN;
  h->addr.port = port;
  h->domainlen = (uint8_t)n;
  memcpy(h->domain, domain, n);
  return 0;
}

size_t t2s_socks5_host_len(const t2s_socks5_host *h) {
  switch (h->atyp) {
  case T2S_SOCKS5_ATYP_IPV4:
    return h->addr.family == T2S_AF_INET ? 1 + 4 + 2 : 0;
  case T2S_SOCKS5_ATYP_IPV6:
    return h->addr.family == T2S_AF_INET6 ? 1 + 16 + 2 : 0;
  case T2S_SOCKS5_ATYP_DOMAIN:
    return h->domainlen ? (size_t)1 + 1 + h->domainlen + 2 : 0;
  default:
    return 0;
  }
}

t2s_ssize t2s_socks5_host_encode(uint8_t *buf, size_t buflen, const t2s_socks5_host *h) {
  size_t n = t2s_socks5_host_len(h);
  if (n == 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (buflen < n) {
    return T2S_ERR_NOBUF;
  }
  buf[0] = h->atyp;
  switch (h->atyp) {
  case T2S_SOCKS5_ATYP_IPV4:
    memcpy(buf + 1, h->addr.ip, 4);
    break;
  case T2S_SOCKS5_ATYP_IPV6:
    memcpy(buf + 1, h->addr.ip, 16);
    break;
  default:
    buf[1] = h->domainlen;
    memcpy(buf + 2, h->domain, h->domainlen);
    break;
  }
  t2s_put16(buf + n - 2, h->addr.port);
  return (t2s_ssize)n;
}

/* How many bytes the address starting at p needs in total, judging from the have bytes
 * known; grows as more is known. Negative error on a bad ATYP or domain length. */
static t2s_ssize host_need(const uint8_t *p, size_t have, t2s_socks5_error_reason *preason) {
  if (have == 0) {
    return 1;
  }
  switch (p[0]) {
  case T2S_SOCKS5_ATYP_IPV4:
    return 1 + 4 + 2;
  case T2S_SOCKS5_ATYP_IPV6:
    return 1 + 16 + 2;
  case T2S_SOCKS5_ATYP_DOMAIN:
    if (have < 2) {
      return 2;
    }
    if (p[1] == 0) {
      *preason = T2S_SOCKS5_REASON_BAD_DOMAIN_LEN;
      return T2S_ERR_MALFORMED;
    }
    return 2 + (t2s_ssize)p[1] + 2;
  default:
    *preason = T2S_SOCKS5_REASON_UNKNOWN_ATYP;
    return T2S_ERR_MALFORMED;
  }
}

t2s_ssize t2s_socks5_host_decode(const uint8_t *data, size_t len, t2s_socks5_host *h,
                                 t2s_socks5_error_reason *preason) {
  t2s_socks5_error_reason dummy;
  if (preason == NULL) {
    preason = &dummy;
  }
  *preason = T2S_SOCKS5_REASON_NONE;
  size_t have = 0;
  t2s_ssize need;
  /* The need only grows with what is known; stop when it is met or data runs out. */
  while ((need = host_need(data, have, preason)) > 0 && (size_t)need > have) {
    if ((size_t)need > len) {
      return 0;
    }
    have = (size_t)need;
  }
  if (need < 0) {
    return need;
  }
  memset(h, 0, sizeof(*h));
  h->atyp = data[0];
  switch (data[0]) {
  case T2S_SOCKS5_ATYP_IPV4:
    h->addr.family = T2S_AF_INET;
    memcpy(h->addr.ip, data + 1, 4);
    break;
  case T2S_SOCKS5_ATYP_IPV6:
    h->addr.family = T2S_AF_INET6;
    memcpy(h->addr.ip, data + 1, 16);
    break;
  default:
    h->domainlen = data[1];
    memcpy(h->domain, data + 2, h->domainlen);
    h->domain[h->domainlen] = '\0';
    break;
  }
  h->addr.port = t2s_get16(data + need - 2);
  return need;
}

/* ---------------- REP codes ---------------- */

int t2s_socks5_rep_to_error(uint8_t rep, t2s_socks5_error_reason *preason) {
  t2s_socks5_error_reason r;
  int err;
  switch (rep) {
  case T2S_SOCKS5_REP_SUCCEEDED:
    r = T2S_SOCKS5_REASON_NONE, err = 0;
    break;
  case T2S_SOCKS5_REP_GENERAL_FAILURE:
    r = T2S_SOCKS5_REASON_REP_GENERAL_FAILURE, err = T2S_ERR_REFUSED;
    break;
  case T2S_SOCKS5_REP_NOT_ALLOWED:
    r = T2S_SOCKS5_REASON_REP_NOT_ALLOWED, err = T2S_ERR_REFUSED;
    break;
  case T2S_SOCKS5_REP_NET_UNREACHABLE:
    r = T2S_SOCKS5_REASON_REP_NET_UNREACHABLE, err = T2S_ERR_UNREACHABLE;
    break;
  case T2S_SOCKS5_REP_HOST_UNREACHABLE:
    r = T2S_SOCKS5_REASON_REP_HOST_UNREACHABLE, err = T2S_ERR_UNREACHABLE;
    break;
  case T2S_SOCKS5_REP_CONN_REFUSED:
    r = T2S_SOCKS5_REASON_REP_CONN_REFUSED, err = T2S_ERR_REFUSED;
    break;
  case T2S_SOCKS5_REP_TTL_EXPIRED:
    r = T2S_SOCKS5_REASON_REP_TTL_EXPIRED, err = T2S_ERR_UNREACHABLE;
    break;
  case T2S_SOCKS5_REP_CMD_UNSUPPORTED:
    r = T2S_SOCKS5_REASON_REP_CMD_UNSUPPORTED, err = T2S_ERR_UNSUPPORTED;
    break;
  case T2S_SOCKS5_REP_ATYP_UNSUPPORTED:
    r = T2S_SOCKS5_REASON_REP_ATYP_UNSUPPORTED, err = T2S_ERR_UNSUPPORTED;
    break;
  default:
    r = T2S_SOCKS5_REASON_REP_UNKNOWN, err = T2S_ERR_PROTO;
    break;
  }
  if (preason) {
    *preason = r;
  }
  return err;
}

const char *t2s_socks5_rep_name(int rep) {
  static const char *const names[] = {
      "succeeded",           "general failure",       "not allowed by ruleset",
      "network unreachable", "host unreachable",      "connection refused",
      "TTL expired",         "command not supported", "address type not supported",
  };
  if (rep < 0 || (size_t)rep >= T2S_ARRAY_LEN(names)) {
    return "unknown";
  }
  return names[rep];
}

/* ---------------- client ---------------- */

static int fail(t2s_socks5_client *c, int err, t2s_socks5_error_reason reason) {
  c->stage = STAGE_FAILED;
  c->err = err;
  c->reason = reason;
  return err;
}

int t2s_socks5_client_init(t2s_socks5_client *c, t2s_socks5_cmd cmd, const t2s_socks5_host *dst,
                           const char *username, const char *password, bool pipelined) {
  t2s_socks5_host zero;
  size_t ulen = username ? strlen(username) : 0;
  size_t plen = password ? strlen(password) : 0;
  if (cmd != T2S_SOCKS5_CMD_CONNECT && cmd != T2S_SOCKS5_CMD_UDP_ASSOCIATE) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (dst == NULL) {
    if (cmd != T2S_SOCKS5_CMD_UDP_ASSOCIATE) {
      return T2S_ERR_INVALID_ARGUMENT;
    }
    memset(&zero, 0, sizeof(zero));
    zero.atyp = T2S_SOCKS5_ATYP_IPV4;
    zero.addr.family = T2S_AF_INET;
    dst = &zero;
  }
  if (t2s_socks5_host_len(dst) == 0 || (username && (ulen == 0 || ulen > 255)) || plen > 255) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  memset(c, 0, sizeof(*c));
  c->cmd = (uint8_t)cmd;
  c->stage = STAGE_METHOD;
  c->pipelined = pipelined;
  c->offer_userpass = username != NULL;
  c->offer_none = username == NULL || !pipelined;

  uint8_t *p = c->out;
  *p++ = T2S_SOCKS5_VERSION;
  *p++ = (uint8_t)(c->offer_none + c->offer_userpass);
  if (c->offer_none) {
    *p++ = T2S_SOCKS5_METHOD_NONE;
  }
  if (c->offer_userpass) {
    *p++ = T2S_SOCKS5_METHOD_USERPASS;
  }
  c->greet_end = (size_t)(p - c->out);
  if (username) {
    *p++ = T2S_SOCKS5_AUTH_VERSION;
    *p++ = (uint8_t)ulen;
    memcpy(p, username, ulen);
    p += ulen;
    *p++ = (uint8_t)plen;
    if (plen) {
      memcpy(p, password, plen);
    }
    p += plen;
    c->auth_end = (size_t)(p - c->out);
  }
  *p++ = T2S_SOCKS5_VERSION;
  *p++ = (uint8_t)cmd;
  *p++ = 0; /* RSV */
  t2s_ssize n = t2s_socks5_host_encode(p, (size_t)(c->out + sizeof(c->out) - p), dst);
  if (n < 0) {
    return (int)n;
  }
  p += n;
  c->req_end = c->outlen = (size_t)(p - c->out);
  c->outlimit = pipelined ? c->outlen : c->greet_end;
  return 0;
}

int t2s_socks5_client_init_addr(t2s_socks5_client *c, t2s_socks5_cmd cmd, const t2s_addr *dst,
                                const char *username, const char *password, bool pipelined) {
  t2s_socks5_host h;
  if (dst != NULL) {
    int rv = t2s_socks5_host_from_addr(&h, dst);
    if (rv != 0) {
      return rv;
    }
  }
  return t2s_socks5_client_init(c, cmd, dst ? &h : NULL, username, password, pipelined);
}

void t2s_socks5_client_pending_output(const t2s_socks5_client *c, const uint8_t **pdata,
                                      size_t *pdatalen) {
  *pdata = c->out + c->outpos;
  *pdatalen = c->outlimit - c->outpos;
}

void t2s_socks5_client_output_consumed(t2s_socks5_client *c, size_t n) {
  c->outpos += T2S_MIN(n, c->outlimit - c->outpos);
}

/* The offset the output must have reached before an answer for the current stage can come. */
static size_t solicit_end(const t2s_socks5_client *c) {
  switch (c->stage) {
  case STAGE_METHOD:
    return c->greet_end;
  case STAGE_AUTH:
    return c->auth_end;
  default:
    return c->req_end;
  }
}

/* Total length of the current stage's message, judging from rx so far (grows). */
static t2s_ssize stage_need(t2s_socks5_client *c) {
  if (c->stage != STAGE_REPLY || c->rxlen < 2) {
    return 2; /* METHOD, AUTH and the VER REP prefix of the reply */
  }
  if (c->rxlen < 4) {
    return 4;
  }
  t2s_ssize n = host_need(c->rx + 3, c->rxlen - 3, &c->reason);
  return n < 0 ? n : 3 + n;
}

static int on_method(t2s_socks5_client *c) {
  uint8_t method = c->rx[1];
  if (c->rx[0] != T2S_SOCKS5_VERSION) {
    return fail(c, T2S_ERR_PROTO, T2S_SOCKS5_REASON_BAD_VERSION);
  }
  if (method == T2S_SOCKS5_METHOD_NO_ACCEPTABLE) {
    return fail(c, T2S_ERR_AUTH, T2S_SOCKS5_REASON_NO_ACCEPTABLE_METHOD);
  }
  if (method == T2S_SOCKS5_METHOD_USERPASS && c->offer_userpass) {
    c->stage = STAGE_AUTH;
    c->outlimit = T2S_MAX(c->outlimit, c->auth_end);
    return 0;
  }
  if (method == T2S_SOCKS5_METHOD_NONE && c->offer_none) {
    if (c->auth_end != 0) {
      /* Credentials were prepared but are not wanted: drop them (never released, since
       * pipelining with credentials offers only 0x02). */
      size_t reqlen = c->req_end - c->auth_end;
      memmove(c->out + c->greet_end, c->out + c->auth_end, reqlen);
      c->req_end = c->outlen = c->greet_end + reqlen;
      c->auth_end = 0;
    }
    c->stage = STAGE_REPLY;
    c->outlimit = c->outlen;
    return 0;
  }
  return fail(c, T2S_ERR_PROTO, T2S_SOCKS5_REASON_BAD_METHOD);
}

static int on_auth(t2s_socks5_client *c) {
  /* RFC 1929 says VER 1; a few servers answer with 5. Both are accepted. */
  if (c->rx[0] != T2S_SOCKS5_AUTH_VERSION && c->rx[0] != T2S_SOCKS5_VERSION) {
    return fail(c, T2S_ERR_PROTO, T2S_SOCKS5_REASON_BAD_AUTH_VERSION);
  }
  if (c->rx[1] != 0) {
    return fail(c, T2S_ERR_AUTH, T2S_SOCKS5_REASON_AUTH_FAILED);
  }
  c->stage = STAGE_REPLY;
  c->outlimit = c->outlen;
  return 0;
}

/* Called whenever rx holds a complete prefix (2, 4, then the whole reply). Returns 1 when the
 * reply is complete and successful, 0 to continue, or an error. */
static int on_reply(t2s_socks5_client *c) {
  if (c->rxlen == 2) {
    if (c->rx[0] != T2S_SOCKS5_VERSION) {
      return fail(c, T2S_ERR_PROTO, T2S_SOCKS5_REASON_BAD_VERSION);
    }
    c->rep = c->rx[1];
    c->have_rep = true;
    if (c->rep != T2S_SOCKS5_REP_SUCCEEDED) {
      t2s_socks5_error_reason r;
      int err = t2s_socks5_rep_to_error(c->rep, &r);
      return fail(c, err, r);
    }
    return 0;
  }
  if (c->rxlen == 4) {
    if (c->rx[2] != 0) {
      return fail(c, T2S_ERR_PROTO, T2S_SOCKS5_REASON_RESERVED_NONZERO);
    }
    /* Fall through only when the address is already complete (never: it is >= 7 bytes). */
  }
  t2s_socks5_error_reason r = T2S_SOCKS5_REASON_NONE;
  t2s_ssize n = t2s_socks5_host_decode(c->rx + 3, c->rxlen - 3, &c->bnd, &r);
  if (n < 0) {
    return fail(c, (int)n, r);
  }
  if (n == 0) {
    return 0;
  }
  if (c->cmd == T2S_SOCKS5_CMD_UDP_ASSOCIATE && c->bnd.atyp == T2S_SOCKS5_ATYP_DOMAIN) {
    return fail(c, T2S_ERR_UNSUPPORTED, T2S_SOCKS5_REASON_DOMAIN_RELAY);
  }
  c->stage = STAGE_DONE;
  return 1;
}

int t2s_socks5_client_feed(t2s_socks5_client *c, const uint8_t *data, size_t len,
                           size_t *pconsumed) {
  size_t off = 0;
  *pconsumed = 0;
  if (c->stage == STAGE_FAILED) {
    return c->err;
  }
  while (off < len && c->stage != STAGE_DONE) {
    if (c->outpos < solicit_end(c)) {
      return fail(c, T2S_ERR_PROTO, T2S_SOCKS5_REASON_UNSOLICITED);
    }
    t2s_ssize need = stage_need(c);
    if (need < 0) {
      *pconsumed = off;
      return fail(c, (int)need, c->reason);
    }
    size_t take = T2S_MIN((size_t)need - c->rxlen, len - off);
    memcpy(c->rx + c->rxlen, data + off, take);
    c->rxlen += take;
    off += take;
    *pconsumed = off;
    if (c->rxlen < (size_t)need) {
      break;
    }
    int rv;
    switch (c->stage) {
    case STAGE_METHOD:
      rv = on_method(c);
      c->rxlen = 0;
      break;
    case STAGE_AUTH:
      rv = on_auth(c);
      c->rxlen = 0;
      break;
    default:
      rv = on_reply(c);
      break;
    }
    if (rv < 0) {
      return rv;
    }
  }
  if (c->stage != STAGE_DONE) {
    return T2S_SOCKS5_NEED_MORE;
  }
  if (c->cmd == T2S_SOCKS5_CMD_UDP_ASSOCIATE && off < len) {
    /* The control connection carries nothing after the reply. */
    return fail(c, T2S_ERR_PROTO, T2S_SOCKS5_REASON_TRAILING_BYTES);
  }
  return T2S_SOCKS5_DONE;
}

int t2s_socks5_client_eof(t2s_socks5_client *c) {
  switch (c->stage) {
  case STAGE_FAILED:
    return c->err;
  case STAGE_DONE:
    if (c->cmd == T2S_SOCKS5_CMD_CONNECT) {
      return 0;
    }
    return fail(c, T2S_ERR_CLOSED, T2S_SOCKS5_REASON_EOF);
  default:
    break;
  }
  if (c->rxlen > 0) {
    return fail(c, T2S_ERR_MALFORMED, T2S_SOCKS5_REASON_TRUNCATED);
  }
  if (c->stage == STAGE_AUTH) {
    return fail(c, T2S_ERR_AUTH, T2S_SOCKS5_REASON_EOF);
  }
  if (c->stage == STAGE_REPLY && c->cmd == T2S_SOCKS5_CMD_UDP_ASSOCIATE &&
      c->outpos >= c->req_end) {
    return fail(c, T2S_ERR_UNSUPPORTED, T2S_SOCKS5_REASON_CLOSED_AFTER_REQUEST);
  }
  return fail(c, T2S_ERR_CLOSED, T2S_SOCKS5_REASON_EOF);
}

bool t2s_socks5_client_done(const t2s_socks5_client *c) {
  return c->stage == STAGE_DONE;
}

int t2s_socks5_client_rep(const t2s_socks5_client *c) {
  return c->have_rep ? c->rep : -1;
}

const t2s_socks5_host *t2s_socks5_client_bnd(const t2s_socks5_client *c) {
  return c->stage == STAGE_DONE ? &c->bnd : NULL;
}

int t2s_socks5_client_error(const t2s_socks5_client *c) {
  return c->stage == STAGE_FAILED ? c->err : 0;
}

t2s_socks5_error_reason t2s_socks5_client_reason(const t2s_socks5_client *c) {
  return c->stage == STAGE_FAILED ? c->reason : T2S_SOCKS5_REASON_NONE;
}

static bool ip_unspecified(const t2s_addr *a) {
  size_t n = a->family == T2S_AF_INET ? 4 : 16;
  for (size_t i = 0; i < n; i++) {
    if (a->ip[i] != 0) {
      return false;
    }
  }
  return true;
}

int t2s_socks5_udp_relay(const t2s_addr *bnd, const t2s_addr *proxy, t2s_addr *prelay) {
  if (bnd == NULL || (bnd->family != T2S_AF_INET && bnd->family != T2S_AF_INET6)) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (bnd->port == 0) {
    return T2S_ERR_PROTO;
  }
  if (!ip_unspecified(bnd)) {
    *prelay = *bnd;
    return 0;
  }
  if (proxy == NULL || (proxy->family != T2S_AF_INET && proxy->family != T2S_AF_INET6)) {
    return T2S_ERR_PROTO;
  }
  *prelay = *proxy;
  prelay->port = bnd->port;
  return 0;
}

/* ---------------- UDP header ---------------- */

size_t t2s_socks5_udp_header_len(const t2s_addr *dst) {
  switch (dst ? dst->family : 0) {
  case T2S_AF_INET:
    return 3 + 1 + 4 + 2;
  case T2S_AF_INET6:
    return 3 + 1 + 16 + 2;
  default:
    return 0;
  }
}

t2s_ssize t2s_socks5_udp_encode(uint8_t *buf, size_t buflen, const t2s_addr *dst,
                                const uint8_t *payload, size_t payloadlen) {
  size_t hlen = t2s_socks5_udp_header_len(dst);
  t2s_socks5_host h;
  memset(&h, 0, sizeof(h)); /* -O3 cannot see that hlen != 0 means dst converts */
  if (hlen == 0 || (payload == NULL && payloadlen > 0)) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (buflen < hlen || buflen - hlen < payloadlen) {
    return T2S_ERR_NOBUF;
  }
  if (payloadlen > 0) {
    memmove(buf + hlen, payload, payloadlen); /* first: payload may sit where the header goes */
  }
  buf[0] = buf[1] = 0; /* RSV */
  buf[2] = 0;          /* FRAG */
  t2s_socks5_host_from_addr(&h, dst);
  t2s_socks5_host_encode(buf + 3, hlen - 3, &h);
  return (t2s_ssize)(hlen + payloadlen);
}

t2s_ssize t2s_socks5_udp_encode_host(uint8_t *buf, size_t buflen, const t2s_socks5_host *dst,
                                     const uint8_t *payload, size_t payloadlen) {
  size_t alen = dst ? t2s_socks5_host_len(dst) : 0;
  if (alen == 0 || (payload == NULL && payloadlen > 0)) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  size_t hlen = 3 + alen;
  if (buflen < hlen || buflen - hlen < payloadlen) {
    return T2S_ERR_NOBUF;
  }
  if (payloadlen > 0) {
    memmove(buf + hlen, payload, payloadlen); /* first: payload may sit where the header goes */
  }
  buf[0] = buf[1] = 0; /* RSV */
  buf[2] = 0;          /* FRAG */
  t2s_socks5_host_encode(buf + 3, alen, dst);
  return (t2s_ssize)(hlen + payloadlen);
}

int t2s_socks5_udp_decode_host(const uint8_t *data, size_t len, t2s_socks5_host *psrc,
                               const uint8_t **ppayload, size_t *ppayloadlen,
                               t2s_socks5_error_reason *preason) {
  t2s_socks5_error_reason dummy;
  if (preason == NULL) {
    preason = &dummy;
  }
  *preason = T2S_SOCKS5_REASON_NONE;
  if (len < 4) {
    *preason = T2S_SOCKS5_REASON_TRUNCATED;
    return T2S_ERR_MALFORMED;
  }
  if (data[0] != 0 || data[1] != 0) {
    *preason = T2S_SOCKS5_REASON_RESERVED_NONZERO;
    return T2S_ERR_PROTO;
  }
  if (data[2] != 0) {
    *preason = T2S_SOCKS5_REASON_FRAG;
    return T2S_ERR_UNSUPPORTED;
  }
  t2s_ssize n = t2s_socks5_host_decode(data + 3, len - 3, psrc, preason);
  if (n < 0) {
    return (int)n;
  }
  if (n == 0) {
    /* A domain whose length runs past the datagram is a length error; else just short. */
    bool domain = data[3] == T2S_SOCKS5_ATYP_DOMAIN && len >= 5;
    *preason = domain ? T2S_SOCKS5_REASON_BAD_DOMAIN_LEN : T2S_SOCKS5_REASON_TRUNCATED;
    return T2S_ERR_MALFORMED;
  }
  *ppayload = data + 3 + n;
  *ppayloadlen = len - 3 - (size_t)n;
  return 0;
}

int t2s_socks5_udp_decode(const uint8_t *data, size_t len, t2s_addr *psrc, const uint8_t **ppayload,
                          size_t *ppayloadlen, t2s_socks5_error_reason *preason) {
  t2s_socks5_host h;
  t2s_socks5_error_reason dummy;
  if (preason == NULL) {
    preason = &dummy;
  }
  int rv = t2s_socks5_udp_decode_host(data, len, &h, ppayload, ppayloadlen, preason);
  if (rv != 0) {
    return rv;
  }
  if (h.atyp == T2S_SOCKS5_ATYP_DOMAIN) {
    *preason = T2S_SOCKS5_REASON_DOMAIN_UNSUPPORTED;
    return T2S_ERR_UNSUPPORTED;
  }
  *psrc = h.addr;
  return 0;
}
