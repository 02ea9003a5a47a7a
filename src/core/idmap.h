/*
 * idmap.h: the one id map of the project: an open-addressing hash map (linear probing,
 * tombstones) from a non-zero uint64_t id to a non-NULL pointer. The engine's flow table
 * (flow.h), the upstream connector (src/os/upstream_sock.c) and the simulator's far ends
 * (sim/sim_upstream.c) use it; nobody walks its slots but t2s_idmap_next().
 */
#ifndef T2S_IDMAP_H
#define T2S_IDMAP_H

#include "alloc.h"
#include "common.h"

typedef struct t2s_idmap {
  uint64_t *keys; /* 0 = empty, UINT64_MAX = deleted */
  void **vals;
  size_t cap;   /* power of two */
  size_t len;   /* live entries */
  size_t used;  /* live + deleted slots */
  t2s_mem *mem; /* allocation counter (alloc.h); NULL: not counted */
} t2s_idmap;

/* Initialises an empty map (mem NULL: set m->mem afterwards to count its blocks). */
void t2s_idmap_init(t2s_idmap *m);
/* Frees the map's memory (not the values); m->mem is kept. */
void t2s_idmap_free(t2s_idmap *m);
/* Allocates the table now, for at least n entries, so that its block count does not change
 * when the first entries arrive. Returns 0 or T2S_ERR_NOMEM. */
int t2s_idmap_reserve(t2s_idmap *m, size_t n);
/* Inserts or replaces id -> val. id must not be 0 or UINT64_MAX. Returns 0 or T2S_ERR_NOMEM. */
int t2s_idmap_put(t2s_idmap *m, uint64_t id, void *val);
/* The value for id, or NULL. */
void *t2s_idmap_get(const t2s_idmap *m, uint64_t id);
/* Removes id; returns its value or NULL. */
void *t2s_idmap_del(t2s_idmap *m, uint64_t id);
/* Live entries. */
static inline size_t t2s_idmap_len(const t2s_idmap *m) {
  return m->len;
}

/*
 * Iteration in slot order (deterministic for a given history of puts and dels). *pos starts at
 * 0; each call stores the next live entry in *pid / *pval (either may be NULL) and returns
 * true, or returns false at the end. Deleting entries (t2s_idmap_del) while iterating is
 * allowed: a deletion leaves a tombstone and never moves another entry. Putting is not (it may
 * rehash).
 */
bool t2s_idmap_next(const t2s_idmap *m, size_t *pos, uint64_t *pid, void **pval);

#endif
