/*
 * fuzz_dns.c: DNS messages into the fake-IP responder's codec and table (src/core/dns.c,
 * src/core/fakedns.c), and the same bytes as a --fake-dns-state file.
 *
 * Input: byte 0 chooses the setup (bit 0 the message came over TCP, bit 1 no IPv6 pool,
 * bit 2 no IPv4 pool (not with bit 1), bit 3 pin the first entry, bit 4 a table of one
 * entry); the rest is one DNS message.
 *
 * Oracles: a parsed query has a bounded name whose text is as long as it says and can be
 * answered within its size limit; every answer of the responder is a response to the same ID
 * within 512 bytes (or the client's EDNS size) over UDP; asking twice gives the same answer;
 * the name reader never fails to stop at any offset; a state that loads writes back a state
 * that loads into the same state.
 */
#include <string.h>

#include "alloc.h"
#include "dns.h"
#include "fakedns.h"
#include "fuzz_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static t2s_fakedns *make_table(uint8_t sel, t2s_mem *mem) {
  t2s_fakedns_config cfg;
  t2s_fakedns_config_default(&cfg);
  if (sel & 2) {
    cfg.pool6.family = 0;
  } else if (sel & 4) {
    cfg.pool4.family = 0;
  }
  cfg.size = (sel & 16) ? 1 : 3;
  cfg.seed = 7;
  cfg.exclude[0] = "corp.example";
  cfg.nexclude = 1;
  cfg.mem = mem;
  t2s_fakedns *t = NULL;
  FZ_CHECK(t2s_fakedns_new(&t, &cfg) == 0, "table");
  return t;
}

static void check_query(const uint8_t *msg, size_t len) {
  t2s_dns_query q;
  int rv = t2s_dns_parse_query(msg, len, &q);
  if (rv != 0) {
    FZ_CHECK(rv == T2S_ERR_MALFORMED || rv == T2S_ERR_UNSUPPORTED, "parse returned %d", rv);
    FZ_CHECK(!q.header_ok || len >= T2S_DNS_HEADER_LEN, "header_ok on a runt");
    return;
  }
  FZ_CHECK(q.qname_wirelen >= 1 && q.qname_wirelen <= T2S_DNS_NAME_MAX, "wirelen %zu",
           q.qname_wirelen);
  FZ_CHECK(strlen(q.qname) == q.qnamelen && q.qnamelen + 2 <= q.qname_wirelen + 1,
           "text length %zu for %zu octets", q.qnamelen, q.qname_wirelen);
  uint8_t out[1024];
  size_t limit = t2s_dns_udp_limit(&q);
  t2s_ssize n = t2s_dns_build_answer(out, sizeof(out), limit, &q, T2S_DNS_RCODE_NOERROR,
                                     (const uint8_t *)"\x01\x02\x03\x04", 4, 1);
  FZ_CHECK(n >= T2S_DNS_HEADER_LEN && (size_t)n <= limit, "answer of %td for limit %zu", n, limit);
  /* The question of the answer reads back as the same name. */
  uint8_t wire[T2S_DNS_NAME_MAX];
  size_t wl, next;
  FZ_CHECK(t2s_dns_read_name(out, (size_t)n, T2S_DNS_HEADER_LEN, wire, &wl, &next) == 0,
           "answer's question does not parse");
  FZ_CHECK(wl == q.qname_wirelen && memcmp(wire, q.qname_wire, wl) == 0, "question changed");
  /* A plain name goes to wire form and back. */
  if (q.qname_plain) {
    t2s_ssize l = t2s_dns_name_to_wire(q.qname, wire, sizeof(wire));
    FZ_CHECK(l == (t2s_ssize)q.qname_wirelen, "name_to_wire %td != %zu", l, q.qname_wirelen);
  }
}

