/* test_udp.c: the engine's UDP sessions against a recording device and upstream: UDP
 * ASSOCIATE and full-cone replies, the setup queue and its bound, idle and DNS timeouts, LRU
 * eviction (DNS first), the no-UDP fallback (DNS over TCP, ICMP port unreachable), the
 * network-change flush, direct mode, and fragments both ways. */
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "engine.h"
#include "engine_fake.h"
#include "engine_internal.h"
#include "frag.h"
#include "packet.h"
#include "socks5.h"
#include "test_util.h"

static engine_fake F;

static t2s_addr addr(const char *s) {
  t2s_addr a;
  CU_ASSERT_FATAL(t2s_addr_parse(s, &a) == 0);
  return a;
}

static t2s_engine *new_engine(bool socks, uint32_t max_sessions) {
  engine_fake_init(&F);
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  if (socks) {
    cfg.proxy_kind = T2S_PROXY_SOCKS5;
    cfg.proxy = addr("203.0.113.200:1080");
  }
  if (max_sessions) {
    cfg.max_udp_sessions = max_sessions;
  }
  t2s_engine *e = NULL;
  CU_ASSERT_FATAL(t2s_engine_new(&e, &cfg, &F.dev, &F.up, NULL) == 0);
  return e;
}

/* A client datagram into the engine. */
static void send_udp(t2s_engine *e, const char *src, const char *dst, const char *payload,
                     t2s_tstamp now) {
  uint8_t buf[1600];
  t2s_addr s = addr(src), d = addr(dst);
  t2s_ssize n = t2s_build_udp(buf, sizeof(buf), &s, &d, (const uint8_t *)payload, strlen(payload));
  CU_ASSERT_FATAL(n > 0);
  CU_ASSERT(t2s_engine_input(e, buf, (size_t)n, now) == 0);
}

/* Drives the SOCKS5 handshake of stream index si: connected, method 0, then reply rep with
 * BND bnd. */
static void handshake(t2s_engine *e, size_t si, uint8_t rep, const char *bnd, t2s_tstamp now) {
  uint64_t id = F.streams[si].id;
  t2s_engine_stream_opened(e, id, 0, now);
  CU_ASSERT_EQUAL(F.streams[si].wlen, 3); /* greeting: 5 1 0 */
  const uint8_t method[] = {5, 0};
  t2s_engine_stream_recv(e, id, method, 2, now);
  CU_ASSERT_FATAL(F.streams[si].wlen >= 3 + 10);
  uint8_t reply[32];
  t2s_addr b = addr(bnd);
  reply[0] = 5;
  reply[1] = rep;
  reply[2] = 0;
  size_t n = 3 + (size_t)t2s_socks5_host_encode(
                     reply + 3, sizeof(reply) - 3,
                     &(t2s_socks5_host){.atyp = b.family == 4 ? 1 : 4, .addr = b});
  t2s_engine_stream_recv(e, id, reply, n, now);
}

/* Parses recorded output packet i. */
static t2s_pkt out_pkt(size_t i) {
  t2s_pkt p;
  CU_ASSERT_FATAL(i < F.npkts);
  CU_ASSERT_FATAL(t2s_pkt_parse(F.pkts[i].data, F.pkts[i].len, &p) == T2S_DROP_NONE);
  return p;
}

