/* sim_socks5.c: the SOCKS5 server state machine of the simulator's proxy model. */
#include "sim_socks5.h"

#include <string.h>

enum { STAGE_GREETING = 0, STAGE_AUTH, STAGE_REQUEST, STAGE_READY, STAGE_ESTABLISHED, STAGE_CLOSE };

int t2s_sim_socks5_server_init(t2s_sim_socks5_server *s, const t2s_sim_socks5_config *config) {
  if (config == NULL || (config->username && strlen(config->username) > 255) ||
      (config->password && strlen(config->password) > 255)) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  memset(s, 0, sizeof(*s));
  s->config = *config;
  s->stage = STAGE_GREETING;
  s->method = T2S_SOCKS5_METHOD_NO_ACCEPTABLE;
  return 0;
}

static void out_append(t2s_sim_socks5_server *s, const uint8_t *p, size_t n) {
  /* Sizes are bounded by construction: 2 + 2 + 262 < T2S_SIM_SOCKS5_OUT_MAX. */
  memcpy(s->out + s->outlen, p, n);
  s->outlen += n;
}

static int protocol_error(t2s_sim_socks5_server *s, int err, t2s_socks5_error_reason reason) {
  s->stage = STAGE_CLOSE;
  s->err = err;
  s->reason = reason;
  return err;
}

static void write_reply(t2s_sim_socks5_server *s, uint8_t rep, const t2s_socks5_host *bnd) {
  uint8_t buf[T2S_SOCKS5_REPLY_MAX];
  buf[0] = T2S_SOCKS5_VERSION;
  buf[1] = rep;
  buf[2] = 0;
  t2s_ssize n = t2s_socks5_host_encode(buf + 3, sizeof(buf) - 3, bnd);
  out_append(s, buf, 3 + (size_t)n);
  s->rep = rep;
  s->replied = true;
}

static void refuse(t2s_sim_socks5_server *s, uint8_t rep) {
  t2s_socks5_host zero;
  t2s_addr a = {.family = T2S_AF_INET};
  t2s_socks5_host_from_addr(&zero, &a);
  if (!s->config.close_on_unsupported || rep == T2S_SOCKS5_REP_ATYP_UNSUPPORTED) {
    write_reply(s, rep, &zero);
  }
  s->stage = STAGE_CLOSE;
}

/* Total length of the current message, judging from what is in rx (grows as more arrives). */
static t2s_ssize need(t2s_sim_socks5_server *s) {
  switch (s->stage) {
  case STAGE_GREETING:
    return s->rxlen < 2 ? 2 : 2 + (t2s_ssize)s->rx[1];
  case STAGE_AUTH:
    if (s->rxlen < 2) {
      return 2;
    }
    if (s->rxlen < 3 + (size_t)s->rx[1]) {
      return 3 + (t2s_ssize)s->rx[1];
    }
    return 3 + (t2s_ssize)s->rx[1] + s->rx[2 + s->rx[1]];
  default: /* STAGE_REQUEST */
    if (s->rxlen < 4) {
      return 4;
    }
    if (s->rx[3] != T2S_SOCKS5_ATYP_IPV4 && s->rx[3] != T2S_SOCKS5_ATYP_IPV6 &&
        s->rx[3] != T2S_SOCKS5_ATYP_DOMAIN) {
      return 4; /* handled in on_request: REP 8 */
    }
    if (s->rx[3] == T2S_SOCKS5_ATYP_DOMAIN && s->rxlen < 5) {
      return 5;
    }
    if (s->rx[3] == T2S_SOCKS5_ATYP_DOMAIN && s->rx[4] == 0) {
      return 5; /* handled in on_request */
    }
    return 3 + (s->rx[3] == T2S_SOCKS5_ATYP_IPV4   ? 7
                : s->rx[3] == T2S_SOCKS5_ATYP_IPV6 ? 19
                                                   : 4 + (t2s_ssize)s->rx[4]);
  }
}

/* Each on_* is called when rx holds at least need() bytes; returns 1 when the message was
 * complete and handled, 0 when more bytes are needed, or an error. */
