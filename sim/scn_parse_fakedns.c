/* scn_parse_fakedns.c: the fake-IP DNS lines of the scenario language (scn_fakedns.h,
 * docs/scenarios.md "Fake-IP DNS"). */
#include <ctype.h>
#include <stddef.h>
#include <string.h>

#include "dns.h"
#include "scn_fakedns.h"
#include "scn_parse.h"

/* A plain domain name at token i (a letter somewhere, not an address, wire-encodable), lower
 * case into out (256 bytes). Returns 0 or scn_fail(). */
static int read_domain(scn_line *p, int i, char *out, const char *what) {
  const char *s = scn_word(p, i);
  uint8_t wire[T2S_DNS_NAME_MAX];
  bool letter = false;
  size_t n = i < p->n ? strlen(s) : 0;
  for (size_t k = 0; k < n; k++) {
    letter |= isalpha((unsigned char)s[k]) != 0;
  }
  if (i >= p->n || p->t[i].quoted || !letter || n >= 254 || s[n - 1] == '.' ||
      t2s_dns_name_to_wire(s, wire, sizeof(wire)) <= 1) {
    return scn_fail(p, "%s: expected a domain name but found %s", what, s);
  }
  for (size_t k = 0; k <= n; k++) {
    out[k] = (char)tolower((unsigned char)s[k]);
  }
  return 0;
}

/* ---------------- fake-dns ---------------- */

int scn_cmd_fake_dns(scn_line *p) {
  sim_scenario *scn = p->scn;
  if (scn->has_fake_dns) {
    return scn_fail(p, "fake-dns: given twice");
  }
  t2s_fakedns_config *c = &scn->fake_dns;
  t2s_fakedns_config_default(c); /* 198.19.0.0/16, fd00:19::/64, 16384 entries */
  int rv = 0;
  bool pool4 = false, pool6 = false;
  for (int i = 1; rv == 0 && i < p->n;) {
    if (scn_is(p, i, "pool")) {
      sim_cidr cidr;
      rv = scn_cidr(p, i + 1, &cidr, "fake-dns pool");
      bool v4 = rv == 0 && cidr.addr.family == T2S_AF_INET;
      if (rv == 0 && (v4 ? pool4 : pool6)) {
        rv = scn_fail(p, "fake-dns pool: one pool per family");
      }
      if (rv == 0 && v4) {
        pool4 = true;
        c->pool4 = cidr.addr;
        c->pool4_prefix = cidr.len;
      } else if (rv == 0) {
        pool6 = true;
        c->pool6 = cidr.addr;
        c->pool6_prefix = cidr.len;
      }
      i += 2;
    } else if (scn_is(p, i, "size")) {
      uint64_t v = 0;
      rv = scn_count(p, i + 1, &v, "fake-dns size");
      if (rv == 0 && (v == 0 || v > T2S_FAKEDNS_SIZE_MAX)) {
        rv = scn_fail(p, "fake-dns size: 1..%u", (unsigned)T2S_FAKEDNS_SIZE_MAX);
      }
      c->size = (uint32_t)v;
      i += 2;
    } else if (scn_is(p, i, "exclude")) {
      if (c->nexclude == T2S_FAKEDNS_MAX_EXCLUDE) {
        return scn_fail(p, "fake-dns exclude: at most %d", T2S_FAKEDNS_MAX_EXCLUDE);
      }
      char *slot = scn->fake_dns_exclude[c->nexclude];
      rv = read_domain(p, i + 1, slot, "fake-dns exclude");
      if (rv == 0) {
        c->exclude[c->nexclude++] = slot;
      }
      i += 2;
    } else {
      rv = scn_fail(p, "fake-dns: unknown option '%s' (expected pool CIDR, size N, exclude NAME)",
                    p->t[i].s);
    }
  }
  if (rv == 0) {
    /* The table checks the rest when the run starts; check it here so that the mistake names
     * this line: the size below each pool's usable addresses (fakedns.c: neither the network
     * address nor the last), then the rest on a table of one entry (no large allocation). */
    for (int k = 0; k < 2; k++) {
      unsigned bits = (k == 0 ? 32u - c->pool4_prefix : 128u - c->pool6_prefix);
      uint64_t count = bits >= 32 ? UINT32_MAX - 1 : bits < 2 ? 0 : (1ull << bits) - 2;
      if (c->size >= count) {
        rv = scn_fail(p, "fake-dns: the pools or the size do not fit (prefixes 8..30 and 8..126, "
                         "size below the pool)");
      }
    }
  }
  if (rv == 0) {
    t2s_fakedns_config probe = *c;
    probe.size = 1;
    probe.mem = NULL;
    t2s_fakedns *t = NULL;
    int trv = t2s_fakedns_new(&t, &probe);
    t2s_fakedns_del(t);
    if (trv == T2S_ERR_INVALID_ARGUMENT) {
      rv = scn_fail(p, "fake-dns: the pools or the size do not fit (prefixes 8..30 and 8..126, "
                       "size below the pool)");
    } else if (trv != 0) {
      rv = trv;
    }
  }
  scn->has_fake_dns = rv == 0;
  return rv;
}

