/* resolve.h: the proxy's address from a host (IP literal or name, getaddrinfo) and a port. */
#ifndef T2S_RESOLVE_H
#define T2S_RESOLVE_H

#include "common.h"

/* Resolves host (an IPv4/IPv6 literal without brackets, or a name) to one address, the first
 * the resolver returns, with port. Returns 0, or after logging why (naming `what`)
 * T2S_ERR_NOT_FOUND (the resolver's answer is in the log line) or T2S_ERR_NOMEM. */
int t2s_resolve_host(const char *host, uint16_t port, t2s_addr *out, const char *what);

#endif
