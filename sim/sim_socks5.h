/*
 * sim_socks5.h: the server side of SOCKS5 (RFC 1928, RFC 1929) for the simulator's proxy
 * model. Sans-I/O like the client: it consumes the bytes a client wrote on one control
 * connection and produces the bytes the server writes back. It never decides the outcome of
 * a request: it stops at "request ready", and the simulator answers with
 * t2s_sim_socks5_server_reply().
 *
 * Driving it (one t2s_sim_socks5_server per accepted connection):
 *
 *   t2s_sim_socks5_server_init(&s, &config);
 *   on client bytes: st = t2s_sim_socks5_server_feed(&s, data, len, &consumed);
 *     then always flush t2s_sim_socks5_server_pending_output() to the client, and act on st:
 *     T2S_SIM_SOCKS5_NEED_MORE      wait for more client bytes
 *     T2S_SIM_SOCKS5_REQUEST_READY  t2s_sim_socks5_server_request() tells cmd and destination;
 *                                   decide, then t2s_sim_socks5_server_reply() (success with a
 *                                   BND, or a REP code). A black-hole proxy never replies.
 *     T2S_SIM_SOCKS5_ESTABLISHED    data[consumed..len) is payload (CONNECT: toward the
 *                                   destination; UDP ASSOCIATE: the control connection should
 *                                   stay silent, what to do with bytes is the caller's choice)
 *     T2S_SIM_SOCKS5_CLOSE          flush the pending output, then close the connection
 *     < 0                           the client broke the protocol (T2S_ERR_PROTO/MALFORMED,
 *                                   t2s_sim_socks5_server_reason() tells); close the connection
 *
 * Bytes that arrive while the request is ready or after the reply are never consumed:
 * *pconsumed tells how many bytes of the input were protocol, the rest is payload.
 * Per-connection memory only; no globals, no clock, no I/O.
 */
#ifndef T2S_SIM_SOCKS5_H
#define T2S_SIM_SOCKS5_H

#include "common.h"
#include "socks5.h"

typedef struct t2s_sim_socks5_config {
  /* Require RFC 1929 username/password. Wrong credentials get STATUS 1 and a close; a client
   * that does not offer method 0x02 gets method 0xFF and a close. When false, the server
   * picks 0x00 when offered, otherwise accepts 0x02 with any credentials. */
  bool auth_required;
  const char *username; /* the expected credentials when auth_required (NULL = "") */
  const char *password;
  /* UDP ASSOCIATE supported. When false, the request gets REP 7 and a close, or only a close
   * when close_on_unsupported (like ssh -D). */
  bool udp_supported;
  bool close_on_unsupported; /* also applies to BIND and unknown commands */
  /* Never write anything, not even the method answer (a dead proxy that accepts TCP). To go
   * silent only after the request, keep this false and never call reply(). */
  bool black_hole;
} t2s_sim_socks5_config;

/* What feed() reports (besides errors). */
typedef enum t2s_sim_socks5_status {
  T2S_SIM_SOCKS5_NEED_MORE = 0,
  T2S_SIM_SOCKS5_REQUEST_READY = 1,
  T2S_SIM_SOCKS5_ESTABLISHED = 2,
  T2S_SIM_SOCKS5_CLOSE = 3,
} t2s_sim_socks5_status;

#define T2S_SIM_SOCKS5_OUT_MAX 512
#define T2S_SIM_SOCKS5_IN_MAX 520 /* largest client message: RFC 1929 request (513) */

/* One server-side connection. Fields are private; use the accessors. */
typedef struct t2s_sim_socks5_server {
  t2s_sim_socks5_config config;
  uint8_t stage;  /* private */
  uint8_t method; /* the method chosen */
  uint8_t cmd;    /* CMD of the request */
  int err;
  t2s_socks5_error_reason reason;
  t2s_socks5_host dst; /* DST of the request */
  uint8_t rep;         /* REP written, when replied */
  bool replied;
  char username[256]; /* RFC 1929 credentials received */
  char password[256];
  size_t outpos, outlen;
  uint8_t out[T2S_SIM_SOCKS5_OUT_MAX];
  size_t rxlen;
  uint8_t rx[T2S_SIM_SOCKS5_IN_MAX];
} t2s_sim_socks5_server;

/* Starts a connection with a copy of *config (the strings are only borrowed: they must
 * outlive s). Returns 0 or T2S_ERR_INVALID_ARGUMENT (credentials longer than 255). */
int t2s_sim_socks5_server_init(t2s_sim_socks5_server *s, const t2s_sim_socks5_config *config);

/*
 * Consumes client bytes. *pconsumed says how many were protocol bytes (greeting, RFC 1929
 * request, SOCKS request); the rest is payload or waits for the reply. Pipelined input (all
 * messages in one buffer) is handled in one call. Returns a t2s_sim_socks5_status, or
 * T2S_ERR_PROTO (bad VER, bad RFC 1929 VER) / T2S_ERR_MALFORMED (domain length 0) after
 * which the status is CLOSE. Unknown ATYP gets REP 8 and CLOSE (not an error), BIND and
 * unknown commands REP 7 and CLOSE, refused UDP as configured.
 */
int t2s_sim_socks5_server_feed(t2s_sim_socks5_server *s, const uint8_t *data, size_t len,
                               size_t *pconsumed);

/* Sets *pdata and *pdatalen to the bytes to write to the client now. Valid until the next call. */
void t2s_sim_socks5_server_pending_output(const t2s_sim_socks5_server *s, const uint8_t **pdata,
                                          size_t *pdatalen);
/* Marks n pending bytes as written (clamped to the pending length). */
void t2s_sim_socks5_server_output_consumed(t2s_sim_socks5_server *s, size_t n);

/* The current status (what feed() would return without new bytes). */
t2s_sim_socks5_status t2s_sim_socks5_server_status(const t2s_sim_socks5_server *s);

/* The request, once parsed (REQUEST_READY and later, also when refused): its CMD and destination
 * (IP or domain, with port). Returns NULL before the request is complete. */
const t2s_socks5_host *t2s_sim_socks5_server_request(const t2s_sim_socks5_server *s, uint8_t *pcmd);

/*
 * Answers the ready request. rep 0 = success: the status becomes ESTABLISHED and bnd is
 * BND.ADDR/BND.PORT (for UDP ASSOCIATE: the relay; 0.0.0.0 means "the address the client
 * connected to"). rep != 0: the reply carries bnd (or 0.0.0.0:0) and the status becomes CLOSE.
 * bnd NULL = 0.0.0.0:0. Returns 0, or T2S_ERR_INVALID_ARGUMENT when no request is ready.
 */
int t2s_sim_socks5_server_reply(t2s_sim_socks5_server *s, uint8_t rep, const t2s_addr *bnd);
/* As reply(), with a BND given as a t2s_socks5_host (a domain name is allowed: tests of the
 * client's handling of odd replies). */
int t2s_sim_socks5_server_reply_host(t2s_sim_socks5_server *s, uint8_t rep,
                                     const t2s_socks5_host *bnd);

/* The method chosen (0x00, 0x02, 0xFF), or -1 before the greeting was read. */
int t2s_sim_socks5_server_method(const t2s_sim_socks5_server *s);
/* The client's protocol error (0 if none) and its cause. */
int t2s_sim_socks5_server_error(const t2s_sim_socks5_server *s);
t2s_socks5_error_reason t2s_sim_socks5_server_reason(const t2s_sim_socks5_server *s);

#endif
