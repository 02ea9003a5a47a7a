/* alloc.c: counted allocation (alloc.h). A counted block carries a small header with its size,
 * so the owner's byte count stays exact and a byte limit can refuse an allocation. */
#include "alloc.h"

#include <stdlib.h>

/* Header before every counted block: its size, padded to keep max_align_t alignment. */
#define HDR 16

static bool over_limit(const t2s_mem *m, size_t len) {
  return m->limit != 0 && m->bytes + len > m->limit;
}

static void *account(t2s_mem *m, unsigned char *base, size_t len) {
  if (base == NULL) {
    m->failed++;
    return NULL;
  }
  *(size_t *)base = len;
  m->live++;
  m->total++;
  m->bytes += len;
  if (m->bytes > m->peak_bytes) {
    m->peak_bytes = m->bytes;
  }
  return base + HDR;
}

void *t2s_malloc(t2s_mem *m, size_t len) {
  if (m == NULL) {
    return malloc(len ? len : 1);
  }
  if (len > SIZE_MAX - HDR || over_limit(m, len)) {
    m->failed++;
    return NULL;
  }
  return account(m, malloc(len + HDR), len);
}

void *t2s_calloc(t2s_mem *m, size_t n, size_t size) {
  if (m == NULL) {
    return calloc(n ? n : 1, size ? size : 1);
  }
  if (size != 0 && n > (SIZE_MAX - HDR) / size) {
    m->failed++;
    return NULL;
  }
  size_t len = n * size;
  if (over_limit(m, len)) {
    m->failed++;
    return NULL;
  }
  return account(m, calloc(1, len + HDR), len);
}

void *t2s_realloc(t2s_mem *m, void *p, size_t len) {
  if (m == NULL) {
    return realloc(p, len ? len : 1);
  }
  if (p == NULL) {
    return t2s_malloc(m, len);
  }
  unsigned char *base = (unsigned char *)p - HDR;
  size_t old = *(size_t *)base;
  if (len > SIZE_MAX - HDR || (len > old && over_limit(m, len - old))) {
    m->failed++;
    return NULL;
  }
  unsigned char *nb = realloc(base, len + HDR);
  if (nb == NULL) {
    m->failed++;
    return NULL;
  }
  *(size_t *)nb = len;
  m->bytes = m->bytes - old + len;
  if (m->bytes > m->peak_bytes) {
    m->peak_bytes = m->bytes;
  }
  return nb + HDR;
}

void t2s_free(t2s_mem *m, void *p) {
  if (p == NULL) {
    return;
  }
  if (m == NULL) {
    free(p);
    return;
  }
  unsigned char *base = (unsigned char *)p - HDR;
  m->live--;
  m->bytes -= *(size_t *)base;
  free(base);
}
