/* autoroute_rtnl_linux.c: --auto-route's rules and routes through rtnetlink (see
 * autoroute_internal.h). */
#include "autoroute_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "netlink_linux.h"

/* ---------------- netlink ---------------- */

int t2s_ar_nl_open(ar_nl *s) {
  s->buf = malloc(AR_DUMP_BUFSIZE);
  s->seen = malloc(AR_MAX_SEEN * sizeof(*s->seen));
  s->nl = s->buf && s->seen ? mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC) : NULL;
  if (!s->nl) {
    int err = s->buf && s->seen ? -errno : -ENOMEM;
    free(s->buf);
    free(s->seen);
    s->buf = NULL;
    s->seen = NULL;
    return err;
  }
  if (mnl_socket_bind(s->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = -errno;
    mnl_socket_close(s->nl);
    s->nl = NULL;
    return err;
  }
  s->seq = (unsigned)time(NULL);
  return 0;
}

void t2s_ar_nl_close(ar_nl *s) {
  if (s->nl) {
    mnl_socket_close(s->nl);
    s->nl = NULL;
  }
  free(s->buf);
  free(s->seen);
  s->buf = NULL;
  s->seen = NULL;
}

/* Sends nlh and runs the answers through cb until the ACK (requests) or NLMSG_DONE (dumps):
 * t2s_nl_talk (netlink_linux.h). Bounded: a dump of every route of a big routing table fits in
 * a few thousand reads. Returns 0 or -errno. */
static int ar_nl_talk(ar_nl *s, struct nlmsghdr *nlh, mnl_cb_t cb, void *arg) {
  return t2s_nl_talk(s->nl, nlh, ++s->seq, s->buf, AR_DUMP_BUFSIZE, 100000, cb, arg);
}

static size_t af_len(uint8_t af) {
  return af == AF_INET ? 4 : 16;
}

/* ---------------- dumps ---------------- */

typedef struct dump_ctx {
  uint32_t table, prio_lo, prio_hi;
  ar_seen *seen;
  size_t nseen, cap;
  bool overflow;
} dump_ctx;

static int attr_cb_rule(const struct nlattr *attr, void *arg) {
  const struct nlattr **tb = arg;
  if (mnl_attr_type_valid(attr, FRA_MAX) >= 0) {
    tb[mnl_attr_get_type(attr)] = attr;
  }
  return MNL_CB_OK;
}

static int attr_cb_route(const struct nlattr *attr, void *arg) {
  const struct nlattr **tb = arg;
  if (mnl_attr_type_valid(attr, RTA_MAX) >= 0) {
    tb[mnl_attr_get_type(attr)] = attr;
  }
  return MNL_CB_OK;
}

static uint32_t attr_u32(const struct nlattr *a, uint32_t dflt) {
  return a && mnl_attr_get_payload_len(a) >= 4 ? mnl_attr_get_u32(a) : dflt;
}

static ar_seen *seen_add(dump_ctx *c, const struct nlmsghdr *nlh) {
  if (c->nseen == c->cap || nlh->nlmsg_len > AR_MSG_MAX) {
    c->overflow = true;
    return NULL;
  }
  ar_seen *s = &c->seen[c->nseen++];
  memset(s, 0, sizeof(*s));
  s->len = nlh->nlmsg_len;
  memcpy(s->msg, nlh, s->len);
  return s;
}

static int rule_dump_cb(const struct nlmsghdr *nlh, void *arg) {
  dump_ctx *c = arg;
  if (nlh->nlmsg_type != RTM_NEWRULE) {
    return MNL_CB_OK;
  }
  const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
  const struct nlattr *tb[FRA_MAX + 1];
  memset(tb, 0, sizeof(tb));
  mnl_attr_parse(nlh, sizeof(*frh), attr_cb_rule, tb);
  uint32_t prio = attr_u32(tb[FRA_PRIORITY], 0);
  uint32_t table = attr_u32(tb[FRA_TABLE], frh->table);
  bool in_range = prio >= c->prio_lo && prio < c->prio_hi;
  bool to_ours = frh->action == FR_ACT_TO_TBL && table == c->table;
  if (!in_range && !to_ours) {
    return MNL_CB_OK;
  }
  ar_seen *s = seen_add(c, nlh);
  if (!s) {
    return MNL_CB_OK;
  }
  s->is_rule = true;
  ar_rule *r = &s->rule;
  r->family = frh->family;
  r->prio = prio;
  r->action = frh->action;
  r->table = frh->action == FR_ACT_TO_TBL ? table : 0;
  r->mark = attr_u32(tb[FRA_FWMARK], 0);
  r->mask = attr_u32(tb[FRA_FWMASK], r->mark ? 0xffffffffu : 0);
  if (tb[FRA_UID_RANGE] &&
      mnl_attr_get_payload_len(tb[FRA_UID_RANGE]) >= sizeof(struct fib_rule_uid_range)) {
    const struct fib_rule_uid_range *u = mnl_attr_get_payload(tb[FRA_UID_RANGE]);
    r->has_uid = true;
    r->uid_start = u->start;
    r->uid_end = u->end;
  }
  /* The kernel dumps the suppress attributes with -1 when unset. */
  bool suppress = attr_u32(tb[FRA_SUPPRESS_PREFIXLEN], 0xffffffffu) != 0xffffffffu ||
                  attr_u32(tb[FRA_SUPPRESS_IFGROUP], 0xffffffffu) != 0xffffffffu;
  r->other = frh->src_len || frh->dst_len || frh->tos || (frh->flags & FIB_RULE_INVERT) ||
             tb[FRA_IFNAME] || tb[FRA_OIFNAME] || tb[FRA_GOTO] || suppress || tb[FRA_IP_PROTO] ||
             tb[FRA_SPORT_RANGE] || tb[FRA_DPORT_RANGE] || tb[FRA_L3MDEV] || tb[FRA_SRC] ||
             tb[FRA_DST];
  return MNL_CB_OK;
}

