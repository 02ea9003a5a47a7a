/* autoroute_linux.c: --auto-route policy routing through rtnetlink (see autoroute_linux.h). */
#include "autoroute_linux.h"

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

#define AR_DUMP_BUFSIZE 32768 /* libmnl's MNL_SOCKET_DUMP_SIZE */
#define AR_MSG_MAX 512        /* a rule or route message we keep to echo back as a delete */
#define AR_MAX_RULES 64       /* our rules per family: 3 + uid ranges */
#define AR_MAX_ROUTES 128     /* our routes per family */
#define AR_MAX_SEEN 256       /* existing objects of ours found in one dump */
#define AR_MAX_LIST 32        /* excludes, includes, uid ranges, cgroups */
#define AR_NFT "/usr/sbin/nft"

enum {
  PRIO_MARK_MAIN = 0,
  PRIO_MARK_UNREACHABLE = 1,
  PRIO_UID_MAIN = 2,
  PRIO_TABLE = 3,
};

typedef struct ar_rule {
  uint8_t family; /* AF_INET, AF_INET6 */
  uint32_t prio;
  uint8_t action; /* FR_ACT_TO_TBL, FR_ACT_UNREACHABLE */
  uint32_t table; /* FR_ACT_TO_TBL */
  uint32_t mark, mask;
  bool has_uid;
  uint32_t uid_start, uid_end;
  bool other; /* (dumped) a selector we never set */
} ar_rule;

typedef struct ar_route {
  uint8_t family;
  uint8_t dst[16];
  uint8_t len;
  uint8_t type; /* RTN_UNICAST (dev TUN), RTN_THROW */
  uint32_t oif;
} ar_route;

/* Something of ours found in a dump, with its message to echo back as a delete. */
typedef struct ar_seen {
  bool is_rule;
  ar_rule rule;
  ar_route route;
  bool wanted;
  size_t len;
  uint8_t msg[AR_MSG_MAX];
} ar_seen;

struct t2s_autoroute {
  t2s_autoroute_config cfg;
  t2s_cidr exclude[AR_MAX_LIST];
  t2s_cidr include[AR_MAX_LIST];
  t2s_uid_range uids[AR_MAX_LIST];
  char *cgroups[AR_MAX_LIST];
  const char *cgroup_ptrs[AR_MAX_LIST];
  bool have_v6; /* the v6 part could be installed */
  uint64_t repairs;
  struct mnl_socket *events; /* link, route and rule notifications */
  char evbuf[AR_DUMP_BUFSIZE];
  int claims[1 + T2S_AUTOROUTE_SPAN]; /* the table and each priority (see claim_all) */
};

/* ---------------- netlink ---------------- */

/* One rtnetlink conversation: the socket, and the buffers of one dump (on the heap: several
 * runners may live in one process, each on its own thread). */
typedef struct ar_nl {
  struct mnl_socket *nl;
  char *buf;     /* AR_DUMP_BUFSIZE */
  ar_seen *seen; /* AR_MAX_SEEN */
  unsigned seq;
} ar_nl;

static int ar_nl_open(ar_nl *s) {
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

static void ar_nl_close(ar_nl *s) {
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
static int apply_family(ar_nl *s, const t2s_autoroute *ar, uint8_t af, bool want, unsigned *added,
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

/* ---------------- nftables (--exclude-cgroup) ---------------- */

/* Runs nft -f - with script on stdin. Returns its exit status, or -errno. */
static int run_nft(const char *script, bool quiet) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) {
    return -errno;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int err = -errno;
    close(pfd[0]);
    close(pfd[1]);
    return err;
  }
  if (pid == 0) {
    dup2(pfd[0], 0);
    if (quiet) {
      int dn = open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (dn >= 0) {
        dup2(dn, 2);
      }
    }
    execl(AR_NFT, "nft", "-f", "-", (char *)NULL);
    _exit(127);
  }
  close(pfd[0]);
  size_t len = strlen(script);
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(pfd[1], script + off, len - off);
    if (n <= 0) {
      break;
    }
    off += (size_t)n;
  }
  close(pfd[1]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static bool have_nft(void) {
  return access(AR_NFT, X_OK) == 0;
}

/* Removes our nftables table if it exists ("add" then "delete" never fails on absence). */
static void nft_cleanup(uint32_t table) {
  if (!have_nft()) {
    return;
  }
  char script[256];
  snprintf(script, sizeof(script),
           "add table inet t2s_autoroute_%u\ndelete table inet t2s_autoroute_%u\n", table, table);
  run_nft(script, true);
}

/* Finds the cgroup v2 mount point. */
static int cgroup2_mount(char *out, size_t outlen) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) {
    return -errno;
  }
  char line[4096];
  int rv = -ENOENT;
  for (int i = 0; i < 100000 && fgets(line, sizeof(line), f); i++) {
    /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPER */
    char *sep = strstr(line, " - ");
    if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0) {
      continue;
    }
    char mp[1024];
    if (sscanf(line, "%*s %*s %*s %*s %1023s", mp) == 1) {
      snprintf(out, outlen, "%s", mp);
      rv = 0;
      break;
    }
  }
  fclose(f);
  return rv;
}

