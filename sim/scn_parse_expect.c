/* scn_parse_expect.c: `expect ...` lines (docs/scenarios.md, "What must be true"), each into a
 * scn_expect (scn_model.h) that scn_check.c evaluates after the run. */
#include <stdlib.h>
#include <string.h>

#include "drop.h"
#include "scn_fakedns.h"
#include "scn_parse.h"

/* The engine counters `expect stat NAME` knows, by name. */
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
    F(flows_survived),
    F(mptcp_multipath),
    F(mptcp_fallback),
    F(mptcp_subflows_added),
    F(mptcp_subflows_removed),
    F(survivors_reset),
#undef F
};

/* The counters named by one word. */
static const struct {
  const char *word;
  scn_counter ctr;
} counter_words[] = {
    {"packets-out", SCN_C_PACKETS_OUT},   {"packets-in", SCN_C_PACKETS_IN},
    {"echo-replies", SCN_C_ECHO_REPLIES}, {"upstream-open", SCN_C_UP_OPEN},
    {"invariants", SCN_C_INVARIANTS},     {"clients-unfinished", SCN_C_CLIENTS_UNFINISHED},
};

static int parse_drop_reason(const char *s) {
  for (int r = 1; r < T2S_DROP_MAX; r++) {
    if (strcmp(s, t2s_drop_name(r)) == 0) {
      return r;
    }
  }
  return -1;
}

static bool is_counter_word(const scn_line *p, int i) {
  for (size_t k = 0; k < T2S_ARRAY_LEN(counter_words); k++) {
    if (scn_is(p, i, counter_words[k].word)) {
      return true;
    }
  }
  return false;
}

/* drops REASON | drops total: the counter at token 2. */
static int counter_drops(scn_line *p, scn_expect *e) {
  if (scn_is(p, 2, "total")) {
    e->ctr = SCN_C_DROPS_TOTAL;
    return 0;
  }
  e->ctr = SCN_C_DROPS;
  e->drop_reason = 2 < p->n ? parse_drop_reason(p->t[2].s) : -1;
  if (e->drop_reason < 0) {
    return scn_fail(p, "expect drops: unknown reason %s (e.g. ipv4_bad_checksum, or total)",
                    scn_word(p, 2));
  }
  return 0;
}

/* stat NAME: an engine counter, '-' and '_' alike. */
static int counter_stat(scn_line *p, scn_expect *e) {
  e->ctr = SCN_C_STAT;
  bool found = false;
  char name[64];
  snprintf(name, sizeof(name), "%s", scn_word(p, 2));
  for (char *q = name; *q; q++) {
    *q = *q == '-' ? '_' : *q;
  }
  for (size_t k = 0; k < T2S_ARRAY_LEN(stat_fields); k++) {
    if (strcmp(name, stat_fields[k].name) == 0) {
      e->stat_off = stat_fields[k].off;
      found = true;
    }
  }
  if (!found) {
    return scn_fail(p, "expect stat: unknown engine counter %s (e.g. tcp_flows_active)",
                    scn_word(p, 2));
  }
  return 0;
}

/* COUNTER [OP] N, COUNTER being a word, drops REASON|total or stat NAME. */
static int expect_counter(scn_line *p, scn_expect *e) {
  e->kind = SCN_EXP_COUNTER;
  int i = 2;
  int rv = 0;
  if (scn_is(p, 1, "drops")) {
    rv = counter_drops(p, e);
    i = 3;
  } else if (scn_is(p, 1, "stat")) {
    rv = counter_stat(p, e);
    i = 3;
  } else {
    for (size_t k = 0; k < T2S_ARRAY_LEN(counter_words); k++) {
      if (scn_is(p, 1, counter_words[k].word)) {
        e->ctr = counter_words[k].ctr;
      }
    }
  }
  if (rv != 0) {
    return rv;
  }
  scn_op(p, &i, &e->op);
  rv = scn_count(p, i, &e->value, "expect");
  return rv == 0 ? scn_end(p, i + 1, "expect") : rv;
}

/* upstream ADDR[:PORT] received SIZE [intact] | streams [OP] N | via IFNAME */
static int expect_upstream(scn_line *p, scn_expect *e) {
  if (p->n < 3 || t2s_addr_parse(p->t[2].s, &e->dst) != 0) {
    return scn_fail(p, "expect upstream: expected ADDR[:PORT] but found %s", scn_word(p, 2));
  }
  int i;
  int rv = 0;
  if (scn_is(p, 3, "received")) {
    e->kind = SCN_EXP_UP_RECEIVED;
    rv = scn_size(p, 4, &e->value, "expect upstream received");
    i = 5;
    if (rv == 0 && scn_is(p, i, "intact")) {
      e->intact = true;
      i++;
    }
  } else if (scn_is(p, 3, "streams")) {
    e->kind = SCN_EXP_UP_STREAMS;
    i = 4;
    scn_op(p, &i, &e->op);
    rv = scn_count(p, i, &e->value, "expect upstream streams");
    i++;
  } else if (scn_is(p, 3, "via")) {
    e->kind = SCN_EXP_UP_VIA;
    rv = scn_link_name(p, 4, e->ifname, false, "expect upstream via");
    i = 5;
  } else {
    return scn_fail(p,
                    "expect upstream: expected 'received SIZE [intact]' or 'streams N' but "
                    "found %s",
                    scn_word(p, 3));
  }
  return rv == 0 ? scn_end(p, i, "expect upstream") : rv;
}