/* ---------------- the proxy's names ---------------- */

int scn_cmd_proxy_host(scn_line *p) {
  sim_proxy_config *c = &p->scn->proxy;
  if (c->nhosts == SIM_PROXY_MAX_HOSTS) {
    return scn_fail(p, "proxy host: at most %d names", SIM_PROXY_MAX_HOSTS);
  }
  sim_proxy_host *h = &c->hosts[c->nhosts];
  int rv = read_domain(p, 2, h->name, "proxy host");
  if (rv == 0) {
    rv = scn_addr(p, 3, &h->addr, false, "proxy host");
  }
  if (rv == 0) {
    rv = scn_end(p, 4, "proxy host");
  }
  for (size_t k = 0; rv == 0 && k < c->nhosts; k++) {
    if (strcmp(c->hosts[k].name, h->name) == 0) {
      rv = scn_fail(p, "proxy host: %s is given twice", h->name);
    }
  }
  if (rv == 0) {
    c->nhosts++;
  }
  return rv;
}

/* ---------------- clients by name ---------------- */

/* Splits NAME:PORT at token i: the name's length and the port, or false. */
static bool split_name_port(const scn_line *p, int i, size_t *pnamelen, uint64_t *pport) {
  if (i >= p->n || p->t[i].quoted) {
    return false;
  }
  const char *s = p->t[i].s;
  t2s_addr a;
  const char *colon = strrchr(s, ':');
  if (t2s_addr_parse(s, &a) == 0 || colon == NULL || colon == s || colon[1] == 0) {
    return false;
  }
  uint64_t port = 0;
  for (const char *q = colon + 1; *q; q++) {
    if (!isdigit((unsigned char)*q) || port > 65535) {
      return false;
    }
    port = port * 10 + (uint64_t)(*q - '0');
  }
  bool letter = false;
  for (const char *q = s; q < colon; q++) {
    letter |= isalpha((unsigned char)*q) != 0;
  }
  *pnamelen = (size_t)(colon - s);
  *pport = port;
  return letter;
}

bool scn_client_is_name(const scn_line *p, int i) {
  size_t n;
  uint64_t port;
  return split_name_port(p, i, &n, &port);
}

