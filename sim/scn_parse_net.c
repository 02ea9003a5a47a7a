/* scn_parse_net.c: the network (docs/scenarios.md, "The network"): link, addr and route
 * lines before the run and at a time, suspend and resume at a time, each into a
 * sim_net_action (sim_net.h). */
#include <stdlib.h>
#include <string.h>

#include "scn_parse.h"

static bool link_declared(const sim_scenario *scn, const char *name) {
  for (size_t k = 0; k < scn->nnetcfg; k++) {
    if (scn->netcfg[k].op == SIM_NET_LINK && strcmp(scn->netcfg[k].link, name) == 0) {
      return true;
    }
  }
  for (size_t k = 0; k < scn->nacts; k++) {
    if (scn->acts[k].kind == SCN_ACT_NET && scn->acts[k].u.net.op == SIM_NET_LINK &&
        strcmp(scn->acts[k].u.net.link, name) == 0) {
      return true;
    }
  }
  return false;
}

int scn_link_name(scn_line *p, int i, char *out, bool must_exist, const char *what) {
  const char *s = scn_word(p, i);
  if (i >= p->n || p->t[i].quoted || strlen(s) == 0 || strlen(s) >= T2S_IFNAMSIZ ||
      strchr(s, '/') != NULL) {
    return scn_fail(p, "%s: expected an interface name (1..15 characters) but found %s", what, s);
  }
  if (must_exist && !link_declared(p->scn, s)) {
    return scn_fail(p, "%s: no link is called '%s' (declare it first: link %s up ...)", what, s, s);
  }
  snprintf(out, T2S_IFNAMSIZ, "%s", s);
  return 0;
}

/* An optional trailing family word: inet or inet6 (0 = both). */
static int parse_family_opt(scn_line *p, int i, uint8_t *family, const char *what) {
  *family = 0;
  if (scn_is(p, i, "inet") || scn_is(p, i, "inet6")) {
    *family = scn_is(p, i, "inet") ? T2S_AF_INET : T2S_AF_INET6;
    i++;
  }
  return scn_end(p, i, what);
}

/* link|addr|route|suspend|resume at token i (top level: at_time false). */
int scn_parse_net(scn_line *p, int i, sim_net_action *a, bool at_time) {
  int rv = 0;
  memset(a, 0, sizeof(*a));
  if (scn_is(p, i, "link")) {
    a->op = SIM_NET_LINK;
    rv = scn_link_name(p, i + 1, a->link, false, "link");
    if (rv == 0 && !scn_is(p, i + 2, "up") && !scn_is(p, i + 2, "down")) {
      rv = scn_fail(p, "link %s: expected up or down but found %s", a->link, scn_word(p, i + 2));
    }
    a->up = scn_is(p, i + 2, "up");
    for (i += 3; rv == 0 && i < p->n;) {
      if (scn_is(p, i, "addr")) {
        if (a->naddrs == SIM_NET_MAX_ADDRS) {
          return scn_fail(p, "link: at most %d addresses", SIM_NET_MAX_ADDRS);
        }
        rv = scn_cidr(p, i + 1, &a->addrs[a->naddrs++], "link addr");
        i += 2;
      } else if (scn_is(p, i, "gateway")) {
        t2s_addr g;
        rv = scn_addr(p, i + 1, &g, false, "link gateway");
        if (rv == 0) {
          a->gateways[g.family == T2S_AF_INET6 ? 1 : 0] = g;
        }
        i += 2;
      } else if (scn_is(p, i, "latency")) {
        i++;
        a->has_latency = true;
        rv = scn_duration(p, &i, &a->latency, "link latency");
      } else {
        rv = scn_fail(p, "link: unknown option '%s' (expected addr CIDR, gateway ADDR, latency T)",
                      p->t[i].s);
      }
    }
    return rv;
  }
  if (scn_is(p, i, "addr")) {
    if (!scn_is(p, i + 1, "add") && !scn_is(p, i + 1, "del")) {
      return scn_fail(p, "addr: expected add or del but found %s", scn_word(p, i + 1));
    }
    a->op = scn_is(p, i + 1, "add") ? SIM_NET_ADDR_ADD : SIM_NET_ADDR_DEL;
    a->naddrs = 1;
    rv = scn_cidr(p, i + 2, &a->addrs[0], "addr");
    if (rv == 0 && !scn_is(p, i + 3, "dev")) {
      rv = scn_fail(p, "addr: expected 'dev NAME' but found %s", scn_word(p, i + 3));
    }
    if (rv == 0) {
      rv = scn_link_name(p, i + 4, a->link, true, "addr dev");
    }
    return rv == 0 ? scn_end(p, i + 5, "addr") : rv;
  }
  if (scn_is(p, i, "route")) {
    bool def = scn_is(p, i + 1, "default");
    if (!def) {
      rv = scn_cidr(p, i + 1, &a->prefix, "route");
    }
    if (rv == 0 && scn_is(p, i + 2, "via")) {
      a->op = def ? SIM_NET_DEFAULT_VIA : SIM_NET_ROUTE_VIA;
      rv = scn_link_name(p, i + 3, a->link, true, "route via");
      if (rv == 0) {
        rv = def ? parse_family_opt(p, i + 4, &a->family, "route default")
                 : scn_end(p, i + 4, "route");
      }
    } else if (rv == 0 && scn_is(p, i + 2, "none")) {
      a->op = def ? SIM_NET_DEFAULT_NONE : SIM_NET_ROUTE_DEL;
      rv = def ? parse_family_opt(p, i + 3, &a->family, "route default")
               : scn_end(p, i + 3, "route");
    } else if (rv == 0) {
      rv = scn_fail(p, "route: expected 'via NAME' or 'none' but found %s", scn_word(p, i + 2));
    }
    return rv;
  }
  if (!at_time) {
    return scn_fail(p, "'%s' happens at a time: at T %s", scn_word(p, i), scn_word(p, i));
  }
  if (scn_is(p, i, "suspend")) {
    a->op = SIM_NET_SUSPEND;
    return scn_end(p, i + 1, "suspend");
  }
  a->op = SIM_NET_RESUME;
  if (scn_is(p, i + 1, "slept")) {
    i += 2;
    a->has_slept = true;
    rv = scn_duration(p, &i, &a->slept, "resume slept");
    return rv == 0 ? scn_end(p, i, "resume") : rv;
  }
  return scn_end(p, i + 1, "resume");
}

/* link, addr, route before the run: the world at time 0. */
int scn_cmd_net(scn_line *p) {
  sim_scenario *scn = p->scn;
  sim_net_action a;
  int rv = scn_parse_net(p, 0, &a, false);
  if (rv != 0) {
    return rv;
  }
  sim_net_action *v = realloc(scn->netcfg, (scn->nnetcfg + 1) * sizeof(*v));
  if (v == NULL) {
    return T2S_ERR_NOMEM;
  }
  scn->netcfg = v;
  scn->netcfg[scn->nnetcfg++] = a;
  scn->has_net = true;
  return 0;
}
