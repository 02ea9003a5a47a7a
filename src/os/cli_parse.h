/*
 * cli_parse.h: pure parsers for the values of the command line (durations, numbers, CIDR
 * prefixes, proxy URLs, HOST:PORT). No I/O, no name resolution: unit-tested in
 * tests/test_cli.c.
 *
 * Each returns 0 or T2S_ERR_MALFORMED / T2S_ERR_INVALID_ARGUMENT, and on error points *pwhy
 * (when pwhy is not NULL) at a static phrase saying what is wrong ("unknown unit 'x'").
 */
#ifndef T2S_CLI_PARSE_H
#define T2S_CLI_PARSE_H

#include "common.h"

/* Parses a duration: a sequence of <number><unit> with units ns, us, ms, s, m, h ("500ms",
 * "10s", "2m", "1m30s"); a bare number means seconds. Decimal fractions are accepted
 * ("1.5s"). Stores nanoseconds in *pns. Overflow is an error. */
int t2s_parse_duration(const char *s, uint64_t *pns, const char **pwhy);

/* Parses an unsigned integer, decimal or 0x-hexadecimal, within [min, max]. */
int t2s_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *pval, const char **pwhy);

/* An interface address with its prefix length ("198.18.0.1/15"). */
typedef struct t2s_cidr {
  t2s_addr addr; /* port 0 */
  uint8_t prefixlen;
} t2s_cidr;

/* Parses "ADDR/LEN" or a bare "ADDR" (then LEN is 32 or 128). */
int t2s_parse_cidr(const char *s, t2s_cidr *out, const char **pwhy);

#define T2S_PROXY_FIELD_MAX 256 /* RFC 1929 user and password are 1..255 bytes */

/* A parsed proxy URL: socks5://[user[:pass]@]host[:port]. */
typedef struct t2s_proxy_url {
  char scheme[16];                /* "socks5" */
  char user[T2S_PROXY_FIELD_MAX]; /* percent-decoded; "" when absent */
  char pass[T2S_PROXY_FIELD_MAX]; /* percent-decoded; "" when absent */
  bool has_user, has_pass;
  char host[T2S_PROXY_FIELD_MAX]; /* IPv4 literal, IPv6 literal without brackets, or a name */
  uint16_t port;                  /* 1080 when absent */
} t2s_proxy_url;

/* Parses a proxy URL. Only the socks5 scheme (and its alias socks5h) is accepted. */
int t2s_parse_proxy_url(const char *s, t2s_proxy_url *out, const char **pwhy);

/* Parses "HOST:PORT", "[V6]:PORT" or ":PORT" (host "" then). The port is required (1..65535).
 * host must hold hostlen bytes (at least 2). */
int t2s_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *pport,
                       const char **pwhy);

/* Formats a duration in the largest unit that divides it ("10s", "500ms", "2m"). Returns buf. */
char *t2s_format_duration(uint64_t ns, char *buf, size_t buflen);

#endif