static void test_associate_full_cone(void) {
  t2s_engine *e = new_engine(true, 0);
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "one", 0);
  send_udp(e, "198.18.0.2:5000", "192.0.2.11:7", "two", 0);
  CU_ASSERT_EQUAL(F.nstreams, 1); /* one association for the client socket */
  t2s_addr proxy = addr("203.0.113.200:1080");
  CU_ASSERT(t2s_addr_eq(&F.streams[0].dst, &proxy));
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.udp_sessions_active, 1);
  handshake(e, 0, 0, "0.0.0.0:4000", 1);
  CU_ASSERT_EQUAL(F.streams[0].written[3 + 1], 3); /* CMD UDP ASSOCIATE */
  CU_ASSERT_FATAL(F.ndgrams == 1);
  t2s_addr want = addr("203.0.113.200:4000"); /* 0.0.0.0 => the proxy's address */
  CU_ASSERT(t2s_addr_eq(&F.dgrams[0].relay, &want));
  CU_ASSERT_EQUAL(F.dgrams[0].sent, 2); /* the queue was flushed in order */
  t2s_addr dst;
  const uint8_t *pl;
  size_t plen;
  CU_ASSERT(t2s_socks5_udp_decode(F.dgrams[0].last, F.dgrams[0].lastlen, &dst, &pl, &plen, NULL) ==
            0);
  t2s_addr d11 = addr("192.0.2.11:7");
  CU_ASSERT(t2s_addr_eq(&dst, &d11));
  CU_ASSERT(plen == 3 && memcmp(pl, "two", 3) == 0);
  /* A reply from a third remote the client never addressed: full cone. */
  uint8_t buf[128];
  t2s_addr other = addr("192.0.2.99:9999");
  t2s_ssize n = t2s_socks5_udp_encode(buf, sizeof(buf), &other, (const uint8_t *)"hi", 2);
  t2s_engine_dgram_recv(e, F.dgrams[0].id, buf, (size_t)n, 2);
  CU_ASSERT_EQUAL(F.npkts, 1);
  t2s_pkt p = out_pkt(0);
  CU_ASSERT(t2s_addr_eq(&p.src, &other));
  t2s_addr client = addr("198.18.0.2:5000");
  CU_ASSERT(t2s_addr_eq(&p.dst, &client));
  CU_ASSERT(p.payload_len == 2 && memcmp(p.payload, "hi", 2) == 0);
  /* FRAG != 0 from the relay: dropped and counted. */
  buf[2] = 1;
  t2s_engine_dgram_recv(e, F.dgrams[0].id, buf, (size_t)n, 3);
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.drops[T2S_DROP_SOCKS5_UDP_FRAG], 1);
  CU_ASSERT_EQUAL(F.npkts, 1);
  /* The control connection closing ends the session. */
  t2s_engine_stream_eof(e, F.streams[0].id, 4);
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.udp_sessions_active, 0);
  CU_ASSERT(F.dgrams[0].closed && F.streams[0].closed);
  t2s_engine_del(e);
}

static void test_queue_bound(void) {
  t2s_engine *e = new_engine(true, 0);
  for (int i = 0; i < 40; i++) {
    send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "x", 0);
  }
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.drops[T2S_DROP_UDP_QUEUE_FULL], 8);
  handshake(e, 0, 0, "203.0.113.201:4000", 1);
  CU_ASSERT_EQUAL(F.dgrams[0].sent, 32);
  t2s_addr want = addr("203.0.113.201:4000");
  CU_ASSERT(t2s_addr_eq(&F.dgrams[0].relay, &want));
  t2s_engine_del(e);
}

static void test_idle_and_dns_timeouts(void) {
  t2s_engine *e = new_engine(false, 0);
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "a", 0);
  send_udp(e, "198.18.0.2:5001", "192.0.2.53:53", "q", 0);
  CU_ASSERT_EQUAL(F.ndgrams, 2);
  CU_ASSERT_EQUAL(t2s_engine_udp_get_expiry(e), 10 * T2S_SECONDS);
  t2s_engine_handle_expiry(e, 10 * T2S_SECONDS);
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.udp_sessions_active, 1);
  CU_ASSERT(F.dgrams[1].closed && !F.dgrams[0].closed);
  /* Activity (a reply) pushes the idle deadline. */
  t2s_engine_dgram_recv(e, F.dgrams[0].id, (const uint8_t *)"r", 1, 30 * T2S_SECONDS);
  CU_ASSERT_EQUAL(t2s_engine_udp_get_expiry(e), 90 * T2S_SECONDS);
  t2s_engine_handle_expiry(e, 89 * T2S_SECONDS);
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.udp_sessions_active, 1);
  t2s_engine_handle_expiry(e, 90 * T2S_SECONDS);
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.udp_sessions_active, 0);
  CU_ASSERT_EQUAL(st.udp_timeouts, 2);
  CU_ASSERT_EQUAL(t2s_engine_udp_get_expiry(e), T2S_TSTAMP_MAX);
  t2s_engine_del(e);
}

