/*
 * socks5.h: a sans-I/O SOCKS5 client (RFC 1928) with username/password authentication
 * (RFC 1929), and the codec of the UDP request header.
 *
 * The client never touches a socket. The caller connects a stream to the proxy, then:
 *
 *   t2s_socks5_client_init(&c, T2S_SOCKS5_CMD_CONNECT, &dst, user, pass, pipelined);
 *   loop:
 *     t2s_socks5_client_pending_output(&c, &p, &n);  write p[0..n) to the stream, then
 *     t2s_socks5_client_output_consumed(&c, written);
 *     on bytes from the stream: rv = t2s_socks5_client_feed(&c, data, len, &consumed);
 *       rv < 0                  the handshake failed (rv is a T2S_ERR_*, see the mapping below)
 *       rv == T2S_SOCKS5_NEED_MORE   write any new pending output, read more
 *       rv == T2S_SOCKS5_DONE   the reply said "succeeded": t2s_socks5_client_reply() tells
 *                               BND; for CONNECT, data[consumed..len) is already stream data
 *     on EOF from the stream: rv = t2s_socks5_client_eof(&c);
 *
 * Nothing but handshake bytes is ever consumed: bytes after the reply are left to the caller.
 * Errors are negative T2S_ERR_* codes; t2s_socks5_client_reason() names the precise cause.
 */
#ifndef T2S_SOCKS5_H
#define T2S_SOCKS5_H

#include "common.h"

#define T2S_SOCKS5_VERSION 5
#define T2S_SOCKS5_AUTH_VERSION 1 /* RFC 1929 sub-negotiation version */

typedef enum t2s_socks5_cmd {
  T2S_SOCKS5_CMD_CONNECT = 1,
  T2S_SOCKS5_CMD_BIND = 2, /* not supported by the client; the server model answers REP 7 */
  T2S_SOCKS5_CMD_UDP_ASSOCIATE = 3,
} t2s_socks5_cmd;

enum {
  T2S_SOCKS5_ATYP_IPV4 = 1,
  T2S_SOCKS5_ATYP_DOMAIN = 3,
  T2S_SOCKS5_ATYP_IPV6 = 4,
};

enum {
  T2S_SOCKS5_METHOD_NONE = 0x00,
  T2S_SOCKS5_METHOD_USERPASS = 0x02,
  T2S_SOCKS5_METHOD_NO_ACCEPTABLE = 0xff,
};

/* REP codes of the reply (RFC 1928 section 6). */
enum {
  T2S_SOCKS5_REP_SUCCEEDED = 0,
  T2S_SOCKS5_REP_GENERAL_FAILURE = 1,
  T2S_SOCKS5_REP_NOT_ALLOWED = 2,
  T2S_SOCKS5_REP_NET_UNREACHABLE = 3,
  T2S_SOCKS5_REP_HOST_UNREACHABLE = 4,
  T2S_SOCKS5_REP_CONN_REFUSED = 5,
  T2S_SOCKS5_REP_TTL_EXPIRED = 6,
  T2S_SOCKS5_REP_CMD_UNSUPPORTED = 7,
  T2S_SOCKS5_REP_ATYP_UNSUPPORTED = 8,
};

/* Return values of t2s_socks5_client_feed() besides errors. */
enum {
  T2S_SOCKS5_NEED_MORE = 0,
  T2S_SOCKS5_DONE = 1,
};

