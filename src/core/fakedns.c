/*
 * fakedns.c: the fake-IP table (name <-> pool offset, LRU with pinning, a cursor that walks the
 * pool) and the responder policy on top of the DNS codec.
 *
 * Storage is allocated once at creation for `size` entries: the entry array and two
 * open-addressing hash tables (by name, by offset) of entry indices, with backward-shift
 * deletion (no tombstones to pile up under churn). Only the names are allocated per entry, so
 * the memory of a full table is bounded by size * (entry + longest name).
 */
#include "fakedns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX

typedef struct entry {
  char *name;    /* lower case, NUL-terminated; NULL = slot unused */
  uint32_t off;  /* pool offset (1..count) */
  uint32_t hash; /* of the name */
  uint32_t prev; /* LRU links (only while refs == 0) */
  uint32_t next; /* toward the most recently used */
  uint32_t refs; /* live flows */
  uint16_t namelen;
} entry;

struct t2s_fakedns {
  t2s_fakedns_config cfg;
  char exclude[T2S_FAKEDNS_MAX_EXCLUDE][T2S_DNS_TEXT_MAX];
  size_t excludelen[T2S_FAKEDNS_MAX_EXCLUDE];
  t2s_mem *mem;
  entry *ents;
  uint32_t nents;   /* slots used so far (never shrinks: a slot is only ever reused) */
  uint32_t *byname; /* entry index + 1, 0 = empty */
  uint32_t *byoff;
  uint32_t hmask;
  uint32_t lru_head, lru_tail; /* least, most recently used */
  uint32_t count;              /* offsets 1..count */
  uint32_t cursor;             /* the next offset to try */
  t2s_fakedns_stats stats;
};

/* ---------------- hashing ---------------- */

static uint32_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return (uint32_t)h;
}

static uint32_t name_hash(const t2s_fakedns *t, const char *name, size_t len) {
  uint64_t h = 0xcbf29ce484222325ULL ^ t->cfg.seed;
  for (size_t i = 0; i < len; i++) {
    h ^= (uint8_t)name[i];
    h *= 0x100000001b3ULL;
  }
  return mix(h);
}

static uint32_t off_hash(const t2s_fakedns *t, uint32_t off) {
  return mix((uint64_t)off ^ (t->cfg.seed * 0x9e3779b97f4a7c15ULL));
}

/* Finds the slot of the name in byname: its index, or the empty slot where it would go. */
static uint32_t name_slot(const t2s_fakedns *t, const char *name, size_t len, uint32_t h,
                          bool *pfound) {
  uint32_t i = h & t->hmask;
  for (uint32_t n = 0; n <= t->hmask; n++) {
    uint32_t v = t->byname[i];
    if (v == 0) {
      *pfound = false;
      return i;
    }
    const entry *e = &t->ents[v - 1];
    if (e->hash == h && e->namelen == len && memcmp(e->name, name, len) == 0) {
      *pfound = true;
      return i;
    }
    i = (i + 1) & t->hmask;
  }
  *pfound = false; /* never: the table is at most half full */
  return NIL;
}

static uint32_t off_slot(const t2s_fakedns *t, uint32_t off, bool *pfound) {
  uint32_t i = off_hash(t, off) & t->hmask;
  for (uint32_t n = 0; n <= t->hmask; n++) {
    uint32_t v = t->byoff[i];
    if (v == 0) {
      *pfound = false;
      return i;
    }
    if (t->ents[v - 1].off == off) {
      *pfound = true;
      return i;
    }
    i = (i + 1) & t->hmask;
  }
  *pfound = false;
  return NIL;
}

/* Removes slot i of a linear-probing table and shifts back the entries after it that would
 * no longer be found. home(v) gives the home slot of value v. */
