/* idmap.c: open addressing with linear probing and tombstones. */
#include "idmap.h"

#include <stdlib.h>

#define EMPTY 0
#define TOMB UINT64_MAX

static size_t slot_of(uint64_t id, size_t cap) {
  uint64_t h = id * 0x9e3779b97f4a7c15ULL;
  return (size_t)(h >> 17) & (cap - 1);
}

void t2s_idmap_init(t2s_idmap *m) {
  m->keys = NULL;
  m->vals = NULL;
  m->cap = 0;
  m->len = 0;
  m->used = 0;
  m->mem = NULL;
}

void t2s_idmap_free(t2s_idmap *m) {
  t2s_mem *mem = m->mem;
  t2s_free(mem, m->keys);
  t2s_free(mem, m->vals);
  t2s_idmap_init(m);
  m->mem = mem;
}

static int grow(t2s_idmap *m, size_t newcap) {
  uint64_t *keys = t2s_calloc(m->mem, newcap, sizeof(*keys));
  void **vals = t2s_calloc(m->mem, newcap, sizeof(*vals));
  if (keys == NULL || vals == NULL) {
    t2s_free(m->mem, keys);
    t2s_free(m->mem, vals);
    return T2S_ERR_NOMEM;
  }
  for (size_t i = 0; i < m->cap; i++) {
    uint64_t k = m->keys[i];
    if (k == EMPTY || k == TOMB) {
      continue;
    }
    size_t j = slot_of(k, newcap);
    while (keys[j] != EMPTY) {
      j = (j + 1) & (newcap - 1);
    }
    keys[j] = k;
    vals[j] = m->vals[i];
  }
  t2s_free(m->mem, m->keys);
  t2s_free(m->mem, m->vals);
  m->keys = keys;
  m->vals = vals;
  m->cap = newcap;
  m->used = m->len;
  return 0;
}

int t2s_idmap_reserve(t2s_idmap *m, size_t n) {
  size_t cap = 16;
  while ((n + 1) * 2 >= cap) {
    cap *= 2;
  }
  return cap > m->cap ? grow(m, cap) : 0;
}

int t2s_idmap_put(t2s_idmap *m, uint64_t id, void *val) {
  if (id == EMPTY || id == TOMB) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  T2S_ASSERT(val != NULL);
  if ((m->used + 1) * 4 >= m->cap * 3) {
    size_t newcap = m->cap ? m->cap : 16;
    while ((m->len + 1) * 2 >= newcap) {
      newcap *= 2;
    }
    int rv = grow(m, newcap);
    if (rv != 0) {
      return rv;
    }
  }
  size_t i = slot_of(id, m->cap);
  size_t tomb = SIZE_MAX;
  for (;;) {
    uint64_t k = m->keys[i];
    if (k == id) {
      m->vals[i] = val;
      return 0;
    }
    if (k == TOMB && tomb == SIZE_MAX) {
      tomb = i;
    }
    if (k == EMPTY) {
      break;
    }
    i = (i + 1) & (m->cap - 1);
  }
  if (tomb != SIZE_MAX) {
    i = tomb;
  } else {
    m->used++;
  }
  m->keys[i] = id;
  m->vals[i] = val;
  m->len++;
  T2S_ASSERT(m->len <= m->used && m->used < m->cap);
  return 0;
}

static size_t find(const t2s_idmap *m, uint64_t id) {
  if (m->cap == 0 || id == EMPTY || id == TOMB) {
    return SIZE_MAX;
  }
  size_t i = slot_of(id, m->cap);
  for (size_t n = 0; n < m->cap; n++) {
    uint64_t k = m->keys[i];
    if (k == id) {
      return i;
    }
    if (k == EMPTY) {
      return SIZE_MAX;
    }
    i = (i + 1) & (m->cap - 1);
  }
  return SIZE_MAX;
}

void *t2s_idmap_get(const t2s_idmap *m, uint64_t id) {
  size_t i = find(m, id);
  return i == SIZE_MAX ? NULL : m->vals[i];
}

void *t2s_idmap_del(t2s_idmap *m, uint64_t id) {
  size_t i = find(m, id);
  if (i == SIZE_MAX) {
    return NULL;
  }
  void *v = m->vals[i];
  m->keys[i] = TOMB;
  m->vals[i] = NULL;
  m->len--;
  return v;
}

bool t2s_idmap_next(const t2s_idmap *m, size_t *pos, uint64_t *pid, void **pval) {
  for (size_t i = *pos; i < m->cap; i++) {
    uint64_t k = m->keys[i];
    if (k == EMPTY || k == TOMB) {
      continue;
    }
    *pos = i + 1;
    if (pid) {
      *pid = k;
    }
    if (pval) {
      *pval = m->vals[i];
    }
    return true;
  }
  *pos = m->cap;
  return false;
}