/* The precise cause of a failure: X(enum suffix, label). Labels are stable (metrics, logs). */
#define T2S_SOCKS5_REASONS(X)                                                                      \
  X(NONE, "none")                                                                                  \
  X(BAD_VERSION, "bad_version")                   /* VER is not 5 */                               \
  X(BAD_METHOD, "bad_method")                     /* server chose a method we did not offer */     \
  X(NO_ACCEPTABLE_METHOD, "no_acceptable_method") /* method 0xFF */                                \
  X(BAD_AUTH_VERSION, "bad_auth_version")         /* RFC 1929 reply VER not 1 (nor 5) */           \
  X(AUTH_FAILED, "auth_failed")                   /* RFC 1929 STATUS != 0 */                       \
  X(RESERVED_NONZERO, "reserved_nonzero")         /* RSV byte(s) not zero */                       \
  X(UNKNOWN_ATYP, "unknown_atyp")                 /* ATYP not 1, 3 or 4 */                         \
  X(BAD_DOMAIN_LEN, "bad_domain_len")             /* zero length, or runs past the datagram */     \
  X(TRUNCATED, "truncated")                       /* message cut short (EOF or short datagram) */  \
  X(TRAILING_BYTES, "trailing_bytes")             /* bytes after a UDP ASSOCIATE reply */          \
  X(UNSOLICITED, "unsolicited") /* reply bytes before the message they answer was sent */          \
  X(EOF, "eof")                 /* the proxy closed between messages */                            \
  X(CLOSED_AFTER_REQUEST, "closed_after_request") /* closed instead of a reply (ssh -D) */         \
  X(REP_GENERAL_FAILURE, "rep_general_failure")                                                    \
  X(REP_NOT_ALLOWED, "rep_not_allowed")                                                            \
  X(REP_NET_UNREACHABLE, "rep_net_unreachable")                                                    \
  X(REP_HOST_UNREACHABLE, "rep_host_unreachable")                                                  \
  X(REP_CONN_REFUSED, "rep_conn_refused")                                                          \
  X(REP_TTL_EXPIRED, "rep_ttl_expired")                                                            \
  X(REP_CMD_UNSUPPORTED, "rep_cmd_unsupported")                                                    \
  X(REP_ATYP_UNSUPPORTED, "rep_atyp_unsupported")                                                  \
  X(REP_UNKNOWN, "rep_unknown")               /* REP 9..255 */                                     \
  X(DOMAIN_RELAY, "domain_relay")             /* UDP ASSOCIATE relay given as a domain name */     \
  X(FRAG, "frag")                             /* UDP header FRAG != 0 (fragmentation) */           \
  X(DOMAIN_UNSUPPORTED, "domain_unsupported") /* UDP datagram source given as a domain name */     \
  X(BAD_COMMAND, "bad_command")               /* server side: CMD not CONNECT/BIND/UDP */          \
  X(BAD_REQUEST, "bad_request")               /* server side: malformed greeting or request */

typedef enum t2s_socks5_error_reason {
#define T2S_SOCKS5_REASON_ENUM(name, label) T2S_SOCKS5_REASON_##name,
  T2S_SOCKS5_REASONS(T2S_SOCKS5_REASON_ENUM)
#undef T2S_SOCKS5_REASON_ENUM
      T2S_SOCKS5_REASON_MAX
} t2s_socks5_error_reason;

/* The label of a reason ("unknown_atyp"); "unknown" when out of range. Never NULL. */
const char *t2s_socks5_reason_name(int reason);

/* An address as SOCKS5 carries it: an IP address or a domain name, with a port. */
typedef struct t2s_socks5_host {
  uint8_t atyp;      /* T2S_SOCKS5_ATYP_IPV4, _IPV6 or _DOMAIN */
  t2s_addr addr;     /* IPV4/IPV6: address and port; DOMAIN: family 0, port set */
  uint8_t domainlen; /* DOMAIN: length of the name (1..255) */
  char domain[256];  /* DOMAIN: the name, NUL-terminated (domainlen is authoritative) */
} t2s_socks5_host;

/* Fills *h from an IP address (T2S_AF_INET or T2S_AF_INET6). Returns 0 or
 * T2S_ERR_INVALID_ARGUMENT (family unset). */
int t2s_socks5_host_from_addr(t2s_socks5_host *h, const t2s_addr *addr);
/* Fills *h from a domain name (1..255 bytes, NUL-terminated) and a port. Returns 0 or
 * T2S_ERR_INVALID_ARGUMENT (empty or longer than 255). */