static int route_dump_cb(const struct nlmsghdr *nlh, void *arg) {
  dump_ctx *c = arg;
  if (nlh->nlmsg_type != RTM_NEWROUTE) {
    return MNL_CB_OK;
  }
  const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
  const struct nlattr *tb[RTA_MAX + 1];
  memset(tb, 0, sizeof(tb));
  mnl_attr_parse(nlh, sizeof(*rtm), attr_cb_route, tb);
  if (attr_u32(tb[RTA_TABLE], rtm->rtm_table) != c->table) {
    return MNL_CB_OK;
  }
  ar_seen *s = seen_add(c, nlh);
  if (!s) {
    return MNL_CB_OK;
  }
  ar_route *r = &s->route;
  r->family = rtm->rtm_family;
  r->len = rtm->rtm_dst_len;
  r->type = rtm->rtm_type;
  r->oif = attr_u32(tb[RTA_OIF], 0);
  if (tb[RTA_DST] && mnl_attr_get_payload_len(tb[RTA_DST]) == af_len(r->family)) {
    memcpy(r->dst, mnl_attr_get_payload(tb[RTA_DST]), af_len(r->family));
  }
  return MNL_CB_OK;
}

/* Dumps the rules (rules=true) or routes of family af into c. */
static int dump(ar_nl *s, uint8_t af, bool rules, dump_ctx *c) {
  char buf[256];
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = rules ? RTM_GETRULE : RTM_GETROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  if (rules) {
    struct fib_rule_hdr *frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
    frh->family = af;
  } else {
    struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
    rtm->rtm_family = af;
  }
  return ar_nl_talk(s, nlh, rules ? rule_dump_cb : route_dump_cb, c);
}

/* Deletes a dumped object by echoing its message back as RTM_DEL*. */
static int delete_seen(ar_nl *s, const ar_seen *o) {
  uint8_t buf[AR_MSG_MAX];
  memcpy(buf, o->msg, o->len);
  struct nlmsghdr *nlh = (struct nlmsghdr *)buf;
  nlh->nlmsg_type = o->is_rule ? RTM_DELRULE : RTM_DELROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST;
  nlh->nlmsg_pid = 0;
  return ar_nl_talk(s, nlh, NULL, NULL);
}

/* ---------------- adding ---------------- */

static int add_rule(ar_nl *s, const ar_rule *r) {
  char buf[512];
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWRULE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
  struct fib_rule_hdr *frh = mnl_nlmsg_put_extra_header(nlh, sizeof(*frh));
  frh->family = r->family;
  frh->action = r->action;
  frh->table = r->action == FR_ACT_TO_TBL && r->table < 256 ? (uint8_t)r->table : RT_TABLE_UNSPEC;
  mnl_attr_put_u32(nlh, FRA_PRIORITY, r->prio);
  if (r->action == FR_ACT_TO_TBL) {
    mnl_attr_put_u32(nlh, FRA_TABLE, r->table);
  }
  if (r->mark || r->mask) {
    mnl_attr_put_u32(nlh, FRA_FWMARK, r->mark);
    mnl_attr_put_u32(nlh, FRA_FWMASK, r->mask);
  }
  if (r->has_uid) {
    struct fib_rule_uid_range u = {.start = r->uid_start, .end = r->uid_end};
    mnl_attr_put(nlh, FRA_UID_RANGE, sizeof(u), &u);
  }
  mnl_attr_put_u8(nlh, FRA_PROTOCOL, RTPROT_STATIC);
  return ar_nl_talk(s, nlh, NULL, NULL);
}