static void test_lru_dns_first(void) {
  t2s_engine *e = new_engine(false, 3);
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "a", 0);  /* other, oldest */
  send_udp(e, "198.18.0.2:5001", "192.0.2.53:53", "q", 1); /* dns */
  send_udp(e, "198.18.0.2:5002", "192.0.2.10:7", "b", 2);  /* other */
  send_udp(e, "198.18.0.2:5003", "192.0.2.10:7", "c", 3);  /* evicts the DNS session */
  CU_ASSERT(F.dgrams[1].closed);
  CU_ASSERT(!F.dgrams[0].closed);
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "a2", 4); /* refreshes 5000 */
  send_udp(e, "198.18.0.2:5004", "192.0.2.10:7", "d", 5);  /* evicts 5002, the LRU */
  CU_ASSERT(F.dgrams[2].closed);
  CU_ASSERT(!F.dgrams[0].closed);
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.udp_evictions, 2);
  CU_ASSERT_EQUAL(st.udp_sessions_active, 3);
  t2s_engine_del(e);
}

static void test_no_udp_fallback(void) {
  t2s_engine *e = new_engine(true, 0);
  send_udp(e, "198.18.0.2:5000", "192.0.2.53:53", "\x12\x34query", 0);
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "other", 0);
  handshake(e, 0, T2S_SOCKS5_REP_CMD_UNSUPPORTED, "0.0.0.0:0", 1);
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.udp_no_udp_verdicts, 1);
  CU_ASSERT_EQUAL(st.udp_proxy_no_udp, 1);
  CU_ASSERT_EQUAL(st.udp_port_unreach_sent, 1);
  /* The port-7 datagram got an ICMP port unreachable. */
  CU_ASSERT_FATAL(F.npkts == 1);
  t2s_pkt p = out_pkt(0);
  CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_ICMP);
  CU_ASSERT_EQUAL(p.l4.icmp.type, 3);
  CU_ASSERT_EQUAL(p.l4.icmp.code, 3);
  /* The DNS query goes over TCP: a CONNECT to the resolver through the proxy. */
  CU_ASSERT_FATAL(F.nstreams == 2);
  handshake(e, 1, 0, "0.0.0.0:0", 2);
  CU_ASSERT_EQUAL(F.streams[1].written[3 + 1], 1); /* CMD CONNECT */
  size_t req = 3 + 10;
  CU_ASSERT_FATAL(F.streams[1].wlen == req + 2 + 7);
  CU_ASSERT_EQUAL(t2s_get16(F.streams[1].written + req), 7);
  CU_ASSERT(memcmp(F.streams[1].written + req + 2, "\x12\x34query", 7) == 0);
  /* The answer, split across two reads, comes back as UDP from the resolver. */
  const uint8_t ans[] = {0, 5, 0x12, 0x34, 'a', 'n', 's'};
  t2s_engine_stream_recv(e, F.streams[1].id, ans, 3, 3);
  CU_ASSERT_EQUAL(F.npkts, 1);
  t2s_engine_stream_recv(e, F.streams[1].id, ans + 3, 4, 3);
  CU_ASSERT_FATAL(F.npkts == 2);
  p = out_pkt(1);
  t2s_addr resolver = addr("192.0.2.53:53");
  CU_ASSERT(t2s_addr_eq(&p.src, &resolver));
  CU_ASSERT(p.payload_len == 5 && memcmp(p.payload,
                                         "\x12\x34"
                                         "ans",
                                         5) == 0);
  /* The verdict holds: the next non-DNS datagram is refused at once, with no new stream. */
  send_udp(e, "198.18.0.2:6000", "192.0.2.10:7", "x", 4);
  CU_ASSERT_EQUAL(F.nstreams, 2);
  CU_ASSERT_EQUAL(F.npkts, 3);
  /* ...and after five minutes UDP ASSOCIATE is tried again. */
  send_udp(e, "198.18.0.2:6000", "192.0.2.10:7", "x", 5 * 60 * T2S_SECONDS + 10);
  CU_ASSERT_EQUAL(F.nstreams, 3);
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.udp_proxy_no_udp, 0);
  CU_ASSERT_EQUAL(st.udp_dns_tcp_queries, 1);
  CU_ASSERT_EQUAL(st.udp_dns_tcp_answers, 1);
  t2s_engine_del(e);
}