int t2s_socks5_host_from_domain(t2s_socks5_host *h, const char *domain, uint16_t port);

/* Encoded length of ATYP + address + port for h (7, 19 or 4 + domainlen); 0 if h is invalid. */
size_t t2s_socks5_host_len(const t2s_socks5_host *h);
/* Writes ATYP + address + port into buf. Returns the length written, T2S_ERR_NOBUF or
 * T2S_ERR_INVALID_ARGUMENT (bad atyp, domain length 0). */
t2s_ssize t2s_socks5_host_encode(uint8_t *buf, size_t buflen, const t2s_socks5_host *h);
/* Parses ATYP + address + port from data[0..len). Returns the length used (> 0), 0 when the
 * bytes are a valid but incomplete prefix, or T2S_ERR_MALFORMED with *preason set to
 * UNKNOWN_ATYP or BAD_DOMAIN_LEN (length 0). preason may be NULL. */
t2s_ssize t2s_socks5_host_decode(const uint8_t *data, size_t len, t2s_socks5_host *h,
                                 t2s_socks5_error_reason *preason);

/* Largest handshake output: greeting (4) + RFC 1929 request (3 + 255 + 255) + request (262). */
#define T2S_SOCKS5_CLIENT_OUT_MAX 779
/* Largest reply: VER REP RSV ATYP + 1 + 255 + 2. */
#define T2S_SOCKS5_REPLY_MAX 262

/* The client state machine. Embed it anywhere; no heap, nothing to free. Fields are private. */
typedef struct t2s_socks5_client {
  uint8_t cmd;
  uint8_t stage; /* private: METHOD, AUTH, REPLY, DONE, FAILED */
  bool pipelined;
  bool offer_none;     /* greeting offers method 0x00 */
  bool offer_userpass; /* greeting offers method 0x02 */
  uint8_t rep;         /* REP of the reply, 0xff..: see t2s_socks5_client_rep() */
  bool have_rep;
  int err;                        /* the error once failed */
  t2s_socks5_error_reason reason; /* its precise cause */
  /* out[outpos..outlimit) is pending; out[outlimit..outlen) is held back until its turn. */
  size_t outpos, outlimit, outlen;
  size_t greet_end, auth_end, req_end; /* offsets just after each message (0: none) */
  uint8_t out[T2S_SOCKS5_CLIENT_OUT_MAX];
  size_t rxlen;
  uint8_t rx[T2S_SOCKS5_REPLY_MAX];
  t2s_socks5_host bnd; /* BND.ADDR/BND.PORT of a successful reply */
} t2s_socks5_client;

/*
 * Prepares a handshake for command cmd (CONNECT or UDP_ASSOCIATE) toward dst.
 *   dst       CONNECT: the destination (IP or domain). UDP_ASSOCIATE: the address the client
 *             will send datagrams from, or NULL for 0.0.0.0:0 (what nearly every client sends).
 *   username  NULL: offer only "no authentication". Otherwise 1..255 bytes, and password
 *             (0..255 bytes, NULL = empty) is sent if the server picks RFC 1929.
 *   pipelined Write greeting, RFC 1929 request and SOCKS request in one go, without waiting
 *             for the answers. Only valid when the method is known in advance, so the greeting
 *             then offers a single method: 0x02 with credentials, 0x00 without. Not pipelined
 *             with credentials, the greeting offers both 0x00 and 0x02 and the server chooses.
 * Returns 0 or T2S_ERR_INVALID_ARGUMENT (bad cmd, dst, or credential length).
 */
int t2s_socks5_client_init(t2s_socks5_client *c, t2s_socks5_cmd cmd, const t2s_socks5_host *dst,
                           const char *username, const char *password, bool pipelined);