static void table_remove(const t2s_fakedns *t, uint32_t *tab, uint32_t i, bool by_name) {
  uint32_t j = i;
  for (uint32_t n = 0; n <= t->hmask; n++) {
    j = (j + 1) & t->hmask;
    uint32_t v = tab[j];
    if (v == 0) {
      break;
    }
    const entry *e = &t->ents[v - 1];
    uint32_t home = (by_name ? e->hash : off_hash(t, e->off)) & t->hmask;
    /* Move v to i when i lies cyclically in [home, j). */
    bool move = i <= j ? (home <= i || home > j) : (home <= i && home > j);
    if (move) {
      tab[i] = v;
      i = j;
    }
  }
  tab[i] = 0;
}

/* ---------------- LRU ---------------- */

static void lru_unlink(t2s_fakedns *t, uint32_t idx) {
  entry *e = &t->ents[idx];
  if (e->prev != NIL) {
    t->ents[e->prev].next = e->next;
  } else {
    t->lru_head = e->next;
  }
  if (e->next != NIL) {
    t->ents[e->next].prev = e->prev;
  } else {
    t->lru_tail = e->prev;
  }
  e->prev = e->next = NIL;
}

static void lru_push(t2s_fakedns *t, uint32_t idx) {
  entry *e = &t->ents[idx];
  e->prev = t->lru_tail;
  e->next = NIL;
  if (t->lru_tail != NIL) {
    t->ents[t->lru_tail].next = idx;
  } else {
    t->lru_head = idx;
  }
  t->lru_tail = idx;
}

static void touch(t2s_fakedns *t, uint32_t idx) {
  if (t->ents[idx].refs == 0 && t->lru_tail != idx) {
    lru_unlink(t, idx);
    lru_push(t, idx);
  }
}

/* ---------------- pools ---------------- */

static uint32_t pool_count(uint8_t family, uint8_t prefix) {
  unsigned bits = (family == T2S_AF_INET ? 32u : 128u) - prefix;
  if (bits >= 32) {
    return UINT32_MAX - 1;
  }
  return (uint32_t)((1ull << bits) - 2); /* neither the network address nor the last one */
}

static bool prefix_match(const t2s_addr *net, uint8_t prefix, const t2s_addr *a) {
  if (net->family == 0 || a->family != net->family) {
    return false;
  }
  size_t full = prefix / 8;
  if (memcmp(net->ip, a->ip, full) != 0) {
    return false;
  }
  if (prefix % 8) {
    uint8_t m = (uint8_t)(0xff << (8 - prefix % 8));
    if ((net->ip[full] & m) != (a->ip[full] & m)) {
      return false;
    }
  }
  return true;
}

/* The offset of a in its pool (1..count), or 0. */
static uint32_t offset_of(const t2s_fakedns *t, const t2s_addr *a) {
  const t2s_addr *net;
  uint8_t prefix;
  if (a->family == T2S_AF_INET) {
    net = &t->cfg.pool4;
    prefix = t->cfg.pool4_prefix;
  } else if (a->family == T2S_AF_INET6) {
    net = &t->cfg.pool6;
    prefix = t->cfg.pool6_prefix;
  } else {
    return 0;
  }
  if (!prefix_match(net, prefix, a)) {
    return 0;
  }
  size_t iplen = a->family == T2S_AF_INET ? 4 : 16;
  /* Bytes between the prefix and the last four must be zero (offsets fit in 32 bits). */
  for (size_t i = prefix / 8; i + 4 < iplen; i++) {
    uint8_t m = i == prefix / 8 ? (uint8_t)(0xff >> (prefix % 8)) : 0xff;
    if (a->ip[i] & m) {
      return 0;
    }
  }
  uint32_t low = t2s_get32(a->ip + iplen - 4);
  unsigned hostbits = (unsigned)(iplen * 8) - prefix;
  if (hostbits < 32) {
    low &= (uint32_t)((1ull << hostbits) - 1);
  }
  return low >= 1 && low <= t->count ? low : 0;
}

