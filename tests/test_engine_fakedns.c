/* test_engine_fakedns.c: the engine with --fake-dns against a recording device and upstream:
 * UDP queries answered from the table (from the address asked), other types forwarded, TCP and
 * UDP flows to a pool address carried by name (SOCKS5 ATYP 3) and pinned while they live, a
 * pool address no name holds refused at once (RST, ICMP) and counted, the table kept across a
 * network change. */
#include <string.h>

#include "dns.h"
#include "engine.h"
#include "engine_fake.h"
#include "fakedns.h"
#include "packet.h"
#include "socks5.h"
#include "test_util.h"

static engine_fake F;

static t2s_addr addr(const char *s) {
  t2s_addr a;
  CU_ASSERT_FATAL(t2s_addr_parse(s, &a) == 0);
  return a;
}

static t2s_engine *new_engine(t2s_fakedns **ptable, uint32_t size) {
  engine_fake_init(&F);
  t2s_fakedns_config fc;
  t2s_fakedns_config_default(&fc);
  fc.size = size;
  CU_ASSERT_FATAL(t2s_fakedns_new(ptable, &fc) == 0);
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.proxy_kind = T2S_PROXY_SOCKS5;
  cfg.proxy = addr("203.0.113.200:1080");
  cfg.fake_dns = *ptable;
  t2s_engine *e = NULL;
  CU_ASSERT_FATAL(t2s_engine_new(&e, &cfg, &F.dev, &F.up, NULL) == 0);
  return e;
}

static void send_udp(t2s_engine *e, const char *src, const char *dst, const uint8_t *payload,
                     size_t len, t2s_tstamp now) {
  uint8_t buf[1600];
  t2s_addr s = addr(src), d = addr(dst);
  t2s_ssize n = t2s_build_udp(buf, sizeof(buf), &s, &d, payload, len);
  CU_ASSERT_FATAL(n > 0);
  CU_ASSERT(t2s_engine_input(e, buf, (size_t)n, now) == 0);
}

static size_t query(uint8_t *buf, const char *name, uint16_t qtype) {
  memset(buf, 0, 12);
  t2s_put16(buf, 0x0707);
  t2s_put16(buf + 2, 0x0100);
  t2s_put16(buf + 4, 1);
  t2s_ssize n = t2s_dns_name_to_wire(name, buf + 12, 300);
  CU_ASSERT_FATAL(n > 0);
  t2s_put16(buf + 12 + n, qtype);
  t2s_put16(buf + 14 + n, T2S_DNS_CLASS_IN);
  return 16 + (size_t)n;
}

static t2s_pkt out_pkt(size_t i) {
  t2s_pkt p;
  CU_ASSERT_FATAL(i < F.npkts);
  CU_ASSERT_FATAL(t2s_pkt_parse(F.pkts[i].data, F.pkts[i].len, &p) == T2S_DROP_NONE);
  return p;
}

static void send_syn(t2s_engine *e, const char *src, const char *dst, t2s_tstamp now) {
  uint8_t buf[128];
  t2s_addr s = addr(src), d = addr(dst);
  t2s_tcp_opts opts;
  memset(&opts, 0, sizeof(opts));
  t2s_ssize n =
      t2s_build_tcp(buf, sizeof(buf), &s, &d, 1000, 0, T2S_TCP_SYN, 65535, &opts, NULL, 0, NULL, 0);
  CU_ASSERT_FATAL(n > 0);
  CU_ASSERT(t2s_engine_input(e, buf, (size_t)n, now) == 0);
}

/* A UDP query for A: the answer comes back at once from the resolver address the client
 * asked, with the pool address; nothing goes upstream. MX is forwarded. */
static void test_udp_query_answered(void) {
  t2s_fakedns *t;
  t2s_engine *e = new_engine(&t, 64);
  uint8_t q[300];
  size_t ql = query(q, "www.example.com", T2S_DNS_TYPE_A);
  send_udp(e, "198.18.0.2:33333", "198.18.0.53:53", q, ql, 0);
  CU_ASSERT_EQUAL(F.nstreams, 0);
  CU_ASSERT_EQUAL_FATAL(F.npkts, 1);
  t2s_pkt p = out_pkt(0);
  t2s_addr from = addr("198.18.0.53:53"), to = addr("198.18.0.2:33333");
  CU_ASSERT(t2s_addr_eq(&p.src, &from));
  CU_ASSERT(t2s_addr_eq(&p.dst, &to));
  CU_ASSERT_EQUAL(t2s_get16(p.payload), 0x0707);
  CU_ASSERT(memcmp(p.payload + p.payload_len - 4, "\xc6\x13\x00\x01", 4) == 0);
  /* MX: carried as without --fake-dns (an association to the proxy). */
  ql = query(q, "example.com", T2S_DNS_TYPE_MX);
  send_udp(e, "198.18.0.2:33334", "198.18.0.53:53", q, ql, 1);
  CU_ASSERT_EQUAL(F.nstreams, 1);
  CU_ASSERT_EQUAL(F.npkts, 1);
  /* A response sent to port 53 is dropped and counted, never answered. */
  q[2] |= 0x80;
  send_udp(e, "198.18.0.2:33335", "198.18.0.53:53", q, ql, 2);
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.drops[T2S_DROP_DNS_NOT_QUERY], 1);
  CU_ASSERT_EQUAL(F.npkts, 1);
  t2s_fakedns_stats fs;
  t2s_fakedns_get_stats(t, &fs);
  CU_ASSERT_EQUAL(fs.answered, 1);
  CU_ASSERT_EQUAL(fs.forwarded, 1);
  CU_ASSERT_EQUAL(fs.dropped, 1);
  t2s_engine_del(e);
  t2s_fakedns_del(t);
}