/* Convenience: t2s_socks5_client_init() with an IP destination (NULL allowed for UDP). */
int t2s_socks5_client_init_addr(t2s_socks5_client *c, t2s_socks5_cmd cmd, const t2s_addr *dst,
                                const char *username, const char *password, bool pipelined);

/* Sets *pdata and *pdatalen to the bytes to write to the proxy now (*pdatalen 0: nothing). The
 * pointer stays valid until the next call on c. New output appears after feed() processes
 * an answer (non-pipelined mode). */
void t2s_socks5_client_pending_output(const t2s_socks5_client *c, const uint8_t **pdata,
                                      size_t *pdatalen);

/* Marks n bytes of the pending output as written (n <= the pending length; larger values are
 * clamped). */
void t2s_socks5_client_output_consumed(t2s_socks5_client *c, size_t n);

/*
 * Feeds bytes read from the proxy. *pconsumed is set to how many were handshake bytes; after
 * T2S_SOCKS5_DONE for CONNECT, data[*pconsumed..len) belongs to the data stream. Bytes are
 * never consumed past the reply, and any split (down to 1-byte feeds) gives the same result.
 * Returns:
 *   T2S_SOCKS5_NEED_MORE   handshake incomplete (check pending output, read more)
 *   T2S_SOCKS5_DONE        reply "succeeded"; after it, feed() consumes nothing for CONNECT
 *   T2S_ERR_AUTH           method 0xFF, or RFC 1929 status != 0
 *   T2S_ERR_REFUSED        REP 1 (general failure), 2 (not allowed), 5 (refused)
 *   T2S_ERR_UNREACHABLE    REP 3, 4, 6
 *   T2S_ERR_UNSUPPORTED    REP 7, 8; UDP ASSOCIATE relay given as a domain name
 *   T2S_ERR_PROTO          bad version, method not offered, RSV != 0, unknown REP, reply
 *                          bytes before their request was written, bytes after a UDP
 *                          ASSOCIATE reply (also when fed after DONE)
 *   T2S_ERR_MALFORMED      unknown ATYP, domain length 0
 * A failure is final: later calls return the same error; t2s_socks5_client_reason() tells
 * the cause. A REP failure is reported as soon as VER and REP arrive (the rest of the reply
 * is not awaited: failing servers often close right away).
 */
int t2s_socks5_client_feed(t2s_socks5_client *c, const uint8_t *data, size_t len,
                           size_t *pconsumed);

/*
 * Tells the client the proxy closed the stream (read EOF or reset). Returns:
 *   T2S_OK               after DONE for CONNECT (EOF of the data stream; the caller's business)
 *   T2S_ERR_CLOSED       before the method answer, between messages of a CONNECT, or (reason
 *                        EOF) the UDP ASSOCIATE control connection closing after DONE: the
 *                        association is over
 *   T2S_ERR_AUTH         closed instead of an RFC 1929 status (servers that just hang up)
 *   T2S_ERR_UNSUPPORTED  UDP ASSOCIATE request answered by a close (reason
 *                        CLOSED_AFTER_REQUEST; ssh -D does this)
 *   T2S_ERR_MALFORMED    closed in the middle of an answer (reason TRUNCATED)
 *   the stored error     when already failed
 * Timeouts (silence) are the caller's to detect.
 */
int t2s_socks5_client_eof(t2s_socks5_client *c);

/* True once the handshake succeeded. */
bool t2s_socks5_client_done(const t2s_socks5_client *c);
/* The REP code received (0..255), or -1 when no reply has arrived yet. */
int t2s_socks5_client_rep(const t2s_socks5_client *c);
/* BND of the successful reply (IP or, for CONNECT only, a domain); NULL before DONE. */
const t2s_socks5_host *t2s_socks5_client_bnd(const t2s_socks5_client *c);
/* The error the client failed with (0 if none) and its precise cause. */
int t2s_socks5_client_error(const t2s_socks5_client *c);
t2s_socks5_error_reason t2s_socks5_client_reason(const t2s_socks5_client *c);

