/* test_scenario_parse.c: the simulator's scenario language (docs/scenarios.md): the lexer
 * (sim/scn_lex.c) on byte-built lines, and the parser (sim/scn_parse*.c) on one scenario per
 * error message, each checked word for word, and on valid lines into the typed action
 * structs (sim/scn_model.h). */
#include <stdio.h>
#include <string.h>

#include "scn_lex.h"
#include "scn_model.h"
#include "sim_scenario.h"
#include "test_util.h"

/* ---------------- the lexer ---------------- */

/* Tokenizes text as line 7 of "t.scn"; returns scn_tokenize's result, the tokens in *p. */
static int lex(scn_line *p, char *toks, const char *text, char *err, size_t errlen) {
  memset(p, 0, sizeof(*p));
  p->name = "t.scn";
  p->line = 7;
  p->err = err;
  p->errlen = errlen;
  p->debounce = 250 * T2S_MILLISECONDS;
  err[0] = 0;
  return scn_tokenize(p, text, toks);
}

static void test_lex_words_strings_comments(void) {
  scn_line p;
  char toks[SCN_MAX_LINE + 2], err[256];
  /* Blanks are spaces, tabs and CR; a byte above 0x7f is part of a word. */
  const char line[] = {'a', 't', ' ', '\t', '1', 's', '\r', ' ', (char)0xc3, (char)0xa9, ' ',
                       '"', 'x', ' ', '#',  '"', ' ', '#',  ' ', 'c',        0};
  CU_ASSERT_EQUAL(lex(&p, toks, line, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(p.n, 4);
  CU_ASSERT_STRING_EQUAL(p.t[0].s, "at");
  CU_ASSERT_STRING_EQUAL(p.t[1].s, "1s");
  CU_ASSERT_STRING_EQUAL(p.t[2].s, "\xc3\xa9");
  CU_ASSERT_STRING_EQUAL(p.t[3].s, "x #");
  CU_ASSERT_TRUE(p.t[3].quoted);
  CU_ASSERT_FALSE(p.t[2].quoted);
  CU_ASSERT_TRUE(scn_is(&p, 0, "at"));
  CU_ASSERT_FALSE(scn_is(&p, 3, "x #")); /* a string is never a word */
  CU_ASSERT_STRING_EQUAL(scn_word(&p, 4), "end of line");

  /* Escapes: \" \\ \n \r \t \xHH. */
  CU_ASSERT_EQUAL(lex(&p, toks, "\"a\\\"b\\\\c\\n\\r\\t\\x41\\xfF\"", err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(p.n, 1);
  CU_ASSERT_STRING_EQUAL(p.t[0].s, "a\"b\\c\n\r\tA\xff");
  /* An empty string is a token; a comment-only line has none. */
  CU_ASSERT_EQUAL(lex(&p, toks, "\"\"", err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(p.n, 1);
  CU_ASSERT_STRING_EQUAL(p.t[0].s, "");
  CU_ASSERT_EQUAL(lex(&p, toks, "  # only a comment", err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(p.n, 0);
}

static void test_lex_errors(void) {
  static const struct {
    const char *line, *msg;
  } cases[] = {
      {"send \"abc", "t.scn:7: unterminated string (missing closing \")"},
      {"\"a\\x0g\"", "t.scn:7: bad \\x escape in string (two hex digits, not 00, expected)"},
      {"\"a\\x00\"", "t.scn:7: bad \\x escape in string (two hex digits, not 00, expected)"},
      {"\"a\\x", "t.scn:7: bad \\x escape in string (two hex digits, not 00, expected)"},
      {"\"a\\q\"", "t.scn:7: unknown escape \\q in string"},
      {"\"a\\", "t.scn:7: unknown escape \\0 in string"},
      {"\"ab\"cd", "t.scn:7: a blank is needed after a closing \""},
  };
  scn_line p;
  char toks[SCN_MAX_LINE + 2], err[256];
  for (size_t i = 0; i < T2S_ARRAY_LEN(cases); i++) {
    CU_ASSERT_EQUAL(lex(&p, toks, cases[i].line, err, sizeof(err)), T2S_ERR_MALFORMED);
    CU_ASSERT_STRING_EQUAL(err, cases[i].msg);
  }
  /* 64 words are fine, 65 are not. */
  char line[200];
  size_t o = 0;
  for (int i = 0; i < SCN_MAX_TOKENS; i++) {
    line[o++] = 'w';
    line[o++] = ' ';
  }
  line[o] = 0;
  CU_ASSERT_EQUAL(lex(&p, toks, line, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(p.n, SCN_MAX_TOKENS);
  line[o++] = 'w';
  line[o] = 0;
  CU_ASSERT_EQUAL(lex(&p, toks, line, err, sizeof(err)), T2S_ERR_MALFORMED);
  CU_ASSERT_STRING_EQUAL(err, "t.scn:7: too many words on one line (at most 64)");
}

static void test_lex_values(void) {
  scn_line p;
  char toks[SCN_MAX_LINE + 2], err[256];
  t2s_tstamp t = 0;
  int i = 0;
  CU_ASSERT_EQUAL(lex(&p, toks, "500ms + 50ms x", err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(scn_duration(&p, &i, &t, "d"), 0);
  CU_ASSERT_EQUAL(t, 550 * T2S_MILLISECONDS);
  CU_ASSERT_EQUAL(i, 3);
  i = 0;
  CU_ASSERT_EQUAL(lex(&p, toks, "1.5s+debounce+0 2m 1min 3h 7us 9ns", err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(scn_duration(&p, &i, &t, "d"), 0);
  CU_ASSERT_EQUAL(t, 1750 * T2S_MILLISECONDS);
  CU_ASSERT_EQUAL(scn_duration(&p, &i, &t, "d"), 0);
  CU_ASSERT_EQUAL(t, 120 * T2S_SECONDS);
  CU_ASSERT_EQUAL(scn_duration(&p, &i, &t, "d"), 0);
  CU_ASSERT_EQUAL(t, 60 * T2S_SECONDS);
  CU_ASSERT_EQUAL(scn_duration(&p, &i, &t, "d"), 0);
  CU_ASSERT_EQUAL(t, 3 * 3600 * T2S_SECONDS);
  CU_ASSERT_EQUAL(scn_duration(&p, &i, &t, "d"), 0);
  CU_ASSERT_EQUAL(t, 7 * T2S_MICROSECONDS);
  CU_ASSERT_EQUAL(scn_duration(&p, &i, &t, "d"), 0);
  CU_ASSERT_EQUAL(t, 9);
  CU_ASSERT_EQUAL(scn_duration(&p, &i, &t, "d"), T2S_ERR_MALFORMED);
  CU_ASSERT_STRING_EQUAL(err,
                         "t.scn:7: d: expected a duration (e.g. 500ms, 2s) but found end of line");

  uint64_t v = 0;
  CU_ASSERT_EQUAL(lex(&p, toks, "64KB 1.5mib 1000 2GiB 1.1B", err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(scn_size(&p, 0, &v, "s"), 0);
  CU_ASSERT_EQUAL(v, 65536);
  CU_ASSERT_EQUAL(scn_size(&p, 1, &v, "s"), 0);
  CU_ASSERT_EQUAL(v, 1572864);
  CU_ASSERT_EQUAL(scn_size(&p, 2, &v, "s"), 0);
  CU_ASSERT_EQUAL(v, 1000);
  CU_ASSERT_EQUAL(scn_size(&p, 3, &v, "s"), 0);
  CU_ASSERT_EQUAL(v, 2ULL << 30);
  CU_ASSERT_EQUAL(scn_size(&p, 4, &v, "s"), T2S_ERR_MALFORMED);
  CU_ASSERT_STRING_EQUAL(err, "t.scn:7: s: expected a size (e.g. 1000, 64KB, 10MB) but found 1.1B");

  uint32_t num = 0, den = 0;
  CU_ASSERT_EQUAL(lex(&p, toks, "2% 0.5% 100% 0.000001%", err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(scn_percent(&p, 0, &num, &den, "p"), 0);
  CU_ASSERT_EQUAL(num * 100, den * 2);
  CU_ASSERT_EQUAL(scn_percent(&p, 1, &num, &den, "p"), 0);
  CU_ASSERT_EQUAL(num * 1000, den * 5);
  CU_ASSERT_EQUAL(scn_percent(&p, 2, &num, &den, "p"), 0);
  CU_ASSERT_EQUAL(num, den);
  CU_ASSERT_EQUAL(scn_percent(&p, 3, &num, &den, "p"), 0);
  CU_ASSERT_EQUAL(den, 100000000u);

  scn_cmp op = SCN_EQ;
  CU_ASSERT_EQUAL(lex(&p, toks, ">= 3 != <", err, sizeof(err)), 0);
  i = 0;
  scn_op(&p, &i, &op);
  CU_ASSERT_EQUAL(op, SCN_GE);
  CU_ASSERT_EQUAL(i, 1);
  scn_op(&p, &i, &op); /* "3" is no operator: == and i unchanged */
  CU_ASSERT_EQUAL(op, SCN_EQ);
  CU_ASSERT_EQUAL(i, 1);

  CU_ASSERT_TRUE(scn_valid_name("c1-a_b"));
  CU_ASSERT_FALSE(scn_valid_name("1c"));
  CU_ASSERT_FALSE(scn_valid_name("c.1"));
  CU_ASSERT_FALSE(scn_valid_name(""));
  CU_ASSERT_TRUE(scn_valid_name("abcdefghijabcdefghijabcdefghija"));
  CU_ASSERT_FALSE(scn_valid_name("abcdefghijabcdefghijabcdefghijab"));
}

/* ---------------- the parser ---------------- */

/* Parses text as "t.scn" (relative files from /nonexistent-dir); on an error, err holds the
 * message. */
static int parse(sim_scenario **pscn, const char *text, char *err, size_t errlen) {
  err[0] = 0;
  *pscn = NULL;
  return sim_scenario_parse(pscn, text, "t.scn", "/nonexistent-dir", err, errlen);
}

/* One scenario per message of the parser, and what it says after "t.scn:" (the messages the
 * simulator printed before the parser was split, taken from scripts/sim-digest's cases). */
static const struct {
  const char *text, *msg;
} parse_errors[] = {
    {"addr add x\n", "1: addr: expected ADDR/LEN (192.0.2.10/24, 2001:db8::10/64) but found x"},
    {"addr\n", "1: addr: expected add or del but found end of line"},
    {"link eth0 up\naddr add 192.0.2.1/24 dev eth0 extra\n", "2: addr: unexpected 'extra'"},
    {"addr add 192.0.2.1/24\n", "1: addr: expected 'dev NAME' but found end of line"},
    {"addr add 192.0.2.1/24 dev nope\n",
     "1: addr dev: no link is called 'nope' (declare it first: link nope up ...)"},
    {"at 1s device loss 1%\n", "1: at: the action 'device' is not implemented yet"},
    {"at\n", "1: at: expected a duration (e.g. 500ms, 2s) but found end of line"},
    {"at 1s\n", "1: at: expected an action (replay, inject-echo, client, link, addr, route, "
                "suspend, resume, proxy) but found end of line"},
    {"at 1s proxy socks5 192.0.2.1:1080\n",
     "1: at ... proxy: expected an address with a port (1.2.3.4:80, [2001:db8::1]:80) but found "
     "socks5"},
    {"at 1s proxy 192.0.2.1:1080 die\n", "1: at ... proxy: no proxy line declares 192.0.2.1:1080"},
    {"proxy socks5 192.0.2.1:1080\nat 1s proxy 192.0.2.1:1080 explode\n",
     "2: at ... proxy: expected die, refuse, blackhole, hang or back but found explode"},
    {"proxy socks5 192.0.2.1:1080\nexpect proxy 192.0.2.1:1080 state GONE\n",
     "2: expect proxy state: expected UP, SUSPECT, DOWN or UNRESOLVED but found GONE"},
    {"proxy socks5 192.0.2.1:1080\nexpect proxy 192.0.2.1:1080 down after 1s\n",
     "2: expect proxy down: expected 'between T1 and T2' but found after"},
    {"proxy-health down-after 1\n",
     "1: proxy-health down-after: 2..100 (one failure never takes a proxy down)"},
    {"proxy-health\nproxy-health\n", "2: proxy-health: given twice"},
    {"at 1s resume x\n", "1: resume: unexpected 'x'"},
    {"at 1s resume slept 1s x\n", "1: resume: unexpected 'x'"},
    {"at 1s resume slept\n",
     "1: resume slept: expected a duration (e.g. 500ms, 2s) but found end of line"},
    {"at 1s suspend x\n", "1: suspend: unexpected 'x'"},
    {"at 1s bogus\n", "1: at: expected an action (replay, inject-echo, client, link, addr, route, "
                      "suspend, resume, proxy) but found bogus"},
    {"at 0 client c1 tcp 192.0.2.1:80 send \"a\\x0g\"\n",
     "1: bad \\x escape in string (two hex digits, not 00, expected)"},
    {"at 0 client c1 tcp 192.0.2.1:80 send \"ab\"cd\n", "1: a blank is needed after a closing \""},
    {"at 0 client 1c tcp 192.0.2.1:80\n", "1: client: expected a name (a letter, then letters, "
                                          "digits, - or _; at most 31) but found 1c"},
    {"at 0 client c1 tcp 192.0.2.1:80 expect-echo expect-bytes 5\n",
     "1: client: only one of expect-echo, read-all, expect-bytes"},
    {"at 0 client c1 tcp 192.0.2.1:80 expect-bytes x\n",
     "1: client expect-bytes: expected a size (e.g. 1000, 64KB, 10MB) but found x"},
    {"at 0 client c1 tcp 192.0.2.1:80 expect-echo read-all\n",
     "1: client: only one of expect-echo, read-all, expect-bytes"},
    {"at 0 client c1 tcp 192.0.2.1:80\nat 0 client c1 tcp 192.0.2.1:80\n",
     "2: client: the name 'c1' is already used"},
    {"at 0 client c1 tcp 192.0.2.1:80 from 2001:db8::1\n",
     "1: client from: the address family differs from the destination's"},
    {"at 0 client c1 tcp 192.0.2.1:80 from 10.0.0.1:5\n",
     "1: client from: 10.0.0.1:5 must not have a port"},
    {"at 0 client abcdefghijabcdefghijabcdefghijabc tcp 192.0.2.1:80\n",
     "1: client: expected a name (a letter, then letters, digits, - or _; at most 31) but found "
     "abcdefghijabcdefghijabcdefghijabc"},
    {"at 0 client\n", "1: client: expected a name (a letter, then letters, digits, - or _; at most "
                      "31) but found end of line"},
    {"at 0 client c1 tcp 192.0.2.1\n",
     "1: client destination: 192.0.2.1 needs a port (1.2.3.4:80, [2001:db8::1]:80)"},
    {"at 0 client c1 ping 192.0.2.1:80\n",
     "1: client destination: 192.0.2.1:80 must not have a port"},
    {"at 0 client c1 sctp 192.0.2.1:80\n",
     "1: client: expected the protocol 'tcp', 'udp' or 'ping' but found sctp"},
    {"at 0 client c1 tcp 192.0.2.1:80 send x\n",
     "1: client send: expected a size (e.g. 1000, 64KB, 10MB) but found x"},
    {"at 0 client c1 tcp 192.0.2.1:80 send 1 send 2\n", "1: client: 'send' given twice"},
    {"at 0 client c1 tcp 192.0.2.1:80 count 2\n",
     "1: client: unknown option 'count' (expected send, expect-echo, read-all, expect-bytes, "
     "from)"},
    {"at 0 client c1 udp 192.0.2.1:53 count 0\n", "1: client count: 1..100000"},
    {"at 0 client c1 udp 192.0.2.1:53 expect-replies x\n",
     "1: client expect-replies: expected a whole number but found x"},
    {"at 0 client c1 udp 192.0.2.1:53 size 70000\n", "1: client size: at most 65000"},
    {"at 0 client c1 udp 192.0.2.1:53 expect-echo expect-unreachable\n",
     "1: client: only one of expect-echo, expect-replies, expect-unreachable"},
    {"at 0 client c1 tcp 192.0.2.1:80 bogus\n", "1: client: unknown option 'bogus' (expected send, "
                                                "expect-echo, read-all, expect-bytes, from)"},
    {"device\n", "1: device: expected mtu, latency, loss, reorder, duplicate, corrupt, jitter or "
                 "reorder-window"},
    {"device jitter 1ms+\n",
     "1: device jitter: expected a duration (e.g. 500ms, 2s) but found end of line"},
    {"device latency 1.5ns\n", "1: device latency: bad duration '1.5ns' (expected a number with a "
                               "unit: ns, us, ms, s, m, h)"},
    {"device latency\n",
     "1: device latency: expected a duration (e.g. 500ms, 2s) but found end of line"},
    {"device latency 5\n",
     "1: device latency: bad duration '5' (expected a number with a unit: ns, us, ms, s, m, h)"},
    {"device latency ++\n", "1: device latency: bad duration '++'"},
    {"device latency \"1ms\"\n",
     "1: device latency: expected a duration (e.g. 500ms, 2s) but found 1ms"},
    {"device latency 1111111111111111111111111111111111111111111111111111111111111111111ms\n",
     "1: device latency: bad duration "
     "'1111111111111111111111111111111111111111111111111111111111111111111ms'"},
    {"device latency 500ms +\n",
     "1: device latency: expected a duration (e.g. 500ms, 2s) but found end of line"},
    {"device loss 200%\n", "1: device loss: 200% is more than 100%"},
    {"device loss 0.0000001%\n",
     "1: device loss: expected a percentage (e.g. 2%, 0.5%) but found 0.0000001%"},
    {"device loss x\n", "1: device loss: expected a percentage (e.g. 2%, 0.5%) but found x"},
    {"device mtu 100\n", "1: device mtu: 100 is outside 576..65535"},
    {"device mtu x\n", "1: device mtu: expected a whole number but found x"},
    {"device foo\n", "1: device: unknown setting 'foo' (expected mtu, latency, loss, reorder, "
                     "duplicate, corrupt, jitter or reorder-window)"},
    {"engine network-debounce 1s x\n", "1: engine network-debounce: unexpected 'x'"},
    {"engine dns-timeout x\n", "1: engine dns-timeout: bad duration 'x' (expected a number with a "
                               "unit: ns, us, ms, s, m, h)"},
    {"engine\n", "1: engine: expected network-debounce T, on-network-change POLICY, udp-timeout T, "
                 "dns-timeout T, max-udp-sessions N or mptcp but found end of line"},
    {"engine mptcp x\n", "1: engine mptcp: unexpected 'x'"},
    {"engine max-udp-sessions 0\n", "1: engine max-udp-sessions: 1..1000000"},
    {"engine max-udp-sessions 2000000\n", "1: engine max-udp-sessions: 1..1000000"},
    {"engine on-network-change bogus\n",
     "1: engine on-network-change: expected reset-all, reset-affected or none but found bogus"},
    {"engine on-network-change none x\n", "1: engine on-network-change: unexpected 'x'"},
    {"engine udp-timeout 0\n", "1: engine udp-timeout: must be more than 0"},
    {"at 0 client c1 tcp 192.0.2.1:80\nexpect c1 done before\n",
     "2: expect ... before: expected a duration (e.g. 500ms, 2s) but found end of line"},
    {"at 0 client c1 tcp 192.0.2.1:80\nexpect c1 done x\n", "2: expect: unexpected 'x'"},
    {"expect packets-out 1 2\n", "1: expect: unexpected '2'"},
    {"expect packets-out\n", "1: expect: expected a whole number but found end of line"},
    {"expect packets-out >=\n", "1: expect: expected a whole number but found end of line"},
    {"expect drops bogus\n",
     "1: expect drops: unknown reason bogus (e.g. ipv4_bad_checksum, or total)"},
    {"expect drops\n",
     "1: expect drops: unknown reason end of line (e.g. ipv4_bad_checksum, or total)"},
    {"expect drops total x\n", "1: expect: expected a whole number but found x"},
    {"expect egress eth0 after\n",
     "1: expect ... after: expected a duration (e.g. 500ms, 2s) but found end of line"},
    {"expect egress eth0 x\n", "1: expect: unexpected 'x'"},
    {"expect egress\n",
     "1: expect egress: expected an interface name (1..15 characters) but found end of line"},
    {"expect\n",
     "1: expect: expected packets-out, packets-in, echo-replies, drops REASON, stat NAME, upstream "
     "ADDR, upstream-open, clients-unfinished, invariants, egress, net-state, udp-sessions, proxy "
     "ADDR:PORT or NAME done|reset|refused|untouched, but found end of line"},
    {"expect net-state bogus\n",
     "1: expect net-state: expected UP, SETTLING, NO_ROUTE or SUSPENDED but found bogus"},
    {"expect c1 done\n", "1: expect: no client is called 'c1'"},
    {"expect \"packets-out\" 1\n",
     "1: expect: expected packets-out, packets-in, echo-replies, drops REASON, stat NAME, upstream "
     "ADDR, upstream-open, clients-unfinished, invariants, egress, net-state, udp-sessions, proxy "
     "ADDR:PORT or NAME done|reset|refused|untouched, but found packets-out"},
    {"expect stat bogus\n", "1: expect stat: unknown engine counter bogus (e.g. tcp_flows_active)"},
    {"expect stat tcp-flows-active >= x\n", "1: expect: expected a whole number but found x"},
    {"expect udp-sessions x\n", "1: expect udp-sessions: expected a whole number but found x"},
    {"expect bogus\n",
     "1: expect: expected packets-out, packets-in, echo-replies, drops REASON, stat NAME, upstream "
     "ADDR, upstream-open, clients-unfinished, invariants, egress, net-state, udp-sessions, proxy "
     "ADDR:PORT or NAME done|reset|refused|untouched, but found bogus"},
    {"at 0 client c1 tcp 192.0.2.1:80\nexpect c1 untouched x\n",
     "2: expect: expected packets-out, packets-in, echo-replies, drops REASON, stat NAME, upstream "
     "ADDR, upstream-open, clients-unfinished, invariants, egress, net-state, udp-sessions, proxy "
     "ADDR:PORT or NAME done|reset|refused|untouched, but found c1"},
    {"expect upstream x\n", "1: expect upstream: expected ADDR[:PORT] but found x"},
    {"expect upstream 192.0.2.1:80 received 1 intact x\n", "1: expect upstream: unexpected 'x'"},
    {"expect upstream\n", "1: expect upstream: expected ADDR[:PORT] but found end of line"},
    {"expect upstream 192.0.2.1:80 received x\n",
     "1: expect upstream received: expected a size (e.g. 1000, 64KB, 10MB) but found x"},
    {"expect upstream 192.0.2.1:80 streams >= x\n",
     "1: expect upstream streams: expected a whole number but found x"},
    {"expect upstream 192.0.2.1:80 via\n",
     "1: expect upstream via: expected an interface name (1..15 characters) but found end of line"},
    {"expect upstream 192.0.2.1:80 bogus\n",
     "1: expect upstream: expected 'received SIZE [intact]' or 'streams N' but found bogus"},
    {"at 0 client c1 tcp 192.0.2.1:80 send \"a\\x00\"\n",
     "1: bad \\x escape in string (two hex digits, not 00, expected)"},
    {"at 0 inject-echo 10.0.0.1 x\n",
     "1: inject-echo destination: expected an address but found x"},
    {"at 0 inject-echo 10.0.0.1 198.51.100.7 count 0\n", "1: inject-echo count: 1..1000000"},
    {"at 0 inject-echo 10.0.0.1 2001:db8::1\n",
     "1: inject-echo: source and destination are of different families"},
    {"at 0 inject-echo 10.0.0.1 198.51.100.7 id 70000\n",
     "1: inject-echo: id 70000 is above 65535"},
    {"at 0 inject-echo 10.0.0.1 198.51.100.7 interval x\n",
     "1: inject-echo interval: bad duration 'x' (expected a number with a unit: ns, us, ms, s, m, "
     "h)"},
    {"at 0 inject-echo\n", "1: inject-echo source: expected an address but found end of line"},
    {"at 0 inject-echo 10.0.0.1:5 198.51.100.7\n",
     "1: inject-echo source: 10.0.0.1:5 must not have a port"},
    {"at 0 inject-echo 10.0.0.1 198.51.100.7 seq x\n",
     "1: inject-echo seq: expected a whole number but found x"},
    {"at 0 inject-echo 10.0.0.1 198.51.100.7 size 70000\n",
     "1: inject-echo size: at most 65000 bytes"},
    {"at 0 inject-echo 10.0.0.1 198.51.100.7 bogus 1\n",
     "1: inject-echo: unknown option 'bogus' (expected size, id, seq, count, interval)"},
    {"link eth0 up addr x\n",
     "1: link addr: expected ADDR/LEN (192.0.2.10/24, 2001:db8::10/64) but found x"},
    {"link eth0 up gateway x\n", "1: link gateway: expected an address but found x"},
    {"link eth0 sideways\n", "1: link eth0: expected up or down but found sideways"},
    {"link\n", "1: link: expected an interface name (1..15 characters) but found end of line"},
    {"link eth0 up latency\n",
     "1: link latency: expected a duration (e.g. 500ms, 2s) but found end of line"},
    {"link abcdefghijklmnopq up\n",
     "1: link: expected an interface name (1..15 characters) but found abcdefghijklmnopq"},
    {"link eth0 up addr 192.0.2.1/24 addr 192.0.2.2/24 addr 192.0.2.3/24 addr 192.0.2.4/24 addr "
     "192.0.2.5/24 addr 192.0.2.6/24 addr 192.0.2.7/24 addr 192.0.2.8/24 addr 192.0.2.9/24\n",
     "1: link: at most 8 addresses"},
    {"link eth0\n", "1: link eth0: expected up or down but found end of line"},
    {"link \"eth0\" up\n", "1: link: expected an interface name (1..15 characters) but found eth0"},
    {"link a/b up\n", "1: link: expected an interface name (1..15 characters) but found a/b"},
    {"link eth0 up bogus\n",
     "1: link: unknown option 'bogus' (expected addr CIDR, gateway ADDR, latency T)"},
    {"liveness after 1s x\n", "1: liveness: unexpected 'x'"},
    {"liveness\n", "1: liveness: expected 'after T' but found end of line"},
    {"liveness after 1s\nliveness after 2s\n", "2: liveness: given twice"},
    {"liveness after 0\n", "1: liveness after: the time must be later than 0"},
    {"proxy socks5 192.0.2.1:1080 auth \"\" p\n",
     "1: proxy auth: user name 1..255 bytes, password at most 255"},
    {"proxy socks5 192.0.2.1:1080 auth u\n", "1: proxy auth: expected a user name and a password"},
    {"proxy http 192.0.2.1:1080\n", "1: proxy: expected 'socks5' but found http"},
    {"proxy socks5 192.0.2.1\n",
     "1: proxy socks5: 192.0.2.1 needs a port (1.2.3.4:80, [2001:db8::1]:80)"},
    {"proxy socks5 192.0.2.1:1080\nproxy socks5 192.0.2.1:1080\n",
     "2: proxy: 192.0.2.1:1080 given twice"},
    {"proxy socks5 192.0.2.1:1080 bogus\n",
     "1: proxy: unknown option 'bogus' (expected auth USER "
     "PASS, offer USER PASS, blackhole, no-udp, udp-close, mptcp)"},
    {"at 0 replay\n", "1: replay: expected a capture file name"},
    {"resume\n", "1: 'resume' happens at a time: at T resume"},
    {"route x\n", "1: route: expected ADDR/LEN (192.0.2.10/24, 2001:db8::10/64) but found x"},
    {"route default\n", "1: route: expected 'via NAME' or 'none' but found end of line"},
    {"route\n",
     "1: route: expected ADDR/LEN (192.0.2.10/24, 2001:db8::10/64) but found end of line"},
    {"link eth0 up\nroute 10.0.0.0/8 via eth0 x\n", "2: route: unexpected 'x'"},
    {"link eth0 up\nroute default via eth0 inet x\n", "2: route default: unexpected 'x'"},
    {"route default none inet6 x\n", "1: route default: unexpected 'x'"},
    {"route default via nope\n",
     "1: route via: no link is called 'nope' (declare it first: link nope up ...)"},
    {"run\n", "1: run: expected 'until T' but found end of line"},
    {"run until 1s x\n", "1: run until: unexpected 'x'"},
    {"run until 1s\nrun until 2s\n", "2: run until: given twice"},
    {"run until\n", "1: run until: expected a duration (e.g. 500ms, 2s) but found end of line"},
    {"seed 1 2\n", "1: seed: unexpected '2'"},
    {"seed\n", "1: seed: expected a whole number but found end of line"},
    {"seed 99999999999999999999999\n",
     "1: seed: expected a whole number but found 99999999999999999999999"},
    {"seed x\n", "1: seed: expected a whole number but found x"},
    {"\"seed\" 1\n", "1: expected a command but found a string"},
    {"suspend\n", "1: 'suspend' happens at a time: at T suspend"},
    {"bogus 1\n",
     "1: unknown command 'bogus' (expected seed, device, upstream, proxy, proxy-health, "
     "link, addr, route, engine, liveness, at, run, expect)"},
    {"at 0 client c1 tcp 192.0.2.1:80 send \"a\\q\"\n", "1: unknown escape \\q in string"},
    {"at 0 client c1 tcp 192.0.2.1:80 send \"abc\n", "1: unterminated string (missing closing \")"},
    {"upstream default frob\n", "1: upstream: expected a behaviour (echo, sink, source N, refuse, "
                                "blackhole, reset-after N) but found frob"},
    {"upstream bogus echo\n", "1: upstream: expected 'default' or ADDR[:PORT] but found bogus"},
    {"upstream\n", "1: upstream: expected 'default' or ADDR[:PORT] but found end of line"},
    {"upstream default echo latency\n",
     "1: upstream latency: expected a duration (e.g. 500ms, 2s) but found end of line"},
    {"upstream default\n", "1: upstream: expected a behaviour (echo, sink, source N, refuse, "
                           "blackhole, reset-after N) but found end of line"},
    {"upstream default echo refuse 101%\n", "1: upstream refuse: 101% is more than 100%"},
    {"upstream default echo reply-from 192.0.2.1\n",
     "1: upstream reply-from: 192.0.2.1 needs a port (1.2.3.4:80, [2001:db8::1]:80)"},
    {"upstream default echo slow-read 0\n", "1: upstream slow-read: the rate must not be 0"},
    {"upstream default source 1XB\n",
     "1: upstream source: expected a size (e.g. 1000, 64KB, 10MB) but found 1XB"},
    {"upstream default source\n",
     "1: upstream source: expected a size (e.g. 1000, 64KB, 10MB) but found end of line"},
    {"upstream default echo stall 5% for x\n", "1: upstream stall for: bad duration 'x' (expected "
                                               "a number with a unit: ns, us, ms, s, m, h)"},
    {"upstream default echo stall 5%\n",
     "1: upstream stall P%: expected 'for T' but found end of line"},
    {"upstream default echo bogus\n",
     "1: upstream: unknown option 'bogus' (expected latency T or reset-after N)"},
    {"upstream default echo reset 5% within 0\n",
     "1: upstream reset within: the size must not be 0"},
    {"at 0 replay missing.pcap\n", "1: replay: cannot read capture /nonexistent-dir/missing.pcap: "
                                   "/nonexistent-dir/missing.pcap: No such file or directory"},
    {"at x replay cap.pcap\n",
     "1: at: bad duration 'x' (expected a number with a unit: ns, us, ms, s, m, h)"},
};

static void test_parse_error_messages(void) {
  char err[1024], want[1024];
  for (size_t i = 0; i < T2S_ARRAY_LEN(parse_errors); i++) {
    sim_scenario *scn;
    int rv = parse(&scn, parse_errors[i].text, err, sizeof(err));
    snprintf(want, sizeof(want), "t.scn:%s", parse_errors[i].msg);
    CU_ASSERT_EQUAL(rv, T2S_ERR_MALFORMED);
    CU_ASSERT_PTR_NULL(scn);
    if (strcmp(err, want) != 0) {
      fprintf(stderr, "\ncase %zu: %s\n  got  %s\n  want %s\n", i, parse_errors[i].text, err, want);
    }
    CU_ASSERT_STRING_EQUAL(err, want);
  }
}

static void test_parse_long_line(void) {
  static char text[SCN_MAX_LINE + 64];
  char err[256];
  sim_scenario *scn;
  memset(text, ' ', sizeof(text));
  memcpy(text, "seed 1", 6);
  text[SCN_MAX_LINE] = 0; /* exactly the limit: fine */
  CU_ASSERT_EQUAL(parse(&scn, text, err, sizeof(err)), 0);
  sim_scenario_del(scn);
  text[SCN_MAX_LINE] = ' ';
  text[SCN_MAX_LINE + 1] = 0;
  CU_ASSERT_EQUAL(parse(&scn, text, err, sizeof(err)), T2S_ERR_MALFORMED);
  CU_ASSERT_STRING_EQUAL(err, "t.scn:1: line longer than 4096 characters");
}

/* Valid lines into the typed structs of each action kind. */
static void test_parse_actions_typed(void) {
  const char *text = "seed 9\n"
                     "engine network-debounce 40ms\n"
                     "link eth0 up addr 192.0.2.10/24 gateway 192.0.2.1\n"
                     "at 1s inject-echo 10.0.0.1 198.51.100.7 size 100 count 3 interval 10ms "
                     "id 7 seq 9\n"
                     "at 2s client c1 tcp 192.0.2.1:80 send \"hi\\x21\" read-all from 10.0.0.9\n"
                     "at 3s client c2 udp 192.0.2.1:53 send 100 count 4 expect-replies 4\n"
                     "at debounce + 1ms route default via eth0 inet6\n"
                     "at 4s resume slept 30s\n"
                     "expect c1 done before 5s\n"
                     "expect udp-sessions >= 1 after 3s\n"
                     "run until 10s\n";
  char err[512];
  sim_scenario *scn;
  CU_ASSERT_EQUAL_FATAL(parse(&scn, text, err, sizeof(err)), 0);
  uint64_t seed = 0;
  CU_ASSERT_TRUE(sim_scenario_seed(scn, &seed));
  CU_ASSERT_EQUAL(seed, 9);
  CU_ASSERT_EQUAL(sim_scenario_until(scn), 10 * T2S_SECONDS);
  CU_ASSERT_TRUE(sim_scenario_has_clients(scn));
  CU_ASSERT_EQUAL_FATAL(scn->nacts, 5);

  const scn_action *a = &scn->acts[0];
  CU_ASSERT_EQUAL(a->kind, SCN_ACT_INJECT_ECHO);
  CU_ASSERT_EQUAL(a->line, 4);
  CU_ASSERT_EQUAL(a->at, T2S_SECONDS);
  CU_ASSERT_EQUAL(a->u.echo.size, 100);
  CU_ASSERT_EQUAL(a->u.echo.count, 3);
  CU_ASSERT_EQUAL(a->u.echo.interval, 10 * T2S_MILLISECONDS);
  CU_ASSERT_TRUE(a->u.echo.has_id);
  CU_ASSERT_EQUAL(a->u.echo.id, 7);
  CU_ASSERT_EQUAL(a->u.echo.seq, 9);
  CU_ASSERT_EQUAL(a->u.echo.dst.family, T2S_AF_INET);

  a = &scn->acts[1];
  CU_ASSERT_EQUAL(a->kind, SCN_ACT_CLIENT);
  CU_ASSERT_STRING_EQUAL(a->u.client.spec.name, "c1");
  CU_ASSERT_EQUAL(a->u.client.spec.proto, SIM_CLIENT_TCP);
  CU_ASSERT_EQUAL(a->u.client.spec.check, SIM_CHECK_READ_ALL);
  CU_ASSERT_EQUAL(a->u.client.spec.text_len, 3);
  CU_ASSERT_EQUAL(memcmp(a->u.client.text, "hi!", 3), 0);
  CU_ASSERT_EQUAL(a->u.client.spec.remote.port, 80);
  CU_ASSERT_EQUAL(a->u.client.spec.local.family, T2S_AF_INET);

  a = &scn->acts[2];
  CU_ASSERT_EQUAL(a->kind, SCN_ACT_CLIENT);
  CU_ASSERT_EQUAL(a->u.client.spec.proto, SIM_CLIENT_UDP);
  CU_ASSERT_EQUAL(a->u.client.spec.count, 4);
  CU_ASSERT_EQUAL(a->u.client.spec.send_len, 100);
  CU_ASSERT_EQUAL(a->u.client.spec.check, SIM_CHECK_REPLIES);
  CU_ASSERT_EQUAL(a->u.client.spec.expect_len, 4);
  CU_ASSERT_PTR_NULL(a->u.client.text);

  a = &scn->acts[3];
  CU_ASSERT_EQUAL(a->kind, SCN_ACT_NET);
  CU_ASSERT_EQUAL(a->at, 41 * T2S_MILLISECONDS); /* debounce as set by the engine line */
  CU_ASSERT_EQUAL(a->u.net.op, SIM_NET_DEFAULT_VIA);
  CU_ASSERT_STRING_EQUAL(a->u.net.link, "eth0");
  CU_ASSERT_EQUAL(a->u.net.family, T2S_AF_INET6);

  a = &scn->acts[4];
  CU_ASSERT_EQUAL(a->kind, SCN_ACT_NET);
  CU_ASSERT_EQUAL(a->u.net.op, SIM_NET_RESUME);
  CU_ASSERT_TRUE(a->u.net.has_slept);
  CU_ASSERT_EQUAL(a->u.net.slept, 30 * T2S_SECONDS);

  CU_ASSERT_EQUAL_FATAL(scn->nexps, 2);
  CU_ASSERT_EQUAL(scn->exps[0].kind, SCN_EXP_CLIENT);
  CU_ASSERT_EQUAL(scn->exps[0].want, SIM_CLIENT_DONE);
  CU_ASSERT_EQUAL(scn->exps[0].before, 5 * T2S_SECONDS);
  CU_ASSERT_STRING_EQUAL(scn->exps[0].text, "expect c1 done before 5s");
  CU_ASSERT_EQUAL(scn->exps[1].kind, SCN_EXP_UDP_AFTER);
  CU_ASSERT_EQUAL(scn->exps[1].op, SCN_GE);
  CU_ASSERT_TRUE(scn->exps[1].has_after);
  CU_ASSERT_TRUE(scn_expect_sampled(&scn->exps[1]));
  CU_ASSERT_EQUAL(scn->nnetcfg, 1);
  sim_scenario_del(scn);
}

/* The replay mode's scenario: one replay action at 0, the default rule echo. */
static void test_replay_scenario(void) {
  char err[512];
  sim_scenario *scn = NULL;
  CU_ASSERT_EQUAL(sim_scenario_new_replay(&scn, "/nonexistent-dir/x.pcap", err, sizeof(err)),
                  T2S_ERR_NOT_FOUND);
  CU_ASSERT_PTR_NULL(scn);
}

int t2s_test_register_scenario_parse(void) {
  CU_pSuite s = CU_add_suite("scenario_parse", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "lexer: words, strings, comments", test_lex_words_strings_comments) ||
      !CU_add_test(s, "lexer: error messages", test_lex_errors) ||
      !CU_add_test(s, "lexer: durations, sizes, percentages, comparisons, names",
                   test_lex_values) ||
      !CU_add_test(s, "parser: every command's error messages", test_parse_error_messages) ||
      !CU_add_test(s, "parser: line length limit", test_parse_long_line) ||
      !CU_add_test(s, "parser: typed actions and expectations", test_parse_actions_typed) ||
      !CU_add_test(s, "replay mode: missing capture", test_replay_scenario)) {
    return -1;
  }
  return 0;
}
