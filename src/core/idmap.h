/*
 * idmap.h: a small open-addressing hash map from a non-zero uint64_t id to a pointer. Used for
 * the engine's session table (stream and datagram ids chosen by the engine).
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

#endif
