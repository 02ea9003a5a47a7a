/* cli_check.c: the checks across options, after every source (command line, --config file,
 * a reload) has been applied (cli.h, t2s_cli_check). */
#include <string.h>

#include "cli.h"
#include "fakedns.h"

static const char *blame(const char **pname, const char **pvalue, const char *name,
                         const char *value, const char *why) {
  *pname = name;
  *pvalue = value;
  return why;
}

const char *t2s_cli_check(t2s_cli_opts *o, const char **pname, const char **pvalue) {
  if (!o->ifname[0] && o->device_fd < 0) {
    return blame(pname, pvalue, "device", NULL, "is required (e.g. --device tun0)");
  }
  if (!o->proxy.host[0]) {
    return blame(pname, pvalue, "proxy", NULL,
                 "is required (e.g. --proxy socks5://127.0.0.1:1080)");
  }
  for (size_t i = 0; i < o->naddresses; i++) {
    if (o->addresses[i].addr.family == T2S_AF_INET6 && o->mtu < 1280) {
      return blame(pname, pvalue, "mtu", NULL, "an IPv6 --address needs an MTU of at least 1280");
    }
  }
  if (!o->auto_route) {
    const char *needs = o->nroute_exclude    ? "route-exclude"
                        : o->nroute_include  ? "route-include"
                        : o->nexclude_uid    ? "exclude-uid"
                        : o->nexclude_cgroup ? "exclude-cgroup"
                                             : NULL;
    if (needs) {
      return blame(pname, pvalue, needs, NULL, "needs --auto-route");
    }
  } else if (!o->fwmark_given) {
    o->fwmark = 0x2022; /* our upstream sockets must carry a mark to bypass the table */
  } else if (o->fwmark == 0) {
    return blame(pname, pvalue, "fwmark", "0", "--auto-route needs a nonzero mark");
  }
  if (!o->fake_dns) {
    const char *needs = o->fake_dns_pool4_given || o->fake_dns_pool6_given ? "fake-dns-pool"
                        : o->nfake_dns_exclude                             ? "fake-dns-exclude"
                        : o->fake_dns_size_given                           ? "fake-dns-size"
                        : o->fake_dns_state[0]                             ? "fake-dns-state"
                                                                           : NULL;
    if (needs) {
      return blame(pname, pvalue, needs, NULL, "needs --fake-dns");
    }
  } else {
    /* The table must leave free addresses in the smaller pool (docs/fake-dns.md). */
    uint64_t count = UINT64_MAX;
    for (int k = 0; k < 2; k++) {
      const t2s_cidr *p = k == 0 ? &o->fake_dns_pool4 : &o->fake_dns_pool6;
      unsigned bits = (p->addr.family == T2S_AF_INET ? 32u : 128u) - p->prefixlen;
      uint64_t n = bits >= 32 ? (1ull << 32) - 2 : (1ull << bits) - 2;
      count = n < count ? n : count;
    }
    if ((uint64_t)o->fake_dns_size + T2S_FAKEDNS_MAX_AVOID >= count) {
      return blame(pname, pvalue, "fake-dns-size", NULL,
                   "must be smaller than the number of addresses of the smaller --fake-dns-pool "
                   "(less 9)");
    }
  }
  t2s_cli_memory_preset(o);
  if (o->txqueuelen_given && o->device_fd >= 0 && o->txqueuelen != 0) {
    return blame(pname, pvalue, "txqueuelen", NULL,
                 "does not apply to --device fd://N (the TUN is not ours to configure)");
  }
  if ((o->record_max || o->record_ring) && !o->record_path[0]) {
    return blame(pname, pvalue, o->record_ring ? "record-mode" : "record-max", NULL,
                 "needs --record");
  }
  if (o->record_ring && !o->record_max) {
    return blame(pname, pvalue, "record-mode", "ring", "needs --record-max (the ring's size)");
  }
  if (o->interface[0] && o->ifname[0] && strcmp(o->interface, o->ifname) == 0) {
    return blame(pname, pvalue, "interface", o->interface,
                 "is the TUN device itself (upstream traffic would loop)");
  }
  return NULL;
}
