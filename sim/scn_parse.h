/*
 * scn_parse.h: the parser's parts, one file per part of the language (docs/scenarios.md):
 * scn_parse.c the line loop and the world (seed, device, upstream, proxy, engine, liveness,
 * run), scn_parse_at.c the timed actions, scn_parse_net.c the network, scn_parse_expect.c the
 * expectations, scn_parse_proxy.c the proxies (several, their health, their failures). Each command
 * reads the tokens of one line (scn_lex.h) and adds what it means to p->scn (scn_model.h); a
 * mistake is scn_fail() naming the line, and nothing is added.
 */
#ifndef T2S_SIM_SCN_PARSE_H
#define T2S_SIM_SCN_PARSE_H

#include "scn_lex.h"
#include "scn_model.h"

/* at T ACTION ...: one timed action (scn_parse_at.c). */
int scn_cmd_at(scn_line *p);
/* True when an `at T client NAME` line came before (scn_parse_at.c). */
bool scn_client_declared(const sim_scenario *scn, const char *name);

/* link, addr, route before the run: the network at time 0 (scn_parse_net.c). */
int scn_cmd_net(scn_line *p);
/* link|addr|route|suspend|resume at token i into *a; suspend and resume only when at_time
 * (scn_parse_net.c). */
int scn_parse_net(scn_line *p, int i, sim_net_action *a, bool at_time);
/* An interface name at token i (1..15 characters, no '/', not quoted) copied into out
 * (T2S_IFNAMSIZ bytes). must_exist: a link line (at any time) declared it before. */
int scn_link_name(scn_line *p, int i, char *out, bool must_exist, const char *what);

/* proxy-health ... (scn_parse_proxy.c). */
int scn_cmd_proxy_health(scn_line *p);
/* at T proxy ADDR:PORT MODE from token i (scn_parse_proxy.c). */
int scn_parse_proxy_act(scn_line *p, int i, scn_proxy_act *a);
/* expect proxy ADDR:PORT ... (scn_parse_proxy.c). */
int scn_expect_proxy(scn_line *p, scn_expect *e);

/* expect ...: one expectation (scn_parse_expect.c). */
int scn_cmd_expect(scn_line *p);

#endif