/* A TCP flow to a pool address: CONNECT with the name and the port; the entry is pinned while
 * the flow lives and unpinned when it is gone. */
static void test_tcp_connect_by_name(void) {
  t2s_fakedns *t;
  t2s_engine *e = new_engine(&t, 2);
  t2s_addr a;
  CU_ASSERT_FATAL(t2s_fakedns_resolve(t, "only-by-name.example", T2S_AF_INET6, &a) == 0);
  send_syn(e, "[fd00:18::2]:40000", "[fd00:19::1]:443", 0);
  CU_ASSERT_EQUAL_FATAL(F.nstreams, 1);
  t2s_addr proxy = addr("203.0.113.200:1080");
  CU_ASSERT(t2s_addr_eq(&F.streams[0].dst, &proxy));
  t2s_engine_stream_opened(e, F.streams[0].id, 0, 1);
  const uint8_t method[] = {5, 0};
  t2s_engine_stream_recv(e, F.streams[0].id, method, 2, 1);
  static const char want[] = "\x05\x01\x00\x03\x14only-by-name.example\x01\xbb";
  CU_ASSERT_EQUAL_FATAL(F.streams[0].wlen, 3 + sizeof(want) - 1);
  CU_ASSERT(memcmp(F.streams[0].written + 3, want, sizeof(want) - 1) == 0);
  t2s_fakedns_stats fs;
  t2s_fakedns_get_stats(t, &fs);
  CU_ASSERT_EQUAL(fs.pinned, 1);
  CU_ASSERT_EQUAL(fs.flows, 1);
  /* Pinned: two new names recycle nothing but the other entry. */
  t2s_addr x;
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, "b.example", T2S_AF_INET, &x), 0);
  CU_ASSERT_EQUAL(t2s_fakedns_resolve(t, "c.example", T2S_AF_INET, &x), 0);
  CU_ASSERT_STRING_EQUAL(t2s_fakedns_name_of(t, &a, false), "only-by-name.example");
  /* A network change resets the flow; the table keeps the name, no longer pinned. */
  CU_ASSERT_EQUAL(t2s_engine_reset_all(e, 2), 1);
  t2s_engine_handle_expiry(e, 3);
  t2s_fakedns_get_stats(t, &fs);
  CU_ASSERT_EQUAL(fs.pinned, 0);
  CU_ASSERT_STRING_EQUAL(t2s_fakedns_name_of(t, &a, false), "only-by-name.example");
  /* A flow alive when the engine is deleted is unpinned too. */
  send_syn(e, "[fd00:18::2]:40001", "[fd00:19::1]:443", 4);
  t2s_fakedns_get_stats(t, &fs);
  CU_ASSERT_EQUAL(fs.pinned, 1);
  t2s_engine_del(e);
  t2s_fakedns_get_stats(t, &fs);
  CU_ASSERT_EQUAL(fs.pinned, 0);
  t2s_fakedns_del(t);
}

/* A SYN to a pool address no name holds gets an RST at once, counted; nothing goes upstream. */
static void test_tcp_stale_address_reset(void) {
  t2s_fakedns *t;
  t2s_engine *e = new_engine(&t, 2);
  send_syn(e, "198.18.0.2:40001", "198.19.0.77:80", 0);
  CU_ASSERT_EQUAL(F.nstreams, 0);
  CU_ASSERT_EQUAL_FATAL(F.npkts, 1);
  t2s_pkt p = out_pkt(0);
  CU_ASSERT_EQUAL(p.proto, 6);
  CU_ASSERT(p.l4.tcp.flags & T2S_TCP_RST);
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.drops[T2S_DROP_FAKE_DNS_STALE], 1);
  t2s_fakedns_stats fs;
  t2s_fakedns_get_stats(t, &fs);
  CU_ASSERT_EQUAL(fs.stale, 1);
  /* An address outside the pool is carried as usual. */
  send_syn(e, "198.18.0.2:40002", "192.0.2.80:80", 1);
  CU_ASSERT_EQUAL(F.nstreams, 1);
  t2s_engine_del(e);
  t2s_fakedns_del(t);
}

