/* sim_scenario.c: a scenario's life (sim_scenario.h): reading the file, the replay mode's
 * scenario, the accessors and freeing. The language is parsed by scn_parse*.c over the tokens
 * of scn_lex.c into the model of scn_model.h; scn_exec.c configures the world and runs the
 * timed actions; scn_check.c checks the expectations. */
#include "sim_scenario.h"

#include <stdlib.h>
#include <string.h>

#include "scn_model.h"
#include "sim_pcap.h"

sim_scenario *scn_alloc(const char *name, const char *basedir) {
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

void scn_action_free(scn_action *a) {
  switch (a->kind) {
  case SCN_ACT_REPLAY:
    free(a->u.replay.path);
    a->u.replay.path = NULL;
    break;
  case SCN_ACT_CLIENT:
    free(a->u.client.text);
    a->u.client.text = NULL;
    break;
  case SCN_ACT_INJECT_ECHO:
  case SCN_ACT_NET:
  case SCN_ACT_PROXY:
    break;
  }
}

int scn_add_action(sim_scenario *scn, const scn_action *a) {
  scn_action *v = realloc(scn->acts, (scn->nacts + 1) * sizeof(*v));
  if (v == NULL) {
    return T2S_ERR_NOMEM;
  }
  scn->acts = v;
  scn->acts[scn->nacts++] = *a;
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
  scn_action a;
  memset(&a, 0, sizeof(a));
  a.kind = SCN_ACT_REPLAY;
  a.u.replay.path = strdup(path);
  if (a.u.replay.path == NULL || scn_add_action(scn, &a) != 0) {
    scn_action_free(&a);
    sim_scenario_del(scn);
    return T2S_ERR_NOMEM;
  }
  scn_up_rule *ru = calloc(1, sizeof(*ru));
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
    scn_action_free(&scn->acts[i]);
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
    if (scn->acts[i].kind == SCN_ACT_CLIENT) {
      return true;
    }
  }
  return false;
}
