/* sim_scenario.c: parser and executor of the scenario language (docs/scenarios.md). */
#include "sim_scenario.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "drop.h"
#include "sim_client.h"
#include "sim_net.h"
#include "sim_pcap.h"
#include "sim_proxy.h"

#define MAX_TOKENS 64
#define MAX_LINE 4096
#define MAX_ECHO_COUNT 1000000
#define STR_(x) #x
#define STR(x) STR_(x)
#define MAX_NAME 31

/* ---------------- the parsed scenario ---------------- */

typedef enum act_type { ACT_REPLAY = 0, ACT_INJECT_ECHO, ACT_CLIENT, ACT_NET } act_type;

typedef struct action {
  int line;
  t2s_tstamp at;
  act_type type;
  char *path; /* REPLAY: resolved file name */
  /* INJECT_ECHO */
  t2s_addr src, dst;
  uint64_t size;
  bool has_id;
  uint16_t id, seq;
  uint64_t count;
  t2s_tstamp interval;
  /* CLIENT */
  sim_client_spec client;
  uint8_t *text;
  /* NET: link, addr, route, suspend, resume (sim_net.h) */
  sim_net_action net;
} action;

typedef enum exp_type {
  EXP_COUNTER = 0, /* a counter compared with a number */
  EXP_CLIENT,      /* a client ended in a state (before a time) */
  EXP_UP_RECEIVED, /* bytes an upstream destination received (intact) */
  EXP_UP_STREAMS,  /* streams opened toward an upstream destination */
  EXP_UNTOUCHED,   /* a client was never reset nor refused */
  EXP_UP_VIA,      /* every socket toward a destination left through one interface */
  EXP_EGRESS,      /* the engine's egress interface (sampled after T, or at the end) */
  EXP_NET_STATE,   /* the engine's network state (sampled after T, or at the end) */
  EXP_UDP_AFTER,   /* UDP sessions open (sampled after T, or at the end) */
} exp_type;

typedef enum counter {
  C_PACKETS_OUT = 0,
  C_PACKETS_IN,
  C_ECHO_REPLIES,
  C_DROPS,
  C_DROPS_TOTAL,
  C_STAT,
  C_UP_OPEN,
  C_CLIENTS_UNFINISHED,
  C_INVARIANTS,
} counter;

typedef enum cmp_op { OP_EQ = 0, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } cmp_op;

typedef struct expect {
  int line;
  char *text;
  exp_type type;
  counter ctr;
  int drop_reason;
  size_t stat_off;
  cmp_op op;
  uint64_t value;
  char name[MAX_NAME + 1];
  sim_client_state want;
  bool has_before;
  t2s_tstamp before;
  t2s_addr dst;
  bool intact;
  char ifname[T2S_IFNAMSIZ]; /* EXP_UP_VIA, EXP_EGRESS ("none": unbound) */
  t2s_net_state state;       /* EXP_NET_STATE */
  bool has_after;            /* EXP_EGRESS, EXP_NET_STATE, EXP_UDP_AFTER: sampled at T */
  t2s_tstamp after;
} expect;

/* A value sampled during the run for an "... after T" expectation. */
typedef struct sample {
  bool taken;
  uint64_t value;
  char ifname[T2S_IFNAMSIZ];
} sample;

typedef struct up_rule {
  int line;
  bool is_default;
  t2s_addr dst;
  sim_up_behaviour beh;
} up_rule;

struct sim_scenario {
  char *name;
  char *basedir;
  bool has_seed;
  uint64_t seed;
  bool has_until;
  t2s_tstamp until;
  bool has_mtu;
  uint32_t mtu;
  bool faults_set;
  sim_faults faults;
  up_rule *rules;
  size_t nrules;
  action *acts;
  size_t nacts;
  expect *exps;
  size_t nexps;
  bool has_proxy;
  sim_proxy_config proxy;
  t2s_tstamp replay_span; /* replay mode: time from the first record to the last */
  sim_net_action *netcfg; /* link, addr, route lines before the run (sim_net.h) */
  size_t nnetcfg;
  bool has_net;        /* the scenario declares links: the world has a network */
  t2s_tstamp debounce; /* `engine network-debounce`; the word `debounce` in durations */
  t2s_tstamp udp_timeout, dns_timeout; /* `engine udp-timeout|dns-timeout T` (0: default) */
  uint64_t max_udp_sessions;           /* `engine max-udp-sessions N` (0: default) */
  bool has_policy;                     /* `engine on-network-change` */
  t2s_netchange_policy policy;
  sample *samples; /* one per expectation, filled during the run */
  sim_world *w;    /* set by sim_scenario_schedule */
};

/* ---------------- parsing helpers ---------------- */

typedef struct tok {
  char *s;
  bool quoted;
} tok;

typedef struct pctx {
  sim_scenario *scn;
  int line;
  char *err;
  size_t errlen;
  tok t[MAX_TOKENS];
  int n;
} pctx;

__attribute__((format(printf, 2, 3))) static int fail(pctx *p, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  snprintf(p->err, p->errlen, "%s:%d: %s", p->scn->name, p->line, msg);
  return T2S_ERR_MALFORMED;
}

