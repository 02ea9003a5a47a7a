/* scn_parse_at.c: the timed actions, `at T ACTION ...` (docs/scenarios.md, "What happens
 * when"): replay, inject-echo and client, each parsed into its typed struct (scn_model.h);
 * link, addr, route, suspend and resume are the network's (scn_parse_net.c). */
#include <stdlib.h>
#include <string.h>

#include "scn_fakedns.h"
#include "scn_parse.h"
#include "sim_pcap.h"

#define MAX_ECHO_COUNT 1000000
#define STR_(x) #x
#define STR(x) STR_(x)

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

/* replay FILE at token i. */
static int act_replay(scn_line *p, scn_replay *a, int i) {
  if (i >= p->n) {
    return scn_fail(p, "replay: expected a capture file name");
  }
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
    return scn_fail(p, "replay: %s", msg);
  }
  sim_pcap_reader_close(r);
  int rv = scn_end(p, i + 1, "replay");
  if (rv != 0) {
    free(a->path);
    a->path = NULL;
  }
  return rv;
}

static const scn_opt inject_echo_opts[] = {
    SCN_OPT_NUM("size", SCN_OPT_SIZE, scn_inject_echo, size, 0, 65000, "at most 65000 bytes"),
    SCN_OPT_NUM("count", SCN_OPT_COUNT, scn_inject_echo, count, 1, MAX_ECHO_COUNT,
                "1.." STR(MAX_ECHO_COUNT)),
    SCN_OPT_DUR("interval", scn_inject_echo, interval),
};