/* Maps a REP code to the error of the table above (0 for REP 0, T2S_ERR_PROTO for unknown);
 * *preason (may be NULL) receives the REP_* reason. */
int t2s_socks5_rep_to_error(uint8_t rep, t2s_socks5_error_reason *preason);
/* A static name for a REP code ("succeeded", "host unreachable", ...; "unknown"). */
const char *t2s_socks5_rep_name(int rep);

/*
 * The UDP relay to send datagrams to, from a UDP ASSOCIATE reply's BND and the proxy address
 * the control connection went to. A BND of 0.0.0.0 or :: means "the address you connected to":
 * the relay is then proxy's address (whatever its family) with BND's port. Otherwise BND is
 * the relay as is, even when its family differs from the control connection's.
 * Returns 0, T2S_ERR_PROTO (BND port 0, or unspecified BND with no proxy family) or
 * T2S_ERR_INVALID_ARGUMENT (bnd family unset).
 */
int t2s_socks5_udp_relay(const t2s_addr *bnd, const t2s_addr *proxy, t2s_addr *prelay);

/* ---------------- UDP request header (RFC 1928 section 7) ---------------- */

/* Header length for datagrams to dst: 10 for IPv4, 22 for IPv6; 0 when dst is unset. */
size_t t2s_socks5_udp_header_len(const t2s_addr *dst);

/*
 * Writes RSV(2)=0 FRAG=0 ATYP DST.ADDR DST.PORT followed by the payload into buf. payload
 * may overlap buf (e.g. already placed at buf + t2s_socks5_udp_header_len(dst)).
 * Returns the total length, T2S_ERR_NOBUF or T2S_ERR_INVALID_ARGUMENT (dst unset).
 */
t2s_ssize t2s_socks5_udp_encode(uint8_t *buf, size_t buflen, const t2s_addr *dst,
                                const uint8_t *payload, size_t payloadlen);

/* As t2s_socks5_udp_encode(), to an IP address or a domain name (ATYP 3: the relay resolves
 * it; --fake-dns sends datagrams to the name a pool address stands for). The header is
 * t2s_socks5_host_len(dst) + 3 bytes. Returns the total length, T2S_ERR_NOBUF or
 * T2S_ERR_INVALID_ARGUMENT (dst invalid). */
t2s_ssize t2s_socks5_udp_encode_host(uint8_t *buf, size_t buflen, const t2s_socks5_host *dst,
                                     const uint8_t *payload, size_t payloadlen);

/*
 * Parses a datagram from the relay: *psrc receives DST.ADDR/DST.PORT (the remote peer),
 * *ppayload and *ppayloadlen the data (pointing into data). Returns 0 or:
 *   T2S_ERR_MALFORMED    shorter than its header (TRUNCATED), unknown ATYP, domain length 0
 *                        or past the end (BAD_DOMAIN_LEN)
 *   T2S_ERR_PROTO        RSV != 0 (RESERVED_NONZERO)
 *   T2S_ERR_UNSUPPORTED  FRAG != 0 (FRAG: fragments are not reassembled; the caller drops
 *                        and counts), or a domain-name source (DOMAIN_UNSUPPORTED: a datagram
 *                        toward the TUN needs an IP source; use t2s_socks5_udp_decode_host()
 *                        to read the name)
 * preason (may be NULL) receives the cause.
 */
int t2s_socks5_udp_decode(const uint8_t *data, size_t len, t2s_addr *psrc, const uint8_t **ppayload,
                          size_t *ppayloadlen, t2s_socks5_error_reason *preason);

/* As t2s_socks5_udp_decode(), but a domain-name address is accepted and reported in *psrc
 * (used by the server model, which receives the client's DST). */
int t2s_socks5_udp_decode_host(const uint8_t *data, size_t len, t2s_socks5_host *psrc,
                               const uint8_t **ppayload, size_t *ppayloadlen,
                               t2s_socks5_error_reason *preason);

#endif
