/* config_file.c: the --config file in YAML (see config_file.h, docs/config.md). */
#include "config_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define CONFIG_FILE_MAX (1u << 20) /* bytes: a config file is small; this bounds the read */

typedef struct cfg_ctx {
  const char *path;
  yaml_document_t *doc;
  t2s_cli_opts *o;
  t2s_cli_origin *origin;
  FILE *err;
} cfg_ctx;

static unsigned line_of(const yaml_node_t *n) {
  return (unsigned)n->start_mark.line + 1;
}

static int fail(cfg_ctx *c, const yaml_node_t *n, const char *key, const char *value,
                const char *why) {
  t2s_cli_file_error(c->err, c->path, n ? line_of(n) : 1, key, value, why);
  return -1;
}

static const char *scalar(const yaml_node_t *n) {
  return (const char *)n->data.scalar.value;
}

/* A plain `~`, `null` or nothing: YAML's null. */
static bool is_null(const yaml_node_t *n) {
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
    return false;
  }
  const char *s = scalar(n);
  return !*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
         strcmp(s, "NULL") == 0;
}

/* A plain YAML 1.1 boolean: 1 true, 0 false, -1 not one. */
static int boolean(const yaml_node_t *n) {
  if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
    return -1;
  }
  static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
  for (size_t i = 0; i < T2S_ARRAY_LEN(yes); i++) {
    if (strcasecmp(scalar(n), yes[i]) == 0) {
      return 1;
    }
    if (strcasecmp(scalar(n), no[i]) == 0) {
      return 0;
    }
  }
  return -1;
}

static int apply(cfg_ctx *c, const t2s_cli_option *opt, const yaml_node_t *n, const char *v) {
  char buf[256];
  const char *why = t2s_cli_apply(c->o, opt, v, buf, sizeof(buf));
  return why ? fail(c, n, opt->name, v, why) : 0;
}

/* Appends "%XX"-escaped s to out (RFC 3986 unreserved bytes stay). */
static bool pct_append(char *out, size_t outlen, const char *s) {
  size_t o = strlen(out);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '.' || ch == '_' || ch == '~';
    if (o + (plain ? 1 : 3) >= outlen) {
      return false;
    }
    if (plain) {
      out[o++] = (char)ch;
    } else {
      snprintf(out + o, outlen - o, "%%%02X", ch);
      o += 3;
    }
  }
  out[o] = '\0';
  return true;
}

/* A proxy given as a map: {url: socks5://HOST:PORT, username: U, password: P}. Its
 * credentials go into the URL (escaped), which then takes the command line's path. */
static int proxy_map(cfg_ctx *c, const t2s_cli_option *opt, const yaml_node_t *n) {
  const yaml_node_t *url = NULL, *user = NULL, *pass = NULL;
  for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
    const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
    const yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
    if (k->type != YAML_SCALAR_NODE) {
      return fail(c, k, opt->name, NULL, "a proxy's keys are url, username and password");
    }
    const yaml_node_t **slot = strcmp(scalar(k), "url") == 0        ? &url
                               : strcmp(scalar(k), "username") == 0 ? &user
                               : strcmp(scalar(k), "password") == 0 ? &pass
                                                                    : NULL;
    if (slot == NULL) {
      char why[320];
      snprintf(why, sizeof(why), "unknown key '%.200s' in a proxy (url, username, password)",
               scalar(k));
      return fail(c, k, opt->name, NULL, why);
    }
    if (*slot) {
      return fail(c, k, opt->name, scalar(k), "given twice in one proxy");
    }
    if (v->type != YAML_SCALAR_NODE || is_null(v)) {
      return fail(c, v, opt->name, scalar(k), "needs a single value");
    }
    *slot = v;
  }
  if (url == NULL) {
    return fail(c, n, opt->name, NULL, "a proxy given as a map needs a url");
  }
  if (pass && !user) {
    return fail(c, pass, opt->name, NULL, "a password needs a username");
  }
  if (!user) {
    return apply(c, opt, url, scalar(url));
  }
  const char *u = scalar(url);
  const char *sep = strstr(u, "://");
  if (sep == NULL) {
    return apply(c, opt, url, u); /* the URL's own message */
  }
  if (strchr(sep + 3, '@')) {
    return fail(c, user, opt->name, NULL,
                "credentials both in the url and in username/password: give them once");
  }
  char full[3 * 2 * T2S_PROXY_FIELD_MAX + T2S_PROXY_FIELD_MAX + 64] = "";
  size_t schemelen = (size_t)(sep + 3 - u);
  if (schemelen + 1 >= sizeof(full)) {
    return apply(c, opt, url, u);
  }
  memcpy(full, u, schemelen);
  full[schemelen] = '\0';
  bool ok = pct_append(full, sizeof(full), scalar(user));
  if (ok && pass) {
    ok = strlen(full) + 1 < sizeof(full);
    strcat(full, ":");
    ok = ok && pct_append(full, sizeof(full), scalar(pass));
  }
  if (!ok || strlen(full) + 1 + strlen(sep + 3) >= sizeof(full)) {
    return fail(c, user, opt->name, NULL, "username or password longer than 255 bytes");
  }
  strcat(full, "@");
  strcat(full, sep + 3);
  char buf[256];
  const char *why = t2s_cli_apply(c->o, opt, full, buf, sizeof(buf));
  /* The message shows the URL as written: the credentials stay out of the log. */
  int rv = why ? fail(c, url, opt->name, u, why) : 0;
  explicit_bzero(full, sizeof(full));
  return rv;
}

