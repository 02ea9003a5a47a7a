/*
 * fakedns.h: the fake-IP table and responder (docs/fake-dns.md). Sans-I/O; every block
 * counted in the caller's t2s_mem.
 *
 * A name asked for (A or AAAA) gets an entry that holds one offset into the pools: the same
 * offset gives its IPv4 address (pool4 + offset) and its IPv6 address (pool6 + offset). The
 * table holds at most `size` entries. When it is full, the least recently used entry is
 * recycled (a query for its name or a new flow to its address counts as a use), except an
 * entry pinned by live flows (t2s_fakedns_pin): those are out of the LRU list until their last
 * flow ends. A name keeps its address as long as its entry lives. New entries take the next
 * free offset after the last one given out (a cursor that wraps around the pool), so an
 * address recycled is not given out again before the rest of the pool has been: a stale
 * address is held by no entry for as long as possible, and a flow to it is refused.
 *
 * Answers carry T2S_FAKEDNS_TTL: short, so that applications ask again and keep their entry
 * recent, instead of caching an address the table may have recycled.
 */
#ifndef T2S_FAKEDNS_H
#define T2S_FAKEDNS_H

#include "alloc.h"
#include "common.h"
#include "dns.h"

#define T2S_FAKEDNS_TTL 1 /* seconds */
#define T2S_FAKEDNS_SIZE_DEFAULT 16384
#define T2S_FAKEDNS_SIZE_MAX (1u << 20)
#define T2S_FAKEDNS_MAX_EXCLUDE 32 /* --fake-dns-exclude suffixes */
#define T2S_FAKEDNS_MAX_AVOID 8    /* addresses never given out (the TUN's own) */
/* The default pools: the upper half of the benchmark range 198.18.0.0/15 (a TUN address such
 * as 198.18.0.1/15 routes it into the TUN and is never in it) and a ULA /64. */
#define T2S_FAKEDNS_POOL4_DEFAULT "198.19.0.0/16"
#define T2S_FAKEDNS_POOL6_DEFAULT "fd00:19::/64"

typedef struct t2s_fakedns t2s_fakedns;

typedef struct t2s_fakedns_config {
  t2s_addr pool4;       /* network address of the IPv4 pool; family 0 = none (AAAA only) */
  uint8_t pool4_prefix; /* 8..30 */
  t2s_addr pool6;       /* network address of the IPv6 pool; family 0 = none */
  uint8_t pool6_prefix; /* 8..126 */
  uint32_t size;        /* entries at most (1..T2S_FAKEDNS_SIZE_MAX, below the pool size) */
  uint64_t seed;        /* hash key */
  /* Names resolved for real (forwarded): a suffix matches itself and every name under it. */
  const char *exclude[T2S_FAKEDNS_MAX_EXCLUDE];
  size_t nexclude;
  t2s_addr avoid[T2S_FAKEDNS_MAX_AVOID]; /* never given out (e.g. the TUN's own addresses) */
  size_t navoid;
  t2s_mem *mem; /* counts the table's blocks (NULL: not counted) */
} t2s_fakedns_config;

typedef struct t2s_fakedns_stats {
  uint64_t entries;   /* entries now */
  uint64_t pinned;    /* entries with live flows now */
  uint64_t recycled;  /* entries recycled for a new name (LRU) */
  uint64_t full;      /* names refused: every entry pinned (answered SERVFAIL) */
  uint64_t answered;  /* queries answered from the table (A, AAAA, HTTPS/SVCB, PTR) */
  uint64_t forwarded; /* queries to be forwarded through the proxy (other types, excluded) */
  uint64_t refused;   /* queries answered with an error (FORMERR, NOTIMP, BADVERS, ...) */
  uint64_t dropped;   /* messages not answered at all (not a query, shorter than a header) */
  uint64_t flows;     /* flows to a pool address carried by name (successful pins) */
  uint64_t stale;     /* flows to a pool address no entry holds (refused) */
} t2s_fakedns_stats;

/* Fills *cfg with the default pools and size; no exclusion. */
void t2s_fakedns_config_default(t2s_fakedns_config *cfg);

/* Creates a table (the configuration is copied, the exclusion strings too). Returns 0,
 * T2S_ERR_INVALID_ARGUMENT (no pool, a bad prefix, a size of 0, over the maximum or not
 * below the number of addresses of the smaller pool, an exclusion that is no name) or
 * T2S_ERR_NOMEM. */
int t2s_fakedns_new(t2s_fakedns **ptable, const t2s_fakedns_config *cfg);
/* Frees the table. */
void t2s_fakedns_del(t2s_fakedns *t);

