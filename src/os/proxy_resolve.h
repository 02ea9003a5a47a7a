/*
 * proxy_resolve.h: a proxy's name resolved off the event loop (docs/proxies.md, "Proxies by
 * name"). getaddrinfo() blocks for as long as the system resolver takes (resolv.conf's timeout
 * times its attempts, per server); here each lookup runs on a detached thread of its own and
 * its answer comes back on the loop through an eventfd. The loop never waits: a lookup that
 * has not answered within its bound is reported as timed out, and its late answer is dropped.
 *
 * A thread outlives nothing it does not own: lookups share a reference-counted mailbox with the
 * resolver, so t2s_proxy_resolver_del() returns at once even when a lookup is still blocked
 * (the last one out frees the mailbox).
 */
#ifndef T2S_PROXY_RESOLVE_H
#define T2S_PROXY_RESOLVE_H

#include "common.h"

struct event_base;

#define T2S_RESOLVE_SLOTS 8        /* lookups the resolver tracks at once (one per proxy) */
#define T2S_RESOLVE_THREADS_MAX 16 /* lookups blocked at once, abandoned ones included */

typedef struct t2s_proxy_resolver t2s_proxy_resolver;

/* A lookup for slot ended: err 0 and addr (with the port asked for), or T2S_ERR_NOT_FOUND (the
 * name has no address; why = the resolver's words), T2S_ERR_TIMEOUT (no answer within the
 * bound) or T2S_ERR_NOMEM. Runs on the loop. */
typedef void (*t2s_proxy_resolved_cb)(void *arg, size_t slot, int err, const t2s_addr *addr,
                                      const char *why);

/* Creates a resolver whose answers are delivered on base. Returns 0, T2S_ERR_NOMEM or
 * T2S_ERR_INTERNAL. */
int t2s_proxy_resolver_new(t2s_proxy_resolver **pr, struct event_base *base,
                           t2s_proxy_resolved_cb cb, void *arg);
/* Starts resolving host (a name; an IP literal answers at once, still through cb) for slot
 * (< T2S_RESOLVE_SLOTS), answered within timeout_ns. A lookup still out for the slot is
 * abandoned (its answer dropped). Returns 0, T2S_ERR_INVALID_ARGUMENT, T2S_ERR_LIMIT (too many
 * lookups blocked: try later) or T2S_ERR_NOMEM. */
int t2s_proxy_resolver_start(t2s_proxy_resolver *r, size_t slot, const char *host, uint16_t port,
                             t2s_tstamp timeout_ns);
/* True while slot has a lookup out. */
bool t2s_proxy_resolver_busy(const t2s_proxy_resolver *r, size_t slot);
/* Abandons every lookup and frees r (NULL allowed); returns at once. */
void t2s_proxy_resolver_del(t2s_proxy_resolver *r);

/* Resolves host once, waiting at most timeout_ns (at start, before the loop runs): 0 with
 * *out, or T2S_ERR_NOT_FOUND / T2S_ERR_TIMEOUT / T2S_ERR_NOMEM with why filled (whylen bytes).
 * IP literals need no lookup. */
int t2s_proxy_resolve_bounded(const char *host, uint16_t port, t2s_addr *out, t2s_tstamp timeout_ns,
                              char *why, size_t whylen);

/* The first --proxy at start: a literal, or a name looked up for at most 2 s (logged). A name
 * that does not resolve (or not in time) leaves out->family 0 and is logged as a warning: the
 * proxy starts UNRESOLVED and is resolved off the loop later. */
void t2s_proxy_resolve_at_start(const char *host, uint16_t port, t2s_addr *out);

/* True when host is an IPv4 or IPv6 literal (no lookup needed). */
bool t2s_proxy_host_is_literal(const char *host);

#endif