/* Turns a cgroup v2 path into what nft wants: a path relative to /sys/fs/cgroup and the level
 * (depth below the v2 root). */
static int cgroup_for_nft(const char *path, char *rel, size_t rellen, unsigned *level, char *why,
                          size_t whylen) {
  char mp[1024];
  if (cgroup2_mount(mp, sizeof(mp)) != 0) {
    snprintf(why, whylen, "--exclude-cgroup %s: no cgroup v2 hierarchy is mounted", path);
    return -ENOENT;
  }
  size_t mplen = strlen(mp);
  const char *sub;
  if (path[0] == '/') {
    if (strncmp(path, mp, mplen) != 0 || (path[mplen] != '/' && path[mplen] != '\0')) {
      snprintf(why, whylen, "--exclude-cgroup %s: not under the cgroup v2 mount %s", path, mp);
      return -EINVAL;
    }
    sub = path + mplen;
  } else {
    sub = path;
  }
  while (*sub == '/') {
    sub++;
  }
  char full[2048];
  snprintf(full, sizeof(full), "%s/%s", mp, sub);
  struct stat st;
  if (stat(full, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(why, whylen, "--exclude-cgroup %s: %s is not a cgroup directory", path, full);
    return -ENOENT;
  }
  static const char base[] = "/sys/fs/cgroup";
  if (strncmp(mp, base, sizeof(base) - 1) != 0 ||
      (mp[sizeof(base) - 1] != '/' && mp[sizeof(base) - 1] != '\0')) {
    snprintf(why, whylen,
             "--exclude-cgroup %s: nft resolves cgroup paths below /sys/fs/cgroup, and the "
             "cgroup v2 mount is %s",
             path, mp);
    return -EINVAL;
  }
  const char *mprel = mp + sizeof(base) - 1;
  while (*mprel == '/') {
    mprel++;
  }
  snprintf(rel, rellen, "%s%s%s", mprel, *mprel && *sub ? "/" : "", sub);
  /* The level: components of sub ("" is the root, level 0). */
  unsigned lv = 0;
  bool in = false;
  for (const char *p = sub; *p; p++) {
    if (*p != '/' && !in) {
      lv++;
    }
    in = *p != '/';
  }
  *level = lv;
  if (strchr(rel, '"')) {
    snprintf(why, whylen, "--exclude-cgroup %s: a quote in the path", path);
    return -EINVAL;
  }
  return 0;
}

static int nft_install(const t2s_autoroute *ar, char *why, size_t whylen) {
  if (!have_nft()) {
    snprintf(why, whylen, "--exclude-cgroup needs nftables (%s not found)", AR_NFT);
    return -ENOENT;
  }
  /* output (route): the mark makes the kernel route the packet again, now by rule P+0 to the
   * main table; the connection gets the mark too (ct mark). postrouting (nat): the socket chose its
   * source address by the first route, through the TUN; masquerade gives it the address of the
   * interface it really leaves by. */
  char sel[AR_MAX_LIST][2200];
  for (size_t i = 0; i < ar->cfg.ncgroups; i++) {
    char rel[2048];
    unsigned level = 0;
    int rv = cgroup_for_nft(ar->cfg.cgroups[i], rel, sizeof(rel), &level, why, whylen);
    if (rv < 0) {
      return rv;
    }
    snprintf(sel[i], sizeof(sel[i]), "socket cgroupv2 level %u \"%s\"", level, rel);
  }
  char script[32768];
  size_t off = 0;
  off += (size_t)snprintf(script + off, sizeof(script) - off,
                          "table inet t2s_autoroute_%u {\n"
                          "  chain output {\n"
                          "    type route hook output priority mangle; policy accept;\n",
                          ar->cfg.table);
  for (size_t i = 0; i < ar->cfg.ncgroups && off < sizeof(script); i++) {
    off += (size_t)snprintf(script + off, sizeof(script) - off,
                            "    %s meta mark set 0x%x ct mark set 0x%x\n", sel[i], ar->cfg.fwmark,
                            ar->cfg.fwmark);
  }
  if (off < sizeof(script)) {
    off += (size_t)snprintf(script + off, sizeof(script) - off,
                            "  }\n"
                            "  chain postrouting {\n"
                            "    type nat hook postrouting priority srcnat; policy accept;\n");
  }
  if (off < sizeof(script)) {
    /* socket is not allowed here: the connection's mark, set in output, says who it is. */
    off += (size_t)snprintf(script + off, sizeof(script) - off,
                            "    ct mark 0x%x oifname != \"lo\" masquerade\n", ar->cfg.fwmark);
  }
  if (off >= sizeof(script) - 16) {
    snprintf(why, whylen, "--exclude-cgroup: too many or too long paths");
    return -E2BIG;
  }
  snprintf(script + off, sizeof(script) - off, "  }\n}\n");
  int st = run_nft(script, false);
  if (st != 0) {
    snprintf(why, whylen, "--exclude-cgroup: nft refused the rule set (exit %d; see above)", st);
    return -EINVAL;
  }
  return 0;
}

/* ---------------- one instance per table and priority range ---------------- */

/* An abstract unix socket name belongs to one network namespace and is released by the kernel
 * when its process ends, SIGKILL included. Binding one for the table and one per reserved
 * priority claims them: a second tun2sock in this namespace whose table or priorities overlap
 * ours refuses to start, instead of removing our rules as if a crash had left them, while a
 * crashed run's claims are gone and its leftovers are still cleaned up. Returns an fd or
 * -errno (-EADDRINUSE: claimed). */
static int claim_name(const char *kind, uint32_t v) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "tun2sock-autoroute-%s-%u", kind, v);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -errno;
  }
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
  if (bind(fd, (struct sockaddr *)&sa, len) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

static void release_all(t2s_autoroute *ar) {
  for (size_t i = 0; i < T2S_ARRAY_LEN(ar->claims); i++) {
    if (ar->claims[i] >= 0) {
      close(ar->claims[i]);
      ar->claims[i] = -1;
    }
  }
}

static int claim_all(t2s_autoroute *ar, char *why, size_t whylen) {
  uint32_t t = ar->cfg.table, p = ar->cfg.priority;
  for (size_t i = 0; i < T2S_ARRAY_LEN(ar->claims); i++) {
    int fd = i == 0 ? claim_name("table", t) : claim_name("priority", p + (uint32_t)(i - 1));
    if (fd == -EADDRINUSE) {
      snprintf(why, whylen,
               "auto-route: another tun2sock in this network namespace uses routing table %u or "
               "a rule priority in %u..%u: give this one another --route-table and "
               "--route-priority",
               t, p, p + T2S_AUTOROUTE_SPAN - 1);
      release_all(ar);
      return fd;
    }
    if (fd < 0) { /* no unix sockets at all: go on unclaimed, as before */
      T2S_WARN("auto-route: cannot claim table %u and priorities %u..%u: %s", t, p,
               p + T2S_AUTOROUTE_SPAN - 1, strerror(-fd));
      release_all(ar);
      return 0;
    }
    ar->claims[i] = fd;
  }
  return 0;
}

/* ---------------- public ---------------- */

static void events_open(t2s_autoroute *ar);

int t2s_autoroute_cleanup(uint32_t table, uint32_t priority) {
  ar_nl s = {0};
  int rv = ar_nl_open(&s);
  if (rv < 0) {
    return rv;
  }
  t2s_autoroute *tmp = calloc(1, sizeof(*tmp)); /* only table and priority matter */
  if (!tmp) {
    ar_nl_close(&s);
    return -ENOMEM;
  }
  tmp->cfg.table = table;
  tmp->cfg.priority = priority;
  unsigned added = 0, removed = 0;
  int r4 = apply_family(&s, tmp, AF_INET, false, &added, &removed);
  int r6 = apply_family(&s, tmp, AF_INET6, false, &added, &removed);
  free(tmp);
  ar_nl_close(&s);
  nft_cleanup(table);
  if (r4 < 0) {
    return r4;
  }
  (void)r6; /* IPv6 may be disabled: nothing of ours there then */
  return (int)removed;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) {
    memcpy(d, s, n);
  }
  return d;
}

