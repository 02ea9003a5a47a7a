/* flow.c: the flow table (flow.h): an id map per group from id to flow header, ids handed out
 * in order. */
#include "flow.h"

int t2s_flow_table_init(t2s_flow_table *ft, t2s_mem *mem) {
  for (size_t g = 0; g < T2S_FLOW_GROUPS; g++) {
    t2s_idmap_init(&ft->ids[g]);
    ft->ids[g].mem = mem;
  }
  ft->next_id = 1;
  return t2s_idmap_reserve(&ft->ids[T2S_FLOW_GROUP_TCP], 16);
}

void t2s_flow_table_free(t2s_flow_table *ft) {
  for (size_t g = 0; g < T2S_FLOW_GROUPS; g++) {
    t2s_idmap_free(&ft->ids[g]);
  }
}

uint64_t t2s_flow_table_new_id(t2s_flow_table *ft) {
  T2S_ASSERT(ft->next_id != 0 && ft->next_id != UINT64_MAX);
  return ft->next_id++;
}

int t2s_flow_table_add(t2s_flow_table *ft, t2s_flow *f) {
  T2S_ASSERT(f->ops != NULL && (size_t)f->ops->group < T2S_FLOW_GROUPS);
  T2S_ASSERT(f->id != 0 && f->id < ft->next_id);
  T2S_ASSERT(t2s_flow_table_get(ft, f->id) == NULL); /* one owner per id */
  return t2s_idmap_put(&ft->ids[f->ops->group], f->id, f);
}

int t2s_flow_table_rekey(t2s_flow_table *ft, t2s_flow *f, uint64_t newid) {
  T2S_ASSERT(newid != 0 && newid < ft->next_id && t2s_flow_table_get(ft, newid) == NULL);
  t2s_idmap *m = &ft->ids[f->ops->group];
  int rv = t2s_idmap_put(m, newid, f);
  if (rv != 0) {
    return rv;
  }
  void *was = t2s_idmap_del(m, f->id);
  T2S_ASSERT(was == f);
  (void)was;
  f->id = newid;
  return 0;
}

void t2s_flow_table_remove(t2s_flow_table *ft, t2s_flow *f) {
  t2s_idmap *m = &ft->ids[f->ops->group];
  void *was = t2s_idmap_del(m, f->id);
  T2S_ASSERT(was == f);
  (void)was;
  if (f->ops->group != T2S_FLOW_GROUP_TCP && t2s_idmap_len(m) == 0) {
    t2s_idmap_free(m); /* the group's last flow: back to the engine's initial footprint */
  }
}

t2s_flow *t2s_flow_table_get(const t2s_flow_table *ft, uint64_t id) {
  for (size_t g = 0; g < T2S_FLOW_GROUPS; g++) {
    void *v = t2s_idmap_get(&ft->ids[g], id);
    if (v != NULL) {
      return v;
    }
  }
  return NULL;
}

size_t t2s_flow_table_len(const t2s_flow_table *ft) {
  size_t n = 0;
  for (size_t g = 0; g < T2S_FLOW_GROUPS; g++) {
    n += t2s_idmap_len(&ft->ids[g]);
  }
  return n;
}

t2s_flow *t2s_flow_iter_next(const t2s_flow_table *ft, t2s_flow_iter *it) {
  /* A map freed under the iterator (its last flow removed) has no slots left: next group. */
  for (; it->group < T2S_FLOW_GROUPS; it->group++, it->pos = 0) {
    void *v = NULL;
    if (t2s_idmap_next(&ft->ids[it->group], &it->pos, NULL, &v)) {
      return v;
    }
  }
  return NULL;
}