/* inject-echo SRC DST [OPTION...] at token i. */
static int act_inject_echo(scn_line *p, scn_inject_echo *a, int i) {
  a->size = 56;
  a->count = 1;
  a->interval = T2S_SECONDS;
  a->seq = 1;
  int rv = scn_addr(p, i, &a->src, false, "inject-echo source");
  if (rv == 0) {
    rv = scn_addr(p, i + 1, &a->dst, false, "inject-echo destination");
  }
  if (rv != 0) {
    return rv;
  }
  if (a->src.family != a->dst.family) {
    return scn_fail(p, "inject-echo: source and destination are of different families");
  }
  i += 2;
  while (i < p->n) {
    uint64_t v = 0;
    const scn_opt *o = scn_find_opt(p, i, inject_echo_opts, T2S_ARRAY_LEN(inject_echo_opts));
    if (o != NULL) {
      rv = scn_read_opt(p, &i, "inject-echo", o, a);
    } else if (scn_is(p, i, "id") || scn_is(p, i, "seq")) {
      bool isid = scn_is(p, i, "id");
      rv = scn_count(p, i + 1, &v, isid ? "inject-echo id" : "inject-echo seq");
      if (rv == 0 && v > 65535) {
        rv = scn_fail(p, "inject-echo: %s %llu is above 65535", isid ? "id" : "seq",
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
      rv = scn_fail(p, "inject-echo: unknown option '%s' (expected size, id, seq, count, interval)",
                    p->t[i].s);
    }
    if (rv != 0) {
      return rv;
    }
  }
  return 0;
}

bool scn_client_declared(const sim_scenario *scn, const char *name) {
  for (size_t k = 0; k < scn->nacts; k++) {
    if (scn->acts[k].kind == SCN_ACT_CLIENT && strcmp(scn->acts[k].u.client.spec.name, name) == 0) {
      return true;
    }
  }
  return false;
}

/* The options of UDP and ping clients (send, expect-... and from are for every client). */
static const scn_opt dgram_client_opts[] = {
    SCN_OPT_NUM("count", SCN_OPT_COUNT32, sim_client_spec, count, 1, 100000, "1..100000"),
    SCN_OPT_DUR("interval", sim_client_spec, interval),
    SCN_OPT_NUM("size", SCN_OPT_SIZE, sim_client_spec, send_len, 0, 65000, "at most 65000"),
};

/* client NAME PROTO DST [OPTION...] at token i. */
static int act_client(scn_line *p, scn_client *a, int i) {
  const scn_opt *o;
  sim_client_spec *c = &a->spec;
  c->line = p->line;
  if (i >= p->n || !scn_valid_name(p->t[i].s)) {
    return scn_fail(p,
                    "client: expected a name (a letter, then letters, digits, - or _; at most %d) "
                    "but found %s",
                    SCN_MAX_NAME, scn_word(p, i));
  }
  if (scn_client_declared(p->scn, p->t[i].s)) {
    return scn_fail(p, "client: the name '%s' is already used", p->t[i].s);
  }
  snprintf(c->name, sizeof(c->name), "%s", p->t[i].s);
  i++;
  if (scn_is(p, i, "udp")) {
    c->proto = SIM_CLIENT_UDP;
  } else if (scn_is(p, i, "ping")) {
    c->proto = SIM_CLIENT_PING;
  } else if (!scn_is(p, i, "tcp")) {
    return scn_fail(p, "client: expected the protocol 'tcp', 'udp' or 'ping' but found %s",
                    scn_word(p, i));
  }
  c->interval = T2S_SECONDS;
  /* NAME:PORT: looked up first (scn_parse_fakedns.c) */
  int rv = c->proto != SIM_CLIENT_PING && scn_client_is_name(p, i + 1)
               ? scn_client_name(p, i + 1, a)
               : scn_addr(p, i + 1, &c->remote, c->proto != SIM_CLIENT_PING, "client destination");
  if (rv != 0) {
    return rv;
  }
  i += 2;
  bool have_send = false, have_check = false;
  while (i < p->n) {
    if (scn_is(p, i, "send")) {
      if (have_send) {
        return scn_fail(p, "client: 'send' given twice");
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
        rv = scn_size(p, i + 1, &c->send_len, "client send");
      }
      i += 2;
    } else if (scn_is(p, i, "expect-echo") || scn_is(p, i, "read-all")) {
      if (have_check) {
        return scn_fail(p, "client: only one of expect-echo, read-all, expect-bytes");
      }
      have_check = true;
      c->check = scn_is(p, i, "expect-echo") ? SIM_CHECK_ECHO : SIM_CHECK_READ_ALL;
      i++;
    } else if (scn_is(p, i, "expect-bytes")) {
      if (have_check) {
        return scn_fail(p, "client: only one of expect-echo, read-all, expect-bytes");
      }
      have_check = true;
      c->check = SIM_CHECK_BYTES;
      rv = scn_size(p, i + 1, &c->expect_len, "client expect-bytes");
      i += 2;
    } else if (c->proto != SIM_CLIENT_TCP &&
               (o = scn_find_opt(p, i, dgram_client_opts, T2S_ARRAY_LEN(dgram_client_opts))) !=
                   NULL) {
      rv = scn_read_opt(p, &i, "client", o, c);
    } else if (c->proto == SIM_CLIENT_UDP &&
               (scn_is(p, i, "expect-replies") || scn_is(p, i, "expect-unreachable"))) {
      if (have_check) {
        return scn_fail(p, "client: only one of expect-echo, expect-replies, expect-unreachable");
      }
      have_check = true;
      if (scn_is(p, i, "expect-unreachable")) {
        c->check = SIM_CHECK_UNREACHABLE;
        i++;
      } else {
        c->check = SIM_CHECK_REPLIES;
        rv = scn_count(p, i + 1, &c->expect_len, "client expect-replies");
        i += 2;
      }
    } else if (a->qname[0] && scn_client_name_is_opt(p, i)) {
      rv = scn_client_name_opt(p, &i, a);
    } else if (scn_is(p, i, "from")) {
      t2s_addr from;
      if (c->proto == SIM_CLIENT_UDP && i + 1 < p->n && t2s_addr_parse(p->t[i + 1].s, &from) == 0) {
        rv = 0; /* UDP clients may fix their port: from ADDR:PORT */
      } else {
        rv = scn_addr(p, i + 1, &from, false, "client from");
      }
      c->local = from;
      if (rv == 0 && c->local.family != c->remote.family) {
        rv = scn_fail(p, "client from: the address family differs from the destination's");
      }
      i += 2;
    } else {
      rv = scn_fail(p,
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

int scn_cmd_at(scn_line *p) {
  scn_action a;
  memset(&a, 0, sizeof(a));
  a.line = p->line;
  int i = 1;
  int rv = scn_duration(p, &i, &a.at, "at");
  if (rv != 0) {
    return rv;
  }
  if (scn_is(p, i, "replay")) {
    a.kind = SCN_ACT_REPLAY;
    rv = act_replay(p, &a.u.replay, i + 1);
  } else if (scn_is(p, i, "inject-echo")) {
    a.kind = SCN_ACT_INJECT_ECHO;
    rv = act_inject_echo(p, &a.u.echo, i + 1);
  } else if (scn_is(p, i, "client")) {
    a.kind = SCN_ACT_CLIENT;
    rv = act_client(p, &a.u.client, i + 1);
  } else if (scn_is(p, i, "link") || scn_is(p, i, "addr") || scn_is(p, i, "route") ||
             scn_is(p, i, "suspend") || scn_is(p, i, "resume")) {
    a.kind = SCN_ACT_NET;
    rv = scn_parse_net(p, i, &a.u.net, true);
    p->scn->has_net = true;
  } else if (scn_is(p, i, "proxy")) {
    a.kind = SCN_ACT_PROXY;
    rv = scn_parse_proxy_act(p, i + 1, &a.u.proxy);
  } else if (scn_is(p, i, "device") || scn_is(p, i, "upstream")) {
    return scn_fail(p, "at: the action '%s' is not implemented yet", p->t[i].s);
  } else {
    return scn_fail(p,
                    "at: expected an action (replay, inject-echo, client, link, addr, route, "
                    "suspend, resume, proxy) but found %s",
                    scn_word(p, i));
  }
  if (rv == 0) {
    rv = scn_add_action(p->scn, &a);
  }
  if (rv != 0) {
    scn_action_free(&a);
  }
  return rv;
}