/*
 * The address of name (text, any case, no final dot) in family (T2S_AF_INET or _INET6),
 * giving it an entry when it has none (maybe recycling the least recently used one); the entry
 * becomes the most recently used. Returns 0, T2S_ERR_INVALID_ARGUMENT (not a plain name),
 * T2S_ERR_UNSUPPORTED (no pool of that family), T2S_ERR_LIMIT (full, every entry pinned) or
 * T2S_ERR_NOMEM.
 */
int t2s_fakedns_resolve(t2s_fakedns *t, const char *name, uint8_t family, t2s_addr *out);
/* True when the address (port ignored) lies in one of the pools. */
bool t2s_fakedns_in_pool(const t2s_fakedns *t, const t2s_addr *addr);
/* The name an entry holds for addr, or NULL (not in a pool, or no entry holds it: never given
 * out, or recycled). touch: the entry becomes the most recently used. The pointer is valid
 * until the entry is recycled (never while pinned). */
const char *t2s_fakedns_name_of(t2s_fakedns *t, const t2s_addr *addr, bool touch);
/* A flow to addr starts: its entry is never recycled until as many unpins. Returns the name,
 * or NULL (no entry holds the address: refuse the flow; counted in stale when addr is in a
 * pool). Counted in flows. */
const char *t2s_fakedns_pin(t2s_fakedns *t, const t2s_addr *addr);
/* A flow pinned with t2s_fakedns_pin(addr) ended: the entry becomes the most recently used
 * when its last flow ends. */
void t2s_fakedns_unpin(t2s_fakedns *t, const t2s_addr *addr);
/* True when name (lower case) is an excluded suffix or under one. */
bool t2s_fakedns_excluded(const t2s_fakedns *t, const char *name);

/* What t2s_fakedns_respond decided. */
typedef enum t2s_fakedns_verdict {
  T2S_FAKEDNS_ANSWER = 0, /* out[0..*poutlen) is the answer to send back */
  T2S_FAKEDNS_FORWARD,    /* carry the query through the proxy as without --fake-dns */
  T2S_FAKEDNS_DROP,       /* neither: not a query (counted in dropped) */
} t2s_fakedns_verdict;

/*
 * Answers the DNS message msg[0..len) that arrived over UDP (tcp false: the answer is kept
 * within 512 bytes or the client's EDNS size, else truncated with TC) or TCP (unframed, the
 * two-byte length already removed). A and AAAA get a pool address (NODATA when there is no
 * pool of that family), HTTPS and SVCB NODATA, PTR of a pool address its name (NXDOMAIN when
 * no entry holds it); other types, other classes, excluded names and names that are not plain
 * are forwarded; a malformed query gets FORMERR, another opcode NOTIMP, an EDNS version other
 * than 0 BADVERS; a full table SERVFAIL. outlen must be at least 600 (an answer never needs
 * more).
 */
t2s_fakedns_verdict t2s_fakedns_respond(t2s_fakedns *t, const uint8_t *msg, size_t len, bool tcp,
                                        uint8_t *out, size_t outlen, size_t *poutlen);
#define T2S_FAKEDNS_ANSWER_MAX 600

/* The table's configuration as it was created (normalised: pools masked, exclusions in their
 * plain form). The exclusion pointers point into the table; mem is NULL. */
void t2s_fakedns_get_config(const t2s_fakedns *t, t2s_fakedns_config *cfg);

/* Copies the counters. */
void t2s_fakedns_get_stats(const t2s_fakedns *t, t2s_fakedns_stats *stats);

/*
 * The state file (--fake-dns-state): text, one entry a line from the least to the most
 * recently used ("198.19.0.5 fd00:19::5 example.com", '-' for a family without a pool), after
 * a line "tun2sock-fakedns 1" and a line "next OFFSET" (the allocation cursor).
 * t2s_fakedns_state_len() is the exact length t2s_fakedns_state_write() writes.
 */
size_t t2s_fakedns_state_len(const t2s_fakedns *t);
/* Writes the state into buf. Returns its length or T2S_ERR_NOBUF. */
t2s_ssize t2s_fakedns_state_write(const t2s_fakedns *t, char *buf, size_t buflen);
/*
 * Loads a state into an empty table. Lines whose addresses are not the same offset of this
 * table's pools, whose name is not plain, or whose name or address is already taken are
 * skipped (the pools may have changed); past `size` entries the oldest are recycled as usual.
 * *ploaded (may be NULL) receives the number of entries loaded, *pskipped (may be NULL) the
 * lines skipped. Returns 0, T2S_ERR_MALFORMED (not a state file: first line), T2S_ERR_EXISTS
 * (the table is not empty) or T2S_ERR_NOMEM.
 */
int t2s_fakedns_state_load(t2s_fakedns *t, const char *data, size_t len, size_t *ploaded,
                           size_t *pskipped);

#endif