static bool addr_at(const t2s_fakedns *t, uint32_t off, uint8_t family, t2s_addr *out) {
  const t2s_addr *net = family == T2S_AF_INET ? &t->cfg.pool4 : &t->cfg.pool6;
  if (net->family != family || family == 0) {
    return false;
  }
  *out = *net;
  out->port = 0;
  size_t iplen = family == T2S_AF_INET ? 4 : 16;
  t2s_put32(out->ip + iplen - 4, t2s_get32(net->ip + iplen - 4) | off);
  return true;
}

static bool avoided(const t2s_fakedns *t, uint32_t off) {
  for (size_t i = 0; i < t->cfg.navoid; i++) {
    if (offset_of(t, &t->cfg.avoid[i]) == off) {
      return true;
    }
  }
  return false;
}

/* The next free offset from the cursor. There is one: entries + avoided < count. */
static uint32_t next_offset(t2s_fakedns *t) {
  for (uint32_t n = 0; n < t->count; n++) {
    uint32_t off = t->cursor;
    t->cursor = off >= t->count ? 1 : off + 1;
    bool found;
    off_slot(t, off, &found);
    if (!found && !avoided(t, off)) {
      return off;
    }
  }
  return 0;
}

/* ---------------- names ---------------- */

/* Lower-cases name into out; returns its length, or 0 when it is not a plain name. */
static size_t plain_name(const char *name, char out[T2S_DNS_TEXT_MAX]) {
  size_t n = strlen(name), label = 0;
  if (n == 0 || n >= T2S_DNS_TEXT_MAX) {
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    char c = name[i];
    if (c == '.') {
      if (label == 0 || i + 1 == n) {
        return 0;
      }
      label = 0;
    } else {
      if ((unsigned char)c < 0x21 || (unsigned char)c > 0x7e || c == '\\' || ++label > 63) {
        return 0;
      }
      if (c >= 'A' && c <= 'Z') {
        c = (char)(c - 'A' + 'a');
      }
    }
    out[i] = c;
  }
  out[n] = '\0';
  return n;
}

void t2s_fakedns_config_default(t2s_fakedns_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  cfg->pool4.family = T2S_AF_INET;
  cfg->pool4.ip[0] = 198;
  cfg->pool4.ip[1] = 19;
  cfg->pool4_prefix = 16;
  cfg->pool6.family = T2S_AF_INET6;
  cfg->pool6.ip[0] = 0xfd;
  cfg->pool6.ip[1] = 0x00;
  cfg->pool6.ip[2] = 0x00;
  cfg->pool6.ip[3] = 0x19;
  cfg->pool6_prefix = 64;
  cfg->size = T2S_FAKEDNS_SIZE_DEFAULT;
}