int t2s_autoroute_start(t2s_autoroute **par, const t2s_autoroute_config *cfg, char *why,
                        size_t whylen) {
  *par = NULL;
  why[0] = '\0';
  if (cfg->nexclude > AR_MAX_LIST || cfg->ninclude > AR_MAX_LIST || cfg->nuids > AR_MAX_LIST ||
      cfg->ncgroups > AR_MAX_LIST) {
    snprintf(why, whylen, "auto-route: too many excludes, includes, uids or cgroups (max %d)",
             AR_MAX_LIST);
    return -E2BIG;
  }
  t2s_autoroute *ar = calloc(1, sizeof(*ar));
  if (!ar) {
    snprintf(why, whylen, "out of memory");
    return -ENOMEM;
  }
  ar->cfg = *cfg;
  for (size_t i = 0; i < T2S_ARRAY_LEN(ar->claims); i++) {
    ar->claims[i] = -1;
  }
  int rv = claim_all(ar, why, whylen);
  if (rv < 0) {
    free(ar);
    return rv;
  }
  memcpy(ar->exclude, cfg->exclude, cfg->nexclude * sizeof(*cfg->exclude));
  memcpy(ar->include, cfg->include, cfg->ninclude * sizeof(*cfg->include));
  memcpy(ar->uids, cfg->uids, cfg->nuids * sizeof(*cfg->uids));
  for (size_t i = 0; i < cfg->ncgroups; i++) {
    ar->cgroups[i] = dup_str(cfg->cgroups[i]);
    ar->cgroup_ptrs[i] = ar->cgroups[i] ? ar->cgroups[i] : "";
  }
  ar->cfg.exclude = ar->exclude;
  ar->cfg.include = ar->include;
  ar->cfg.uids = ar->uids;
  ar->cfg.cgroups = ar->cgroup_ptrs;

  int stale = t2s_autoroute_cleanup(cfg->table, cfg->priority);
  if (stale > 0) {
    T2S_WARN("auto-route: removed %d stale rules and routes (table %u, priorities %u..%u) left "
             "by an earlier run",
             stale, cfg->table, cfg->priority, cfg->priority + T2S_AUTOROUTE_SPAN - 1);
  }

  ar_nl s = {0};
  rv = ar_nl_open(&s);
  if (rv < 0) {
    snprintf(why, whylen, "auto-route: cannot open rtnetlink: %s", strerror(-rv));
    goto fail;
  }
  unsigned added = 0, removed = 0;
  rv = apply_family(&s, ar, AF_INET, true, &added, &removed);
  if (rv < 0) {
    snprintf(why, whylen, "auto-route: installing the IPv4 rules and routes: %s%s", strerror(-rv),
             rv == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
    ar_nl_close(&s);
    goto fail;
  }
  rv = apply_family(&s, ar, AF_INET6, true, &added, &removed);
  if (rv < 0) {
    T2S_WARN("auto-route: IPv6 not routed into the TUN: %s (is IPv6 disabled?)", strerror(-rv));
    apply_family(&s, ar, AF_INET6, false, &added, &removed);
  } else {
    ar->have_v6 = true;
  }
  ar_nl_close(&s);
  if (cfg->ncgroups > 0) {
    rv = nft_install(ar, why, whylen);
    if (rv < 0) {
      goto fail;
    }
  }
  T2S_INFO("auto-route: table %u, rules %u..%u, fwmark 0x%x, %zu excluded ranges, %zu included, "
           "%zu uid ranges, %zu cgroups%s",
           cfg->table, cfg->priority, cfg->priority + PRIO_TABLE, cfg->fwmark, cfg->nexclude,
           cfg->ninclude, cfg->nuids, cfg->ncgroups, ar->have_v6 ? "" : " (IPv4 only)");
  events_open(ar);
  *par = ar;
  return 0;

fail:
  t2s_autoroute_cleanup(cfg->table, cfg->priority);
  release_all(ar);
  for (size_t i = 0; i < AR_MAX_LIST; i++) {
    free(ar->cgroups[i]);
  }
  free(ar);
  return rv;
}

static void events_open(t2s_autoroute *ar) {
  ar->events = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (!ar->events) {
    return;
  }
  unsigned groups = (1u << (RTNLGRP_LINK - 1)) | (1u << (RTNLGRP_IPV4_ROUTE - 1)) |
                    (1u << (RTNLGRP_IPV6_ROUTE - 1)) | (1u << (RTNLGRP_IPV4_RULE - 1)) |
                    (1u << (RTNLGRP_IPV6_RULE - 1)) | (1u << (RTNLGRP_IPV4_IFADDR - 1)) |
                    (1u << (RTNLGRP_IPV6_IFADDR - 1));
  if (mnl_socket_bind(ar->events, groups, MNL_SOCKET_AUTOPID) < 0) {
    mnl_socket_close(ar->events);
    ar->events = NULL;
  }
}

int t2s_autoroute_event_fd(const t2s_autoroute *ar) {
  return ar && ar->events ? mnl_socket_get_fd(ar->events) : -1;
}

bool t2s_autoroute_drain(t2s_autoroute *ar) {
  if (!ar || !ar->events) {
    return false;
  }
  char *buf = ar->evbuf;
  bool any = false;
  /* Bounded: at most this many reads per wakeup; the rest wakes us again. */
  for (int i = 0; i < 64; i++) {
    ssize_t n = mnl_socket_recvfrom(ar->events, buf, AR_DUMP_BUFSIZE);
    if (n < 0) {
      if (errno == ENOBUFS) {
        any = true; /* overrun: something changed, we do not know what */
        continue;
      }
      break;
    }
    if (n > 0) {
      any = true;
    }
  }
  return any;
}

int t2s_autoroute_refresh(t2s_autoroute *ar) {
  if (!ar) {
    return 0;
  }
  ar_nl s = {0};
  int rv = ar_nl_open(&s);
  if (rv < 0) {
    return rv;
  }
  unsigned added = 0, removed = 0;
  rv = apply_family(&s, ar, AF_INET, true, &added, &removed);
  if (ar->have_v6) {
    int r6 = apply_family(&s, ar, AF_INET6, true, &added, &removed);
    rv = rv ? rv : r6;
  }
  ar_nl_close(&s);
  if (added || removed) {
    ar->repairs++;
    T2S_INFO("auto-route: re-applied after a network change (%u added, %u removed)", added,
             removed);
  }
  if (rv < 0 && rv != -ENETDOWN) {
    T2S_WARN("auto-route: re-applying: %s", strerror(-rv));
  }
  return rv;
}

void t2s_autoroute_stop(t2s_autoroute *ar) {
  if (!ar) {
    return;
  }
  int n = t2s_autoroute_cleanup(ar->cfg.table, ar->cfg.priority);
  if (n < 0) {
    T2S_WARN("auto-route: removing the rules and routes: %s (the next start removes them)",
             strerror(-n));
  } else {
    T2S_INFO("auto-route: removed %d rules and routes", n);
  }
  if (ar->events) {
    mnl_socket_close(ar->events);
  }
  release_all(ar); /* after the cleanup: a next instance cannot start in between */
  for (size_t i = 0; i < AR_MAX_LIST; i++) {
    free(ar->cgroups[i]);
  }
  free(ar);
}

uint64_t t2s_autoroute_repairs(const t2s_autoroute *ar) {
  return ar ? ar->repairs : 0;
}