static int hexdig(int c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  c = tolower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Splits one line into tokens: words separated by blanks, "quoted strings" with \" \\ \n
 * \r \t \xHH escapes, and a # outside quotes starts a comment. The token strings are
 * written into out (at most MAX_LINE bytes). */
static int tokenize(pctx *p, const char *line, char *out) {
  size_t o = 0;
  p->n = 0;
  const char *s = line;
  while (*s) {
    while (*s == ' ' || *s == '\t' || *s == '\r') {
      s++;
    }
    if (*s == 0 || *s == '#') {
      break;
    }
    if (p->n >= MAX_TOKENS) {
      return fail(p, "too many words on one line (at most %d)", MAX_TOKENS);
    }
    tok *t = &p->t[p->n++];
    t->s = out + o;
    t->quoted = false;
    if (*s == '"') {
      t->quoted = true;
      s++;
      for (;;) {
        if (*s == 0) {
          return fail(p, "unterminated string (missing closing \")");
        }
        if (*s == '"') {
          s++;
          break;
        }
        char c = *s++;
        if (c == '\\') {
          char e = *s++;
          switch (e) {
          case 'n':
            c = '\n';
            break;
          case 'r':
            c = '\r';
            break;
          case 't':
            c = '\t';
            break;
          case '"':
          case '\\':
            c = e;
            break;
          case 'x': {
            int h1 = hexdig(s[0]), h2 = h1 >= 0 ? hexdig(s[1]) : -1;
            if (h1 < 0 || h2 < 0 || (h1 == 0 && h2 == 0)) {
              return fail(p, "bad \\x escape in string (two hex digits, not 00, expected)");
            }
            c = (char)(h1 * 16 + h2);
            s += 2;
            break;
          }
          default:
            return fail(p, "unknown escape \\%c in string", e ? e : '0');
          }
        }
        out[o++] = c;
      }
      if (*s != 0 && *s != ' ' && *s != '\t' && *s != '\r' && *s != '#') {
        return fail(p, "a blank is needed after a closing \"");
      }
    } else {
      while (*s && *s != ' ' && *s != '\t' && *s != '\r') {
        out[o++] = *s++;
      }
    }
    out[o++] = 0;
  }
  return 0;
}

static bool is(const pctx *p, int i, const char *word) {
  return i < p->n && !p->t[i].quoted && strcmp(p->t[i].s, word) == 0;
}

static const char *word(const pctx *p, int i) {
  return i < p->n ? p->t[i].s : "end of line";
}

static int parse_u64_str(const char *s, uint64_t *v) {
  uint64_t x = 0;
  if (*s == 0) {
    return -1;
  }
  for (; *s; s++) {
    if (*s < '0' || *s > '9') {
      return -1;
    }
    if (x > (UINT64_MAX - 9) / 10) {
      return -1;
    }
    x = x * 10 + (uint64_t)(*s - '0');
  }
  *v = x;
  return 0;
}

/* Parses digits[.digits] at *ps into mantissa and number of fraction digits. */
static int parse_decimal(const char **ps, uint64_t *mant, int *fracdigits) {
  const char *s = *ps;
  uint64_t x = 0;
  int nd = 0, fd = 0;
  bool frac = false;
  for (;; s++) {
    if (*s >= '0' && *s <= '9') {
      if (x > (UINT64_MAX - 9) / 10 || fd >= 9) {
        return -1;
      }
      x = x * 10 + (uint64_t)(*s - '0');
      nd++;
      if (frac) {
        fd++;
      }
    } else if (*s == '.' && !frac) {
      frac = true;
    } else {
      break;
    }
  }
  if (nd == 0) {
    return -1;
  }
  *ps = s;
  *mant = x;
  *fracdigits = fd;
  return 0;
}

static uint64_t pow10u(int n) {
  uint64_t x = 1;
  while (n-- > 0) {
    x *= 10;
  }
  return x;
}

typedef struct unit {
  const char *name;
  uint64_t mul; /* 0: a bare number, which must then be 0 */
} unit;

/* A decimal number and one of units (fold_case: compared ignoring case): the number times the
 * unit's multiplier, which must come out whole. Returns 0, or -1 when s is not such a number. */
static int parse_with_unit(const char *s, const unit *units, size_t nunits, bool fold_case,
                           uint64_t *out) {
  uint64_t mant;
  int fd;
  const char *q = s;
  if (parse_decimal(&q, &mant, &fd) != 0) {
    return -1;
  }
  for (size_t i = 0; i < nunits; i++) {
    if ((fold_case ? strcasecmp(q, units[i].name) : strcmp(q, units[i].name)) != 0) {
      continue;
    }
    if (units[i].mul == 0) {
      if (mant != 0) {
        return -1;
      }
      *out = 0;
      return 0;
    }
    uint64_t div = pow10u(fd);
    if (mant > UINT64_MAX / units[i].mul) {
      return -1;
    }
    uint64_t v = mant * units[i].mul;
    if (v % div != 0) {
      return -1; /* finer than the smallest unit */
    }
    *out = v / div;
    return 0;
  }
  return -1;
}

/* One duration term: NUMBER UNIT (ns us ms s m h), or 0. */
static int parse_duration_term(const char *s, t2s_tstamp *out) {
  static const unit units[] = {{"", 0}, /* a unit is required except for 0 */
                               {"ns", 1},
                               {"us", T2S_MICROSECONDS},
                               {"ms", T2S_MILLISECONDS},
                               {"s", T2S_SECONDS},
                               {"m", 60 * T2S_SECONDS},
                               {"min", 60 * T2S_SECONDS},
                               {"h", 3600 * T2S_SECONDS}};
  return parse_with_unit(s, units, T2S_ARRAY_LEN(units), false, out);
}

/* A duration at token *pi: TERM [+ TERM]... (a term may itself hold "+"). Advances *pi. */
static int parse_duration(pctx *p, int *pi, t2s_tstamp *out, const char *what) {
  t2s_tstamp total = 0;
  bool want_term = true;
  int i = *pi;
  while (i < p->n) {
    const char *s = p->t[i].s;
    if (p->t[i].quoted) {
      break;
    }
    if (!want_term) {
      if (strcmp(s, "+") != 0) {
        break;
      }
      want_term = true;
      i++;
      continue;
    }
    /* A token may be "500ms+50ms". */
    char buf[64];
    size_t len = strlen(s);
    if (len >= sizeof(buf)) {
      return fail(p, "%s: bad duration '%s'", what, s);
    }
    memcpy(buf, s, len + 1);
    char *save = NULL;
    bool any = false;
    for (char *part = strtok_r(buf, "+", &save); part; part = strtok_r(NULL, "+", &save)) {
      t2s_tstamp v = p->scn->debounce; /* the word "debounce": the engine's debounce */
      if (strcmp(part, "debounce") != 0 && parse_duration_term(part, &v) != 0) {
        return fail(p, "%s: bad duration '%s' (expected a number with a unit: ns, us, ms, s, m, h)",
                    what, s);
      }
      total += v;
      any = true;
    }
    if (!any) {
      return fail(p, "%s: bad duration '%s'", what, s);
    }
    want_term = s[len - 1] == '+';
    i++;
  }
  if (i == *pi || want_term) {
    return fail(p, "%s: expected a duration (e.g. 500ms, 2s) but found %s", what, word(p, i));
  }
  *pi = i;
  *out = total;
  return 0;
}

/* A size: NUMBER[B|KB|KiB|MB|MiB|GB|GiB] (K = 1024). */
static int parse_size_str(const char *s, uint64_t *out) {
  static const unit units[] = {{"", 1},
                               {"b", 1},
                               {"kb", 1024},
                               {"kib", 1024},
                               {"mb", 1024 * 1024},
                               {"mib", 1024 * 1024},
                               {"gb", 1024ULL * 1024 * 1024},
                               {"gib", 1024ULL * 1024 * 1024}};
  return parse_with_unit(s, units, T2S_ARRAY_LEN(units), true, out);
}

static int parse_size(pctx *p, int i, uint64_t *out, const char *what) {
  if (i >= p->n || p->t[i].quoted || parse_size_str(p->t[i].s, out) != 0) {
    return fail(p, "%s: expected a size (e.g. 1000, 64KB, 10MB) but found %s", what, word(p, i));
  }
  return 0;
}

static int parse_count(pctx *p, int i, uint64_t *out, const char *what) {
  if (i >= p->n || p->t[i].quoted || parse_u64_str(p->t[i].s, out) != 0) {
    return fail(p, "%s: expected a whole number but found %s", what, word(p, i));
  }
  return 0;
}

/* A probability "P%" (P may have decimals) as num/den. */
static int parse_percent(pctx *p, int i, uint32_t *num, uint32_t *den, const char *what) {
  const char *s = i < p->n ? p->t[i].s : "";
  uint64_t mant;
  int fd;
  const char *q = s;
  if (i >= p->n || parse_decimal(&q, &mant, &fd) != 0 || strcmp(q, "%") != 0 || fd > 6) {
    return fail(p, "%s: expected a percentage (e.g. 2%%, 0.5%%) but found %s", what, word(p, i));
  }
  uint64_t d = 100 * pow10u(fd);
  if (mant > d) {
    return fail(p, "%s: %s is more than 100%%", what, s);
  }
  *num = (uint32_t)mant;
  *den = (uint32_t)d;
  return 0;
}

static int parse_addr(pctx *p, int i, t2s_addr *a, bool want_port, const char *what) {
  if (i >= p->n || t2s_addr_parse(p->t[i].s, a) != 0) {
    return fail(p, "%s: expected an address%s but found %s", what,
                want_port ? " with a port (1.2.3.4:80, [2001:db8::1]:80)" : "", word(p, i));
  }
  if (want_port && a->port == 0) {
    return fail(p, "%s: %s needs a port (1.2.3.4:80, [2001:db8::1]:80)", what, p->t[i].s);
  }
  if (!want_port && a->port != 0) {
    return fail(p, "%s: %s must not have a port", what, p->t[i].s);
  }
  return 0;
}

static int parse_op(pctx *p, int *pi, cmp_op *op) {
  static const struct {
    const char *s;
    cmp_op op;
  } ops[] = {{"==", OP_EQ}, {"=", OP_EQ}, {"!=", OP_NE}, {"<", OP_LT},
             {"<=", OP_LE}, {">", OP_GT}, {">=", OP_GE}};
  *op = OP_EQ;
  for (size_t k = 0; k < T2S_ARRAY_LEN(ops); k++) {
    if (is(p, *pi, ops[k].s)) {
      *op = ops[k].op;
      (*pi)++;
      return 0;
    }
  }
  (void)p;
  return 0;
}

static int expect_end(pctx *p, int i, const char *what) {
  if (i < p->n) {
    return fail(p, "%s: unexpected '%s'", what, p->t[i].s);
  }
  return 0;
}

static bool valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_NAME || !isalpha((unsigned char)s[0])) {
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') {
      return false;
    }
  }
  return true;
}

/* ---------------- options: NAME VALUE after a command ---------------- */

typedef enum opt_kind {
  OPT_DURATION = 0, /* t2s_tstamp */
  OPT_SIZE,         /* uint64_t */
  OPT_COUNT,        /* uint64_t */
  OPT_COUNT32,      /* uint32_t */
  OPT_PERCENT,      /* uint32_t numerator and denominator */
} opt_kind;

/* An option whose value goes into a field of the struct the command fills (its base). */
typedef struct opt {
  const char *name;
  opt_kind kind;
  size_t off;        /* the field (OPT_PERCENT: the numerator) */
  size_t den_off;    /* OPT_PERCENT: the denominator */
  uint64_t min, max; /* the values accepted (max 0: no limit; not for OPT_PERCENT) */
  const char *range; /* the message for a value outside them: "COMMAND NAME: RANGE" */
} opt;

#define OPT_DUR(name, type, field)                                                                 \
  { name, OPT_DURATION, offsetof(type, field), 0, 0, 0, NULL }