static void test_closed_after_request(void) {
  t2s_engine *e = new_engine(true, 0);
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "x", 0);
  t2s_engine_stream_opened(e, F.streams[0].id, 0, 1);
  const uint8_t method[] = {5, 0};
  t2s_engine_stream_recv(e, F.streams[0].id, method, 2, 1);
  t2s_engine_stream_eof(e, F.streams[0].id, 2); /* ssh -D */
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.udp_no_udp_verdicts, 1);
  CU_ASSERT_EQUAL(st.udp_port_unreach_sent, 1);
  CU_ASSERT_EQUAL(st.udp_sessions_active, 0);
  t2s_engine_del(e);
}

static void test_flush_by_egress(void) {
  t2s_engine *e = new_engine(false, 0);
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "a", 0);
  send_udp(e, "198.18.0.2:5001", "192.0.2.10:7", "b", 0);
  t2s_egress same = e->cfg.egress, other = e->cfg.egress;
  other.ifindex = 77;
  CU_ASSERT_EQUAL(t2s_engine_reset_flows(e, &same, 1), 0);
  CU_ASSERT_EQUAL(t2s_engine_reset_flows(e, &other, 1), 2);
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.udp_sessions_active, 0);
  CU_ASSERT(F.dgrams[0].closed && F.dgrams[1].closed);
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "a", 2);
  CU_ASSERT_EQUAL(t2s_engine_reset_flows(e, NULL, 3), 1);
  t2s_engine_del(e);
}

static void test_direct_refused_gives_unreach(void) {
  t2s_engine *e = new_engine(false, 0);
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:9", "a", 0);
  t2s_addr d = addr("192.0.2.10:9");
  CU_ASSERT(t2s_addr_eq(&F.dgrams[0].relay, &d));
  CU_ASSERT(F.dgrams[0].lastlen == 1 && F.dgrams[0].last[0] == 'a'); /* raw, no header */
  t2s_engine_dgram_error(e, F.dgrams[0].id, T2S_ERR_REFUSED, 1);
  CU_ASSERT_FATAL(F.npkts == 1);
  t2s_pkt p = out_pkt(0);
  CU_ASSERT_EQUAL(p.l4.icmp.type, 3);
  t2s_engine_del(e);
}

/* ---------------- DNS queries that cannot be carried get SERVFAIL ---------------- */

/* A DNS query for name (type A, RD) with id into q; returns its length. */
static size_t dns_query(uint8_t *q, size_t cap, uint16_t id, const char *name) {
  CU_ASSERT_FATAL(cap >= 12 + 256 + 4);
  memset(q, 0, 12);
  t2s_put16(q, id);
  t2s_put16(q + 2, 0x0100); /* RD */
  t2s_put16(q + 4, 1);
  t2s_ssize n = t2s_dns_name_to_wire(name, q + 12, cap - 12 - 4);
  CU_ASSERT_FATAL(n > 0);
  t2s_put16(q + 12 + n, 1);
  t2s_put16(q + 14 + n, 1);
  return 12 + (size_t)n + 4;
}

static void send_dns(t2s_engine *e, const char *src, const char *dst, uint16_t id, const char *name,
                     t2s_tstamp now) {
  uint8_t q[300], buf[400];
  size_t qlen = dns_query(q, sizeof(q), id, name);
  t2s_addr s = addr(src), d = addr(dst);
  t2s_ssize n = t2s_build_udp(buf, sizeof(buf), &s, &d, q, qlen);
  CU_ASSERT_FATAL(n > 0);
  CU_ASSERT(t2s_engine_input(e, buf, (size_t)n, now) == 0);
}