/* UDP to a pool address (QUIC): its own association, datagrams to the name (ATYP 3), replies
 * from the pool address whatever source the relay names; a stale address gets ICMP port
 * unreachable. */
static void test_udp_by_name(void) {
  t2s_fakedns *t;
  t2s_engine *e = new_engine(&t, 8);
  t2s_addr a;
  CU_ASSERT_FATAL(t2s_fakedns_resolve(t, "quic.example", T2S_AF_INET, &a) == 0);
  send_udp(e, "198.18.0.2:5000", "198.19.0.1:443", (const uint8_t *)"hello", 5, 0);
  CU_ASSERT_EQUAL_FATAL(F.nstreams, 1);
  t2s_engine_stream_opened(e, F.streams[0].id, 0, 1);
  const uint8_t method[] = {5, 0};
  t2s_engine_stream_recv(e, F.streams[0].id, method, 2, 1);
  const uint8_t reply[] = {5, 0, 0, 1, 203, 0, 113, 200, 0x0f, 0xa0};
  t2s_engine_stream_recv(e, F.streams[0].id, reply, sizeof(reply), 1);
  CU_ASSERT_EQUAL_FATAL(F.ndgrams, 1);
  CU_ASSERT_EQUAL(F.dgrams[0].sent, 1);
  t2s_socks5_host h;
  const uint8_t *pl;
  size_t plen;
  CU_ASSERT_FATAL(
      t2s_socks5_udp_decode_host(F.dgrams[0].last, F.dgrams[0].lastlen, &h, &pl, &plen, NULL) == 0);
  CU_ASSERT_EQUAL(h.atyp, T2S_SOCKS5_ATYP_DOMAIN);
  CU_ASSERT_STRING_EQUAL(h.domain, "quic.example");
  CU_ASSERT_EQUAL(h.addr.port, 443);
  /* The reply, from the real address the relay resolved: delivered from the pool address. */
  uint8_t buf[64];
  t2s_addr real = addr("192.0.2.44:443");
  t2s_ssize n = t2s_socks5_udp_encode(buf, sizeof(buf), &real, (const uint8_t *)"hi", 2);
  t2s_engine_dgram_recv(e, F.dgrams[0].id, buf, (size_t)n, 2);
  CU_ASSERT_EQUAL_FATAL(F.npkts, 1);
  t2s_pkt p = out_pkt(0);
  t2s_addr pool = addr("198.19.0.1:443");
  CU_ASSERT(t2s_addr_eq(&p.src, &pool));
  /* A second datagram uses the same association. */
  send_udp(e, "198.18.0.2:5000", "198.19.0.1:443", (const uint8_t *)"again", 5, 3);
  CU_ASSERT_EQUAL(F.nstreams, 1);
  CU_ASSERT_EQUAL(F.dgrams[0].sent, 2);
  t2s_fakedns_stats fs;
  t2s_fakedns_get_stats(t, &fs);
  CU_ASSERT_EQUAL(fs.pinned, 1);
  /* A stale pool address: ICMP port unreachable, counted. */
  send_udp(e, "198.18.0.2:5001", "198.19.0.9:443", (const uint8_t *)"x", 1, 4);
  CU_ASSERT_EQUAL_FATAL(F.npkts, 2);
  p = out_pkt(1);
  CU_ASSERT_EQUAL(p.proto, 1);
  CU_ASSERT_EQUAL(p.l4.icmp.type, 3);
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.drops[T2S_DROP_FAKE_DNS_STALE], 1);
  /* The engine gone, nothing stays pinned. */
  t2s_engine_del(e);
  t2s_fakedns_get_stats(t, &fs);
  CU_ASSERT_EQUAL(fs.pinned, 0);
  t2s_fakedns_del(t);
}

int t2s_test_register_engine_fakedns(void) {
  CU_pSuite s = CU_add_suite("engine_fakedns", NULL, NULL);
  if (s == NULL) {
    return -1;
  }
  CU_add_test(s, "udp_query_answered", test_udp_query_answered);
  CU_add_test(s, "tcp_connect_by_name", test_tcp_connect_by_name);
  CU_add_test(s, "tcp_stale_address_reset", test_tcp_stale_address_reset);
  CU_add_test(s, "udp_by_name", test_udp_by_name);
  return 0;
}
