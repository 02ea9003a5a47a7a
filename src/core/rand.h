/*
 * rand.h: the core's seeded pseudo-random generator (xoshiro256**, seeded through
 * splitmix64). Every random choice of an engine (ISNs, hash seeds, simulated faults) comes
 * from one of these, seeded by the caller: the same seed gives the same run.
 */
#ifndef T2S_RAND_H
#define T2S_RAND_H

#include "common.h"

typedef struct t2s_rand {
  uint64_t s[4];
} t2s_rand;

/* Seeds the generator; any seed (0 included) is valid. */
void t2s_rand_init(t2s_rand *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t t2s_rand_u64(t2s_rand *r);
/* Next 32 random bits. */
uint32_t t2s_rand_u32(t2s_rand *r);
/* Uniform in [0, bound) without modulo bias; bound 0 returns 0. */
uint64_t t2s_rand_below(t2s_rand *r, uint64_t bound);
/* True with probability num/den (integer ratio; den 0 means never). */
bool t2s_rand_chance(t2s_rand *r, uint32_t num, uint32_t den);

#endif
