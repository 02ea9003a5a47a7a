/* resolve.c: host to address at start (see resolve.h). */
#include "resolve.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

int t2s_resolve_host(const char *host, uint16_t port, t2s_addr *out, const char *what) {
  memset(out, 0, sizeof(*out));
  out->port = port;
  if (inet_pton(AF_INET, host, out->ip) == 1) {
    out->family = T2S_AF_INET;
    return 0;
  }
  if (inet_pton(AF_INET6, host, out->ip) == 1) {
    out->family = T2S_AF_INET6;
    return 0;
  }
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  int rv = getaddrinfo(host, NULL, &hints, &res);
  if (rv != 0) {
    T2S_ERROR("%s: cannot resolve '%s': %s", what, host, gai_strerror(rv));
    return rv == EAI_MEMORY ? T2S_ERR_NOMEM : T2S_ERR_NOT_FOUND;
  }
  bool found = false;
  for (struct addrinfo *ai = res; ai && !found; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      out->family = T2S_AF_INET;
      memcpy(out->ip, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, 4);
      found = true;
    } else if (ai->ai_family == AF_INET6) {
      out->family = T2S_AF_INET6;
      memcpy(out->ip, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, 16);
      found = true;
    }
  }
  freeaddrinfo(res);
  if (!found) {
    T2S_ERROR("%s: '%s' has no IPv4 or IPv6 address", what, host);
    return T2S_ERR_NOT_FOUND;
  }
  char buf[64];
  T2S_INFO("%s: %s resolved to %s", what, host, t2s_addr_format(out, false, buf, sizeof(buf)));
  return 0;
}
