/*
 * scn_fakedns.h: fake-IP DNS in the scenario language (docs/scenarios.md, "Fake-IP DNS"): the
 * `fake-dns` line, the proxy's names (`proxy host NAME ADDR`, `proxy ... names-only`), clients
 * whose destination is a name (looked up over UDP first), and the expectations about them.
 * Parsed in scn_parse_fakedns.c, checked in scn_check_fakedns.c; the world's side is
 * sim_fakedns.h.
 */
#ifndef T2S_SIM_SCN_FAKEDNS_H
#define T2S_SIM_SCN_FAKEDNS_H

#include "scn_lex.h"
#include "scn_model.h"

/* What an SCN_EXP_FAKEDNS expectation checks (scn_expect.fd_what). */
enum {
  SCN_FD_STAT = 0,   /* expect fake-dns STAT [OP] N: a t2s_fakedns_stats field (stat_off) */
  SCN_FD_PROXY_NAME, /* expect proxy name NAME [OP] N: requests the proxy got by that name */
  SCN_FD_PROXY_ADDR, /* expect proxy by-address [OP] N: CONNECTs the proxy got by address */
  SCN_FD_RESOLVED,   /* expect CLIENT resolved ADDR: the address the client's lookup got */
};

/* fake-dns [pool CIDR]... [size N] [exclude SUFFIX]... */
int scn_cmd_fake_dns(scn_line *p);
/* proxy host NAME ADDR: a name the proxy's side resolves (any number of lines, up to
 * SIM_PROXY_MAX_HOSTS). */
int scn_cmd_proxy_host(scn_line *p);

/* True when token i is a client destination by name (NAME:PORT, not an address). */
bool scn_client_is_name(const scn_line *p, int i);
/* Reads NAME:PORT at token i into a (qname, the port, A by default, resolver 198.18.0.53:53). */
int scn_client_name(scn_line *p, int i, scn_client *a);
/* True when token i is an option of a client by name (resolver ADDR[:PORT], aaaa). */
bool scn_client_name_is_opt(const scn_line *p, int i);
/* Reads that option at token *pi into a and advances *pi past it. */
int scn_client_name_opt(scn_line *p, int *pi, scn_client *a);

/* True when the expect line is one of these (fake-dns, proxy, CLIENT resolved). */
bool scn_fakedns_is_expect(const scn_line *p);
/* Parses it into *e (kind SCN_EXP_FAKEDNS). */
int scn_fakedns_expect(scn_line *p, scn_expect *e);
/* Evaluates it after the run; writes what was found into actual. */
bool scn_fakedns_eval(const scn_expect *e, sim_world *w, char *actual, size_t alen);

#endif
