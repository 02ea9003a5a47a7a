/* rand.c: xoshiro256** seeded by splitmix64. */
#include "rand.h"

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

void t2s_rand_init(t2s_rand *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) {
    r->s[i] = splitmix64(&x);
  }
}

uint64_t t2s_rand_u64(t2s_rand *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

uint32_t t2s_rand_u32(t2s_rand *r) {
  return (uint32_t)(t2s_rand_u64(r) >> 32);
}

uint64_t t2s_rand_below(t2s_rand *r, uint64_t bound) {
  if (bound == 0) {
    return 0;
  }
  uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
  uint64_t v;
  do {
    v = t2s_rand_u64(r);
  } while (v >= limit);
  return v % bound;
}

bool t2s_rand_chance(t2s_rand *r, uint32_t num, uint32_t den) {
  if (den == 0 || num == 0) {
    return false;
  }
  return t2s_rand_below(r, den) < num;
}
