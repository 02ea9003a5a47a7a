/*
 * common.h: types shared by every module of the sans-I/O core.
 *
 * The core never reads a clock, never calls the OS and keeps no file-scope mutable state.
 * Time comes in as t2s_tstamp (nanoseconds on an arbitrary monotonic base).
 */
#ifndef T2S_COMMON_H
#define T2S_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nanoseconds since an arbitrary origin chosen by the caller. */
typedef uint64_t t2s_tstamp;
/* A length or a negative T2S_ERR_* code. */
typedef ptrdiff_t t2s_ssize;

#define T2S_TSTAMP_MAX UINT64_MAX
#define T2S_NANOSECONDS ((t2s_tstamp)1)
#define T2S_MICROSECONDS ((t2s_tstamp)1000)
#define T2S_MILLISECONDS ((t2s_tstamp)1000000)
#define T2S_SECONDS ((t2s_tstamp)1000000000)

/*
 * Error codes. Bands: -200..-299 usage errors, -300..-499 protocol/runtime conditions that
 * end one flow, <= -500 fatal for the whole engine. t2s_strerror() names each.
 */
enum {
  T2S_OK = 0,
  T2S_ERR_INVALID_ARGUMENT = -201,
  T2S_ERR_NOBUF = -202,      /* caller's buffer too small */
  T2S_ERR_WOULDBLOCK = -203, /* nothing to do now; try again later */
  T2S_ERR_NOT_FOUND = -204,
  T2S_ERR_EXISTS = -205,
  T2S_ERR_PERMISSION = -206, /* the OS refused: a privilege or an access right is missing */
  T2S_ERR_MALFORMED = -301,  /* bytes do not parse */
  T2S_ERR_PROTO = -302,      /* parses but violates the protocol */
  T2S_ERR_CLOSED = -303,     /* the flow or stream is closed */
  T2S_ERR_RESET = -304,      /* the peer reset the flow */
  T2S_ERR_TIMEOUT = -305,
  T2S_ERR_REFUSED = -306,     /* connection refused (by the proxy or the destination) */
  T2S_ERR_UNREACHABLE = -307, /* network or host unreachable */
  T2S_ERR_AUTH = -308,        /* proxy authentication failed */
  T2S_ERR_LIMIT = -309,       /* a configured cap was reached */
  T2S_ERR_UNSUPPORTED = -310,
  T2S_ERR_NETWORK_CHANGED = -311, /* reset by the network-change policy */
  T2S_ERR_FATAL = -500,
  T2S_ERR_NOMEM = -501,
  T2S_ERR_INTERNAL = -502,
};

/* Returns a static, human-readable name for an error code (never NULL). */
const char *t2s_strerror(int err);

/* True when err is in the fatal band. */
static inline bool t2s_err_is_fatal(int err) {
  return err <= T2S_ERR_FATAL;
}

/* Address families as the core spells them (independent of the OS's AF_* values). */
enum { T2S_AF_INET = 4, T2S_AF_INET6 = 6 };

/* An IP address with a port. IPv4 lives in ip[0..3]; ports are in host byte order. */
typedef struct t2s_addr {
  uint8_t family; /* T2S_AF_INET or T2S_AF_INET6; 0 = unset */
  uint8_t ip[16];
  uint16_t port;
} t2s_addr;

/* Compares family, address and port. */
bool t2s_addr_eq(const t2s_addr *a, const t2s_addr *b);
/* Compares family and address only. */
bool t2s_addr_ip_eq(const t2s_addr *a, const t2s_addr *b);
/* Writes "1.2.3.4:80" or "[2001:db8::1]:80" (port omitted when with_port is false) into buf.
 * Returns buf. buflen >= 48 always suffices. */
char *t2s_addr_format(const t2s_addr *a, bool with_port, char *buf, size_t buflen);
/* Parses "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]:80". Returns 0 or
 * T2S_ERR_MALFORMED. The port is 0 when absent. */
int t2s_addr_parse(const char *s, t2s_addr *out);
/* Hash of family, ip and port (for flow tables); seed mixes in per-engine randomness. */
uint64_t t2s_addr_hash(const t2s_addr *a, uint64_t seed);

/* Big-endian loads and stores. */
static inline uint16_t t2s_get16(const uint8_t *p) {
  return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t t2s_get32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline void t2s_put16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void t2s_put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* The value of hexadecimal digit c (0-9, a-f, A-F), or -1. */
static inline int t2s_hexval(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

/*
 * T2S_ASSERT(cond): an invariant the code relies on. When it does not hold, the process
 * prints "file:line: assertion failed: cond" on stderr and aborts. Compiled in when
 * T2S_ENABLE_ASSERTS is defined: CMake defines it in Debug, ASan (T2S_SANITIZE) and fuzz
 * (T2S_FUZZ) builds and with -DT2S_ASSERTS=ON; off in Release and RelWithDebInfo, where the
 * condition is not evaluated (it must have no side effect). Keep them cheap: O(1) checks.
 */
#ifdef T2S_ENABLE_ASSERTS
_Noreturn void t2s_assert_fail(const char *file, int line, const char *cond);
#define T2S_ASSERT(cond) ((cond) ? (void)0 : t2s_assert_fail(__FILE__, __LINE__, #cond))
#else
#define T2S_ASSERT(cond) ((void)sizeof(!(cond)))
#endif

#define T2S_MIN(a, b) ((a) < (b) ? (a) : (b))
#define T2S_MAX(a, b) ((a) > (b) ? (a) : (b))
#define T2S_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