static int on_greeting(t2s_sim_socks5_server *s) {
  if (s->rx[0] != T2S_SOCKS5_VERSION) {
    return protocol_error(s, T2S_ERR_PROTO, T2S_SOCKS5_REASON_BAD_VERSION);
  }
  if (s->rxlen < 2 + (size_t)s->rx[1]) {
    return 0;
  }
  bool none = false, userpass = false;
  for (size_t i = 0; i < s->rx[1]; i++) {
    none |= s->rx[2 + i] == T2S_SOCKS5_METHOD_NONE;
    userpass |= s->rx[2 + i] == T2S_SOCKS5_METHOD_USERPASS;
  }
  if (s->config.auth_required) {
    s->method = userpass ? T2S_SOCKS5_METHOD_USERPASS : T2S_SOCKS5_METHOD_NO_ACCEPTABLE;
  } else {
    s->method = none       ? T2S_SOCKS5_METHOD_NONE
                : userpass ? T2S_SOCKS5_METHOD_USERPASS
                           : T2S_SOCKS5_METHOD_NO_ACCEPTABLE;
  }
  uint8_t reply[2] = {T2S_SOCKS5_VERSION, s->method};
  out_append(s, reply, 2);
  s->stage = s->method == T2S_SOCKS5_METHOD_NONE       ? STAGE_REQUEST
             : s->method == T2S_SOCKS5_METHOD_USERPASS ? STAGE_AUTH
                                                       : STAGE_CLOSE;
  return 1;
}

static bool cred_eq(const char *want, const char *got, size_t gotlen) {
  want = want ? want : "";
  return strlen(want) == gotlen && memcmp(want, got, gotlen) == 0;
}

static int on_auth(t2s_sim_socks5_server *s) {
  if (s->rx[0] != T2S_SOCKS5_AUTH_VERSION) {
    return protocol_error(s, T2S_ERR_PROTO, T2S_SOCKS5_REASON_BAD_AUTH_VERSION);
  }
  if (s->rxlen < (size_t)need(s)) {
    return 0;
  }
  size_t ulen = s->rx[1], plen = s->rx[2 + ulen];
  memcpy(s->username, s->rx + 2, ulen);
  s->username[ulen] = '\0';
  memcpy(s->password, s->rx + 3 + ulen, plen);
  s->password[plen] = '\0';
  bool ok = !s->config.auth_required || (cred_eq(s->config.username, s->username, ulen) &&
                                         cred_eq(s->config.password, s->password, plen));
  uint8_t reply[2] = {T2S_SOCKS5_AUTH_VERSION, ok ? 0 : 1};
  out_append(s, reply, 2);
  s->stage = ok ? STAGE_REQUEST : STAGE_CLOSE;
  return 1;
}

static int on_request(t2s_sim_socks5_server *s) {
  if (s->rx[0] != T2S_SOCKS5_VERSION) {
    return protocol_error(s, T2S_ERR_PROTO, T2S_SOCKS5_REASON_BAD_VERSION);
  }
  t2s_socks5_error_reason reason = T2S_SOCKS5_REASON_NONE;
  t2s_ssize n = t2s_socks5_host_decode(s->rx + 3, s->rxlen - 3, &s->dst, &reason);
  if (n == T2S_ERR_MALFORMED && reason == T2S_SOCKS5_REASON_UNKNOWN_ATYP) {
    s->cmd = s->rx[1];
    s->reason = reason;
    refuse(s, T2S_SOCKS5_REP_ATYP_UNSUPPORTED);
    return 1;
  }
  if (n < 0) {
    return protocol_error(s, (int)n, reason);
  }
  if (n == 0) {
    return 0;
  }
  s->cmd = s->rx[1];
  switch (s->cmd) {
  case T2S_SOCKS5_CMD_CONNECT:
    s->stage = STAGE_READY;
    break;
  case T2S_SOCKS5_CMD_UDP_ASSOCIATE:
    if (s->config.udp_supported) {
      s->stage = STAGE_READY;
    } else {
      refuse(s, T2S_SOCKS5_REP_CMD_UNSUPPORTED);
    }
    break;
  default: /* BIND, unknown */
    s->reason =
        s->cmd == T2S_SOCKS5_CMD_BIND ? T2S_SOCKS5_REASON_NONE : T2S_SOCKS5_REASON_BAD_COMMAND;
    refuse(s, T2S_SOCKS5_REP_CMD_UNSUPPORTED);
    break;
  }
  return 1;
}

