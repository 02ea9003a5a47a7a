/* scn_lex.c: the words of the scenario language: tokens and value readers (scn_lex.h). */
#include "scn_lex.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int scn_fail(scn_line *p, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  snprintf(p->err, p->errlen, "%s:%d: %s", p->name, p->line, msg);
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
int scn_tokenize(scn_line *p, const char *line, char *out) {
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
    if (p->n >= SCN_MAX_TOKENS) {
      return scn_fail(p, "too many words on one line (at most %d)", SCN_MAX_TOKENS);
    }
    scn_tok *t = &p->t[p->n++];
    t->s = out + o;
    t->quoted = false;
    if (*s == '"') {
      t->quoted = true;
      s++;
      for (;;) {
        if (*s == 0) {
          return scn_fail(p, "unterminated string (missing closing \")");
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
              return scn_fail(p, "bad \\x escape in string (two hex digits, not 00, expected)");
            }
            c = (char)(h1 * 16 + h2);
            s += 2;
            break;
          }
          default:
            return scn_fail(p, "unknown escape \\%c in string", e ? e : '0');
          }
        }
        out[o++] = c;
      }
      if (*s != 0 && *s != ' ' && *s != '\t' && *s != '\r' && *s != '#') {
        return scn_fail(p, "a blank is needed after a closing \"");
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

bool scn_is(const scn_line *p, int i, const char *word) {
  return i < p->n && !p->t[i].quoted && strcmp(p->t[i].s, word) == 0;
}

const char *scn_word(const scn_line *p, int i) {
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
int scn_duration(scn_line *p, int *pi, t2s_tstamp *out, const char *what) {
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
      return scn_fail(p, "%s: bad duration '%s'", what, s);
    }
    memcpy(buf, s, len + 1);
    char *save = NULL;
    bool any = false;
    for (char *part = strtok_r(buf, "+", &save); part; part = strtok_r(NULL, "+", &save)) {
      t2s_tstamp v = p->debounce; /* the word "debounce": the engine's debounce */
      if (strcmp(part, "debounce") != 0 && parse_duration_term(part, &v) != 0) {
        return scn_fail(
            p, "%s: bad duration '%s' (expected a number with a unit: ns, us, ms, s, m, h)", what,
            s);
      }
      total += v;
      any = true;
    }
    if (!any) {
      return scn_fail(p, "%s: bad duration '%s'", what, s);
    }
    want_term = s[len - 1] == '+';
    i++;
  }
  if (i == *pi || want_term) {
    return scn_fail(p, "%s: expected a duration (e.g. 500ms, 2s) but found %s", what,
                    scn_word(p, i));
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

int scn_size(scn_line *p, int i, uint64_t *out, const char *what) {
  if (i >= p->n || p->t[i].quoted || parse_size_str(p->t[i].s, out) != 0) {
    return scn_fail(p, "%s: expected a size (e.g. 1000, 64KB, 10MB) but found %s", what,
                    scn_word(p, i));
  }
  return 0;
}

int scn_count(scn_line *p, int i, uint64_t *out, const char *what) {
  if (i >= p->n || p->t[i].quoted || parse_u64_str(p->t[i].s, out) != 0) {
    return scn_fail(p, "%s: expected a whole number but found %s", what, scn_word(p, i));
  }
  return 0;
}

/* A probability "P%" (P may have decimals) as num/den. */
int scn_percent(scn_line *p, int i, uint32_t *num, uint32_t *den, const char *what) {
  const char *s = i < p->n ? p->t[i].s : "";
  uint64_t mant;
  int fd;
  const char *q = s;
  if (i >= p->n || parse_decimal(&q, &mant, &fd) != 0 || strcmp(q, "%") != 0 || fd > 6) {
    return scn_fail(p, "%s: expected a percentage (e.g. 2%%, 0.5%%) but found %s", what,
                    scn_word(p, i));
  }
  uint64_t d = 100 * pow10u(fd);
  if (mant > d) {
    return scn_fail(p, "%s: %s is more than 100%%", what, s);
  }
  *num = (uint32_t)mant;
  *den = (uint32_t)d;
  return 0;
}

int scn_addr(scn_line *p, int i, t2s_addr *a, bool want_port, const char *what) {
  if (i >= p->n || t2s_addr_parse(p->t[i].s, a) != 0) {
    return scn_fail(p, "%s: expected an address%s but found %s", what,
                    want_port ? " with a port (1.2.3.4:80, [2001:db8::1]:80)" : "", scn_word(p, i));
  }
  if (want_port && a->port == 0) {
    return scn_fail(p, "%s: %s needs a port (1.2.3.4:80, [2001:db8::1]:80)", what, p->t[i].s);
  }
  if (!want_port && a->port != 0) {
    return scn_fail(p, "%s: %s must not have a port", what, p->t[i].s);
  }
  return 0;
}

void scn_op(const scn_line *p, int *pi, scn_cmp *op) {
  static const struct {
    const char *s;
    scn_cmp op;
  } ops[] = {{"==", SCN_EQ}, {"=", SCN_EQ}, {"!=", SCN_NE}, {"<", SCN_LT},
             {"<=", SCN_LE}, {">", SCN_GT}, {">=", SCN_GE}};
  *op = SCN_EQ;
  for (size_t k = 0; k < T2S_ARRAY_LEN(ops); k++) {
    if (scn_is(p, *pi, ops[k].s)) {
      *op = ops[k].op;
      (*pi)++;
      return;
    }
  }
}

int scn_end(scn_line *p, int i, const char *what) {
  if (i < p->n) {
    return scn_fail(p, "%s: unexpected '%s'", what, p->t[i].s);
  }
  return 0;
}

bool scn_valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > SCN_MAX_NAME || !isalpha((unsigned char)s[0])) {
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

int scn_cidr(scn_line *p, int i, sim_cidr *out, const char *what) {
  if (i >= p->n || p->t[i].quoted || sim_cidr_parse(p->t[i].s, out) != 0) {
    return scn_fail(p, "%s: expected ADDR/LEN (192.0.2.10/24, 2001:db8::10/64) but found %s", what,
                    scn_word(p, i));
  }
  return 0;
}

/* ---------------- options: NAME VALUE after a command ---------------- */

const scn_opt *scn_find_opt(const scn_line *p, int i, const scn_opt *opts, size_t nopts) {
  for (size_t k = 0; k < nopts; k++) {
    if (scn_is(p, i, opts[k].name)) {
      return &opts[k];
    }
  }
  return NULL;
}

/* Reads the value of option o, named by token *pi of command cmd, into its field of base, and
 * advances *pi past the value. Returns 0 or the error (scn_fail()). */
int scn_read_opt(scn_line *p, int *pi, const char *cmd, const scn_opt *o, void *base) {
  char what[64];
  snprintf(what, sizeof(what), "%s %s", cmd, o->name);
  char *field = (char *)base + o->off;
  int i = *pi + 1;
  uint64_t v = 0;
  int rv;
  switch (o->kind) {
  case SCN_OPT_PERCENT:
    *pi = i + 1;
    return scn_percent(p, i, (uint32_t *)field, (uint32_t *)((char *)base + o->den_off), what);
  case SCN_OPT_DURATION:
    rv = scn_duration(p, &i, &v, what);
    break;
  case SCN_OPT_SIZE:
    rv = scn_size(p, i++, &v, what);
    break;
  default:
    rv = scn_count(p, i++, &v, what);
    break;
  }
  if (rv == 0 && (v < o->min || (o->max != 0 && v > o->max))) {
    rv = scn_fail(p, "%s: %s", what, o->range);
  }
  if (o->kind == SCN_OPT_COUNT32) {
    *(uint32_t *)field = (uint32_t)v;
  } else {
    *(uint64_t *)field = v;
  }
  *pi = i;
  return rv;
}