static void check_respond(t2s_fakedns *t, const uint8_t *msg, size_t len, bool tcp) {
  uint8_t out[2][T2S_FAKEDNS_ANSWER_MAX];
  size_t n[2];
  t2s_fakedns_verdict v[2];
  for (int k = 0; k < 2; k++) {
    v[k] = t2s_fakedns_respond(t, msg, len, tcp, out[k], sizeof(out[k]), &n[k]);
    if (v[k] != T2S_FAKEDNS_ANSWER) {
      continue;
    }
    FZ_CHECK(n[k] >= T2S_DNS_HEADER_LEN && n[k] <= sizeof(out[k]), "answer length %zu", n[k]);
    FZ_CHECK(len >= 2 && out[k][0] == msg[0] && out[k][1] == msg[1], "ID changed");
    FZ_CHECK(out[k][2] & 0x80, "QR not set");
    t2s_dns_query q;
    if (!tcp && t2s_dns_parse_query(msg, len, &q) == 0) {
      FZ_CHECK(n[k] <= t2s_dns_udp_limit(&q), "UDP answer %zu over %zu", n[k],
               t2s_dns_udp_limit(&q));
    }
  }
  FZ_CHECK(v[0] == v[1], "verdict changed: %d then %d", v[0], v[1]);
  if (v[0] == T2S_FAKEDNS_ANSWER) {
    FZ_CHECK(n[0] == n[1] && memcmp(out[0], out[1], n[0]) == 0, "answer changed");
  }
}

static void check_state(uint8_t sel, const uint8_t *data, size_t len, t2s_mem *mem) {
  t2s_fakedns *a = make_table(sel, mem), *b = make_table(sel, mem);
  size_t loaded, skipped;
  if (t2s_fakedns_state_load(a, (const char *)data, len, &loaded, &skipped) == 0) {
    static char s1[1 << 16], s2[1 << 16];
    t2s_ssize l1 = t2s_fakedns_state_write(a, s1, sizeof(s1));
    FZ_CHECK(l1 > 0 && (size_t)l1 == t2s_fakedns_state_len(a), "state length");
    FZ_CHECK(t2s_fakedns_state_load(b, s1, (size_t)l1, &loaded, &skipped) == 0, "reload");
    FZ_CHECK(skipped == 0, "a written state has %zu lines skipped", skipped);
    t2s_ssize l2 = t2s_fakedns_state_write(b, s2, sizeof(s2));
    /* The cursor line may differ (a loaded cursor is only taken when in range). */
    const char *e1 = memchr(s1 + 19, '\n', (size_t)l1 - 19);
    const char *e2 = memchr(s2 + 19, '\n', (size_t)l2 - 19);
    FZ_CHECK(e1 && e2 && (s1 + l1) - e1 == (s2 + l2) - e2 &&
                 memcmp(e1, e2, (size_t)((s1 + l1) - e1)) == 0,
             "state changed on reload");
  }
  t2s_fakedns_del(a);
  t2s_fakedns_del(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) {
    return 0;
  }
  uint8_t sel = data[0];
  const uint8_t *msg = data + 1;
  size_t len = size - 1;
  t2s_mem mem = {0};
  check_query(msg, len);
  /* The name reader from the first 64 offsets. */
  for (size_t off = 0; off < len && off < 64; off++) {
    uint8_t wire[T2S_DNS_NAME_MAX];
    size_t wl, next = 0;
    if (t2s_dns_read_name(msg, len, off, wire, &wl, &next) == 0) {
      FZ_CHECK(wl >= 1 && wl <= T2S_DNS_NAME_MAX && next > off && next <= len, "read_name");
    }
  }
  t2s_fakedns *t = make_table(sel, &mem);
  t2s_addr a;
  t2s_fakedns_resolve(t, "www.example.com", T2S_AF_INET, &a);
  t2s_fakedns_resolve(t, "www.example.com", T2S_AF_INET6, &a);
  if (sel & 8) {
    t2s_addr first;
    memset(&first, 0, sizeof(first));
    if (t2s_fakedns_resolve(t, "pinned.example", T2S_AF_INET, &first) == 0 ||
        t2s_fakedns_resolve(t, "pinned.example", T2S_AF_INET6, &first) == 0) {
      FZ_CHECK(t2s_fakedns_pin(t, &first) != NULL, "pin");
    }
    check_respond(t, msg, len, sel & 1);
    t2s_fakedns_unpin(t, &first);
  } else {
    check_respond(t, msg, len, sel & 1);
  }
  t2s_fakedns_del(t);
  check_state(sel, msg, len, &mem);
  FZ_CHECK(mem.live == 0, "%llu blocks leaked", (unsigned long long)mem.live);
  return 0;
}