/* Output packet i is a SERVFAIL from `from` to `to` answering id's query for name. */
static void check_servfail(size_t i, const char *from, const char *to, uint16_t id,
                           const char *name) {
  t2s_pkt p = out_pkt(i);
  CU_ASSERT_EQUAL_FATAL(p.proto, T2S_IPPROTO_UDP);
  t2s_addr f = addr(from), t = addr(to);
  CU_ASSERT(t2s_addr_eq(&p.src, &f));
  CU_ASSERT(t2s_addr_eq(&p.dst, &t));
  uint8_t q[300];
  size_t qlen = dns_query(q, sizeof(q), id, name);
  CU_ASSERT_FATAL(p.payload_len == qlen); /* header and the question, no records */
  CU_ASSERT_EQUAL(t2s_get16(p.payload), id);
  uint16_t flags = t2s_get16(p.payload + 2);
  CU_ASSERT(flags & 0x8000);       /* QR */
  CU_ASSERT(flags & 0x0100);       /* RD echoed */
  CU_ASSERT(flags & 0x0080);       /* RA, as a resolver */
  CU_ASSERT_EQUAL(flags & 0xf, 2); /* SERVFAIL */
  CU_ASSERT_EQUAL(t2s_get16(p.payload + 4), 1);
  CU_ASSERT_EQUAL(t2s_get16(p.payload + 6), 0);
  CU_ASSERT(memcmp(p.payload + 12, q + 12, qlen - 12) == 0); /* the question echoed */
}

static void test_servfail_assoc_refused(void) {
  t2s_engine *e = new_engine(true, 0);
  send_dns(e, "198.18.0.2:5000", "192.0.2.53:53", 0x1111, "a.example", 0);
  send_dns(e, "198.18.0.2:5000", "192.0.2.54:53", 0x2222, "b.example.org", 0);
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "other", 0);
  send_dns(e, "198.18.0.2:5000", "192.0.2.53:53", 0x3333, "c.example", 0);
  CU_ASSERT_EQUAL(F.npkts, 0);
  handshake(e, 0, 2, "0.0.0.0:0", 1); /* REP 2: not allowed by the ruleset */
  /* Each query its own answer, in order, from where it went; the port-7 datagram nothing. */
  CU_ASSERT_FATAL(F.npkts == 3);
  check_servfail(0, "192.0.2.53:53", "198.18.0.2:5000", 0x1111, "a.example");
  check_servfail(1, "192.0.2.54:53", "198.18.0.2:5000", 0x2222, "b.example.org");
  check_servfail(2, "192.0.2.53:53", "198.18.0.2:5000", 0x3333, "c.example");
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.dns_servfail[T2S_DNS_SERVFAIL_SETUP_FAILED], 3);
  CU_ASSERT_EQUAL(st.drops[T2S_DROP_UDP_SETUP_FAILED], 4);
  CU_ASSERT_EQUAL(st.udp_sessions_active, 0);
  t2s_engine_del(e);
}

static void test_servfail_connect_error_and_timeout(void) {
  t2s_engine *e = new_engine(true, 0);
  /* The proxy refuses the control connection. */
  send_dns(e, "198.18.0.2:5000", "192.0.2.53:53", 0x0a0a, "x.example", 0);
  t2s_engine_stream_opened(e, F.streams[0].id, T2S_ERR_REFUSED, 1);
  CU_ASSERT_FATAL(F.npkts == 1);
  check_servfail(0, "192.0.2.53:53", "198.18.0.2:5000", 0x0a0a, "x.example");
  /* [fd00::] client: the connector's connect timeout. */
  send_dns(e, "[fd00:18::2]:5000", "[2001:db8::53]:53", 0x0b0b, "y.example", 2);
  CU_ASSERT_FATAL(F.nstreams == 2);
  t2s_engine_stream_error(e, F.streams[1].id, T2S_ERR_TIMEOUT, 3);
  CU_ASSERT_FATAL(F.npkts == 2);
  check_servfail(1, "[2001:db8::53]:53", "[fd00:18::2]:5000", 0x0b0b, "y.example");
  /* Not a DNS message, to port 53: nothing (as before). */
  send_udp(e, "198.18.0.2:5001", "192.0.2.53:53", "junk", 4);
  t2s_engine_stream_opened(e, F.streams[2].id, T2S_ERR_REFUSED, 5);
  CU_ASSERT_EQUAL(F.npkts, 2);
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.dns_servfail[T2S_DNS_SERVFAIL_SETUP_FAILED], 2);
  t2s_engine_del(e);
}