static int add_route(ar_nl *s, uint32_t table, const ar_route *r) {
  char buf[512];
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = RTM_NEWROUTE;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
  struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
  rtm->rtm_family = r->family;
  rtm->rtm_dst_len = r->len;
  rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
  rtm->rtm_protocol = RTPROT_STATIC;
  rtm->rtm_type = r->type;
  rtm->rtm_scope =
      r->type == RTN_UNICAST && r->family == AF_INET ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  mnl_attr_put_u32(nlh, RTA_TABLE, table);
  if (r->len > 0) {
    mnl_attr_put(nlh, RTA_DST, af_len(r->family), r->dst);
  }
  if (r->oif) {
    mnl_attr_put_u32(nlh, RTA_OIF, r->oif);
  }
  return ar_nl_talk(s, nlh, NULL, NULL);
}

/* ---------------- what we want ---------------- */

static bool rule_eq(const ar_rule *a, const ar_rule *b) {
  return !a->other && !b->other && a->family == b->family && a->prio == b->prio &&
         a->action == b->action && a->table == b->table && a->mark == b->mark &&
         a->mask == b->mask && a->has_uid == b->has_uid &&
         (!a->has_uid || (a->uid_start == b->uid_start && a->uid_end == b->uid_end));
}

static bool route_eq(const ar_route *a, const ar_route *b) {
  /* The kernel reports IPv6 throw routes on lo: the interface matters for unicast only. */
  bool oif_eq = a->type != RTN_UNICAST || a->oif == b->oif;
  return a->family == b->family && a->len == b->len && a->type == b->type && oif_eq &&
         memcmp(a->dst, b->dst, af_len(a->family)) == 0;
}

static size_t want_rules(const t2s_autoroute *ar, uint8_t af, ar_rule *out) {
  const t2s_autoroute_config *c = &ar->cfg;
  size_t n = 0;
  out[n++] = (ar_rule){.family = af,
                       .prio = c->priority + PRIO_MARK_MAIN,
                       .action = FR_ACT_TO_TBL,
                       .table = RT_TABLE_MAIN,
                       .mark = c->fwmark,
                       .mask = 0xffffffffu};
  out[n++] = (ar_rule){.family = af,
                       .prio = c->priority + PRIO_MARK_UNREACHABLE,
                       .action = FR_ACT_UNREACHABLE,
                       .mark = c->fwmark,
                       .mask = 0xffffffffu};
  for (size_t i = 0; i < c->nuids && n < AR_MAX_RULES - 1; i++) {
    out[n++] = (ar_rule){.family = af,
                         .prio = c->priority + PRIO_UID_MAIN,
                         .action = FR_ACT_TO_TBL,
                         .table = RT_TABLE_MAIN,
                         .has_uid = true,
                         .uid_start = c->uids[i].start,
                         .uid_end = c->uids[i].end};
  }
  out[n++] = (ar_rule){
      .family = af, .prio = c->priority + PRIO_TABLE, .action = FR_ACT_TO_TBL, .table = c->table};
  return n;
}

static void prefix_mask(uint8_t *ip, size_t iplen, uint8_t len) {
  for (size_t i = 0; i < iplen; i++) {
    int bits = (int)len - (int)(i * 8);
    uint8_t m = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
    ip[i] &= m;
  }
}

static void route_push(ar_route *out, size_t *n, uint8_t af, const uint8_t *ip, uint8_t len,
                       uint8_t type, uint32_t oif) {
  if (*n >= AR_MAX_ROUTES) {
    return;
  }
  ar_route r = {.family = af, .len = len, .type = type, .oif = oif};
  if (ip) {
    memcpy(r.dst, ip, af_len(af));
  }
  prefix_mask(r.dst, af_len(af), len);
  /* The first route for a prefix wins (throws are pushed first: an exclude beats an include). */
  for (size_t i = 0; i < *n; i++) {
    if (out[i].len == r.len && memcmp(out[i].dst, r.dst, af_len(af)) == 0) {
      return;
    }
  }
  out[(*n)++] = r;
}