int scn_client_name(scn_line *p, int i, scn_client *a) {
  size_t n = 0;
  uint64_t port = 0;
  if (!split_name_port(p, i, &n, &port) || n >= sizeof(a->qname) || port == 0 || port > 65535) {
    return scn_fail(p, "client destination: expected NAME:PORT (port 1..65535) but found %s",
                    scn_word(p, i));
  }
  char name[256];
  memcpy(name, p->t[i].s, n);
  name[n] = 0;
  uint8_t wire[T2S_DNS_NAME_MAX];
  if (name[n - 1] == '.' || t2s_dns_name_to_wire(name, wire, sizeof(wire)) <= 1) {
    return scn_fail(p, "client destination: %s is no domain name", name);
  }
  for (size_t k = 0; k <= n; k++) {
    a->qname[k] = (char)tolower((unsigned char)name[k]);
  }
  a->qfamily = T2S_AF_INET;
  a->spec.remote.family = T2S_AF_INET; /* the family asked (from must match it) */
  a->spec.remote.port = (uint16_t)port;
  if (t2s_addr_parse("198.18.0.53:53", &a->resolver) != 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  return 0;
}

bool scn_client_name_is_opt(const scn_line *p, int i) {
  return scn_is(p, i, "resolver") || scn_is(p, i, "aaaa");
}

int scn_client_name_opt(scn_line *p, int *pi, scn_client *a) {
  int i = *pi;
  int rv = 0;
  if (scn_is(p, i, "aaaa")) {
    if (a->spec.local.family == T2S_AF_INET) {
      return scn_fail(p, "client aaaa: give it before 'from'");
    }
    a->qfamily = T2S_AF_INET6;
    a->spec.remote.family = T2S_AF_INET6;
    *pi = i + 1;
    return 0;
  }
  /* resolver ADDR[:PORT] (port 53 when none) */
  t2s_addr r;
  if (i + 1 < p->n && t2s_addr_parse(p->t[i + 1].s, &r) == 0 && r.port != 0) {
    a->resolver = r;
  } else {
    rv = scn_addr(p, i + 1, &a->resolver, false, "client resolver");
    a->resolver.port = 53;
  }
  *pi = i + 2;
  return rv;
}

/* ---------------- expectations ---------------- */

/* The t2s_fakedns_stats counters `expect fake-dns NAME` knows. */
static const struct {
  const char *name;
  size_t off;
} fd_stats[] = {
#define F(n)                                                                                       \
  { #n, offsetof(t2s_fakedns_stats, n) }
    F(entries),   F(pinned),  F(recycled), F(full),  F(answered),
    F(forwarded), F(refused), F(dropped),  F(flows), F(stale),
#undef F
};

bool scn_fakedns_is_expect(const scn_line *p) {
  return scn_is(p, 1, "fake-dns") || scn_is(p, 1, "proxy") ||
         (p->n >= 3 && !p->t[1].quoted && scn_valid_name(p->t[1].s) && scn_is(p, 2, "resolved"));
}

int scn_fakedns_expect(scn_line *p, scn_expect *e) {
  e->kind = SCN_EXP_FAKEDNS;
  int i;
  int rv = 0;
  if (scn_is(p, 1, "fake-dns")) {
    e->fd_what = SCN_FD_STAT;
    bool found = false;
    for (size_t k = 0; k < T2S_ARRAY_LEN(fd_stats); k++) {
      if (scn_is(p, 2, fd_stats[k].name)) {
        e->stat_off = fd_stats[k].off;
        found = true;
      }
    }
    if (!found) {
      return scn_fail(p,
                      "expect fake-dns: expected entries, pinned, recycled, full, answered, "
                      "forwarded, refused, dropped, flows or stale but found %s",
                      scn_word(p, 2));
    }
    i = 3;
  } else if (scn_is(p, 1, "proxy") && scn_is(p, 2, "name")) {
    e->fd_what = SCN_FD_PROXY_NAME;
    rv = read_domain(p, 3, e->host, "expect proxy name");
    i = 4;
  } else if (scn_is(p, 1, "proxy") && scn_is(p, 2, "by-address")) {
    e->fd_what = SCN_FD_PROXY_ADDR;
    i = 3;
  } else if (scn_is(p, 1, "proxy")) {
    return scn_fail(p,
                    "expect proxy: expected 'name NAME [OP] N' or 'by-address [OP] N' but "
                    "found %s",
                    scn_word(p, 2));
  } else {
    e->fd_what = SCN_FD_RESOLVED;
    snprintf(e->name, sizeof(e->name), "%s", p->t[1].s);
    rv = scn_addr(p, 3, &e->dst, false, "expect resolved");
    return rv == 0 ? scn_end(p, 4, "expect resolved") : rv;
  }
  if (rv != 0) {
    return rv;
  }
  scn_op(p, &i, &e->op);
  rv = scn_count(p, i, &e->value, "expect");
  return rv == 0 ? scn_end(p, i + 1, "expect") : rv;
}