/* One value (a scalar, or for the proxy a map) of an option that takes one. */
static int one_value(cfg_ctx *c, const t2s_cli_option *opt, const yaml_node_t *n) {
  if (n->type == YAML_MAPPING_NODE && opt->id == t2s_cli_find("proxy")->id) {
    return proxy_map(c, opt, n);
  }
  if (n->type != YAML_SCALAR_NODE) {
    return fail(c, n, opt->name, NULL,
                (opt->flags & T2S_CLI_REPEATABLE) ? "a list holds single values, not lists or maps"
                                                  : "expects a single value, not a list or a map");
  }
  if (is_null(n)) {
    return fail(c, n, opt->name, NULL, "needs a value");
  }
  return apply(c, opt, n, scalar(n));
}

static int key_value(cfg_ctx *c, const yaml_node_t *k, const yaml_node_t *v) {
  if (k->type != YAML_SCALAR_NODE) {
    return fail(c, k, NULL, NULL, "a key must be an option's name (docs/config.md)");
  }
  const char *key = scalar(k);
  const t2s_cli_option *opt = t2s_cli_find(key);
  if (opt == NULL) {
    char why[320];
    snprintf(why, sizeof(why),
             "unknown key '%.200s' (the keys are the long options: see "
             "docs/config.md)",
             key);
    return fail(c, k, NULL, NULL, why);
  }
  if (opt->flags & T2S_CLI_CMDLINE_ONLY) {
    return fail(c, k, key, NULL, "is a command-line option only");
  }
  size_t nopts;
  const t2s_cli_option *table = t2s_cli_options(&nopts);
  size_t idx = 0;
  for (size_t i = 0; i < nopts; i++) {
    if (table[i].id == opt->id && !(table[i].flags & T2S_CLI_ALIAS)) {
      idx = i; /* an alias and its option share one line slot */
      break;
    }
  }
  if (c->origin->line[idx] != 0) {
    char why[96];
    snprintf(why, sizeof(why), "given twice (first on line %u); a list is written [a, b]",
             c->origin->line[idx]);
    return fail(c, k, key, NULL, why);
  }
  c->origin->line[idx] = line_of(k);
  switch (opt->arg) {
  case T2S_CLI_ARG_NONE: {
    int b = boolean(v);
    if (b < 0) {
      return fail(c, v, key, v->type == YAML_SCALAR_NODE ? scalar(v) : NULL,
                  "expects true or false");
    }
    return b ? apply(c, opt, v, NULL) : 0;
  }
  case T2S_CLI_ARG_OPTIONAL: {
    int b = boolean(v);
    if (b >= 0) {
      return b ? apply(c, opt, v, NULL) : 0; /* true: the default value; false: off */
    }
    return one_value(c, opt, v);
  }
  case T2S_CLI_ARG_REQUIRED:
    break;
  }
  if (v->type == YAML_SEQUENCE_NODE) {
    if (!(opt->flags & T2S_CLI_REPEATABLE)) {
      return fail(c, v, key, NULL, "expects a single value, not a list");
    }
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
      if (one_value(c, opt, yaml_document_get_node(c->doc, *it)) != 0) {
        return -1;
      }
    }
    return 0;
  }
  return one_value(c, opt, v);
}