/* egress IFNAME | net-state STATE | udp-sessions [OP] N, then [after T]. */
static int expect_sampled(scn_line *p, scn_expect *e) {
  int i = 2;
  int rv = 0;
  if (scn_is(p, 1, "egress")) {
    e->kind = SCN_EXP_EGRESS;
    rv = scn_link_name(p, i++, e->ifname, false, "expect egress");
  } else if (scn_is(p, 1, "net-state")) {
    e->kind = SCN_EXP_NET_STATE;
    static const char *const names[] = {"UP", "SETTLING", "NO_ROUTE", "SUSPENDED"};
    bool found = false;
    for (size_t k = 0; k < T2S_ARRAY_LEN(names); k++) {
      if (scn_is(p, i, names[k])) {
        e->state = (t2s_net_state)k;
        found = true;
      }
    }
    if (!found) {
      return scn_fail(p,
                      "expect net-state: expected UP, SETTLING, NO_ROUTE or SUSPENDED but found %s",
                      scn_word(p, i));
    }
    i++;
  } else {
    e->kind = SCN_EXP_UDP_AFTER;
    scn_op(p, &i, &e->op);
    rv = scn_count(p, i++, &e->value, "expect udp-sessions");
  }
  if (rv == 0 && scn_is(p, i, "after")) {
    i++;
    e->has_after = true;
    rv = scn_duration(p, &i, &e->after, "expect ... after");
  }
  return rv == 0 ? scn_end(p, i, "expect") : rv;
}

/* NAME untouched (exactly) | NAME done|reset|refused [before T] */
static bool is_client_untouched(const scn_line *p) {
  return p->n == 3 && scn_valid_name(p->t[1].s) && !p->t[1].quoted && scn_is(p, 2, "untouched");
}
static bool is_client_end(const scn_line *p) {
  return p->n >= 3 && scn_valid_name(p->t[1].s) && !p->t[1].quoted &&
         (scn_is(p, 2, "done") || scn_is(p, 2, "reset") || scn_is(p, 2, "refused"));
}

static int expect_client(scn_line *p, scn_expect *e) {
  snprintf(e->name, sizeof(e->name), "%s", p->t[1].s);
  if (is_client_untouched(p)) {
    e->kind = SCN_EXP_UNTOUCHED;
    return 0;
  }
  e->kind = SCN_EXP_CLIENT;
  e->want = scn_is(p, 2, "done")    ? SIM_CLIENT_DONE
            : scn_is(p, 2, "reset") ? SIM_CLIENT_RESET
                                    : SIM_CLIENT_REFUSED;
  int i = 3;
  int rv = 0;
  if (scn_is(p, i, "before")) {
    i++;
    e->has_before = true;
    rv = scn_duration(p, &i, &e->before, "expect ... before");
  }
  return rv == 0 ? scn_end(p, i, "expect") : rv;
}

/* The line as written (strings in quotes, escapes resolved), for messages; NULL when out of
 * memory. */
static char *expect_text(const scn_line *p) {
  size_t len = 0;
  for (int k = 0; k < p->n; k++) {
    len += strlen(p->t[k].s) + 3;
  }
  char *text = malloc(len + 1);
  if (text == NULL) {
    return NULL;
  }
  text[0] = 0;
  for (int k = 0; k < p->n; k++) {
    if (k) {
      strcat(text, " ");
    }
    if (p->t[k].quoted) {
      strcat(text, "\"");
    }
    strcat(text, p->t[k].s);
    if (p->t[k].quoted) {
      strcat(text, "\"");
    }
  }
  return text;
}

static int add_expect(sim_scenario *scn, const scn_expect *e) {
  scn_expect *v = realloc(scn->exps, (scn->nexps + 1) * sizeof(*v));
  if (v == NULL) {
    return T2S_ERR_NOMEM;
  }
  scn->exps = v;
  scn->exps[scn->nexps++] = *e;
  return 0;
}

int scn_cmd_expect(scn_line *p) {
  scn_expect e;
  memset(&e, 0, sizeof(e));
  e.line = p->line;
  int rv;
  t2s_addr px_addr;
  if (scn_is(p, 1, "proxy") && p->n >= 3 && t2s_addr_parse(p->t[2].s, &px_addr) == 0) {
    /* proxy ADDR:PORT ... (scn_parse_proxy.c); proxy name|by-address: below */
    rv = scn_expect_proxy(p, &e);
  } else if (is_counter_word(p, 1) || scn_is(p, 1, "drops") || scn_is(p, 1, "stat")) {
    rv = expect_counter(p, &e);
  } else if (scn_is(p, 1, "upstream")) {
    rv = expect_upstream(p, &e);
  } else if (scn_is(p, 1, "egress") || scn_is(p, 1, "net-state") || scn_is(p, 1, "udp-sessions")) {
    rv = expect_sampled(p, &e);
  } else if (is_client_untouched(p) || is_client_end(p)) {
    rv = expect_client(p, &e);
  } else if (scn_fakedns_is_expect(p)) {
    rv = scn_fakedns_expect(p, &e);
  } else {
    return scn_fail(
        p,
        "expect: expected packets-out, packets-in, echo-replies, drops REASON, stat "
        "NAME, upstream ADDR, upstream-open, clients-unfinished, invariants, egress, "
        "net-state, udp-sessions, proxy ADDR:PORT or NAME done|reset|refused|untouched, "
        "but found %s",
        scn_word(p, 1));
  }
  if (rv != 0) {
    return rv;
  }
  e.text = expect_text(p);
  if (e.text == NULL) {
    return T2S_ERR_NOMEM;
  }
  rv = add_expect(p->scn, &e);
  if (rv != 0) {
    free(e.text);
  }
  return rv;
}