int t2s_fakedns_new(t2s_fakedns **ptable, const t2s_fakedns_config *cfg) {
  *ptable = NULL;
  bool v4 = cfg->pool4.family == T2S_AF_INET, v6 = cfg->pool6.family == T2S_AF_INET6;
  if ((!v4 && !v6) || (cfg->pool4.family != 0 && !v4) || (cfg->pool6.family != 0 && !v6) ||
      (v4 && (cfg->pool4_prefix < 8 || cfg->pool4_prefix > 30)) ||
      (v6 && (cfg->pool6_prefix < 8 || cfg->pool6_prefix > 126)) || cfg->size == 0 ||
      cfg->size > T2S_FAKEDNS_SIZE_MAX || cfg->nexclude > T2S_FAKEDNS_MAX_EXCLUDE ||
      cfg->navoid > T2S_FAKEDNS_MAX_AVOID) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  uint32_t count = UINT32_MAX - 1;
  if (v4) {
    count = T2S_MIN(count, pool_count(T2S_AF_INET, cfg->pool4_prefix));
  }
  if (v6) {
    count = T2S_MIN(count, pool_count(T2S_AF_INET6, cfg->pool6_prefix));
  }
  if ((uint64_t)cfg->size + cfg->navoid >= count) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  t2s_fakedns *t = t2s_calloc(cfg->mem, 1, sizeof(*t));
  if (t == NULL) {
    return T2S_ERR_NOMEM;
  }
  t->cfg = *cfg;
  t->mem = cfg->mem;
  /* Host bits of the network addresses cleared, so that offsets can be ORed in. */
  t2s_addr *nets[2] = {&t->cfg.pool4, &t->cfg.pool6};
  uint8_t prefixes[2] = {cfg->pool4_prefix, cfg->pool6_prefix};
  for (int k = 0; k < 2; k++) {
    size_t iplen = k == 0 ? 4 : 16;
    for (size_t i = 0; i < iplen && nets[k]->family != 0; i++) {
      unsigned bit = (unsigned)i * 8;
      if (bit >= prefixes[k]) {
        nets[k]->ip[i] = 0;
      } else if (bit + 8 > prefixes[k]) {
        nets[k]->ip[i] &= (uint8_t)(0xff << (8 - (prefixes[k] - bit)));
      }
    }
    nets[k]->port = 0;
  }
  for (size_t i = 0; i < cfg->nexclude; i++) {
    const char *s = cfg->exclude[i] ? cfg->exclude[i] : "";
    while (*s == '.') {
      s++;
    }
    char tmp[T2S_DNS_TEXT_MAX];
    size_t n = strlen(s);
    if (n > 0 && n < T2S_DNS_TEXT_MAX && s[n - 1] == '.') {
      memcpy(tmp, s, n - 1);
      tmp[n - 1] = '\0';
      s = tmp;
    }
    t->excludelen[i] = plain_name(s, t->exclude[i]);
    if (t->excludelen[i] == 0) {
      t2s_free(cfg->mem, t);
      return T2S_ERR_INVALID_ARGUMENT;
    }
    t->cfg.exclude[i] = t->exclude[i];
  }
  t->count = count;
  t->cursor = 1;
  t->lru_head = t->lru_tail = NIL;
  uint32_t cap = 16;
  while (cap < 2 * cfg->size) {
    cap *= 2;
  }
  t->hmask = cap - 1;
  t->ents = t2s_calloc(cfg->mem, cfg->size, sizeof(*t->ents));
  t->byname = t2s_calloc(cfg->mem, cap, sizeof(*t->byname));
  t->byoff = t2s_calloc(cfg->mem, cap, sizeof(*t->byoff));
  if (t->ents == NULL || t->byname == NULL || t->byoff == NULL) {
    t2s_fakedns_del(t);
    return T2S_ERR_NOMEM;
  }
  *ptable = t;
  return 0;
}

void t2s_fakedns_del(t2s_fakedns *t) {
  if (t == NULL) {
    return;
  }
  t2s_mem *mem = t->mem;
  for (uint32_t i = 0; t->ents && i < t->nents; i++) {
    t2s_free(mem, t->ents[i].name);
  }
  t2s_free(mem, t->ents);
  t2s_free(mem, t->byname);
  t2s_free(mem, t->byoff);
  t2s_free(mem, t);
}

/* Frees entry idx's name and removes it from both tables and the LRU list. */
static void evict(t2s_fakedns *t, uint32_t idx) {
  entry *e = &t->ents[idx];
  bool found;
  uint32_t s = name_slot(t, e->name, e->namelen, e->hash, &found);
  T2S_ASSERT(found);
  table_remove(t, t->byname, s, true);
  s = off_slot(t, e->off, &found);
  T2S_ASSERT(found);
  table_remove(t, t->byoff, s, false);
  lru_unlink(t, idx);
  t2s_free(t->mem, e->name);
  e->name = NULL;
  t->stats.entries--;
}

/* Gives plain lower-case name[0..n) an entry at offset off (0: the next free one). Returns
 * the entry index, or NIL with *perr set. */