#define OPT_PCT(name, type, field)                                                                 \
  { name, OPT_PERCENT, offsetof(type, field##_num), offsetof(type, field##_den), 0, 0, NULL }
#define OPT_NUM(name, kind, type, field, min, max, range)                                          \
  { name, kind, offsetof(type, field), 0, min, max, range }

static const opt *find_opt(const pctx *p, int i, const opt *opts, size_t nopts) {
  for (size_t k = 0; k < nopts; k++) {
    if (is(p, i, opts[k].name)) {
      return &opts[k];
    }
  }
  return NULL;
}

/* Reads the value of option o, named by token *pi of command cmd, into its field of base, and
 * advances *pi past the value. Returns 0 or the error (fail()). */
static int read_opt(pctx *p, int *pi, const char *cmd, const opt *o, void *base) {
  char what[64];
  snprintf(what, sizeof(what), "%s %s", cmd, o->name);
  char *field = (char *)base + o->off;
  int i = *pi + 1;
  uint64_t v = 0;
  int rv;
  switch (o->kind) {
  case OPT_PERCENT:
    *pi = i + 1;
    return parse_percent(p, i, (uint32_t *)field, (uint32_t *)((char *)base + o->den_off), what);
  case OPT_DURATION:
    rv = parse_duration(p, &i, &v, what);
    break;
  case OPT_SIZE:
    rv = parse_size(p, i++, &v, what);
    break;
  default:
    rv = parse_count(p, i++, &v, what);
    break;
  }
  if (rv == 0 && (v < o->min || (o->max != 0 && v > o->max))) {
    rv = fail(p, "%s: %s", what, o->range);
  }
  if (o->kind == OPT_COUNT32) {
    *(uint32_t *)field = (uint32_t)v;
  } else {
    *(uint64_t *)field = v;
  }
  *pi = i;
  return rv;
}

/* ---------------- engine stats by name ---------------- */

static const struct {
  const char *name;
  size_t off;
} stat_fields[] = {
#define F(n)                                                                                       \
  { #n, offsetof(t2s_engine_stats, n) }
    F(packets_in),
    F(packets_out),
    F(bytes_up),
    F(bytes_down),
    F(tcp_flows_active),
    F(tcp_pending_syn),
    F(tcp_flows_total),
    F(tcp_resets_sent),
    F(tcp_retransmits),
    F(udp_sessions_active),
    F(icmp_echo_replies),
    F(upstream_errors),
    F(flows_reset),
    F(network_changes),
    F(route_updates),
    F(net_events),
    F(resumes),
    F(syn_refused_offline),
    F(udp_sessions_total),
    F(udp_datagrams_up),
    F(udp_datagrams_down),
    F(udp_evictions),
    F(udp_timeouts),
    F(udp_no_udp_verdicts),
    F(udp_dns_tcp_queries),
    F(udp_dns_tcp_answers),
    F(udp_port_unreach_sent),
    F(udp_proxy_no_udp),
    F(frag_reassembled),
    F(frag_sent),
#undef F
};

/* ---------------- commands ---------------- */

static int add_action(sim_scenario *scn, const action *a) {
  action *v = realloc(scn->acts, (scn->nacts + 1) * sizeof(*v));
  if (v == NULL) {
    return T2S_ERR_NOMEM;
  }
  scn->acts = v;
  scn->acts[scn->nacts++] = *a;
  return 0;
}

static char *resolve_path(const sim_scenario *scn, const char *path) {
  if (path[0] == '/' || scn->basedir[0] == 0) {
    return strdup(path);
  }
  size_t n = strlen(scn->basedir) + strlen(path) + 2;
  char *s = malloc(n);
  if (s) {
    snprintf(s, n, "%s/%s", scn->basedir, path);
  }
  return s;
}

static int cmd_seed(pctx *p) {
  uint64_t v = 0;
  int rv = parse_count(p, 1, &v, "seed");
  if (rv == 0) {
    rv = expect_end(p, 2, "seed");
  }
  if (rv == 0) {
    p->scn->has_seed = true;
    p->scn->seed = v;
  }
  return rv;
}

static const opt device_opts[] = {
    OPT_DUR("latency", sim_faults, latency), OPT_DUR("reorder-window", sim_faults, reorder_window),
    OPT_PCT("loss", sim_faults, loss),       OPT_PCT("reorder", sim_faults, reorder),
    OPT_PCT("duplicate", sim_faults, dup),   OPT_PCT("corrupt", sim_faults, corrupt),
    OPT_DUR("jitter", sim_faults, jitter),
};

static int cmd_device(pctx *p) {
  sim_scenario *scn = p->scn;
  const opt *o;
  int i = 1;
  if (i >= p->n) {
    return fail(p, "device: expected mtu, latency, loss, reorder, duplicate, corrupt, jitter or "
                   "reorder-window");
  }
  while (i < p->n) {
    int rv = 0;
    if (is(p, i, "mtu")) {
      uint64_t v = 0;
      rv = parse_count(p, i + 1, &v, "device mtu");
      if (rv == 0 && (v < 576 || v > 65535)) {
        rv = fail(p, "device mtu: %llu is outside 576..65535", (unsigned long long)v);
      }
      scn->has_mtu = true;
      scn->mtu = (uint32_t)v;
      i += 2;
    } else if ((o = find_opt(p, i, device_opts, T2S_ARRAY_LEN(device_opts))) != NULL) {
      rv = read_opt(p, &i, "device", o, &scn->faults);
    } else {
      return fail(p,
                  "device: unknown setting '%s' (expected mtu, latency, loss, reorder, duplicate, "
                  "corrupt, jitter or reorder-window)",
                  p->t[i].s);
    }
    if (rv != 0) {
      return rv;
    }
    scn->faults_set = true;
  }
  return 0;
}

static const opt upstream_opts[] = {
    OPT_DUR("latency", sim_up_behaviour, latency),
    OPT_NUM("reset-after", OPT_SIZE, sim_up_behaviour, reset_after, 0, 0, NULL),
    OPT_PCT("refuse", sim_up_behaviour, refuse),
    OPT_PCT("reset", sim_up_behaviour, reset), /* [within SIZE] */
    OPT_PCT("stall", sim_up_behaviour, stall), /* for T */
};
static const opt reset_within =
    OPT_NUM("within", OPT_SIZE, sim_up_behaviour, reset_within, 1, 0, "the size must not be 0");
static const opt stall_for = OPT_DUR("for", sim_up_behaviour, stall_for);

static int cmd_upstream(pctx *p) {
  sim_scenario *scn = p->scn;
  up_rule r;
  memset(&r, 0, sizeof(r));
  r.line = p->line;
  r.beh.reset_after = UINT64_MAX;
  r.beh.latency = 1 * T2S_MILLISECONDS;
  if (is(p, 1, "default")) {
    r.is_default = true;
  } else if (p->n < 2 || t2s_addr_parse(p->t[1].s, &r.dst) != 0) {
    return fail(p, "upstream: expected 'default' or ADDR[:PORT] but found %s", word(p, 1));
  }
  int i = 2;
  int rv = 0;
  if (is(p, i, "echo")) {
    r.beh.kind = SIM_UP_ECHO;
    i++;
  } else if (is(p, i, "sink")) {
    r.beh.kind = SIM_UP_SINK;
    i++;
  } else if (is(p, i, "source")) {
    r.beh.kind = SIM_UP_SOURCE;
    rv = parse_size(p, i + 1, &r.beh.source_len, "upstream source");
    i += 2;
  } else if (is(p, i, "refuse")) {
    r.beh.kind = SIM_UP_REFUSE;
    i++;
  } else if (is(p, i, "blackhole")) {
    r.beh.kind = SIM_UP_BLACKHOLE;
    i++;
  } else if (is(p, i, "unreachable")) {
    r.beh.kind = SIM_UP_UNREACHABLE;
    i++;
  } else if (is(p, i, "reset-after")) {
    r.beh.kind = SIM_UP_ECHO; /* the options loop reads the size */
  } else {
    return fail(p,
                "upstream: expected a behaviour (echo, sink, source N, refuse, blackhole, "
                "reset-after N) but found %s",
                word(p, i));
  }
  while (rv == 0 && i < p->n) {
    const opt *o = find_opt(p, i, upstream_opts, T2S_ARRAY_LEN(upstream_opts));
    if (o != NULL) {
      rv = read_opt(p, &i, "upstream", o, &r.beh);
      if (rv == 0 && strcmp(o->name, "reset") == 0 && is(p, i, "within")) {
        rv = read_opt(p, &i, "upstream reset", &reset_within, &r.beh);
      } else if (rv == 0 && strcmp(o->name, "stall") == 0) {
        rv = is(p, i, "for")
                 ? read_opt(p, &i, "upstream stall", &stall_for, &r.beh)
                 : fail(p, "upstream stall P%%: expected 'for T' but found %s", word(p, i));
      }
    } else if (is(p, i, "slow-read")) {
      rv = parse_size(p, i + 1, &r.beh.slow_read, "upstream slow-read (bytes per second)");
      if (rv == 0 && r.beh.slow_read == 0) {
        rv = fail(p, "upstream slow-read: the rate must not be 0");
      }
      i += 2;
    } else if (is(p, i, "reply-from")) {
      rv = parse_addr(p, i + 1, &r.beh.reply_from, true, "upstream reply-from");
      i += 2;
    } else {
      rv =
          fail(p, "upstream: unknown option '%s' (expected latency T or reset-after N)", p->t[i].s);
    }
  }
  if (rv != 0) {
    return rv;
  }
  up_rule *v = realloc(scn->rules, (scn->nrules + 1) * sizeof(*v));
  if (v == NULL) {
    return T2S_ERR_NOMEM;
  }
  scn->rules = v;
  scn->rules[scn->nrules++] = r;
  return 0;
}

/* liveness after T: no device or upstream fault after T; at the end every client has ended,
 * no flow or upstream stream is left and the engine's allocations are back to their baseline
 * (sim_check.c). */
static int cmd_liveness(pctx *p) {
  if (!is(p, 1, "after")) {
    return fail(p, "liveness: expected 'after T' but found %s", word(p, 1));
  }
  int i = 2;
  t2s_tstamp t;
  int rv = parse_duration(p, &i, &t, "liveness after");
  if (rv == 0 && t == 0) {
    rv = fail(p, "liveness after: the time must be later than 0");
  }
  if (rv == 0 && p->scn->faults.until != 0) {
    rv = fail(p, "liveness: given twice");
  }
  if (rv == 0) {
    rv = expect_end(p, i, "liveness");
  }
  if (rv == 0) {
    p->scn->faults.until = t;
  }
  return rv;
}

static int act_replay(pctx *p, action *a, int i) {
  if (i >= p->n) {
    return fail(p, "replay: expected a capture file name");
  }
  a->type = ACT_REPLAY;
  a->path = resolve_path(p->scn, p->t[i].s);
  if (a->path == NULL) {
    return T2S_ERR_NOMEM;
  }
  /* Open it now, so that a missing or unreadable file is a parse error naming the line. */
  sim_pcap_reader *r;
  char msg[512];
  if (sim_pcap_reader_open(&r, a->path, msg, sizeof(msg)) != 0) {
    free(a->path);
    a->path = NULL;
    return fail(p, "replay: %s", msg);
  }
  sim_pcap_reader_close(r);
  int rv = expect_end(p, i + 1, "replay");
  if (rv != 0) {
    free(a->path);
    a->path = NULL;
  }
  return rv;
}

static const opt inject_echo_opts[] = {
    OPT_NUM("size", OPT_SIZE, action, size, 0, 65000, "at most 65000 bytes"),
    OPT_NUM("count", OPT_COUNT, action, count, 1, MAX_ECHO_COUNT, "1.." STR(MAX_ECHO_COUNT)),
    OPT_DUR("interval", action, interval),
};

static int act_inject_echo(pctx *p, action *a, int i) {
  a->type = ACT_INJECT_ECHO;
  a->size = 56;
  a->count = 1;
  a->interval = T2S_SECONDS;
  a->seq = 1;
  int rv = parse_addr(p, i, &a->src, false, "inject-echo source");
  if (rv == 0) {
    rv = parse_addr(p, i + 1, &a->dst, false, "inject-echo destination");
  }
  if (rv != 0) {
    return rv;
  }
  if (a->src.family != a->dst.family) {
    return fail(p, "inject-echo: source and destination are of different families");
  }
  i += 2;
  while (i < p->n) {
    uint64_t v = 0;
    const opt *o = find_opt(p, i, inject_echo_opts, T2S_ARRAY_LEN(inject_echo_opts));
    if (o != NULL) {
      rv = read_opt(p, &i, "inject-echo", o, a);
    } else if (is(p, i, "id") || is(p, i, "seq")) {
      bool isid = is(p, i, "id");
      rv = parse_count(p, i + 1, &v, isid ? "inject-echo id" : "inject-echo seq");
      if (rv == 0 && v > 65535) {
        rv = fail(p, "inject-echo: %s %llu is above 65535", isid ? "id" : "seq",
                  (unsigned long long)v);
      }
      if (isid) {
        a->has_id = true;
        a->id = (uint16_t)v;
      } else {
        a->seq = (uint16_t)v;
      }
      i += 2;
    } else {
      rv = fail(p, "inject-echo: unknown option '%s' (expected size, id, seq, count, interval)",
                p->t[i].s);
    }
    if (rv != 0) {
      return rv;
    }
  }
  return 0;
}

static bool client_name_taken(const sim_scenario *scn, const char *name) {
  for (size_t k = 0; k < scn->nacts; k++) {
    if (scn->acts[k].type == ACT_CLIENT && strcmp(scn->acts[k].client.name, name) == 0) {
      return true;
    }
  }
  return false;
}

/* The options of UDP and ping clients (send, expect-... and from are for every client). */
static const opt dgram_client_opts[] = {
    OPT_NUM("count", OPT_COUNT32, sim_client_spec, count, 1, 100000, "1..100000"),
    OPT_DUR("interval", sim_client_spec, interval),
    OPT_NUM("size", OPT_SIZE, sim_client_spec, send_len, 0, 65000, "at most 65000"),
};

static int act_client(pctx *p, action *a, int i) {
  const opt *o;
  a->type = ACT_CLIENT;
  sim_client_spec *c = &a->client;
  c->line = p->line;
  if (i >= p->n || !valid_name(p->t[i].s)) {
    return fail(p,
                "client: expected a name (a letter, then letters, digits, - or _; at most %d) "
                "but found %s",
                MAX_NAME, word(p, i));
  }
  if (client_name_taken(p->scn, p->t[i].s)) {
    return fail(p, "client: the name '%s' is already used", p->t[i].s);
  }
  snprintf(c->name, sizeof(c->name), "%s", p->t[i].s);
  i++;
  if (is(p, i, "udp")) {
    c->proto = SIM_CLIENT_UDP;
  } else if (is(p, i, "ping")) {
    c->proto = SIM_CLIENT_PING;
  } else if (!is(p, i, "tcp")) {
    return fail(p, "client: expected the protocol 'tcp', 'udp' or 'ping' but found %s", word(p, i));
  }
  c->interval = T2S_SECONDS;
  int rv = parse_addr(p, i + 1, &c->remote, c->proto != SIM_CLIENT_PING, "client destination");
  if (rv != 0) {
    return rv;
  }
  i += 2;
  bool have_send = false, have_check = false;
  while (i < p->n) {
    if (is(p, i, "send")) {
      if (have_send) {
        return fail(p, "client: 'send' given twice");
      }
      have_send = true;
      if (i + 1 < p->n && p->t[i + 1].quoted) {
        const char *s = p->t[i + 1].s;
        size_t len = strlen(s);
        a->text = malloc(len ? len : 1);
        if (a->text == NULL) {
          return T2S_ERR_NOMEM;
        }
        memcpy(a->text, s, len);
        c->text_len = len;
      } else {
        rv = parse_size(p, i + 1, &c->send_len, "client send");
      }
      i += 2;
    } else if (is(p, i, "expect-echo") || is(p, i, "read-all")) {
      if (have_check) {
        return fail(p, "client: only one of expect-echo, read-all, expect-bytes");
      }
      have_check = true;
      c->check = is(p, i, "expect-echo") ? SIM_CHECK_ECHO : SIM_CHECK_READ_ALL;
      i++;
    } else if (is(p, i, "expect-bytes")) {
      if (have_check) {
        return fail(p, "client: only one of expect-echo, read-all, expect-bytes");
      }
      have_check = true;
      c->check = SIM_CHECK_BYTES;
      rv = parse_size(p, i + 1, &c->expect_len, "client expect-bytes");
      i += 2;
    } else if (c->proto != SIM_CLIENT_TCP &&
               (o = find_opt(p, i, dgram_client_opts, T2S_ARRAY_LEN(dgram_client_opts))) != NULL) {
      rv = read_opt(p, &i, "client", o, c);
    } else if (c->proto == SIM_CLIENT_UDP &&
               (is(p, i, "expect-replies") || is(p, i, "expect-unreachable"))) {
      if (have_check) {
        return fail(p, "client: only one of expect-echo, expect-replies, expect-unreachable");
      }
      have_check = true;
      if (is(p, i, "expect-unreachable")) {
        c->check = SIM_CHECK_UNREACHABLE;
        i++;
      } else {
        c->check = SIM_CHECK_REPLIES;
        rv = parse_count(p, i + 1, &c->expect_len, "client expect-replies");
        i += 2;
      }
    } else if (is(p, i, "from")) {
      t2s_addr from;
      if (c->proto == SIM_CLIENT_UDP && i + 1 < p->n && t2s_addr_parse(p->t[i + 1].s, &from) == 0) {
        rv = 0; /* UDP clients may fix their port: from ADDR:PORT */
      } else {
        rv = parse_addr(p, i + 1, &from, false, "client from");
      }
      c->local = from;
      if (rv == 0 && c->local.family != c->remote.family) {
        rv = fail(p, "client from: the address family differs from the destination's");
      }
      i += 2;
    } else {
      rv = fail(p,
                "client: unknown option '%s' (expected send, expect-echo, read-all, "
                "expect-bytes, from)",
                p->t[i].s);
    }
    if (rv != 0) {
      return rv;
    }
  }
  return 0;
}

static int parse_cred(pctx *p, int i, char *user, char *pass, const char *what) {
  if (i + 1 >= p->n) {
    return fail(p, "%s: expected a user name and a password", what);
  }
  if (strlen(p->t[i].s) == 0 || strlen(p->t[i].s) > 255 || strlen(p->t[i + 1].s) > 255) {
    return fail(p, "%s: user name 1..255 bytes, password at most 255", what);
  }
  snprintf(user, 256, "%s", p->t[i].s);
  snprintf(pass, 256, "%s", p->t[i + 1].s);
  return 0;
}

static int cmd_proxy(pctx *p) {
  sim_scenario *scn = p->scn;
  if (!is(p, 1, "socks5")) {
    return fail(p, "proxy: expected 'socks5' but found %s", word(p, 1));
  }
  if (scn->has_proxy) {
    return fail(p, "proxy: given twice");
  }
  sim_proxy_config *c = &scn->proxy;
  int rv = parse_addr(p, 2, &c->addr, true, "proxy socks5");
  bool offered = false;
  for (int i = 3; rv == 0 && i < p->n;) {
    if (is(p, i, "auth")) {
      rv = parse_cred(p, i + 1, c->username, c->password, "proxy auth");
      i += 3;
    } else if (is(p, i, "offer")) {
      rv = parse_cred(p, i + 1, c->engine_user, c->engine_pass, "proxy offer");
      offered = true;
      i += 3;
    } else if (is(p, i, "blackhole")) {
      c->black_hole = true;
      i++;
    } else if (is(p, i, "no-udp") || is(p, i, "udp-close")) {
      c->udp = is(p, i, "no-udp") ? SIM_PROXY_UDP_REP7 : SIM_PROXY_UDP_CLOSE;
      i++;
    } else {
      rv = fail(p,
                "proxy: unknown option '%s' (expected auth USER PASS, offer USER PASS, "
                "blackhole, no-udp, udp-close)",
                p->t[i].s);
    }
  }
  if (rv == 0 && !offered) {
    memcpy(c->engine_user, c->username, sizeof(c->engine_user));
    memcpy(c->engine_pass, c->password, sizeof(c->engine_pass));
  }
  scn->has_proxy = rv == 0;
  return rv;
}

/* ---------------- the network (sim_net.h) ---------------- */

static bool link_declared(const sim_scenario *scn, const char *name) {
  for (size_t k = 0; k < scn->nnetcfg; k++) {
    if (scn->netcfg[k].op == SIM_NET_LINK && strcmp(scn->netcfg[k].link, name) == 0) {
      return true;
    }
  }
  for (size_t k = 0; k < scn->nacts; k++) {
    if (scn->acts[k].type == ACT_NET && scn->acts[k].net.op == SIM_NET_LINK &&
        strcmp(scn->acts[k].net.link, name) == 0) {
      return true;
    }
  }
  return false;
}

static int parse_link_name(pctx *p, int i, char *out, bool must_exist, const char *what) {
  const char *s = word(p, i);
  if (i >= p->n || p->t[i].quoted || strlen(s) == 0 || strlen(s) >= T2S_IFNAMSIZ ||
      strchr(s, '/') != NULL) {
    return fail(p, "%s: expected an interface name (1..15 characters) but found %s", what, s);
  }
  if (must_exist && !link_declared(p->scn, s)) {
    return fail(p, "%s: no link is called '%s' (declare it first: link %s up ...)", what, s, s);
  }
  snprintf(out, T2S_IFNAMSIZ, "%s", s);
  return 0;
}

static int parse_cidr(pctx *p, int i, sim_cidr *out, const char *what) {
  if (i >= p->n || p->t[i].quoted || sim_cidr_parse(p->t[i].s, out) != 0) {
    return fail(p, "%s: expected ADDR/LEN (192.0.2.10/24, 2001:db8::10/64) but found %s", what,
                word(p, i));
  }
  return 0;
}

/* An optional trailing family word: inet or inet6 (0 = both). */
static int parse_family_opt(pctx *p, int i, uint8_t *family, const char *what) {
  *family = 0;
  if (is(p, i, "inet") || is(p, i, "inet6")) {
    *family = is(p, i, "inet") ? T2S_AF_INET : T2S_AF_INET6;
    i++;
  }
  return expect_end(p, i, what);
}

/* link|addr|route|suspend|resume at token i (top level: at_time false). */
static int parse_net(pctx *p, int i, sim_net_action *a, bool at_time) {
  int rv = 0;
  memset(a, 0, sizeof(*a));
  if (is(p, i, "link")) {
    a->op = SIM_NET_LINK;
    rv = parse_link_name(p, i + 1, a->link, false, "link");
    if (rv == 0 && !is(p, i + 2, "up") && !is(p, i + 2, "down")) {
      rv = fail(p, "link %s: expected up or down but found %s", a->link, word(p, i + 2));
    }
    a->up = is(p, i + 2, "up");
    for (i += 3; rv == 0 && i < p->n;) {
      if (is(p, i, "addr")) {
        if (a->naddrs == SIM_NET_MAX_ADDRS) {
          return fail(p, "link: at most %d addresses", SIM_NET_MAX_ADDRS);
        }
        rv = parse_cidr(p, i + 1, &a->addrs[a->naddrs++], "link addr");
        i += 2;
      } else if (is(p, i, "gateway")) {
        t2s_addr g;
        rv = parse_addr(p, i + 1, &g, false, "link gateway");
        if (rv == 0) {
          a->gateways[g.family == T2S_AF_INET6 ? 1 : 0] = g;
        }
        i += 2;
      } else if (is(p, i, "latency")) {
        i++;
        a->has_latency = true;
        rv = parse_duration(p, &i, &a->latency, "link latency");
      } else {
        rv = fail(p, "link: unknown option '%s' (expected addr CIDR, gateway ADDR, latency T)",
                  p->t[i].s);
      }
    }
    return rv;
  }
  if (is(p, i, "addr")) {
    if (!is(p, i + 1, "add") && !is(p, i + 1, "del")) {
      return fail(p, "addr: expected add or del but found %s", word(p, i + 1));
    }
    a->op = is(p, i + 1, "add") ? SIM_NET_ADDR_ADD : SIM_NET_ADDR_DEL;
    a->naddrs = 1;
    rv = parse_cidr(p, i + 2, &a->addrs[0], "addr");
    if (rv == 0 && !is(p, i + 3, "dev")) {
      rv = fail(p, "addr: expected 'dev NAME' but found %s", word(p, i + 3));
    }
    if (rv == 0) {
      rv = parse_link_name(p, i + 4, a->link, true, "addr dev");
    }
    return rv == 0 ? expect_end(p, i + 5, "addr") : rv;
  }
  if (is(p, i, "route")) {
    bool def = is(p, i + 1, "default");
    if (!def) {
      rv = parse_cidr(p, i + 1, &a->prefix, "route");
    }
    if (rv == 0 && is(p, i + 2, "via")) {
      a->op = def ? SIM_NET_DEFAULT_VIA : SIM_NET_ROUTE_VIA;
      rv = parse_link_name(p, i + 3, a->link, true, "route via");
      if (rv == 0) {
        rv = def ? parse_family_opt(p, i + 4, &a->family, "route default")
                 : expect_end(p, i + 4, "route");
      }
    } else if (rv == 0 && is(p, i + 2, "none")) {
      a->op = def ? SIM_NET_DEFAULT_NONE : SIM_NET_ROUTE_DEL;
      rv = def ? parse_family_opt(p, i + 3, &a->family, "route default")
               : expect_end(p, i + 3, "route");
    } else if (rv == 0) {
      rv = fail(p, "route: expected 'via NAME' or 'none' but found %s", word(p, i + 2));
    }
    return rv;
  }
  if (!at_time) {
    return fail(p, "'%s' happens at a time: at T %s", word(p, i), word(p, i));
  }
  if (is(p, i, "suspend")) {
    a->op = SIM_NET_SUSPEND;
    return expect_end(p, i + 1, "suspend");
  }
  a->op = SIM_NET_RESUME;
  if (is(p, i + 1, "slept")) {
    i += 2;
    a->has_slept = true;
    rv = parse_duration(p, &i, &a->slept, "resume slept");
    return rv == 0 ? expect_end(p, i, "resume") : rv;
  }
  return expect_end(p, i + 1, "resume");
}

/* link, addr, route before the run: the world at time 0. */
static int cmd_net(pctx *p) {
  sim_scenario *scn = p->scn;
  sim_net_action a;
  int rv = parse_net(p, 0, &a, false);
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

static const opt engine_opts[] = {
    OPT_DUR("network-debounce", sim_scenario, debounce),
    OPT_NUM("udp-timeout", OPT_DURATION, sim_scenario, udp_timeout, 1, 0, "must be more than 0"),
    OPT_NUM("dns-timeout", OPT_DURATION, sim_scenario, dns_timeout, 1, 0, "must be more than 0"),
    OPT_NUM("max-udp-sessions", OPT_COUNT, sim_scenario, max_udp_sessions, 1, 1000000,
            "1..1000000"),
};

/* engine network-debounce T | engine on-network-change reset-all|reset-affected|none | engine
 * udp-timeout T | engine dns-timeout T | engine max-udp-sessions N */
static int cmd_engine(pctx *p) {
  sim_scenario *scn = p->scn;
  int i = 1;
  const opt *o = find_opt(p, i, engine_opts, T2S_ARRAY_LEN(engine_opts));
  if (o != NULL) {
    char what[64];
    snprintf(what, sizeof(what), "engine %s", o->name);
    int rv = read_opt(p, &i, "engine", o, scn);
    return rv == 0 ? expect_end(p, i, what) : rv;
  }
  if (is(p, i, "on-network-change")) {
    if (is(p, 2, "reset-all")) {
      scn->policy = T2S_NETCHANGE_RESET_ALL;
    } else if (is(p, 2, "reset-affected")) {
      scn->policy = T2S_NETCHANGE_RESET_AFFECTED;
    } else if (is(p, 2, "none")) {
      scn->policy = T2S_NETCHANGE_NONE;
    } else {
      return fail(p,
                  "engine on-network-change: expected reset-all, reset-affected or none but "
                  "found %s",
                  word(p, 2));
    }
    scn->has_policy = true;
    return expect_end(p, 3, "engine on-network-change");
  }
  return fail(p,
              "engine: expected network-debounce T, on-network-change POLICY, udp-timeout T, "
              "dns-timeout T or max-udp-sessions N but found %s",
              word(p, 1));
}

static int cmd_at(pctx *p) {
  action a;
  memset(&a, 0, sizeof(a));
  a.line = p->line;
  int i = 1;
  int rv = parse_duration(p, &i, &a.at, "at");
  if (rv != 0) {
    return rv;
  }
  if (is(p, i, "replay")) {
    rv = act_replay(p, &a, i + 1);
  } else if (is(p, i, "inject-echo")) {
    rv = act_inject_echo(p, &a, i + 1);
  } else if (is(p, i, "client")) {
    rv = act_client(p, &a, i + 1);
  } else if (is(p, i, "link") || is(p, i, "addr") || is(p, i, "route") || is(p, i, "suspend") ||
             is(p, i, "resume")) {
    a.type = ACT_NET;
    rv = parse_net(p, i, &a.net, true);
    p->scn->has_net = true;
  } else if (is(p, i, "proxy") || is(p, i, "device") || is(p, i, "upstream")) {
    return fail(p, "at: the action '%s' is not implemented yet", p->t[i].s);
  } else {
    return fail(p,
                "at: expected an action (replay, inject-echo, client, link, addr, route, "
                "suspend, resume) but found %s",
                word(p, i));
  }
  if (rv != 0) {
    free(a.text);
    return rv;
  }
  rv = add_action(p->scn, &a);
  if (rv != 0) {
    free(a.text);
    free(a.path);
  }
  return rv;
}

static int cmd_run(pctx *p) {
  if (!is(p, 1, "until")) {
    return fail(p, "run: expected 'until T' but found %s", word(p, 1));
  }
  if (p->scn->has_until) {
    return fail(p, "run until: given twice");
  }
  int i = 2;
  int rv = parse_duration(p, &i, &p->scn->until, "run until");
  if (rv == 0) {
    rv = expect_end(p, i, "run until");
  }
  p->scn->has_until = rv == 0;
  return rv;
}

static int parse_drop_reason(const char *s) {
  for (int r = 1; r < T2S_DROP_MAX; r++) {
    if (strcmp(s, t2s_drop_name(r)) == 0) {
      return r;
    }
  }
  return -1;
}

static int cmd_expect(pctx *p) {
  expect e;
  memset(&e, 0, sizeof(e));
  e.line = p->line;
  int i = 2;
  int rv = 0;
  if (is(p, 1, "packets-out") || is(p, 1, "packets-in") || is(p, 1, "echo-replies") ||
      is(p, 1, "upstream-open") || is(p, 1, "clients-unfinished") || is(p, 1, "invariants")) {
    e.type = EXP_COUNTER;
    e.ctr = is(p, 1, "packets-out")     ? C_PACKETS_OUT
            : is(p, 1, "packets-in")    ? C_PACKETS_IN
            : is(p, 1, "echo-replies")  ? C_ECHO_REPLIES
            : is(p, 1, "upstream-open") ? C_UP_OPEN
            : is(p, 1, "invariants")    ? C_INVARIANTS
                                        : C_CLIENTS_UNFINISHED;
  } else if (is(p, 1, "drops")) {
    e.type = EXP_COUNTER;
    if (is(p, 2, "total")) {
      e.ctr = C_DROPS_TOTAL;
    } else {
      e.ctr = C_DROPS;
      e.drop_reason = i < p->n ? parse_drop_reason(p->t[i].s) : -1;
      if (e.drop_reason < 0) {
        return fail(p, "expect drops: unknown reason %s (e.g. ipv4_bad_checksum, or total)",
                    word(p, i));
      }
    }
    i++;
  } else if (is(p, 1, "stat")) {
    e.type = EXP_COUNTER;
    e.ctr = C_STAT;
    bool found = false;
    char name[64];
    snprintf(name, sizeof(name), "%s", word(p, 2));
    for (char *q = name; *q; q++) {
      *q = *q == '-' ? '_' : *q;
    }
    for (size_t k = 0; k < T2S_ARRAY_LEN(stat_fields); k++) {
      if (strcmp(name, stat_fields[k].name) == 0) {
        e.stat_off = stat_fields[k].off;
        found = true;
      }
    }
    if (!found) {
      return fail(p, "expect stat: unknown engine counter %s (e.g. tcp_flows_active)", word(p, 2));
    }
    i = 3;
  } else if (is(p, 1, "upstream")) {
    if (p->n < 3 || t2s_addr_parse(p->t[2].s, &e.dst) != 0) {
      return fail(p, "expect upstream: expected ADDR[:PORT] but found %s", word(p, 2));
    }
    if (is(p, 3, "received")) {
      e.type = EXP_UP_RECEIVED;
      rv = parse_size(p, 4, &e.value, "expect upstream received");
      i = 5;
      if (rv == 0 && is(p, i, "intact")) {
        e.intact = true;
        i++;
      }
    } else if (is(p, 3, "streams")) {
      e.type = EXP_UP_STREAMS;
      i = 4;
      parse_op(p, &i, &e.op);
      rv = parse_count(p, i, &e.value, "expect upstream streams");
      i++;
    } else if (is(p, 3, "via")) {
      e.type = EXP_UP_VIA;
      rv = parse_link_name(p, 4, e.ifname, false, "expect upstream via");
      i = 5;
    } else {
      return fail(p,
                  "expect upstream: expected 'received SIZE [intact]' or 'streams N' but "
                  "found %s",
                  word(p, 3));
    }
    if (rv == 0) {
      rv = expect_end(p, i, "expect upstream");
    }
    goto done;
  } else if (is(p, 1, "egress") || is(p, 1, "net-state") || is(p, 1, "udp-sessions")) {
    i = 2;
    if (is(p, 1, "egress")) {
      e.type = EXP_EGRESS;
      rv = parse_link_name(p, i++, e.ifname, false, "expect egress");
    } else if (is(p, 1, "net-state")) {
      e.type = EXP_NET_STATE;
      static const char *const names[] = {"UP", "SETTLING", "NO_ROUTE", "SUSPENDED"};
      bool found = false;
      for (size_t k = 0; k < T2S_ARRAY_LEN(names); k++) {
        if (is(p, i, names[k])) {
          e.state = (t2s_net_state)k;
          found = true;
        }
      }
      if (!found) {
        return fail(p,
                    "expect net-state: expected UP, SETTLING, NO_ROUTE or SUSPENDED but found %s",
                    word(p, i));
      }
      i++;
    } else {
      e.type = EXP_UDP_AFTER;
      parse_op(p, &i, &e.op);
      rv = parse_count(p, i++, &e.value, "expect udp-sessions");
    }
    if (rv == 0 && is(p, i, "after")) {
      i++;
      e.has_after = true;
      rv = parse_duration(p, &i, &e.after, "expect ... after");
    }
    if (rv == 0) {
      rv = expect_end(p, i, "expect");
    }
    goto done;
  } else if (p->n == 3 && valid_name(p->t[1].s) && !p->t[1].quoted && is(p, 2, "untouched")) {
    e.type = EXP_UNTOUCHED;
    snprintf(e.name, sizeof(e.name), "%s", p->t[1].s);
    goto done;
  } else if (p->n >= 3 && valid_name(p->t[1].s) && !p->t[1].quoted &&
             (is(p, 2, "done") || is(p, 2, "reset") || is(p, 2, "refused"))) {
    e.type = EXP_CLIENT;
    snprintf(e.name, sizeof(e.name), "%s", p->t[1].s);
    e.want = is(p, 2, "done")    ? SIM_CLIENT_DONE
             : is(p, 2, "reset") ? SIM_CLIENT_RESET
                                 : SIM_CLIENT_REFUSED;
    i = 3;
    if (is(p, i, "before")) {
      i++;
      e.has_before = true;
      rv = parse_duration(p, &i, &e.before, "expect ... before");
    }
    if (rv == 0) {
      rv = expect_end(p, i, "expect");
    }
    goto done;
  } else {
    return fail(p,
                "expect: expected packets-out, packets-in, echo-replies, drops REASON, stat "
                "NAME, upstream ADDR, upstream-open, clients-unfinished, invariants, egress, "
                "net-state, udp-sessions or NAME done|reset|refused|untouched, but found %s",
                word(p, 1));
  }
  /* Counters: [OP] N */
  parse_op(p, &i, &e.op);
  rv = parse_count(p, i, &e.value, "expect");
  if (rv == 0) {
    rv = expect_end(p, i + 1, "expect");
  }
done:
  if (rv != 0) {
    return rv;
  }
  /* The expectation as written, for messages. */
  size_t len = 0;
  for (int k = 0; k < p->n; k++) {
    len += strlen(p->t[k].s) + 3;
  }
  e.text = malloc(len + 1);
  if (e.text == NULL) {
    return T2S_ERR_NOMEM;
  }
  e.text[0] = 0;
  for (int k = 0; k < p->n; k++) {
    if (k) {
      strcat(e.text, " ");
    }
    if (p->t[k].quoted) {
      strcat(e.text, "\"");
    }
    strcat(e.text, p->t[k].s);
    if (p->t[k].quoted) {
      strcat(e.text, "\"");
    }
  }
  expect *v = realloc(p->scn->exps, (p->scn->nexps + 1) * sizeof(*v));
  if (v == NULL) {
    free(e.text);
    return T2S_ERR_NOMEM;
  }
  p->scn->exps = v;
  p->scn->exps[p->scn->nexps++] = e;
  return 0;
}

static const struct {
  const char *name;
  int (*parse)(pctx *p);
} commands[] = {
    {"seed", cmd_seed},     {"device", cmd_device},     {"upstream", cmd_upstream},
    {"at", cmd_at},         {"run", cmd_run},           {"expect", cmd_expect},
    {"proxy", cmd_proxy},   {"link", cmd_net},          {"addr", cmd_net},
    {"route", cmd_net},     {"suspend", cmd_net},       {"resume", cmd_net},
    {"engine", cmd_engine}, {"liveness", cmd_liveness},
};

static int parse_line(pctx *p) {
  const char *cmd = p->t[0].s;
  if (p->t[0].quoted) {
    return fail(p, "expected a command but found a string");
  }
  for (size_t k = 0; k < T2S_ARRAY_LEN(commands); k++) {
    if (strcmp(cmd, commands[k].name) == 0) {
      return commands[k].parse(p);
    }
  }
  return fail(p,
              "unknown command '%s' (expected seed, device, upstream, proxy, link, addr, route, "
              "engine, liveness, at, run, expect)",
              cmd);
}

static sim_scenario *scn_alloc(const char *name, const char *basedir) {
  sim_scenario *scn = calloc(1, sizeof(*scn));
  if (scn == NULL) {
    return NULL;
  }
  scn->name = strdup(name);
  scn->basedir = strdup(basedir);
  scn->faults.reorder_window = 10 * T2S_MILLISECONDS;
  t2s_engine_config defaults;
  t2s_engine_config_default(&defaults);
  scn->debounce = defaults.network_debounce;
  if (scn->name == NULL || scn->basedir == NULL) {
    sim_scenario_del(scn);
    return NULL;
  }
  return scn;
}

int sim_scenario_parse(sim_scenario **pscn, const char *text, const char *name, const char *basedir,
                       char *err, size_t errlen) {
  sim_scenario *scn = scn_alloc(name, basedir);
  if (scn == NULL) {
    snprintf(err, errlen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  pctx *p = calloc(1, sizeof(*p));
  char *line = malloc(MAX_LINE + 1), *toks = malloc(MAX_LINE + 2);
  int rv = 0;
  if (p == NULL || line == NULL || toks == NULL) {
    rv = T2S_ERR_NOMEM;
    snprintf(err, errlen, "out of memory");
  }
  const char *s = text;
  /* Bounded by the text: each iteration consumes one line. */
  for (int lineno = 1; rv == 0 && *s; lineno++) {
    const char *eol = strchr(s, '\n');
    size_t len = eol ? (size_t)(eol - s) : strlen(s);
    p->scn = scn;
    p->line = lineno;
    p->err = err;
    p->errlen = errlen;
    if (len > MAX_LINE) {
      rv = fail(p, "line longer than %d characters", MAX_LINE);
      break;
    }
    memcpy(line, s, len);
    line[len] = 0;
    s = eol ? eol + 1 : s + len;
    rv = tokenize(p, line, toks);
    if (rv == 0 && p->n > 0) {
      rv = parse_line(p);
    }
  }
  /* Every client named by an expectation must exist. */
  for (size_t k = 0; rv == 0 && k < scn->nexps; k++) {
    expect *e = &scn->exps[k];
    if ((e->type == EXP_CLIENT || e->type == EXP_UNTOUCHED) && !client_name_taken(scn, e->name)) {
      p->line = e->line;
      rv = fail(p, "expect: no client is called '%s'", e->name);
    }
  }
  free(p);
  free(line);
  free(toks);
  if (rv != 0) {
    sim_scenario_del(scn);
    return rv == T2S_ERR_NOMEM ? rv : T2S_ERR_MALFORMED;
  }
  *pscn = scn;
  return 0;
}

int sim_scenario_load(sim_scenario **pscn, const char *path, char *err, size_t errlen) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    snprintf(err, errlen, "%s: cannot open the scenario", path);
    return T2S_ERR_NOT_FOUND;
  }
  size_t cap = 4096, len = 0;
  char *text = malloc(cap);
  /* Bounded by the file size (scenarios are capped at 16 MiB). */
  while (text != NULL) {
    if (len + 1 >= cap) {
      if (cap >= 16 * 1024 * 1024) {
        free(text);
        fclose(f);
        snprintf(err, errlen, "%s: scenario larger than 16 MiB", path);
        return T2S_ERR_LIMIT;
      }
      char *t = realloc(text, cap * 2);
      if (t == NULL) {
        free(text);
        text = NULL;
        break;
      }
      text = t;
      cap *= 2;
    }
    size_t n = fread(text + len, 1, cap - len - 1, f);
    if (n == 0) {
      break;
    }
    len += n;
  }
  fclose(f);
  if (text == NULL) {
    snprintf(err, errlen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  text[len] = 0;
  if (memchr(text, 0, len) != NULL) {
    free(text);
    snprintf(err, errlen, "%s: not a text file (NUL byte)", path);
    return T2S_ERR_MALFORMED;
  }
  char *dir = strdup(path);
  char *slash = dir ? strrchr(dir, '/') : NULL;
  if (dir && slash) {
    *slash = 0;
    if (dir[0] == 0) {
      strcpy(dir, "/");
    }
  } else if (dir) {
    dir[0] = 0;
  }
  int rv = dir ? sim_scenario_parse(pscn, text, path, dir, err, errlen) : T2S_ERR_NOMEM;
  free(dir);
  free(text);
  return rv;
}

int sim_scenario_new_replay(sim_scenario **pscn, const char *path, char *err, size_t errlen) {
  sim_scenario *scn = scn_alloc("replay", "");
  if (scn == NULL) {
    snprintf(err, errlen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  sim_pcap_reader *r;
  int rv = sim_pcap_reader_open(&r, path, err, errlen);
  if (rv != 0) {
    sim_scenario_del(scn);
    return rv;
  }
  /* The capture's span bounds the run (with an hour after it for timers to settle). */
  const uint8_t *pkt;
  size_t len;
  t2s_tstamp ts, first = 0;
  bool have_first = false;
  while (sim_pcap_reader_next(r, &pkt, &len, &ts, err, errlen) == 1) {
    if (!have_first) {
      first = ts;
      have_first = true;
    } else if (ts > first && ts - first > scn->replay_span) {
      scn->replay_span = ts - first;
    }
  }
  err[0] = 0;
  sim_pcap_reader_close(r);
  action a;
  memset(&a, 0, sizeof(a));
  a.type = ACT_REPLAY;
  a.path = strdup(path);
  if (a.path == NULL || add_action(scn, &a) != 0) {
    free(a.path);
    sim_scenario_del(scn);
    return T2S_ERR_NOMEM;
  }
  up_rule *ru = calloc(1, sizeof(*ru));
  if (ru == NULL) {
    sim_scenario_del(scn);
    return T2S_ERR_NOMEM;
  }
  ru->is_default = true;
  ru->beh.kind = SIM_UP_ECHO;
  ru->beh.reset_after = UINT64_MAX;
  ru->beh.latency = 1 * T2S_MILLISECONDS;
  scn->rules = ru;
  scn->nrules = 1;
  *pscn = scn;
  return 0;
}

void sim_scenario_del(sim_scenario *scn) {
  if (scn == NULL) {
    return;
  }
  for (size_t i = 0; i < scn->nacts; i++) {
    free(scn->acts[i].path);
    free(scn->acts[i].text);
  }
  for (size_t i = 0; i < scn->nexps; i++) {
    free(scn->exps[i].text);
  }
  free(scn->acts);
  free(scn->exps);
  free(scn->netcfg);
  free(scn->samples);
  free(scn->rules);
  free(scn->name);
  free(scn->basedir);
  free(scn);
}

bool sim_scenario_seed(const sim_scenario *scn, uint64_t *seed) {
  if (scn->has_seed) {
    *seed = scn->seed;
  }
  return scn->has_seed;
}

t2s_tstamp sim_scenario_until(const sim_scenario *scn) {
  return scn->has_until ? scn->until : T2S_TSTAMP_MAX;
}

t2s_tstamp sim_scenario_default_until(const sim_scenario *scn) {
  const t2s_tstamp hour = 3600 * T2S_SECONDS;
  return scn->replay_span > T2S_TSTAMP_MAX - hour ? T2S_TSTAMP_MAX : scn->replay_span + hour;
}

bool sim_scenario_has_clients(const sim_scenario *scn) {
  for (size_t i = 0; i < scn->nacts; i++) {
    if (scn->acts[i].type == ACT_CLIENT) {
      return true;
    }
  }
  return false;
}

/* ---------------- running ---------------- */

int sim_scenario_configure(sim_scenario *scn, sim_world *w, char *err, size_t errlen) {
  if (scn->has_mtu) {
    w->dev.mtu = scn->mtu;
  }
  w->dev.faults = scn->faults;
  for (size_t i = 0; i < scn->nrules; i++) {
    const up_rule *r = &scn->rules[i];
    if (r->is_default) {
      sim_upstream_set_default(w->up, &r->beh);
    } else if (sim_upstream_add_rule(w->up, &r->dst, &r->beh) != 0) {
      snprintf(err, errlen, "out of memory");
      return T2S_ERR_NOMEM;
    }
  }
  w->cfg.network_debounce = scn->debounce;
  if (scn->udp_timeout) {
    w->cfg.udp_timeout = scn->udp_timeout;
  }
  if (scn->dns_timeout) {
    w->cfg.dns_timeout = scn->dns_timeout;
  }
  if (scn->max_udp_sessions) {
    w->cfg.max_udp_sessions = (uint32_t)scn->max_udp_sessions;
  }
  if (scn->has_policy) {
    w->cfg.on_network_change = scn->policy;
  }
  if (scn->has_net) {
    w->net = sim_net_new(w);
    if (w->net == NULL) {
      snprintf(err, errlen, "out of memory");
      return T2S_ERR_NOMEM;
    }
    for (size_t i = 0; i < scn->nnetcfg; i++) {
      int rv = sim_net_configure(w->net, &scn->netcfg[i], err, errlen);
      if (rv != 0) {
        return rv;
      }
    }
  }
  if (scn->has_proxy && sim_proxy_install(w, &scn->proxy) != 0) {
    snprintf(err, errlen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  if (sim_scenario_has_clients(scn)) {
    int rv = sim_clients_new(w);
    if (rv != 0) {
      snprintf(err, errlen, "cannot create the client hosts: %s", t2s_strerror(rv));
      return rv;
    }
  }
  return 0;
}

static const char *act_name(act_type t) {
  switch (t) {
  case ACT_REPLAY:
    return "replay";
  case ACT_INJECT_ECHO:
    return "inject-echo";
  case ACT_CLIENT:
    return "client";
  case ACT_NET:
    return "net";
  }
  return "?";
}

static void run_action(void *arg, sim_event *ev, t2s_tstamp now) {
  sim_scenario *scn = arg;
  sim_world *w = scn->w;
  const action *a = &scn->acts[ev->u64a];
  uint64_t k = ev->u64b; /* repetition index (inject-echo count) */
  if (k == 0) {
    sim_log_begin(&w->log, now, "scenario");
    if (a->line > 0) {
      sim_log_u64(&w->log, "line", (uint64_t)a->line);
    }
    sim_log_str(&w->log, "action", act_name(a->type));
    if (a->type == ACT_CLIENT) {
      sim_log_str(&w->log, "client", a->client.name);
    }
    sim_log_end(&w->log);
  }
  switch (a->type) {
  case ACT_REPLAY:
    break; /* scheduled by sim_world_replay */
  case ACT_INJECT_ECHO: {
    uint8_t *buf = malloc(65536 + 64);
    if (buf == NULL) {
      return;
    }
    t2s_ssize n = sim_build_echo_request(buf, 65536 + 64, &a->src, &a->dst, a->id,
                                         (uint16_t)(a->seq + k), (size_t)a->size);
    if (n > 0) {
      sim_world_to_engine(w, buf, (size_t)n, SIM_ORIGIN_INJECT, now);
    }
    free(buf);
    break;
  }
  case ACT_CLIENT: {
    sim_client_spec spec = a->client;
    spec.text = a->text;
    if (w->clients) {
      sim_clients_start(w->clients, &spec, now);
    }
    break;
  }
  case ACT_NET:
    if (w->net) {
      sim_net_apply(w->net, &a->net, now);
    }
    break;
  }
}

/* Samples what an "expect ... after T" expectation looks at (just after everything due at T). */
static void take_sample(const expect *e, sim_world *w, sample *sm) {
  sm->taken = true;
  if (w->engine == NULL) {
    return;
  }
  if (e->type == EXP_EGRESS) {
    const t2s_egress *eg = t2s_engine_get_egress(w->engine);
    snprintf(sm->ifname, sizeof(sm->ifname), "%s", eg->ifindex ? eg->ifname : "none");
  } else if (e->type == EXP_NET_STATE) {
    sm->value = (uint64_t)t2s_engine_net_state(w->engine);
  } else {
    t2s_engine_stats st;
    t2s_engine_get_stats(w->engine, &st);
    sm->value = st.udp_sessions_active;
  }
}

static void sample_event(void *arg, sim_event *ev, t2s_tstamp now) {
  sim_scenario *scn = arg;
  (void)now;
  take_sample(&scn->exps[ev->u64a], scn->w, &scn->samples[ev->u64a]);
}

int sim_scenario_schedule(sim_scenario *scn, sim_world *w, char *err, size_t errlen) {
  scn->w = w;
  free(scn->samples);
  scn->samples = calloc(scn->nexps ? scn->nexps : 1, sizeof(*scn->samples));
  if (scn->samples == NULL) {
    snprintf(err, errlen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  for (size_t k = 0; k < scn->nexps; k++) {
    const expect *e = &scn->exps[k];
    /* 1 ns after T: every event and timer due at T has run. */
    if (e->has_after && sim_loop_schedule(&w->loop, e->after + 1, SIM_EV_SCENARIO, sample_event,
                                          scn, k, 0, NULL, 0) != 0) {
      snprintf(err, errlen, "out of memory");
      return T2S_ERR_NOMEM;
    }
  }
  for (size_t i = 0; i < scn->nacts; i++) {
    const action *a = &scn->acts[i];
    int rv = 0;
    if (a->type == ACT_REPLAY) {
      rv = sim_world_replay(w, a->path, a->at, err, errlen);
      if (rv == 0) {
        rv = sim_loop_schedule(&w->loop, a->at, SIM_EV_SCENARIO, run_action, scn, i, 0, NULL, 0);
      }
    } else if (a->type == ACT_INJECT_ECHO) {
      /* The echo id is drawn now, in file order, so it does not depend on timing. */
      if (!scn->acts[i].has_id) {
        scn->acts[i].id = (uint16_t)w->next_inject_id++;
      }
      for (uint64_t k = 0; rv == 0 && k < a->count; k++) {
        rv = sim_loop_schedule(&w->loop, a->at + k * a->interval, SIM_EV_SCENARIO, run_action, scn,
                               i, k, NULL, 0);
      }
    } else {
      rv = sim_loop_schedule(&w->loop, a->at, SIM_EV_SCENARIO, run_action, scn, i, 0, NULL, 0);
    }
    if (rv != 0) {
      if (err[0] == 0) {
        snprintf(err, errlen, "line %d: %s", a->line, t2s_strerror(rv));
      }
      return rv;
    }
  }
  return 0;
}

/* ---------------- expectations ---------------- */

/* "1.5s", "250ms", "0s": the shortest exact form. */
static char *fmt_time(t2s_tstamp t, char *buf, size_t len) {
  if (t % T2S_SECONDS == 0) {
    snprintf(buf, len, "%llus", (unsigned long long)(t / T2S_SECONDS));
  } else if (t % T2S_MILLISECONDS == 0) {
    snprintf(buf, len, "%llums", (unsigned long long)(t / T2S_MILLISECONDS));
  } else if (t % T2S_MICROSECONDS == 0) {
    snprintf(buf, len, "%lluus", (unsigned long long)(t / T2S_MICROSECONDS));
  } else {
    snprintf(buf, len, "%lluns", (unsigned long long)t);
  }
  return buf;
}

static bool compare(uint64_t actual, cmp_op op, uint64_t want) {
  switch (op) {
  case OP_EQ:
    return actual == want;
  case OP_NE:
    return actual != want;
  case OP_LT:
    return actual < want;
  case OP_LE:
    return actual <= want;
  case OP_GT:
    return actual > want;
  case OP_GE:
    return actual >= want;
  }
  return false;
}

static uint64_t counter_value(const expect *e, sim_world *w, const t2s_engine_stats *st) {
  switch (e->ctr) {
  case C_PACKETS_OUT:
    return w->counts.out;
  case C_PACKETS_IN:
    return w->counts.in_by_origin[SIM_ORIGIN_PCAP] + w->counts.in_by_origin[SIM_ORIGIN_INJECT] +
           w->counts.in_by_origin[SIM_ORIGIN_CLIENT];
  case C_ECHO_REPLIES:
    return st->icmp_echo_replies;
  case C_DROPS:
    return st->drops[e->drop_reason];
  case C_DROPS_TOTAL: {
    uint64_t n = 0;
    for (int r = 1; r < T2S_DROP_MAX; r++) {
      n += st->drops[r];
    }
    return n;
  }
  case C_STAT:
    return *(const uint64_t *)((const char *)st + e->stat_off);
  case C_UP_OPEN:
    return sim_upstream_open_streams(w->up);
  case C_CLIENTS_UNFINISHED:
    return sim_clients_unfinished(w->clients);
  case C_INVARIANTS:
    return w->invariant_failures;
  }
  return 0;
}

/* Evaluates one expectation; writes what was found into actual. */
static bool eval(const expect *e, sim_world *w, const t2s_engine_stats *st, char *actual,
                 size_t alen) {
  char tb[32];
  switch (e->type) {
  case EXP_COUNTER: {
    uint64_t v = counter_value(e, w, st);
    snprintf(actual, alen, "%llu", (unsigned long long)v);
    return compare(v, e->op, e->value);
  }
  case EXP_CLIENT: {
    const sim_client_result *r = sim_clients_result(w->clients, e->name);
    if (r == NULL) {
      snprintf(actual, alen, "never started");
      return false;
    }
    if (r->state == SIM_CLIENT_CONNECTING || r->state == SIM_CLIENT_OPEN ||
        r->state == SIM_CLIENT_IDLE) {
      snprintf(actual, alen, "%s (sent %llu, received %llu)", sim_client_state_name(r->state),
               (unsigned long long)r->sent, (unsigned long long)r->received);
      return false;
    }
    snprintf(actual, alen, "%s at %s (sent %llu, received %llu)", sim_client_state_name(r->state),
             fmt_time(r->ended_at, tb, sizeof(tb)), (unsigned long long)r->sent,
             (unsigned long long)r->received);
    bool state_ok =
        r->state == e->want || (e->want == SIM_CLIENT_RESET && r->state == SIM_CLIENT_REFUSED);
    return state_ok && (!e->has_before || r->ended_at <= e->before);
  }
  case EXP_UP_RECEIVED: {
    sim_up_dst_stats ds;
    sim_upstream_dst_stats(w->up, &e->dst, &ds);
    snprintf(actual, alen, "%llu bytes in %llu streams, %llu differing from the pattern",
             (unsigned long long)ds.rx_bytes, (unsigned long long)ds.streams,
             (unsigned long long)ds.rx_bad_pattern);
    return ds.rx_bytes == e->value && (!e->intact || ds.rx_bad_pattern == 0);
  }
  case EXP_UP_STREAMS: {
    sim_up_dst_stats ds;
    sim_upstream_dst_stats(w->up, &e->dst, &ds);
    snprintf(actual, alen, "%llu", (unsigned long long)ds.streams);
    return compare(ds.streams, e->op, e->value);
  }
  case EXP_UNTOUCHED: {
    const sim_client_result *r = sim_clients_result(w->clients, e->name);
    if (r == NULL) {
      snprintf(actual, alen, "never started");
      return false;
    }
    snprintf(actual, alen, "%s at %s (sent %llu, received %llu)", sim_client_state_name(r->state),
             fmt_time(r->ended_at, tb, sizeof(tb)), (unsigned long long)r->sent,
             (unsigned long long)r->received);
    return r->state != SIM_CLIENT_RESET && r->state != SIM_CLIENT_REFUSED &&
           r->state != SIM_CLIENT_FAILED;
  }
  case EXP_UP_VIA: {
    char list[256];
    size_t n = sim_upstream_dst_ifaces(w->up, &e->dst, list, sizeof(list));
    snprintf(actual, alen, "%llu sockets via %.200s", (unsigned long long)n, n ? list : "nothing");
    return n > 0 && strcmp(list, e->ifname) == 0;
  }
  case EXP_EGRESS:
  case EXP_NET_STATE:
  case EXP_UDP_AFTER:
    break; /* sim_scenario_check: they need their sample */
  }
  return false;
}

int sim_scenario_check(const sim_scenario *scn, sim_world *w, FILE *out, int *ppassed) {
  t2s_engine_stats st;
  memset(&st, 0, sizeof(st));
  if (w->engine) {
    t2s_engine_get_stats(w->engine, &st);
  }
  int failed = 0, passed = 0;
  for (size_t i = 0; i < scn->nexps; i++) {
    const expect *e = &scn->exps[i];
    char actual[256];
    bool ok;
    if (e->type == EXP_EGRESS || e->type == EXP_NET_STATE || e->type == EXP_UDP_AFTER) {
      sample end, *sm = &scn->samples[i];
      if (!e->has_after) {
        memset(&end, 0, sizeof(end));
        take_sample(e, w, &end); /* at the end of the run */
        sm = &end;
      }
      if (!sm->taken) {
        snprintf(actual, sizeof(actual), "never sampled: the run ended before then");
        ok = false;
      } else if (e->type == EXP_EGRESS) {
        snprintf(actual, sizeof(actual), "%s", sm->ifname);
        ok = strcmp(sm->ifname, e->ifname) == 0;
      } else if (e->type == EXP_NET_STATE) {
        snprintf(actual, sizeof(actual), "%s", t2s_net_state_name((t2s_net_state)sm->value));
        ok = sm->value == (uint64_t)e->state;
      } else {
        snprintf(actual, sizeof(actual), "%llu", (unsigned long long)sm->value);
        ok = compare(sm->value, e->op, e->value);
      }
    } else {
      ok = eval(e, w, &st, actual, sizeof(actual));
    }
    sim_log_begin(&w->log, w->loop.now, "expect");
    sim_log_u64(&w->log, "line", (uint64_t)e->line);
    sim_log_str(&w->log, "expect", e->text);
    sim_log_bool(&w->log, "ok", ok);
    sim_log_str(&w->log, "actual", actual);
    sim_log_end(&w->log);
    if (ok) {
      passed++;
    } else {
      failed++;
      if (out) {
        fprintf(out, "%s:%d: expectation failed: %s (actual: %s)\n", scn->name, e->line, e->text,
                actual);
      }
    }
  }
  if (ppassed) {
    *ppassed = passed;
  }
  return failed;
}