static void test_servfail_queue_full_and_flush(void) {
  t2s_engine *e = new_engine(true, 0);
  for (int i = 0; i < 34; i++) {
    send_dns(e, "198.18.0.2:5000", "192.0.2.53:53", (uint16_t)(0x100 + i), "q.example", 0);
  }
  /* The 33rd and 34th do not fit the setup queue: answered at once. */
  CU_ASSERT_FATAL(F.npkts == 2);
  check_servfail(0, "192.0.2.53:53", "198.18.0.2:5000", 0x100 + 32, "q.example");
  check_servfail(1, "192.0.2.53:53", "198.18.0.2:5000", 0x100 + 33, "q.example");
  /* A network change flushes the session while the 32 wait: each answered. */
  CU_ASSERT_EQUAL(t2s_engine_reset_flows(e, NULL, 1), 1);
  CU_ASSERT_FATAL(F.npkts == 34);
  for (size_t i = 0; i < 32; i++) {
    check_servfail(2 + i, "192.0.2.53:53", "198.18.0.2:5000", (uint16_t)(0x100 + i), "q.example");
  }
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.dns_servfail[T2S_DNS_SERVFAIL_QUEUE_FULL], 2);
  CU_ASSERT_EQUAL(st.dns_servfail[T2S_DNS_SERVFAIL_FLUSHED], 32);
  /* A non-DNS datagram queued on a flushed session gets nothing (as before). */
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "x", 2);
  CU_ASSERT_EQUAL(t2s_engine_reset_flows(e, NULL, 3), 1);
  CU_ASSERT_EQUAL(F.npkts, 34);
  t2s_engine_del(e);
}

static void test_servfail_no_udp_fallback_fails(void) {
  t2s_engine *e = new_engine(true, 0);
  send_dns(e, "198.18.0.2:5000", "192.0.2.53:53", 0x4242, "mx.example", 0);
  send_udp(e, "198.18.0.2:5000", "192.0.2.10:7", "other", 0);
  handshake(e, 0, T2S_SOCKS5_REP_CMD_UNSUPPORTED, "0.0.0.0:0", 1); /* REP 7 */
  CU_ASSERT_FATAL(F.npkts == 1);
  t2s_pkt p = out_pkt(0);
  CU_ASSERT_EQUAL(p.proto, T2S_IPPROTO_ICMP); /* the port-7 datagram: unreachable, as before */
  /* The DNS-over-TCP fallback's CONNECT is refused by the proxy (REP 5). */
  CU_ASSERT_FATAL(F.nstreams == 2);
  handshake(e, 1, 5, "0.0.0.0:0", 2);
  CU_ASSERT_FATAL(F.npkts == 2);
  check_servfail(1, "192.0.2.53:53", "198.18.0.2:5000", 0x4242, "mx.example");
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.dns_servfail[T2S_DNS_SERVFAIL_SETUP_FAILED], 1);
  t2s_engine_del(e);
}

static void test_servfail_dns_over_tcp_stream_lost(void) {
  t2s_engine *e = new_engine(true, 0);
  send_dns(e, "198.18.0.2:5000", "192.0.2.53:53", 0x0001, "one.example", 0);
  handshake(e, 0, T2S_SOCKS5_REP_CMD_UNSUPPORTED, "0.0.0.0:0", 1); /* REP 7: DNS over TCP */
  CU_ASSERT_FATAL(F.nstreams == 2);
  handshake(e, 1, 0, "0.0.0.0:0", 2); /* the CONNECT succeeds; the query is written */
  send_dns(e, "198.18.0.2:5000", "192.0.2.53:53", 0x0002, "two.example", 3);
  CU_ASSERT_EQUAL(F.nstreams, 2); /* the same stream */
  /* The resolver answers the second one, then hangs up on the first. */
  uint8_t ans[2 + 12];
  memset(ans, 0, sizeof(ans));
  t2s_put16(ans, 12);
  t2s_put16(ans + 2, 0x0002);
  t2s_put16(ans + 4, 0x8180);
  t2s_engine_stream_recv(e, F.streams[1].id, ans, sizeof(ans), 4);
  CU_ASSERT_FATAL(F.npkts == 1);
  t2s_engine_stream_eof(e, F.streams[1].id, 5);
  CU_ASSERT_FATAL(F.npkts == 2); /* only the unanswered one */
  check_servfail(1, "192.0.2.53:53", "198.18.0.2:5000", 0x0001, "one.example");
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.dns_servfail[T2S_DNS_SERVFAIL_FLUSHED], 1);
  CU_ASSERT_EQUAL(st.udp_sessions_active, 0);
  t2s_engine_del(e);
}