int t2s_config_parse(const char *path, const char *data, size_t len, t2s_cli_opts *o,
                     t2s_cli_origin *origin, FILE *err) {
  snprintf(origin->path, sizeof(origin->path), "%s", path);
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) {
    fprintf(err, "tun2sock: %s: out of memory\n", path);
    return -1;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
  yaml_document_t doc;
  if (!yaml_parser_load(&parser, &doc)) {
    char why[256];
    snprintf(why, sizeof(why), "not valid YAML: %s%s%s%s", parser.problem ? parser.problem : "?",
             parser.context ? " (" : "", parser.context ? parser.context : "",
             parser.context ? ")" : "");
    if (parser.context) {
      snprintf(why + strlen(why) - 1, sizeof(why) - strlen(why) + 1, " on line %u)",
               (unsigned)parser.context_mark.line + 1);
    }
    t2s_cli_file_error(err, path, (unsigned)parser.problem_mark.line + 1, NULL, NULL, why);
    yaml_parser_delete(&parser);
    return -1;
  }
  int rv = 0;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  cfg_ctx c = {.path = path, .doc = &doc, .o = o, .origin = origin, .err = err};
  if (root == NULL || is_null(root)) {
    /* an empty file: every option keeps its default */
  } else if (root->type != YAML_MAPPING_NODE) {
    rv = fail(&c, root, NULL, NULL, "the file must be a map of option: value (docs/config.md)");
  } else {
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top && rv == 0; p++) {
      rv = key_value(&c, yaml_document_get_node(&doc, p->key),
                     yaml_document_get_node(&doc, p->value));
    }
  }
  if (rv == 0) {
    /* A second document would be ignored silently: refuse it. */
    yaml_document_t next;
    if (!yaml_parser_load(&parser, &next)) {
      rv = fail(&c, NULL, NULL, NULL, parser.problem ? parser.problem : "not valid YAML");
    } else {
      if (yaml_document_get_root_node(&next) != NULL) {
        t2s_cli_file_error(err, path, (unsigned)next.start_mark.line + 1, NULL, NULL,
                           "one document only (a second '---' starts another)");
        rv = -1;
      }
      yaml_document_delete(&next);
    }
  }
  yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  return rv;
}

int t2s_config_file_load(void *arg, const char *path, t2s_cli_opts *o, t2s_cli_origin *origin,
                         FILE *err) {
  (void)arg;
  FILE *f = fopen(path, "re");
  if (f == NULL) {
    fprintf(err, "tun2sock: --config '%s': %s\n", path, strerror(errno));
    return -1;
  }
  char *data = malloc(CONFIG_FILE_MAX + 1);
  if (data == NULL) {
    fclose(f);
    fprintf(err, "tun2sock: --config '%s': out of memory\n", path);
    return -1;
  }
  size_t n = fread(data, 1, CONFIG_FILE_MAX + 1, f);
  bool failed = ferror(f) != 0;
  fclose(f);
  int rv = -1;
  if (failed) {
    fprintf(err, "tun2sock: --config '%s': cannot read it\n", path);
  } else if (n > CONFIG_FILE_MAX) {
    fprintf(err, "tun2sock: --config '%s': larger than 1 MiB\n", path);
  } else {
    rv = t2s_config_parse(path, data, n, o, origin, err);
  }
  explicit_bzero(data, n < CONFIG_FILE_MAX ? n : CONFIG_FILE_MAX);
  free(data);
  return rv;
}
