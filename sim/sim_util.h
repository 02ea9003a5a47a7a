/*
 * sim_util.h: small deterministic helpers shared by the simulator's parts: the byte pattern
 * that numeric sends and upstream sources carry (so every receiver can check each byte by its
 * offset), a running FNV-1a hash, and a growable byte queue.
 */
#ifndef T2S_SIM_UTIL_H
#define T2S_SIM_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "common.h"

/* The pattern byte at stream offset off: a hash of off/4, so that a shifted, dropped or
 * duplicated run of bytes does not line up again after a few bytes. */
static inline uint8_t sim_pattern_byte(uint64_t off) {
  uint32_t x = (uint32_t)(off >> 2) ^ (uint32_t)(off >> 34);
  x *= 0x9e3779b1u;
  x ^= x >> 15;
  x *= 0x85ebca6bu;
  x ^= x >> 13;
  return (uint8_t)(x >> (8 * (off & 3)));
}

/* Fills buf[0..len) with the pattern starting at offset off. */
static inline void sim_pattern_fill(uint8_t *buf, uint64_t off, size_t len) {
  for (size_t i = 0; i < len; i++) {
    buf[i] = sim_pattern_byte(off + i);
  }
}

/* Counts the bytes of data[0..len) that differ from the pattern at offset off. */
static inline uint64_t sim_pattern_mismatches(const uint8_t *data, uint64_t off, size_t len) {
  uint64_t bad = 0;
  for (size_t i = 0; i < len; i++) {
    bad += data[i] != sim_pattern_byte(off + i);
  }
  return bad;
}

#define SIM_FNV_INIT 0xcbf29ce484222325ULL

/* Continues an FNV-1a 64 hash over data. */
static inline uint64_t sim_fnv(uint64_t h, const uint8_t *data, size_t len) {
  for (size_t i = 0; i < len; i++) {
    h = (h ^ data[i]) * 0x100000001b3ULL;
  }
  return h;
}

/* A FIFO of bytes: append at the tail, consume at the head. */
typedef struct sim_bytes {
  uint8_t *buf;
  size_t head, tail, cap;
} sim_bytes;

static inline size_t sim_bytes_len(const sim_bytes *q) {
  return q->tail - q->head;
}

static inline const uint8_t *sim_bytes_data(const sim_bytes *q) {
  return q->buf + q->head;
}

/* Appends len bytes. Returns 0 or T2S_ERR_NOMEM. */
static inline int sim_bytes_append(sim_bytes *q, const uint8_t *data, size_t len) {
  if (q->head > 0 && q->head == q->tail) {
    q->head = q->tail = 0;
  }
  if (q->tail + len > q->cap) {
    if (q->head > 0) {
      memmove(q->buf, q->buf + q->head, q->tail - q->head);
      q->tail -= q->head;
      q->head = 0;
    }
    if (q->tail + len > q->cap) {
      size_t cap = q->cap ? q->cap : 4096;
      while (cap < q->tail + len) {
        cap *= 2;
      }
      uint8_t *b = realloc(q->buf, cap);
      if (b == NULL) {
        return T2S_ERR_NOMEM;
      }
      q->buf = b;
      q->cap = cap;
    }
  }
  memcpy(q->buf + q->tail, data, len);
  q->tail += len;
  return 0;
}

/* Drops n bytes from the head (n <= length). */
static inline void sim_bytes_consume(sim_bytes *q, size_t n) {
  q->head += n;
  if (q->head == q->tail) {
    q->head = q->tail = 0;
  }
}

static inline void sim_bytes_free(sim_bytes *q) {
  free(q->buf);
  memset(q, 0, sizeof(*q));
}

#endif