static void test_big_reply_fragmented_v6(void) {
  t2s_engine *e = new_engine(false, 0);
  send_udp(e, "[fd00:18::2]:5000", "[2001:db8::53]:53", "q", 0);
  static uint8_t big[4000];
  memset(big, 0x5a, sizeof(big));
  t2s_engine_dgram_recv(e, F.dgrams[0].id, big, sizeof(big), 1);
  CU_ASSERT_EQUAL(F.npkts, 3); /* 4048 bytes over 1448-byte fragments */
  t2s_reasm_config c;
  t2s_reasm_config_default(&c);
  t2s_reasm *r = NULL;
  t2s_reasm_new(&r, &c);
  static uint8_t whole[T2S_REASM_MAX_PKT];
  t2s_ssize w = 0;
  for (size_t i = 0; i < F.npkts; i++) {
    CU_ASSERT(F.pkts[i].len <= 1500);
    t2s_pkt p;
    CU_ASSERT(t2s_pkt_parse(F.pkts[i].data, F.pkts[i].len, &p) == T2S_DROP_FRAGMENT);
    w = t2s_reasm_input(r, &p, 1, whole, sizeof(whole), NULL);
  }
  CU_ASSERT_FATAL(w > 0);
  t2s_pkt p;
  CU_ASSERT_EQUAL(t2s_pkt_parse(whole, (size_t)w, &p), T2S_DROP_NONE);
  CU_ASSERT(p.payload_len == sizeof(big) && memcmp(p.payload, big, sizeof(big)) == 0);
  t2s_reasm_del(r);
  t2s_engine_del(e);
}

static void test_fragmented_ping_both_ways(void) {
  t2s_engine *e = new_engine(false, 0);
  /* An ICMP echo request with 3000 bytes of data, fragmented by the client. */
  static uint8_t pkt[3100], msg[3008];
  memset(msg, 0, 8);
  msg[0] = 8;
  t2s_put16(msg + 4, 42);
  t2s_put16(msg + 6, 1);
  for (size_t i = 8; i < sizeof(msg); i++) {
    msg[i] = (uint8_t)i;
  }
  t2s_put16(msg + 2, t2s_csum_fold(t2s_csum_add(0, msg, sizeof(msg))));
  t2s_addr s = addr("198.18.0.2"), d = addr("192.0.2.1");
  memset(pkt, 0, 20);
  pkt[0] = 0x45;
  t2s_put16(pkt + 2, (uint16_t)(20 + sizeof(msg)));
  pkt[8] = 64;
  pkt[9] = 1;
  memcpy(pkt + 12, s.ip, 4);
  memcpy(pkt + 16, d.ip, 4);
  t2s_put16(pkt + 10, t2s_csum_fold(t2s_csum_add(0, pkt, 20)));
  memcpy(pkt + 20, msg, sizeof(msg));
  /* Split it with the engine's own splitter into a tiny recording device. */
  static engine_fake in;
  engine_fake_init(&in);
  static uint8_t scratch[1500];
  CU_ASSERT_EQUAL(t2s_frag_split(pkt, 20 + sizeof(msg), 1500, 5, scratch, sizeof(scratch),
                                 engine_fake_send, &in),
                  3);
  for (size_t i = 0; i < in.npkts; i++) {
    t2s_engine_input(e, in.pkts[i].data, in.pkts[i].len, 0);
  }
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.frag_reassembled, 1);
  CU_ASSERT_EQUAL(st.icmp_echo_replies, 1);
  CU_ASSERT_EQUAL(st.frag_sent, 3);
  CU_ASSERT_EQUAL(F.npkts, 3);
  t2s_engine_del(e);
}

