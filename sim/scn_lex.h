/*
 * scn_lex.h: the words of the scenario language (docs/scenarios.md, "Lexical rules"): one
 * line split into tokens, and the readers of the values the commands take (durations, sizes,
 * counts, percentages, addresses, comparisons, client names, NAME VALUE options).
 * Every reader takes the line and a token index; on a mistake it writes
 * "FILE:LINE: what was expected and what was found" into the line's error buffer and returns
 * T2S_ERR_MALFORMED (scn_fail). The commands that use them are in scn_parse*.c.
 */
#ifndef T2S_SIM_SCN_LEX_H
#define T2S_SIM_SCN_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"
#include "sim_net.h"

#define SCN_MAX_TOKENS 64
#define SCN_MAX_LINE 4096
#define SCN_MAX_NAME 31 /* client names */

typedef struct sim_scenario sim_scenario;

/* One token: a word, or the contents of a "quoted string" with its escapes resolved. */
typedef struct scn_tok {
  char *s;
  bool quoted;
} scn_tok;

/* One line being parsed: its tokens, where it is (for messages) and where errors go. */
typedef struct scn_line {
  sim_scenario *scn;   /* the scenario the parser fills (not used by the readers) */
  const char *name;    /* the scenario's name in messages */
  int line;            /* 1-based line number */
  char *err;           /* receives "NAME:LINE: message" */
  size_t errlen;       /* size of err */
  t2s_tstamp debounce; /* the value of the word "debounce" in durations */
  scn_tok t[SCN_MAX_TOKENS];
  int n; /* number of tokens */
} scn_line;

/* Writes "NAME:LINE: message" into p->err. Returns T2S_ERR_MALFORMED. */
__attribute__((format(printf, 2, 3))) int scn_fail(scn_line *p, const char *fmt, ...);

/* Splits text (one line, no newline) into p->t: words separated by blanks, "quoted strings"
 * with \" \\ \n \r \t \xHH escapes; a # outside quotes starts a comment. The token strings
 * are written into out (SCN_MAX_LINE + 2 bytes). Returns 0 or scn_fail(). */
int scn_tokenize(scn_line *p, const char *text, char *out);

/* True when token i is the unquoted word. */
bool scn_is(const scn_line *p, int i, const char *word);
/* Token i, or "end of line" past the last one (for messages). */
const char *scn_word(const scn_line *p, int i);
/* Fails with "WHAT: unexpected 'X'" unless token i is past the end. */
int scn_end(scn_line *p, int i, const char *what);

/* A duration at token *pi: TERM [+ TERM]..., a term being NUMBER UNIT (ns us ms s m min h),
 * 0 or the word "debounce". Advances *pi past it. */
int scn_duration(scn_line *p, int *pi, t2s_tstamp *out, const char *what);
/* A size at token i: NUMBER[B|KB|KiB|MB|MiB|GB|GiB], case-insensitive, K = 1024. */
int scn_size(scn_line *p, int i, uint64_t *out, const char *what);
/* A whole number at token i. */
int scn_count(scn_line *p, int i, uint64_t *out, const char *what);
/* A probability "P%" at token i (up to 6 decimals) as the ratio num/den. */
int scn_percent(scn_line *p, int i, uint32_t *num, uint32_t *den, const char *what);
/* An address at token i, with a port when want_port, else without. */
int scn_addr(scn_line *p, int i, t2s_addr *a, bool want_port, const char *what);
/* ADDR/LEN at token i. */
int scn_cidr(scn_line *p, int i, sim_cidr *out, const char *what);

/* The comparisons of expectations. */
typedef enum scn_cmp { SCN_EQ = 0, SCN_NE, SCN_LT, SCN_LE, SCN_GT, SCN_GE } scn_cmp;
/* An optional comparison at token *pi (== = != < <= > >=): *op and *pi advanced past it, or
 * SCN_EQ and *pi unchanged. Never fails. */
void scn_op(const scn_line *p, int *pi, scn_cmp *op);

/* A client name: a letter, then letters, digits, - or _; at most SCN_MAX_NAME characters. */
bool scn_valid_name(const char *s);

/* ---------------- NAME VALUE options after a command ---------------- */

typedef enum scn_opt_kind {
  SCN_OPT_DURATION = 0, /* t2s_tstamp */
  SCN_OPT_SIZE,         /* uint64_t */
  SCN_OPT_COUNT,        /* uint64_t */
  SCN_OPT_COUNT32,      /* uint32_t */
  SCN_OPT_PERCENT,      /* uint32_t numerator and denominator */
} scn_opt_kind;

/* An option whose value goes into a field of the struct the command fills (its base). */
typedef struct scn_opt {
  const char *name;
  scn_opt_kind kind;
  size_t off;        /* the field (SCN_OPT_PERCENT: the numerator) */
  size_t den_off;    /* SCN_OPT_PERCENT: the denominator */
  uint64_t min, max; /* the values accepted (max 0: no limit; not for SCN_OPT_PERCENT) */
  const char *range; /* the message for a value outside them: "COMMAND NAME: RANGE" */
} scn_opt;

#define SCN_OPT_DUR(name, type, field)                                                             \
  { name, SCN_OPT_DURATION, offsetof(type, field), 0, 0, 0, NULL }
#define SCN_OPT_PCT(name, type, field)                                                             \
  { name, SCN_OPT_PERCENT, offsetof(type, field##_num), offsetof(type, field##_den), 0, 0, NULL }
#define SCN_OPT_NUM(name, kind, type, field, min, max, range)                                      \
  { name, kind, offsetof(type, field), 0, min, max, range }

/* The option of opts named by token i, or NULL. */
const scn_opt *scn_find_opt(const scn_line *p, int i, const scn_opt *opts, size_t nopts);
/* Reads the value of option o, named by token *pi of command cmd, into its field of base, and
 * advances *pi past the value. Returns 0 or scn_fail(). */
int scn_read_opt(scn_line *p, int *pi, const char *cmd, const scn_opt *o, void *base);

#endif
