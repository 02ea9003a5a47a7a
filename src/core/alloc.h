/*
 * alloc.h: counted allocation for the core. Every heap block the engine (and its TCP stack,
 * session table, ...) allocates goes through these wrappers with the t2s_mem of its engine,
 * so a test or the simulator can check that the count returns to its baseline once every flow
 * is gone, and to zero after t2s_engine_del (t2s_engine_config.mem, t2s_tcp_config.mem).
 * The counters belong to their owner (an engine, a stack, a simulator): there is no global.
 */
#ifndef T2S_ALLOC_H
#define T2S_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct t2s_mem {
  uint64_t live;   /* blocks allocated and not yet freed */
  uint64_t total;  /* blocks ever allocated */
  uint64_t failed; /* allocations that returned NULL (out of memory or over the limit) */
  uint64_t bytes;  /* bytes allocated and not yet freed (headers not included) */
  uint64_t peak_bytes;
  uint64_t limit; /* refuse an allocation that would take bytes past this (0 = no limit) */
} t2s_mem;

/* malloc(len) counted in m (m may be NULL: not counted). */
void *t2s_malloc(t2s_mem *m, size_t len);
/* calloc(n, size) counted in m (m may be NULL). */
void *t2s_calloc(t2s_mem *m, size_t n, size_t size);
/* realloc(p, len) counted in m: a new block when p is NULL; len must not be 0. On failure
 * returns NULL and p stays allocated. */
void *t2s_realloc(t2s_mem *m, void *p, size_t len);
/* free(p) counted in m; p may be NULL (nothing happens). A block must be freed with the same
 * m it was allocated with (a counted block carries a header). */
void t2s_free(t2s_mem *m, void *p);

#endif