static void test_fragmented_client_datagram_reassembled(void) {
  t2s_engine *e = new_engine(true, 0);
  static uint8_t pkt[4200], payload[4000], scratch[1500];
  for (size_t i = 0; i < sizeof(payload); i++) {
    payload[i] = (uint8_t)(i * 13);
  }
  t2s_addr s = addr("[fd00:18::2]:5000"), d = addr("[2001:db8::53]:53");
  t2s_ssize n = t2s_build_udp(pkt, sizeof(pkt), &s, &d, payload, sizeof(payload));
  CU_ASSERT_FATAL(n > 0);
  static engine_fake in;
  engine_fake_init(&in);
  CU_ASSERT_EQUAL(
      t2s_frag_split(pkt, (size_t)n, 1280, 77, scratch, sizeof(scratch), engine_fake_send, &in), 4);
  for (size_t i = in.npkts; i-- > 0;) { /* last fragment first */
    t2s_engine_input(e, in.pkts[i].data, in.pkts[i].len, 0);
  }
  handshake(e, 0, 0, "0.0.0.0:4000", 1);
  CU_ASSERT_FATAL(F.ndgrams == 1);
  t2s_addr dst;
  const uint8_t *pl;
  size_t plen;
  /* The recorder keeps at most 2048 bytes: check the header and the length only. */
  CU_ASSERT_EQUAL(F.dgrams[0].sent, 1);
  CU_ASSERT(t2s_socks5_udp_decode(F.dgrams[0].last, 22, &dst, &pl, &plen, NULL) == 0);
  CU_ASSERT(t2s_addr_eq(&dst, &d));
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.frag_reassembled, 1);
  CU_ASSERT_EQUAL(st.bytes_up, sizeof(payload));
  t2s_engine_del(e);
}

int t2s_test_register_udp(void) {
  CU_pSuite s = CU_add_suite("udp", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "UDP ASSOCIATE, queue flushed, full-cone reply, control close",
                   test_associate_full_cone) ||
      !CU_add_test(s, "setup queue bounded", test_queue_bound) ||
      !CU_add_test(s, "idle and DNS timeouts", test_idle_and_dns_timeouts) ||
      !CU_add_test(s, "LRU eviction at the cap, DNS first", test_lru_dns_first) ||
      !CU_add_test(s, "REP 7: DNS over TCP, ICMP unreachable, verdict retried",
                   test_no_udp_fallback) ||
      !CU_add_test(s, "closed after the request (ssh -D) is no UDP", test_closed_after_request) ||
      !CU_add_test(s, "network-change flush by egress", test_flush_by_egress) ||
      !CU_add_test(s, "direct mode: raw datagrams, refused gives ICMP unreachable",
                   test_direct_refused_gives_unreach) ||
      !CU_add_test(s, "SERVFAIL: queued queries of a refused ASSOCIATE, each its own",
                   test_servfail_assoc_refused) ||
      !CU_add_test(s, "SERVFAIL: proxy refused, connect timeout, non-DNS untouched",
                   test_servfail_connect_error_and_timeout) ||
      !CU_add_test(s, "SERVFAIL: setup queue full, session flushed by a network change",
                   test_servfail_queue_full_and_flush) ||
      !CU_add_test(s, "SERVFAIL: REP 7 and the DNS-over-TCP fallback refused",
                   test_servfail_no_udp_fallback_fails) ||
      !CU_add_test(s, "SERVFAIL: DNS-over-TCP stream lost with a query unanswered",
                   test_servfail_dns_over_tcp_stream_lost) ||
      !CU_add_test(s, "big v6 reply fragmented", test_big_reply_fragmented_v6) ||
      !CU_add_test(s, "ping -s 3000: reassembled in, fragmented out",
                   test_fragmented_ping_both_ways) ||
      !CU_add_test(s, "fragmented client datagram reassembled into its session",
                   test_fragmented_client_datagram_reassembled)) {
    return -1;
  }
  return 0;
}
