/* scn_parse.c: the scenario parser's line loop and the commands that describe the world:
 * seed, device, upstream, liveness, proxy, engine, run (docs/scenarios.md, "The world"). */
#include <stdlib.h>
#include <string.h>

#include "scn_fakedns.h"
#include "scn_parse.h"

static int cmd_seed(scn_line *p) {
  uint64_t v = 0;
  int rv = scn_count(p, 1, &v, "seed");
  if (rv == 0) {
    rv = scn_end(p, 2, "seed");
  }
  if (rv == 0) {
    p->scn->has_seed = true;
    p->scn->seed = v;
  }
  return rv;
}

static const scn_opt device_opts[] = {
    SCN_OPT_DUR("latency", sim_faults, latency),
    SCN_OPT_DUR("reorder-window", sim_faults, reorder_window),
    SCN_OPT_PCT("loss", sim_faults, loss),
    SCN_OPT_PCT("reorder", sim_faults, reorder),
    SCN_OPT_PCT("duplicate", sim_faults, dup),
    SCN_OPT_PCT("corrupt", sim_faults, corrupt),
    SCN_OPT_DUR("jitter", sim_faults, jitter),
};

static int cmd_device(scn_line *p) {
  sim_scenario *scn = p->scn;
  const scn_opt *o;
  int i = 1;
  if (i >= p->n) {
    return scn_fail(p,
                    "device: expected mtu, latency, loss, reorder, duplicate, corrupt, jitter or "
                    "reorder-window");
  }
  while (i < p->n) {
    int rv = 0;
    if (scn_is(p, i, "mtu")) {
      uint64_t v = 0;
      rv = scn_count(p, i + 1, &v, "device mtu");
      if (rv == 0 && (v < 576 || v > 65535)) {
        rv = scn_fail(p, "device mtu: %llu is outside 576..65535", (unsigned long long)v);
      }
      scn->has_mtu = true;
      scn->mtu = (uint32_t)v;
      i += 2;
    } else if ((o = scn_find_opt(p, i, device_opts, T2S_ARRAY_LEN(device_opts))) != NULL) {
      rv = scn_read_opt(p, &i, "device", o, &scn->faults);
    } else {
      return scn_fail(
          p,
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

static const scn_opt upstream_opts[] = {
    SCN_OPT_DUR("latency", sim_up_behaviour, latency),
    SCN_OPT_NUM("reset-after", SCN_OPT_SIZE, sim_up_behaviour, reset_after, 0, 0, NULL),
    SCN_OPT_PCT("refuse", sim_up_behaviour, refuse),
    SCN_OPT_PCT("reset", sim_up_behaviour, reset), /* [within SIZE] */
    SCN_OPT_PCT("stall", sim_up_behaviour, stall), /* for T */
};
static const scn_opt reset_within = SCN_OPT_NUM("within", SCN_OPT_SIZE, sim_up_behaviour,
                                                reset_within, 1, 0, "the size must not be 0");
static const scn_opt stall_for = SCN_OPT_DUR("for", sim_up_behaviour, stall_for);

static int cmd_upstream(scn_line *p) {
  sim_scenario *scn = p->scn;
  scn_up_rule r;
  memset(&r, 0, sizeof(r));
  r.line = p->line;
  r.beh.reset_after = UINT64_MAX;
  r.beh.latency = 1 * T2S_MILLISECONDS;
  if (scn_is(p, 1, "default")) {
    r.is_default = true;
  } else if (p->n < 2 || t2s_addr_parse(p->t[1].s, &r.dst) != 0) {
    return scn_fail(p, "upstream: expected 'default' or ADDR[:PORT] but found %s", scn_word(p, 1));
  }
  int i = 2;
  int rv = 0;
  if (scn_is(p, i, "echo")) {
    r.beh.kind = SIM_UP_ECHO;
    i++;
  } else if (scn_is(p, i, "sink")) {
    r.beh.kind = SIM_UP_SINK;
    i++;
  } else if (scn_is(p, i, "source")) {
    r.beh.kind = SIM_UP_SOURCE;
    rv = scn_size(p, i + 1, &r.beh.source_len, "upstream source");
    i += 2;
  } else if (scn_is(p, i, "refuse")) {
    r.beh.kind = SIM_UP_REFUSE;
    i++;
  } else if (scn_is(p, i, "blackhole")) {
    r.beh.kind = SIM_UP_BLACKHOLE;
    i++;
  } else if (scn_is(p, i, "unreachable")) {
    r.beh.kind = SIM_UP_UNREACHABLE;
    i++;
  } else if (scn_is(p, i, "reset-after")) {
    r.beh.kind = SIM_UP_ECHO; /* the options loop reads the size */
  } else {
    return scn_fail(p,
                    "upstream: expected a behaviour (echo, sink, source N, refuse, blackhole, "
                    "reset-after N) but found %s",
                    scn_word(p, i));
  }
  while (rv == 0 && i < p->n) {
    const scn_opt *o = scn_find_opt(p, i, upstream_opts, T2S_ARRAY_LEN(upstream_opts));
    if (o != NULL) {
      rv = scn_read_opt(p, &i, "upstream", o, &r.beh);
      if (rv == 0 && strcmp(o->name, "reset") == 0 && scn_is(p, i, "within")) {
        rv = scn_read_opt(p, &i, "upstream reset", &reset_within, &r.beh);
      } else if (rv == 0 && strcmp(o->name, "stall") == 0) {
        rv = scn_is(p, i, "for")
                 ? scn_read_opt(p, &i, "upstream stall", &stall_for, &r.beh)
                 : scn_fail(p, "upstream stall P%%: expected 'for T' but found %s", scn_word(p, i));
      }
    } else if (scn_is(p, i, "slow-read")) {
      rv = scn_size(p, i + 1, &r.beh.slow_read, "upstream slow-read (bytes per second)");
      if (rv == 0 && r.beh.slow_read == 0) {
        rv = scn_fail(p, "upstream slow-read: the rate must not be 0");
      }
      i += 2;
    } else if (scn_is(p, i, "reply-from")) {
      rv = scn_addr(p, i + 1, &r.beh.reply_from, true, "upstream reply-from");
      i += 2;
    } else {
      rv = scn_fail(p, "upstream: unknown option '%s' (expected latency T or reset-after N)",
                    p->t[i].s);
    }
  }
  if (rv != 0) {
    return rv;
  }
  scn_up_rule *v = realloc(scn->rules, (scn->nrules + 1) * sizeof(*v));
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
static int cmd_liveness(scn_line *p) {
  if (!scn_is(p, 1, "after")) {
    return scn_fail(p, "liveness: expected 'after T' but found %s", scn_word(p, 1));
  }
  int i = 2;
  t2s_tstamp t;
  int rv = scn_duration(p, &i, &t, "liveness after");
  if (rv == 0 && t == 0) {
    rv = scn_fail(p, "liveness after: the time must be later than 0");
  }
  if (rv == 0 && p->scn->faults.until != 0) {
    rv = scn_fail(p, "liveness: given twice");
  }
  if (rv == 0) {
    rv = scn_end(p, i, "liveness");
  }
  if (rv == 0) {
    p->scn->faults.until = t;
  }
  return rv;
}

static int parse_cred(scn_line *p, int i, char *user, char *pass, const char *what) {
  if (i + 1 >= p->n) {
    return scn_fail(p, "%s: expected a user name and a password", what);
  }
  if (strlen(p->t[i].s) == 0 || strlen(p->t[i].s) > 255 || strlen(p->t[i + 1].s) > 255) {
    return scn_fail(p, "%s: user name 1..255 bytes, password at most 255", what);
  }
  snprintf(user, 256, "%s", p->t[i].s);
  snprintf(pass, 256, "%s", p->t[i + 1].s);
  return 0;
}

static int cmd_proxy(scn_line *p) {
  sim_scenario *scn = p->scn;
  if (scn_is(p, 1, "host")) {
    return scn_cmd_proxy_host(p); /* a name the proxy's side resolves (scn_parse_fakedns.c) */
  }
  if (!scn_is(p, 1, "socks5")) {
    return scn_fail(p, "proxy: expected 'socks5' but found %s", scn_word(p, 1));
  }
  /* The first line fills scn->proxy (where `proxy host` lines go too); the next ones are more
   * proxies, in order of preference (docs/scenarios.md, "Proxy failures"). */
  sim_proxy_config more;
  memset(&more, 0, sizeof(more));
  if (scn->has_proxy && scn->nmore_proxies == T2S_ARRAY_LEN(scn->more_proxies)) {
    return scn_fail(p, "proxy: at most %d proxies", T2S_PROXY_MAX);
  }
  sim_proxy_config *c = scn->has_proxy ? &more : &scn->proxy;
  int rv = scn_addr(p, 2, &c->addr, true, "proxy socks5");
  for (size_t k = 0; rv == 0 && k < scn_nproxies(scn); k++) {
    if (t2s_addr_eq(&c->addr, &scn_proxy_at(scn, k)->addr)) {
      rv = scn_fail(p, "proxy: %s given twice", p->t[2].s);
    }
  }
  bool offered = false;
  for (int i = 3; rv == 0 && i < p->n;) {
    if (scn_is(p, i, "auth")) {
      rv = parse_cred(p, i + 1, c->username, c->password, "proxy auth");
      i += 3;
    } else if (scn_is(p, i, "offer")) {
      rv = parse_cred(p, i + 1, c->engine_user, c->engine_pass, "proxy offer");
      offered = true;
      i += 3;
    } else if (scn_is(p, i, "blackhole")) {
      c->black_hole = true;
      i++;
    } else if (scn_is(p, i, "mptcp")) {
      c->mptcp = true;
      i++;
    } else if (scn_is(p, i, "no-udp") || scn_is(p, i, "udp-close")) {
      c->udp = scn_is(p, i, "no-udp") ? SIM_PROXY_UDP_REP7 : SIM_PROXY_UDP_CLOSE;
      i++;
    } else if (scn_is(p, i, "names-only")) {
      c->names_only = true;
      i++;
    } else {
      rv = scn_fail(p,
                    "proxy: unknown option '%s' (expected auth USER PASS, offer USER PASS, "
                    "blackhole, no-udp, udp-close, mptcp)",
                    p->t[i].s);
    }
  }
  if (rv == 0 && !offered) {
    memcpy(c->engine_user, c->username, sizeof(c->engine_user));
    memcpy(c->engine_pass, c->password, sizeof(c->engine_pass));
  }
  if (rv == 0 && c == &more) {
    scn->more_proxies[scn->nmore_proxies++] = more;
  } else if (rv == 0) {
    scn->has_proxy = true;
  }
  return rv;
}

static const scn_opt engine_opts[] = {
    SCN_OPT_DUR("network-debounce", sim_scenario, debounce),
    SCN_OPT_NUM("udp-timeout", SCN_OPT_DURATION, sim_scenario, udp_timeout, 1, 0,
                "must be more than 0"),
    SCN_OPT_NUM("dns-timeout", SCN_OPT_DURATION, sim_scenario, dns_timeout, 1, 0,
                "must be more than 0"),
    SCN_OPT_NUM("max-udp-sessions", SCN_OPT_COUNT, sim_scenario, max_udp_sessions, 1, 1000000,
                "1..1000000"),
};

/* engine network-debounce T | engine on-network-change reset-all|reset-affected|none | engine
 * udp-timeout T | engine dns-timeout T | engine max-udp-sessions N | engine mptcp */
static int cmd_engine(scn_line *p) {
  sim_scenario *scn = p->scn;
  int i = 1;
  const scn_opt *o = scn_find_opt(p, i, engine_opts, T2S_ARRAY_LEN(engine_opts));
  if (o != NULL) {
    char what[64];
    snprintf(what, sizeof(what), "engine %s", o->name);
    int rv = scn_read_opt(p, &i, "engine", o, scn);
    return rv == 0 ? scn_end(p, i, what) : rv;
  }
  if (scn_is(p, i, "on-network-change")) {
    if (scn_is(p, 2, "reset-all")) {
      scn->policy = T2S_NETCHANGE_RESET_ALL;
    } else if (scn_is(p, 2, "reset-affected")) {
      scn->policy = T2S_NETCHANGE_RESET_AFFECTED;
    } else if (scn_is(p, 2, "none")) {
      scn->policy = T2S_NETCHANGE_NONE;
    } else {
      return scn_fail(p,
                      "engine on-network-change: expected reset-all, reset-affected or none but "
                      "found %s",
                      scn_word(p, 2));
    }
    scn->has_policy = true;
    return scn_end(p, 3, "engine on-network-change");
  }
  if (scn_is(p, i, "mptcp")) {
    scn->mptcp = true;
    return scn_end(p, 2, "engine mptcp");
  }
  return scn_fail(p,
                  "engine: expected network-debounce T, on-network-change POLICY, udp-timeout T, "
                  "dns-timeout T, max-udp-sessions N or mptcp but found %s",
                  scn_word(p, 1));
}

static int cmd_run(scn_line *p) {
  if (!scn_is(p, 1, "until")) {
    return scn_fail(p, "run: expected 'until T' but found %s", scn_word(p, 1));
  }
  if (p->scn->has_until) {
    return scn_fail(p, "run until: given twice");
  }
  int i = 2;
  int rv = scn_duration(p, &i, &p->scn->until, "run until");
  if (rv == 0) {
    rv = scn_end(p, i, "run until");
  }
  p->scn->has_until = rv == 0;
  return rv;
}

static const struct {
  const char *name;
  int (*parse)(scn_line *p);
} commands[] = {
    {"seed", cmd_seed},
    {"device", cmd_device},
    {"upstream", cmd_upstream},
    {"at", scn_cmd_at},
    {"run", cmd_run},
    {"expect", scn_cmd_expect},
    {"proxy", cmd_proxy},
    {"link", scn_cmd_net},
    {"addr", scn_cmd_net},
    {"route", scn_cmd_net},
    {"suspend", scn_cmd_net},
    {"resume", scn_cmd_net},
    {"engine", cmd_engine},
    {"liveness", cmd_liveness},
    {"fake-dns", scn_cmd_fake_dns},
    {"proxy-health", scn_cmd_proxy_health},
};

static int parse_line(scn_line *p) {
  const char *cmd = p->t[0].s;
  if (p->t[0].quoted) {
    return scn_fail(p, "expected a command but found a string");
  }
  for (size_t k = 0; k < T2S_ARRAY_LEN(commands); k++) {
    if (strcmp(cmd, commands[k].name) == 0) {
      return commands[k].parse(p);
    }
  }
  return scn_fail(
      p,
      "unknown command '%s' (expected seed, device, upstream, proxy, proxy-health, link, addr, "
      "route, engine, liveness, at, run, expect)",
      cmd);
}

int sim_scenario_parse(sim_scenario **pscn, const char *text, const char *name, const char *basedir,
                       char *err, size_t errlen) {
  sim_scenario *scn = scn_alloc(name, basedir);
  if (scn == NULL) {
    snprintf(err, errlen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  scn_line *p = calloc(1, sizeof(*p));
  char *line = malloc(SCN_MAX_LINE + 1), *toks = malloc(SCN_MAX_LINE + 2);
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
    p->name = scn->name;
    p->line = lineno;
    p->err = err;
    p->errlen = errlen;
    p->debounce = scn->debounce; /* as set by the lines before */
    if (len > SCN_MAX_LINE) {
      rv = scn_fail(p, "line longer than %d characters", SCN_MAX_LINE);
      break;
    }
    memcpy(line, s, len);
    line[len] = 0;
    s = eol ? eol + 1 : s + len;
    rv = scn_tokenize(p, line, toks);
    if (rv == 0 && p->n > 0) {
      rv = parse_line(p);
    }
  }
  /* Every client named by an expectation must exist. */
  for (size_t k = 0; rv == 0 && k < scn->nexps; k++) {
    const scn_expect *e = &scn->exps[k];
    if ((e->kind == SCN_EXP_CLIENT || e->kind == SCN_EXP_UNTOUCHED) &&
        !scn_client_declared(scn, e->name)) {
      p->line = e->line;
      rv = scn_fail(p, "expect: no client is called '%s'", e->name);
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
