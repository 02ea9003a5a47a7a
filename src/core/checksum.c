/*
 * checksum.c: the Internet checksum (RFC 1071) and its incremental update (RFC 1624).
 *
 * The accumulator is the one's-complement sum of the data read as big-endian 16-bit words.
 * Internally the data is summed as native-endian 32-bit words into a 64-bit accumulator (the
 * one's-complement sum is independent of byte order up to a final byte swap, RFC 1071 2.B),
 * folded to 16 bits and swapped into network order when the host is little-endian. The value
 * returned is always <= 0xffff, so callers may keep adding to it without overflow.
 */
#include <string.h>

#include "packet.h"

/* Folds a 64-bit one's-complement accumulator to 16 bits (end-around carry). */
static inline uint32_t fold64(uint64_t s) {
  s = (s & 0xffffffffu) + (s >> 32);
  s = (s & 0xffffffffu) + (s >> 32);
  uint32_t v = (uint32_t)s;
  v = (v & 0xffffu) + (v >> 16);
  v = (v & 0xffffu) + (v >> 16);
  return v;
}

static inline bool host_is_little_endian(void) {
  uint16_t x;
  memcpy(&x, "\x01\x02", 2);
  return x == 0x0201;
}

uint32_t t2s_csum_add(uint32_t sum, const void *data, size_t len) {
  const uint8_t *p = data;
  uint64_t acc = 0;
  /* Four independent-ish 32-bit loads per iteration; each add is < 2^32 so 64 bits never
   * overflow for any realistic length (2^32 words). */
  while (len >= 16) {
    uint32_t w[4];
    memcpy(w, p, 16);
    acc += (uint64_t)w[0] + w[1] + w[2] + w[3];
    p += 16;
    len -= 16;
  }
  while (len >= 4) {
    uint32_t w;
    memcpy(&w, p, 4);
    acc += w;
    p += 4;
    len -= 4;
  }
  if (len >= 2) {
    uint16_t w;
    memcpy(&w, p, 2);
    acc += w;
    p += 2;
    len -= 2;
  }
  if (len == 1) {
    /* The odd byte is the high byte of a word padded with zero (RFC 1071): in memory order
     * that is {byte, 0}, whatever the host's byte order. */
    uint8_t last[2] = {p[0], 0};
    uint16_t w;
    memcpy(&w, last, 2);
    acc += w;
  }
  uint32_t v = fold64(acc);
  if (host_is_little_endian()) {
    v = ((v & 0xffu) << 8) | (v >> 8);
  }
  return fold64((uint64_t)sum + v);
}

uint16_t t2s_csum_fold(uint32_t sum) {
  return (uint16_t)~fold64(sum);
}

uint32_t t2s_csum_pseudo(const t2s_addr *src, const t2s_addr *dst, uint8_t proto, uint32_t l4len) {
  size_t alen = src->family == T2S_AF_INET6 ? 16 : 4;
  uint64_t acc = 0;
  for (size_t i = 0; i < alen; i += 2) {
    acc += t2s_get16(src->ip + i);
    acc += t2s_get16(dst->ip + i);
  }
  acc += proto;
  acc += l4len >> 16;
  acc += l4len & 0xffffu;
  return fold64(acc);
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m'). */
uint16_t t2s_csum_update16(uint16_t csum, uint16_t oldv, uint16_t newv) {
  uint32_t s = (uint32_t)(uint16_t)~csum + (uint16_t)~oldv + newv;
  return (uint16_t)~fold64(s);
}

uint16_t t2s_csum_update32(uint16_t csum, uint32_t oldv, uint32_t newv) {
  uint32_t s = (uint32_t)(uint16_t)~csum + (uint16_t) ~(oldv >> 16) + (uint16_t)~oldv +
               (newv >> 16) + (newv & 0xffffu);
  return (uint16_t)~fold64(s);
}
