/*
 * proxy_probe.h: the light probe of a proxy that is SUSPECT or DOWN (docs/proxies.md): a TCP
 * connect plus the SOCKS5 greeting (and the RFC 1929 exchange when it has credentials), or a
 * full CONNECT to a probe target when one is given. One probe per proxy at a time, bounded in
 * time; the result comes back from the event loop, never from inside _start.
 */
#ifndef T2S_PROXY_PROBE_H
#define T2S_PROXY_PROBE_H

#include <stddef.h>

#include "common.h"
#include "iface.h"
#include "upstream_sock.h"

struct event_base;

/* A probe of proxy `index` ended: err 0 = good, else a T2S_ERR_* naming why. */
typedef void (*t2s_proxy_probe_done)(void *arg, size_t index, int err);

typedef struct t2s_proxy_prober t2s_proxy_prober;

/* Creates a prober on base. target_host "" (or NULL) = greeting only; otherwise a CONNECT to
 * target_host:target_port (an IP literal or a name the proxy resolves). timeout_ns bounds each
 * probe. Returns 0, T2S_ERR_INVALID_ARGUMENT or T2S_ERR_NOMEM. */
int t2s_proxy_prober_new(t2s_proxy_prober **pp, struct event_base *base, const char *target_host,
                         uint16_t target_port, uint64_t timeout_ns, t2s_proxy_probe_done cb,
                         void *arg);
/* Each probe's socket is then prepared by up (t2s_upstream_sock_prepare): egress and the
 * embedder's protect, counted with the upstream sockets; a refusal fails the probe. NULL (the
 * default): only the egress's mark and interface, best effort. */
void t2s_proxy_prober_set_upstream(t2s_proxy_prober *p, t2s_upstream_sock *up);
/* Cancels the probes in flight (no callback) and frees p. NULL is allowed. */
void t2s_proxy_prober_del(t2s_proxy_prober *p);
/* Starts a probe of proxy `index` (< 8) at addr, leaving through *eg (NULL = unbound), with
 * username/password (NULL = none). A probe already out for index is replaced. Returns 0 (the
 * result follows through the callback, even for a failure found at once) or
 * T2S_ERR_INVALID_ARGUMENT / T2S_ERR_NOMEM. */
int t2s_proxy_probe_start(t2s_proxy_prober *p, size_t index, const t2s_addr *addr,
                          const t2s_egress *eg, const char *username, const char *password);

#endif
