/* alloc.c: counted allocation (alloc.h). */
#include "alloc.h"

#include <stdlib.h>

void *t2s_malloc(t2s_mem *m, size_t len) {
  void *p = malloc(len ? len : 1);
  if (m != NULL) {
    if (p == NULL) {
      m->failed++;
    } else {
      m->live++;
      m->total++;
    }
  }
  return p;
}

void *t2s_calloc(t2s_mem *m, size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (m != NULL) {
    if (p == NULL) {
      m->failed++;
    } else {
      m->live++;
      m->total++;
    }
  }
  return p;
}

void *t2s_realloc(t2s_mem *m, void *p, size_t len) {
  void *q = realloc(p, len ? len : 1);
  if (m != NULL) {
    if (q == NULL) {
      m->failed++;
    } else if (p == NULL) {
      m->live++;
      m->total++;
    }
  }
  return q;
}

void t2s_free(t2s_mem *m, void *p) {
  if (p == NULL) {
    return;
  }
  if (m != NULL) {
    m->live--;
  }
  free(p);
}