static uint32_t insert(t2s_fakedns *t, const char *name, size_t n, uint32_t h, uint32_t off,
                       int *perr) {
  char *copy = t2s_malloc(t->mem, n + 1);
  if (copy == NULL) {
    *perr = T2S_ERR_NOMEM;
    return NIL;
  }
  uint32_t idx;
  if (t->nents < t->cfg.size) {
    idx = t->nents++;
  } else {
    idx = t->lru_head;
    if (idx == NIL) {
      t2s_free(t->mem, copy);
      t->stats.full++;
      *perr = T2S_ERR_LIMIT;
      return NIL;
    }
    evict(t, idx);
    t->stats.recycled++;
  }
  if (off == 0) {
    off = next_offset(t);
    T2S_ASSERT(off != 0);
  }
  memcpy(copy, name, n + 1);
  entry *e = &t->ents[idx];
  e->name = copy;
  e->namelen = (uint16_t)n;
  e->hash = h;
  e->off = off;
  e->refs = 0;
  bool found;
  uint32_t s = name_slot(t, copy, n, h, &found);
  t->byname[s] = idx + 1;
  s = off_slot(t, off, &found);
  t->byoff[s] = idx + 1;
  lru_push(t, idx);
  t->stats.entries++;
  return idx;
}

int t2s_fakedns_resolve(t2s_fakedns *t, const char *name, uint8_t family, t2s_addr *out) {
  char lower[T2S_DNS_TEXT_MAX];
  size_t n = plain_name(name, lower);
  if (n == 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if ((family == T2S_AF_INET ? t->cfg.pool4.family : t->cfg.pool6.family) != family ||
      (family != T2S_AF_INET && family != T2S_AF_INET6)) {
    return T2S_ERR_UNSUPPORTED;
  }
  uint32_t h = name_hash(t, lower, n);
  bool found;
  uint32_t s = name_slot(t, lower, n, h, &found);
  uint32_t idx;
  if (found) {
    idx = t->byname[s] - 1;
    touch(t, idx);
  } else {
    int err = 0;
    idx = insert(t, lower, n, h, 0, &err);
    if (idx == NIL) {
      return err;
    }
  }
  addr_at(t, t->ents[idx].off, family, out);
  return 0;
}

bool t2s_fakedns_in_pool(const t2s_fakedns *t, const t2s_addr *addr) {
  return prefix_match(&t->cfg.pool4, t->cfg.pool4_prefix, addr) ||
         prefix_match(&t->cfg.pool6, t->cfg.pool6_prefix, addr);
}

static uint32_t find_addr(const t2s_fakedns *t, const t2s_addr *addr) {
  uint32_t off = offset_of(t, addr);
  if (off == 0) {
    return NIL;
  }
  bool found;
  uint32_t s = off_slot(t, off, &found);
  return found ? t->byoff[s] - 1 : NIL;
}

const char *t2s_fakedns_name_of(t2s_fakedns *t, const t2s_addr *addr, bool do_touch) {
  uint32_t idx = find_addr(t, addr);
  if (idx == NIL) {
    return NULL;
  }
  if (do_touch) {
    touch(t, idx);
  }
  return t->ents[idx].name;
}

const char *t2s_fakedns_pin(t2s_fakedns *t, const t2s_addr *addr) {
  uint32_t idx = find_addr(t, addr);
  if (idx == NIL) {
    if (t2s_fakedns_in_pool(t, addr)) {
      t->stats.stale++;
    }
    return NULL;
  }
  entry *e = &t->ents[idx];
  t->stats.flows++;
  if (e->refs++ == 0) {
    lru_unlink(t, idx);
    t->stats.pinned++;
  }
  return e->name;
}

void t2s_fakedns_unpin(t2s_fakedns *t, const t2s_addr *addr) {
  uint32_t idx = find_addr(t, addr);
  T2S_ASSERT(idx != NIL && t->ents[idx].refs > 0);
  if (idx == NIL || t->ents[idx].refs == 0) {
    return;
  }
  if (--t->ents[idx].refs == 0) {
    lru_push(t, idx);
    t->stats.pinned--;
  }
}

bool t2s_fakedns_excluded(const t2s_fakedns *t, const char *name) {
  size_t n = strlen(name);
  for (size_t i = 0; i < t->cfg.nexclude; i++) {
    size_t l = t->excludelen[i];
    if (n == l && memcmp(name, t->exclude[i], l) == 0) {
      return true;
    }
    if (n > l && name[n - l - 1] == '.' && memcmp(name + n - l, t->exclude[i], l) == 0) {
      return true;
    }
  }
  return false;
}

/* ---------------- the responder ---------------- */

static t2s_fakedns_verdict reply(t2s_fakedns *t, t2s_ssize n, size_t *poutlen, bool error) {
  if (n < 0) {
    t->stats.dropped++;
    return T2S_FAKEDNS_DROP;
  }
  *poutlen = (size_t)n;
  if (error) {
    t->stats.refused++;
  } else {
    t->stats.answered++;
  }
  return T2S_FAKEDNS_ANSWER;
}

t2s_fakedns_verdict t2s_fakedns_respond(t2s_fakedns *t, const uint8_t *msg, size_t len, bool tcp,
                                        uint8_t *out, size_t outlen, size_t *poutlen) {
  t2s_dns_query q;
  *poutlen = 0;
  int rv = t2s_dns_parse_query(msg, len, &q);
  if (rv == T2S_ERR_UNSUPPORTED) {
    return reply(t, t2s_dns_build_header_error(out, outlen, &q, T2S_DNS_RCODE_NOTIMP), poutlen,
                 true);
  }
  if (rv != 0) {
    if (!q.header_ok) {
      t->stats.dropped++;
      return T2S_FAKEDNS_DROP;
    }
    return reply(t, t2s_dns_build_header_error(out, outlen, &q, T2S_DNS_RCODE_FORMERR), poutlen,
                 true);
  }
  size_t limit = tcp ? 65535 : t2s_dns_udp_limit(&q);
  if (q.edns && q.edns_version != 0) {
    return reply(t, t2s_dns_build_answer(out, outlen, limit, &q, T2S_DNS_RCODE_BADVERS, NULL, 0, 0),
                 poutlen, true);
  }
  bool mine = q.qclass == T2S_DNS_CLASS_IN && q.qname_plain && q.qnamelen > 0 &&
              !t2s_fakedns_excluded(t, q.qname);
  if (mine && q.qtype == T2S_DNS_TYPE_PTR) {
    t2s_addr a;
    if (t2s_dns_ptr_addr(q.qname, &a) == 0 && t2s_fakedns_in_pool(t, &a)) {
      const char *name = t2s_fakedns_name_of(t, &a, false);
      if (name == NULL) {
        return reply(
            t, t2s_dns_build_answer(out, outlen, limit, &q, T2S_DNS_RCODE_NXDOMAIN, NULL, 0, 0),
            poutlen, false);
      }
      uint8_t wire[T2S_DNS_NAME_MAX];
      t2s_ssize wl = t2s_dns_name_to_wire(name, wire, sizeof(wire));
      return reply(t,
                   t2s_dns_build_answer(out, outlen, limit, &q, T2S_DNS_RCODE_NOERROR,
                                        wl > 0 ? wire : NULL, wl > 0 ? (size_t)wl : 0,
                                        T2S_FAKEDNS_TTL),
                   poutlen, false);
    }
  } else if (mine && (q.qtype == T2S_DNS_TYPE_A || q.qtype == T2S_DNS_TYPE_AAAA)) {
    uint8_t family = q.qtype == T2S_DNS_TYPE_A ? T2S_AF_INET : T2S_AF_INET6;
    t2s_addr a;
    rv = t2s_fakedns_resolve(t, q.qname, family, &a);
    if (rv == 0) {
      return reply(t,
                   t2s_dns_build_answer(out, outlen, limit, &q, T2S_DNS_RCODE_NOERROR, a.ip,
                                        family == T2S_AF_INET ? 4 : 16, T2S_FAKEDNS_TTL),
                   poutlen, false);
    }
    if (rv == T2S_ERR_UNSUPPORTED) { /* no pool of that family: NODATA */
      return reply(t,
                   t2s_dns_build_answer(out, outlen, limit, &q, T2S_DNS_RCODE_NOERROR, NULL, 0, 0),
                   poutlen, false);
    }
    return reply(t,
                 t2s_dns_build_answer(out, outlen, limit, &q, T2S_DNS_RCODE_SERVFAIL, NULL, 0, 0),
                 poutlen, true);
  } else if (mine && (q.qtype == T2S_DNS_TYPE_HTTPS || q.qtype == T2S_DNS_TYPE_SVCB)) {
    /* NODATA: browsers fall back to A/AAAA (an HTTPS record could carry real addresses as
     * hints, or ECH keys that name a real address). */
    return reply(t, t2s_dns_build_answer(out, outlen, limit, &q, T2S_DNS_RCODE_NOERROR, NULL, 0, 0),
                 poutlen, false);
  }
  t->stats.forwarded++;
  return T2S_FAKEDNS_FORWARD;
}

void t2s_fakedns_get_config(const t2s_fakedns *t, t2s_fakedns_config *cfg) {
  *cfg = t->cfg;
  for (size_t i = 0; i < cfg->nexclude; i++) {
    cfg->exclude[i] = t->exclude[i];
  }
  cfg->mem = NULL;
}

void t2s_fakedns_get_stats(const t2s_fakedns *t, t2s_fakedns_stats *stats) {
  *stats = t->stats;
}

/* ---------------- state file ---------------- */

#define STATE_MAGIC "tun2sock-fakedns 1\n"

/* Formats one entry's line into buf (at least 2 * 48 + 256 bytes); returns its length. */
static size_t format_line(const t2s_fakedns *t, const entry *e, char *buf) {
  char a4[64] = "-", a6[64] = "-";
  t2s_addr a;
  if (addr_at(t, e->off, T2S_AF_INET, &a)) {
    t2s_addr_format(&a, false, a4, sizeof(a4));
  }
  if (addr_at(t, e->off, T2S_AF_INET6, &a)) {
    t2s_addr_format(&a, false, a6, sizeof(a6));
  }
  return (size_t)snprintf(buf, 2 * 64 + T2S_DNS_TEXT_MAX + 4, "%s %s %s\n", a4, a6, e->name);
}

/* Writes (buf not NULL) or measures the state: the entries from the least to the most recently
 * used, the pinned ones last. */
static t2s_ssize each_line(const t2s_fakedns *t, char *buf, size_t buflen) {
  char line[2 * 64 + T2S_DNS_TEXT_MAX + 4];
  size_t n = 0;
  int l = snprintf(line, sizeof(line), STATE_MAGIC "next %u\n", t->cursor);
  if (buf && n + (size_t)l > buflen) {
    return T2S_ERR_NOBUF;
  }
  if (buf) {
    memcpy(buf + n, line, (size_t)l);
  }
  n += (size_t)l;
  for (int pass = 0; pass < 2; pass++) {
    uint32_t idx = pass == 0 ? t->lru_head : 0;
    for (uint32_t k = 0; k < t->nents + 1; k++) {
      if (pass == 0 && idx == NIL) {
        break;
      }
      if (pass == 1 && (idx >= t->nents)) {
        break;
      }
      const entry *e = &t->ents[idx];
      if (e->name && (pass == 0 || e->refs > 0)) {
        size_t ll = format_line(t, e, line);
        if (buf && n + ll > buflen) {
          return T2S_ERR_NOBUF;
        }
        if (buf) {
          memcpy(buf + n, line, ll);
        }
        n += ll;
      }
      idx = pass == 0 ? e->next : idx + 1;
    }
  }
  return (t2s_ssize)n;
}

size_t t2s_fakedns_state_len(const t2s_fakedns *t) {
  return (size_t)each_line(t, NULL, 0);
}

t2s_ssize t2s_fakedns_state_write(const t2s_fakedns *t, char *buf, size_t buflen) {
  return each_line(t, buf, buflen);
}

/* Splits line[0..len) at spaces into at most 3 words. */
static size_t words(char *line, char *w[3]) {
  size_t n = 0;
  char *p = line;
  while (*p && n < 3) {
    while (*p == ' ') {
      p++;
    }
    if (!*p) {
      break;
    }
    w[n++] = p;
    while (*p && *p != ' ') {
      p++;
    }
    if (*p) {
      *p++ = '\0';
    }
  }
  while (*p == ' ') {
    p++;
  }
  return *p ? 4 : n; /* more than 3 words: not an entry */
}

/* The offset an address word gives (0 when it is not one of ours); '-' gives *pnone. */
static uint32_t word_offset(const t2s_fakedns *t, const char *w, uint8_t family, bool *pnone) {
  *pnone = strcmp(w, "-") == 0;
  t2s_addr a;
  if (*pnone || t2s_addr_parse(w, &a) != 0 || a.family != family || a.port != 0) {
    return 0;
  }
  return offset_of(t, &a);
}

int t2s_fakedns_state_load(t2s_fakedns *t, const char *data, size_t len, size_t *ploaded,
                           size_t *pskipped) {
  size_t loaded = 0, skipped = 0;
  if (ploaded) {
    *ploaded = 0;
  }
  if (pskipped) {
    *pskipped = 0;
  }
  if (t->nents != 0) {
    return T2S_ERR_EXISTS;
  }
  size_t magic = strlen(STATE_MAGIC);
  if (len < magic || memcmp(data, STATE_MAGIC, magic) != 0) {
    return T2S_ERR_MALFORMED;
  }
  size_t pos = magic;
  uint32_t cursor = 0;
  while (pos < len) {
    size_t end = pos;
    while (end < len && data[end] != '\n') {
      end++;
    }
    char line[2 * 64 + T2S_DNS_TEXT_MAX + 4];
    size_t ll = end - pos;
    bool ok = ll < sizeof(line) && memchr(data + pos, '\0', ll) == NULL;
    if (ok) {
      memcpy(line, data + pos, ll);
      line[ll] = '\0';
    }
    pos = end + 1;
    if (!ok) {
      skipped++;
      continue;
    }
    if (ll == 0) {
      continue;
    }
    char *w[3];
    size_t nw = words(line, w);
    if (nw == 2 && strcmp(w[0], "next") == 0) {
      char *endp = NULL;
      unsigned long v = strtoul(w[1], &endp, 10);
      if (endp && *endp == '\0' && v >= 1 && v <= t->count) {
        cursor = (uint32_t)v;
      }
      continue;
    }
    bool none4, none6;
    uint32_t off4 = nw == 3 ? word_offset(t, w[0], T2S_AF_INET, &none4) : 0;
    uint32_t off6 = nw == 3 ? word_offset(t, w[1], T2S_AF_INET6, &none6) : 0;
    /* Each family with a pool must give the same offset; '-' only for a family without. */
    bool match = nw == 3 && (t->cfg.pool4.family ? off4 != 0 : none4) &&
                 (t->cfg.pool6.family ? off6 != 0 : none6) &&
                 (!t->cfg.pool4.family || !t->cfg.pool6.family || off4 == off6);
    uint32_t off = off4 ? off4 : off6;
    char lower[T2S_DNS_TEXT_MAX];
    size_t n = match ? plain_name(w[2], lower) : 0;
    if (n == 0 || avoided(t, off)) {
      skipped++;
      continue;
    }
    uint32_t h = name_hash(t, lower, n);
    bool found_name, found_off;
    name_slot(t, lower, n, h, &found_name);
    off_slot(t, off, &found_off);
    if (found_name || found_off) {
      skipped++;
      continue;
    }
    int err = 0;
    if (insert(t, lower, n, h, off, &err) == NIL) {
      return err;
    }
    loaded++;
  }
  if (cursor) {
    t->cursor = cursor;
  }
  if (ploaded) {
    *ploaded = loaded;
  }
  if (pskipped) {
    *pskipped = skipped;
  }
  return 0;
}