static size_t want_routes(const t2s_autoroute *ar, uint8_t af, ar_route *out) {
  const t2s_autoroute_config *c = &ar->cfg;
  uint8_t fam = af == AF_INET ? T2S_AF_INET : T2S_AF_INET6;
  size_t n = 0;
  /* Always local: loopback, link-local, multicast, limited broadcast. */
  if (af == AF_INET) {
    static const uint8_t lo[4] = {127}, ll[4] = {169, 254}, mc[4] = {224},
                         bc[4] = {255, 255, 255, 255};
    route_push(out, &n, af, lo, 8, RTN_THROW, 0);
    route_push(out, &n, af, ll, 16, RTN_THROW, 0);
    route_push(out, &n, af, mc, 4, RTN_THROW, 0);
    route_push(out, &n, af, bc, 32, RTN_THROW, 0);
  } else {
    static const uint8_t lo[16] = {[15] = 1}, ll[16] = {0xfe, 0x80}, mc[16] = {0xff};
    route_push(out, &n, af, lo, 128, RTN_THROW, 0);
    route_push(out, &n, af, ll, 10, RTN_THROW, 0);
    route_push(out, &n, af, mc, 8, RTN_THROW, 0);
  }
  if (c->proxy.family == fam) {
    route_push(out, &n, af, c->proxy.ip, fam == T2S_AF_INET ? 32 : 128, RTN_THROW, 0);
  }
  for (size_t i = 0; i < c->nexclude; i++) {
    if (c->exclude[i].addr.family == fam) {
      route_push(out, &n, af, c->exclude[i].addr.ip, c->exclude[i].prefixlen, RTN_THROW, 0);
    }
  }
  if (c->ninclude == 0) {
    route_push(out, &n, af, NULL, 0, RTN_UNICAST, c->tun_ifindex);
  }
  for (size_t i = 0; i < c->ninclude; i++) {
    if (c->include[i].addr.family == fam) {
      route_push(out, &n, af, c->include[i].addr.ip, c->include[i].prefixlen, RTN_UNICAST,
                 c->tun_ifindex);
    }
  }
  return n;
}

/* ---------------- reconcile ---------------- */

/*
 * Makes the rules (rules=true) or routes of family af what cfg wants: adds what is missing
 * first (so traffic never falls out of the tunnel in between), then deletes the rest of ours.
 * Counts additions in *added. Returns 0 or the first -errno.
 */
static int reconcile(ar_nl *s, const t2s_autoroute *ar, uint8_t af, bool rules, bool want,
                     unsigned *added, unsigned *removed) {
  ar_seen *seen = s->seen;
  dump_ctx c = {.table = ar->cfg.table,
                .prio_lo = ar->cfg.priority,
                .prio_hi = ar->cfg.priority + T2S_AUTOROUTE_SPAN,
                .seen = seen,
                .cap = AR_MAX_SEEN};
  int rv = dump(s, af, rules, &c);
  if (rv < 0) {
    return rv;
  }
  if (c.overflow) {
    T2S_WARN("auto-route: more than %d of our %s found; removing what fits", AR_MAX_SEEN,
             rules ? "rules" : "routes");
  }
  int first_err = 0;
  if (want) {
    ar_rule wr[AR_MAX_RULES];
    ar_route wt[AR_MAX_ROUTES];
    size_t nw = rules ? want_rules(ar, af, wr) : want_routes(ar, af, wt);
    for (size_t i = 0; i < nw; i++) {
      bool present = false;
      for (size_t j = 0; j < c.nseen; j++) {
        bool eq = rules ? rule_eq(&wr[i], &seen[j].rule) : route_eq(&wt[i], &seen[j].route);
        if (eq && !seen[j].wanted) {
          seen[j].wanted = true;
          present = true;
          break;
        }
      }
      if (present) {
        continue;
      }
      rv = rules ? add_rule(s, &wr[i]) : add_route(s, ar->cfg.table, &wt[i]);
      if (rv == 0 || rv == -EEXIST) {
        (*added)++;
      } else if (first_err == 0) {
        first_err = rv;
      }
    }
  }
  for (size_t j = 0; j < c.nseen; j++) {
    if (!seen[j].wanted) {
      T2S_DEBUG("auto-route: removing a %s (family %u, priority/prefix %u)",
                seen[j].is_rule ? "rule" : "route",
                rules ? seen[j].rule.family : seen[j].route.family,
                rules ? seen[j].rule.prio : seen[j].route.len);
      rv = delete_seen(s, &seen[j]);
      if (rv == 0) {
        (*removed)++;
      } else if (rv != -ENOENT && rv != -ESRCH && first_err == 0) {
        first_err = rv;
      }
    }
  }
  return first_err;
}

/* Routes first when adding (the table is ready before the rule that sends traffic to it),
 * rules first when removing (traffic leaves the table before it empties). */
int t2s_ar_apply_family(ar_nl *s, const t2s_autoroute *ar, uint8_t af, bool want, unsigned *added,
                        unsigned *removed) {
  int r1, r2;
  if (want) {
    r1 = reconcile(s, ar, af, false, true, added, removed);
    r2 = reconcile(s, ar, af, true, true, added, removed);
  } else {
    r2 = reconcile(s, ar, af, true, false, added, removed);
    r1 = reconcile(s, ar, af, false, false, added, removed);
  }
  return r1 ? r1 : r2;
}