t2s_sim_socks5_status t2s_sim_socks5_server_status(const t2s_sim_socks5_server *s) {
  switch (s->stage) {
  case STAGE_READY:
    return T2S_SIM_SOCKS5_REQUEST_READY;
  case STAGE_ESTABLISHED:
    return T2S_SIM_SOCKS5_ESTABLISHED;
  case STAGE_CLOSE:
    return T2S_SIM_SOCKS5_CLOSE;
  default:
    return T2S_SIM_SOCKS5_NEED_MORE;
  }
}

int t2s_sim_socks5_server_feed(t2s_sim_socks5_server *s, const uint8_t *data, size_t len,
                               size_t *pconsumed) {
  size_t off = 0;
  *pconsumed = 0;
  if (s->config.black_hole) {
    *pconsumed = len;
    return T2S_SIM_SOCKS5_NEED_MORE;
  }
  if (s->err != 0) {
    return s->err;
  }
  while (off < len &&
         (s->stage == STAGE_GREETING || s->stage == STAGE_AUTH || s->stage == STAGE_REQUEST)) {
    size_t want = (size_t)need(s);
    size_t take = T2S_MIN(want - s->rxlen, len - off);
    memcpy(s->rx + s->rxlen, data + off, take);
    s->rxlen += take;
    off += take;
    *pconsumed = off;
    if (s->rxlen < want) {
      break;
    }
    int rv = s->stage == STAGE_GREETING ? on_greeting(s)
             : s->stage == STAGE_AUTH   ? on_auth(s)
                                        : on_request(s);
    if (rv < 0) {
      return rv;
    }
    if (rv == 1) {
      s->rxlen = 0;
    }
  }
  return t2s_sim_socks5_server_status(s);
}

void t2s_sim_socks5_server_pending_output(const t2s_sim_socks5_server *s, const uint8_t **pdata,
                                          size_t *pdatalen) {
  *pdata = s->out + s->outpos;
  *pdatalen = s->outlen - s->outpos;
}

void t2s_sim_socks5_server_output_consumed(t2s_sim_socks5_server *s, size_t n) {
  s->outpos += T2S_MIN(n, s->outlen - s->outpos);
}

const t2s_socks5_host *t2s_sim_socks5_server_request(const t2s_sim_socks5_server *s,
                                                     uint8_t *pcmd) {
  if (s->dst.atyp == 0) {
    return NULL; /* not complete yet, or refused before it was (unknown ATYP) */
  }
  if (pcmd) {
    *pcmd = s->cmd;
  }
  return &s->dst;
}

int t2s_sim_socks5_server_reply_host(t2s_sim_socks5_server *s, uint8_t rep,
                                     const t2s_socks5_host *bnd) {
  t2s_socks5_host zero;
  if (s->stage != STAGE_READY) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (bnd == NULL) {
    t2s_addr a = {.family = T2S_AF_INET};
    t2s_socks5_host_from_addr(&zero, &a);
    bnd = &zero;
  }
  if (t2s_socks5_host_len(bnd) == 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  write_reply(s, rep, bnd);
  s->stage = rep == T2S_SOCKS5_REP_SUCCEEDED ? STAGE_ESTABLISHED : STAGE_CLOSE;
  return 0;
}

int t2s_sim_socks5_server_reply(t2s_sim_socks5_server *s, uint8_t rep, const t2s_addr *bnd) {
  t2s_socks5_host h;
  if (bnd != NULL && t2s_socks5_host_from_addr(&h, bnd) != 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  return t2s_sim_socks5_server_reply_host(s, rep, bnd ? &h : NULL);
}

int t2s_sim_socks5_server_method(const t2s_sim_socks5_server *s) {
  return s->stage == STAGE_GREETING ? -1 : s->method;
}

int t2s_sim_socks5_server_error(const t2s_sim_socks5_server *s) {
  return s->err;
}

t2s_socks5_error_reason t2s_sim_socks5_server_reason(const t2s_sim_socks5_server *s) {
  return s->reason;
}
