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
#include "fuzz_harness.h"
#include "packet.h"
#include "rand.h"
#include "socks5.h"
#include "test_util.h"

static engine_fake F;

static t2s_addr addr(const char *s) {
  t2s_addr a;
  CU_ASSERT_FATAL(t2s_addr_parse(s, &a) == 0);
  return a;
}

static t2s_engine *new_engine_bufs(t2s_fakedns **ptable, uint32_t size, uint32_t sndbuf,
                                   uint32_t rcvbuf) {
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
  if (sndbuf != 0) {
    cfg.tcp_sndbuf = sndbuf;
    cfg.tcp_rcvbuf = rcvbuf;
  }
  t2s_engine *e = NULL;
  CU_ASSERT_FATAL(t2s_engine_new(&e, &cfg, &F.dev, &F.up, NULL) == 0);
  return e;
}

static t2s_engine *new_engine(t2s_fakedns **ptable, uint32_t size) {
  return new_engine_bufs(ptable, size, 0, 0);
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

/* ---- DNS over TCP answered by the engine (engine_fakedns_tcp.c) ---- */

/* A client's TCP connection driven by hand: the next sequence numbers both ways and what the
 * engine sent it. */
typedef struct tclient {
  t2s_addr client, server;
  uint32_t seq, ack;
  size_t seen;      /* packets of F.pkts already read */
  uint8_t rx[8192]; /* payload bytes received, in order */
  size_t rxlen;
  bool fin, rst, synack;
} tclient;

static void tc_seg(t2s_engine *e, tclient *c, uint8_t flags, const uint8_t *data, size_t len,
                   t2s_tstamp now) {
  uint8_t buf[1600];
  t2s_tcp_opts o;
  memset(&o, 0, sizeof(o));
  if (flags & T2S_TCP_SYN) {
    o.has_mss = true;
    o.mss = 1460;
  }
  t2s_ssize n = t2s_build_tcp(buf, sizeof(buf), &c->client, &c->server, c->seq, c->ack, flags,
                              65535, &o, data, len, NULL, 0);
  CU_ASSERT_FATAL(n > 0);
  CU_ASSERT(t2s_engine_input(e, buf, (size_t)n, now) == 0);
  c->seq += (uint32_t)len + ((flags & (T2S_TCP_SYN | T2S_TCP_FIN)) ? 1 : 0);
}

/* Reads what the engine sent to c since the last call (in order, no loss here). */
static void tc_read(tclient *c) {
  for (; c->seen < F.npkts; c->seen++) {
    t2s_pkt p;
    if (t2s_pkt_parse(F.pkts[c->seen].data, F.pkts[c->seen].len, &p) != T2S_DROP_NONE ||
        p.proto != T2S_IPPROTO_TCP || !t2s_addr_eq(&p.dst, &c->client)) {
      continue;
    }
    uint8_t fl = p.l4.tcp.flags;
    if (fl & T2S_TCP_RST) {
      c->rst = true;
      continue;
    }
    if (fl & T2S_TCP_SYN) {
      c->synack = (fl & T2S_TCP_ACK) != 0;
      c->ack = p.l4.tcp.seq + 1;
      continue;
    }
    if (p.payload_len > 0 && p.l4.tcp.seq == c->ack) {
      CU_ASSERT_FATAL(c->rxlen + p.payload_len <= sizeof(c->rx));
      memcpy(c->rx + c->rxlen, p.payload, p.payload_len);
      c->rxlen += p.payload_len;
      c->ack += (uint32_t)p.payload_len;
    }
    if ((fl & T2S_TCP_FIN) && p.l4.tcp.seq + (uint32_t)p.payload_len == c->ack) {
      c->fin = true;
      c->ack++;
    }
  }
}

/* Opens a connection from src to dst: SYN, then the ACK of the SYN-ACK when there is one. */
static void tc_open(t2s_engine *e, tclient *c, const char *src, const char *dst, t2s_tstamp now) {
  memset(c, 0, sizeof(*c));
  c->client = addr(src);
  c->server = addr(dst);
  c->seq = 5000;
  c->seen = F.npkts;
  tc_seg(e, c, T2S_TCP_SYN, NULL, 0, now);
  tc_read(c);
  if (c->synack) {
    tc_seg(e, c, T2S_TCP_ACK, NULL, 0, now);
  }
}

/* The client closes at now: its FIN is answered with a FIN (no RST), and its last ACK at
 * now + 1 ends the flow. */
static void tc_close(t2s_engine *e, tclient *c, t2s_tstamp now) {
  tc_seg(e, c, T2S_TCP_ACK | T2S_TCP_FIN, NULL, 0, now);
  tc_read(c);
  CU_ASSERT(c->fin);
  CU_ASSERT_FALSE(c->rst);
  tc_seg(e, c, T2S_TCP_ACK, NULL, 0, now + 1);
}

/* query() framed with its two-byte length, with ID id. */
static size_t framed(uint8_t *buf, const char *name, uint16_t qtype, uint16_t id) {
  size_t n = query(buf + 2, name, qtype);
  t2s_put16(buf, (uint16_t)n);
  t2s_put16(buf + 2, id);
  return n + 2;
}

/* The answer of ID id among the framed messages of rx[0..len): its offset (the message after the
 * length) and length, or false. */
static bool find_answer(const uint8_t *rx, size_t len, uint16_t id, size_t *poff, size_t *plen) {
  for (size_t off = 0; off + 2 <= len;) {
    size_t m = t2s_get16(rx + off);
    if (off + 2 + m > len) {
      return false;
    }
    if (m >= 12 && t2s_get16(rx + off + 2) == id) {
      *poff = off + 2;
      *plen = m;
      return true;
    }
    off += 2 + m;
  }
  return false;
}

/* A TCP connection to port 53 is accepted at once, without any upstream; two queries in one
 * segment and a third split across segments (its length byte by byte) are answered with pool
 * addresses, framed; the client's FIN is answered with a FIN and the flow goes. */
static void test_tcp_dns_answered_locally(void) {
  t2s_fakedns *t;
  t2s_engine *e = new_engine(&t, 64);
  tclient c;
  tc_open(e, &c, "198.18.0.2:40053", "198.18.0.53:53", 0);
  CU_ASSERT_FATAL(c.synack);
  CU_ASSERT_EQUAL(F.nstreams, 0);
  uint8_t q[700];
  size_t n = framed(q, "one.example", T2S_DNS_TYPE_A, 1);
  n += framed(q + n, "two.example", T2S_DNS_TYPE_AAAA, 2);
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_PSH, q, n, 1);
  size_t n3 = framed(q, "three.example", T2S_DNS_TYPE_A, 3);
  tc_seg(e, &c, T2S_TCP_ACK, q, 1, 2);
  tc_seg(e, &c, T2S_TCP_ACK, q + 1, 10, 2);
  tc_read(&c);
  CU_ASSERT_EQUAL(c.rxlen > 0 ? 1 : 0, 1);
  size_t before = c.rxlen;
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_PSH, q + 11, n3 - 11, 3);
  tc_read(&c);
  CU_ASSERT(c.rxlen > before);
  CU_ASSERT_EQUAL(F.nstreams, 0);
  size_t off = 0, len = 0;
  t2s_addr a1, a2, a3;
  CU_ASSERT_FATAL(t2s_fakedns_resolve(t, "one.example", T2S_AF_INET, &a1) == 0);
  CU_ASSERT_FATAL(t2s_fakedns_resolve(t, "two.example", T2S_AF_INET6, &a2) == 0);
  CU_ASSERT_FATAL(t2s_fakedns_resolve(t, "three.example", T2S_AF_INET, &a3) == 0);
  CU_ASSERT_FATAL(find_answer(c.rx, c.rxlen, 1, &off, &len));
  CU_ASSERT_EQUAL(t2s_get16(c.rx + off + 6), 1); /* ANCOUNT */
  CU_ASSERT(memcmp(c.rx + off + len - 4, a1.ip, 4) == 0);
  CU_ASSERT_FATAL(find_answer(c.rx, c.rxlen, 2, &off, &len));
  CU_ASSERT(memcmp(c.rx + off + len - 16, a2.ip, 16) == 0);
  CU_ASSERT_FATAL(find_answer(c.rx, c.rxlen, 3, &off, &len));
  CU_ASSERT(memcmp(c.rx + off + len - 4, a3.ip, 4) == 0);
  t2s_fakedns_stats fs;
  t2s_fakedns_get_stats(t, &fs);
  CU_ASSERT_EQUAL(fs.answered, 3);
  /* A network change leaves it alone: its answers do not depend on the network. */
  CU_ASSERT_EQUAL(t2s_engine_reset_all(e, 4), 0);
  CU_ASSERT_FALSE(c.rst);
  /* The client closes: FIN answered with FIN; the last ACK ends the flow. */
  tc_close(e, &c, 5);
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.tcp_flows_active, 0);
  t2s_engine_del(e);
  t2s_fakedns_del(t);
}

/* MX is forwarded: one stream through the proxy, CONNECT to the address the client asked,
 * the query framed as it came; an A query asked while the resolver's answer is half relayed is
 * answered after its end; a second MX on the same stream. */
static void test_tcp_dns_forwarded(void) {
  t2s_fakedns *t;
  t2s_engine *e = new_engine(&t, 64);
  tclient c;
  tc_open(e, &c, "198.18.0.2:40054", "192.0.2.53:53", 0);
  CU_ASSERT_FATAL(c.synack);
  uint8_t q[400];
  size_t n = framed(q, "example.com", T2S_DNS_TYPE_MX, 0x11);
  size_t n1 = n;
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_PSH, q, n, 1);
  CU_ASSERT_EQUAL_FATAL(F.nstreams, 1);
  t2s_addr proxy = addr("203.0.113.200:1080");
  CU_ASSERT(t2s_addr_eq(&F.streams[0].dst, &proxy));
  uint64_t id = F.streams[0].id;
  t2s_engine_stream_opened(e, id, 0, 1);
  const uint8_t method[] = {5, 0};
  t2s_engine_stream_recv(e, id, method, 2, 1);
  static const uint8_t req[] = {5, 1, 0, 1, 192, 0, 2, 53, 0, 53};
  CU_ASSERT_EQUAL_FATAL(F.streams[0].wlen, 3 + sizeof(req));
  CU_ASSERT(memcmp(F.streams[0].written + 3, req, sizeof(req)) == 0);
  const uint8_t rep[] = {5, 0, 0, 1, 203, 0, 113, 200, 0x0f, 0xa0};
  t2s_engine_stream_recv(e, id, rep, sizeof(rep), 2);
  /* The framed query follows the request. */
  CU_ASSERT_EQUAL_FATAL(F.streams[0].wlen, 3 + sizeof(req) + n);
  CU_ASSERT(memcmp(F.streams[0].written + 3 + sizeof(req), q, n) == 0);
  /* The resolver's answer, in two pieces; an A query arrives between them. */
  uint8_t ans[64];
  memset(ans, 0, sizeof(ans));
  t2s_put16(ans, 40);
  t2s_put16(ans + 2, 0x11);
  t2s_put16(ans + 4, 0x8180);
  CU_ASSERT_EQUAL(t2s_engine_stream_recv(e, id, ans, 20, 3), 20);
  size_t na = framed(q, "a.example", T2S_DNS_TYPE_A, 0x22);
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_PSH, q, na, 3);
  tc_read(&c);
  CU_ASSERT_EQUAL(c.rxlen, 20); /* the A answer waits for the end of the MX answer */
  CU_ASSERT_EQUAL(t2s_engine_stream_recv(e, id, ans + 20, 22, 4), 22);
  tc_read(&c);
  CU_ASSERT_FATAL(c.rxlen > 42);
  CU_ASSERT(memcmp(c.rx, ans, 42) == 0); /* relayed byte for byte */
  size_t off = 0, len = 0;
  CU_ASSERT(find_answer(c.rx, c.rxlen, 0x22, &off, &len));
  CU_ASSERT_EQUAL(off, 44);
  /* A second forwarded query rides the same stream. */
  n = framed(q, "example.org", T2S_DNS_TYPE_TXT, 0x33);
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_PSH, q, n, 5);
  CU_ASSERT_EQUAL(F.nstreams, 1);
  CU_ASSERT_EQUAL(F.streams[0].wtotal, 3 + sizeof(req) + n1 + n);
  t2s_fakedns_stats fs;
  t2s_fakedns_get_stats(t, &fs);
  CU_ASSERT_EQUAL(fs.forwarded, 2);
  CU_ASSERT_EQUAL(fs.answered, 1);
  /* FIN while the TXT answer is outstanding: held until it comes, then FIN, stream closed. */
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_FIN, NULL, 0, 6);
  tc_read(&c);
  CU_ASSERT_FALSE(c.fin);
  memset(ans, 0, sizeof(ans));
  t2s_put16(ans, 12);
  t2s_put16(ans + 2, 0x33);
  t2s_engine_stream_recv(e, id, ans, 14, 7);
  tc_read(&c);
  CU_ASSERT(c.fin);
  CU_ASSERT_FALSE(c.rst);
  CU_ASSERT(F.streams[0].closed);
  t2s_engine_del(e);
  t2s_fakedns_del(t);
}

/* Broken framing resets the connection and is counted: a length under a DNS header, a length
 * over the bound, a query cut by the FIN. Nothing crashes, nothing goes upstream. */
static void test_tcp_dns_bad_framing(void) {
  t2s_fakedns *t;
  t2s_engine *e = new_engine(&t, 64);
  tclient c;
  const uint8_t tiny[] = {0, 5, 1, 2, 3, 4, 5};
  tc_open(e, &c, "198.18.0.2:40060", "198.18.0.53:53", 0);
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_PSH, tiny, sizeof(tiny), 1);
  tc_read(&c);
  CU_ASSERT(c.rst);
  const uint8_t huge[] = {0xff, 0xff, 0, 0};
  tc_open(e, &c, "198.18.0.2:40061", "198.18.0.53:53", 2);
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_PSH, huge, sizeof(huge), 2);
  tc_read(&c);
  CU_ASSERT(c.rst);
  uint8_t q[400];
  size_t n = framed(q, "cut.example", T2S_DNS_TYPE_A, 9);
  tc_open(e, &c, "198.18.0.2:40062", "198.18.0.53:53", 3);
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_PSH | T2S_TCP_FIN, q, n - 3, 3);
  tc_read(&c);
  CU_ASSERT(c.rst);
  CU_ASSERT_EQUAL(c.rxlen, 0);
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.drops[T2S_DROP_DNS_TCP_BAD], 3);
  CU_ASSERT_EQUAL(st.tcp_flows_active, 0);
  CU_ASSERT_EQUAL(F.nstreams, 0);
  t2s_engine_del(e);
  t2s_fakedns_del(t);
}

/* An idle connection is closed after cfg.dns_timeout (FIN); one whose forwarded query is
 * unanswered by then is reset, its upstream closed. Without --fake-dns port 53 is carried
 * through the proxy as before. */
static void test_tcp_dns_idle_and_off(void) {
  t2s_fakedns *t;
  t2s_engine *e = new_engine(&t, 64);
  tclient c, d;
  tc_open(e, &c, "198.18.0.2:40070", "198.18.0.53:53", 0);
  tc_open(e, &d, "198.18.0.2:40071", "198.18.0.53:53", 0);
  uint8_t q[400];
  size_t n = framed(q, "example.com", T2S_DNS_TYPE_MX, 0x44);
  tc_seg(e, &d, T2S_TCP_ACK | T2S_TCP_PSH, q, n, 1);
  CU_ASSERT_EQUAL_FATAL(F.nstreams, 1);
  CU_ASSERT(t2s_engine_get_expiry(e) <= 10 * T2S_SECONDS);
  t2s_engine_handle_expiry(e, 11 * T2S_SECONDS + 1);
  tc_read(&c);
  tc_read(&d);
  CU_ASSERT(c.fin);
  CU_ASSERT_FALSE(c.rst);
  CU_ASSERT(d.rst);
  CU_ASSERT(F.streams[0].closed);
  t2s_engine_del(e);
  t2s_fakedns_del(t);
  /* --fake-dns off: the SYN is held for a stream to the proxy, as before. */
  engine_fake_init(&F);
  t2s_engine_config cfg;
  t2s_engine_config_default(&cfg);
  cfg.proxy_kind = T2S_PROXY_SOCKS5;
  cfg.proxy = addr("203.0.113.200:1080");
  CU_ASSERT_FATAL(t2s_engine_new(&e, &cfg, &F.dev, &F.up, NULL) == 0);
  tc_open(e, &c, "198.18.0.2:40072", "198.18.0.53:53", 0);
  CU_ASSERT_FALSE(c.synack);
  CU_ASSERT_EQUAL(F.nstreams, 1);
  t2s_engine_del(e);
}

/* The answer of ID id in c->rx is a SERVFAIL echoing the question of framed query fq. */
static void check_tcp_servfail(const tclient *c, uint16_t id, const uint8_t *fq, size_t fqlen) {
  size_t off = 0, len = 0;
  CU_ASSERT_FATAL(find_answer(c->rx, c->rxlen, id, &off, &len));
  CU_ASSERT_FATAL(len == fqlen - 2); /* header and question, no records */
  uint16_t flags = t2s_get16(c->rx + off + 2);
  CU_ASSERT(flags & 0x8000);       /* QR */
  CU_ASSERT(flags & 0x0080);       /* RA */
  CU_ASSERT_EQUAL(flags & 0xf, 2); /* SERVFAIL */
  CU_ASSERT_EQUAL(t2s_get16(c->rx + off + 4), 1);
  CU_ASSERT_EQUAL(t2s_get16(c->rx + off + 6), 0);
  CU_ASSERT(memcmp(c->rx + off + 12, fq + 2 + 12, len - 12) == 0);
}

/* The upstream of forwarded queries fails: each one not answered gets SERVFAIL over the
 * connection, which stays open (a local answer after it; a new upstream for the next forwarded
 * query, refused by the proxy: SERVFAIL again; the FIN answered with FIN, never a RST). An
 * answer half relayed when the upstream fails cannot be completed: RST, as before. */
static void test_tcp_dns_upstream_fails_servfail(void) {
  t2s_fakedns *t;
  t2s_engine *e = new_engine(&t, 64);
  tclient c;
  tc_open(e, &c, "198.18.0.2:40080", "192.0.2.53:53", 0);
  CU_ASSERT_FATAL(c.synack);
  uint8_t mx[300], txt[300], q[300];
  size_t nmx = framed(mx, "example.com", T2S_DNS_TYPE_MX, 0x11);
  size_t ntxt = framed(txt, "example.org", T2S_DNS_TYPE_TXT, 0x12);
  uint8_t both[600];
  memcpy(both, mx, nmx);
  memcpy(both + nmx, txt, ntxt);
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_PSH, both, nmx + ntxt, 1);
  CU_ASSERT_EQUAL_FATAL(F.nstreams, 1);
  uint64_t id = F.streams[0].id;
  t2s_engine_stream_opened(e, id, 0, 1);
  const uint8_t method[] = {5, 0};
  t2s_engine_stream_recv(e, id, method, 2, 1);
  const uint8_t rep[] = {5, 0, 0, 1, 203, 0, 113, 200, 0x0f, 0xa0};
  t2s_engine_stream_recv(e, id, rep, sizeof(rep), 2);
  CU_ASSERT_EQUAL(F.streams[0].wlen, 3 + 10 + nmx + ntxt); /* both written */
  /* The resolver answers the TXT one (out of order), then the stream is reset. */
  uint8_t ans[16];
  memset(ans, 0, sizeof(ans));
  t2s_put16(ans, 12);
  t2s_put16(ans + 2, 0x12);
  t2s_put16(ans + 4, 0x8180);
  t2s_engine_stream_recv(e, id, ans, 14, 3);
  tc_read(&c);
  CU_ASSERT_EQUAL(c.rxlen, 14);
  t2s_engine_stream_error(e, id, T2S_ERR_RESET, 4);
  tc_read(&c);
  CU_ASSERT_FALSE(c.rst);
  CU_ASSERT_EQUAL(c.rxlen, 14 + nmx); /* one SERVFAIL: the MX one, the TXT was answered */
  check_tcp_servfail(&c, 0x11, mx, nmx);
  /* Still usable: a local answer. */
  size_t na = framed(q, "a.example", T2S_DNS_TYPE_A, 0x13);
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_PSH, q, na, 5);
  tc_read(&c);
  size_t off = 0, len = 0;
  CU_ASSERT(find_answer(c.rx, c.rxlen, 0x13, &off, &len));
  CU_ASSERT_EQUAL(t2s_get16(c.rx + off + 6), 1); /* ANCOUNT */
  /* The next forwarded query opens a new upstream (a new id); the proxy refuses it. */
  uint8_t mx2[300];
  size_t nmx2 = framed(mx2, "example.net", T2S_DNS_TYPE_MX, 0x14);
  tc_seg(e, &c, T2S_TCP_ACK | T2S_TCP_PSH, mx2, nmx2, 6);
  CU_ASSERT_EQUAL_FATAL(F.nstreams, 2);
  CU_ASSERT(F.streams[1].id != id);
  t2s_engine_stream_opened(e, F.streams[1].id, T2S_ERR_REFUSED, 7);
  tc_read(&c);
  CU_ASSERT_FALSE(c.rst);
  check_tcp_servfail(&c, 0x14, mx2, nmx2);
  t2s_engine_stats st;
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.dns_servfail[T2S_DNS_SERVFAIL_TCP_UPSTREAM], 2);
  /* The client closes: FIN for FIN. */
  tc_close(e, &c, 8);

  /* Half an answer relayed when the stream fails: the framing cannot be completed, RST. */
  tclient d;
  tc_open(e, &d, "198.18.0.2:40081", "192.0.2.53:53", 10);
  tc_seg(e, &d, T2S_TCP_ACK | T2S_TCP_PSH, mx, nmx, 10);
  CU_ASSERT_EQUAL_FATAL(F.nstreams, 3);
  id = F.streams[2].id;
  t2s_engine_stream_opened(e, id, 0, 10);
  t2s_engine_stream_recv(e, id, method, 2, 10);
  t2s_engine_stream_recv(e, id, rep, sizeof(rep), 10);
  t2s_put16(ans + 2, 0x11);
  t2s_engine_stream_recv(e, id, ans, 6, 11);
  t2s_engine_stream_eof(e, id, 12);
  tc_read(&d);
  CU_ASSERT(d.rst);
  t2s_engine_get_stats(e, &st);
  CU_ASSERT_EQUAL(st.dns_servfail[T2S_DNS_SERVFAIL_TCP_UPSTREAM], 2);
  t2s_engine_del(e);
  t2s_fakedns_del(t);
}

/* Random traffic on DNS-over-TCP connections, bounded and seeded: pipelined queries (answered
 * and forwarded) cut at random points, garbage and hostile lengths, FINs, RSTs, upstream
 * completions of every kind within the connector's contract (opened or failed, SOCKS5 replies,
 * answer bytes framed or not, EOF, errors), timers and network resets. Nothing may crash or
 * trip an assertion (ASan and T2S_ASSERT in the sanitizer build); every connection ends once
 * the clients close and the timers run; the engine's heap returns to its base. */
static void test_tcp_dns_random_traffic(void) {
  t2s_rand r;
  t2s_rand_init(&r, 14);
  uint64_t answered = 0, forwarded = 0, framing = 0;
  for (int round = 0; round < 40; round++) {
    t2s_fakedns *t;
    /* Every fourth round with small buffers: answers wait for room, long queries cannot fit. */
    uint32_t buf = round % 4 == 3 ? 512u << (round % 3) : 0;
    t2s_engine *e = new_engine_bufs(&t, 16, buf, buf);
    t2s_engine_stats st;
    t2s_engine_get_stats(e, &st);
    uint64_t base_blocks = st.mem_blocks;
    tclient c[4];
    bool live[4] = {false, false, false, false};
    t2s_tstamp now = 0;
    for (int step = 0; step < 120; step++) {
      now += t2s_rand_below(&r, 50) * T2S_MILLISECONDS;
      int k = (int)t2s_rand_below(&r, 4);
      uint32_t op = (uint32_t)t2s_rand_below(&r, 14);
      if (!live[k] || c[k].rst || c[k].fin) {
        if (op < 3) {
          char src[32];
          snprintf(src, sizeof(src), "198.18.0.2:%d", 41000 + round * 200 + step);
          tc_open(e, &c[k], src, k & 1 ? "192.0.2.53:53" : "198.18.0.53:53", now);
          live[k] = c[k].synack;
        }
      } else if (op < 6) { /* pipelined queries, cut anywhere */
        uint8_t q[1200];
        size_t n = 0;
        for (int j = 0, m = 1 + (int)t2s_rand_below(&r, 3); j < m; j++) {
          static const uint16_t types[] = {T2S_DNS_TYPE_A, T2S_DNS_TYPE_AAAA, T2S_DNS_TYPE_MX,
                                           T2S_DNS_TYPE_TXT, 65};
          char name[32];
          snprintf(name, sizeof(name), "n%u.example", (unsigned)t2s_rand_below(&r, 40));
          n += framed(q + n, name, types[t2s_rand_below(&r, 5)], (uint16_t)t2s_rand_u32(&r));
        }
        size_t cut = (size_t)t2s_rand_below(&r, n + 1);
        tc_seg(e, &c[k], T2S_TCP_ACK | T2S_TCP_PSH, q, cut, now);
        tc_seg(e, &c[k], T2S_TCP_ACK | T2S_TCP_PSH, q + cut, n - cut, now);
      } else if (op == 6) { /* garbage, hostile lengths */
        uint8_t g[64];
        for (size_t j = 0; j < sizeof(g); j++) {
          g[j] = (uint8_t)t2s_rand_u32(&r);
        }
        tc_seg(e, &c[k], T2S_TCP_ACK, g, 1 + t2s_rand_below(&r, sizeof(g)), now);
      } else if (op == 7) {
        tc_seg(e, &c[k], T2S_TCP_ACK | T2S_TCP_FIN, NULL, 0, now);
      } else if (op == 8 && t2s_rand_below(&r, 4) == 0) {
        tc_seg(e, &c[k], T2S_TCP_RST, NULL, 0, now);
        live[k] = false;
      } else if (op <= 11 && F.nstreams > 0) { /* a completion on an open stream */
        engine_fake_stream *s = &F.streams[t2s_rand_below(&r, F.nstreams)];
        if (!s->closed) {
          uint32_t what = (uint32_t)t2s_rand_below(&r, 8);
          static const uint8_t socks_ok[] = {5, 0, 5, 0, 0, 1, 203, 0, 113, 200, 0x0f, 0xa0};
          uint8_t a[300];
          size_t alen = 0;
          if (what == 0) {
            t2s_engine_stream_opened(e, s->id, 0, now);
          } else if (what == 1) {
            t2s_engine_stream_opened(e, s->id, T2S_ERR_REFUSED, now);
          } else if (what == 2) {
            alen = sizeof(socks_ok);
            memcpy(a, socks_ok, alen);
          } else if (what <= 4) { /* a framed answer (maybe cut short) */
            size_t m = 12 + (size_t)t2s_rand_below(&r, 200);
            memset(a, 0, sizeof(a));
            t2s_put16(a, (uint16_t)m);
            t2s_put16(a + 4, 0x8180);
            alen = T2S_MIN(2 + m, (size_t)t2s_rand_below(&r, 2 + m + 1) + 1);
          } else if (what == 5) {
            alen = 1 + (size_t)t2s_rand_below(&r, 40);
            for (size_t j = 0; j < alen; j++) {
              a[j] = (uint8_t)t2s_rand_u32(&r);
            }
          } else if (what == 6) {
            t2s_engine_stream_eof(e, s->id, now);
            s->closed = true; /* no more completions (the engine closes it) */
          } else {
            t2s_engine_stream_error(e, s->id, T2S_ERR_RESET, now);
            s->closed = true;
          }
          if (alen > 0 && !s->closed) {
            size_t room = t2s_engine_stream_recv_space(e, s->id);
            size_t give = T2S_MIN(alen, room);
            if (give > 0) {
              t2s_engine_stream_recv(e, s->id, a, give, now);
            }
          }
          if (what == 7 && !s->closed) {
            t2s_engine_stream_writable(e, s->id, now);
          }
        }
      } else if (op == 12) {
        t2s_engine_handle_expiry(e, now);
      } else if (op == 13 && t2s_rand_below(&r, 8) == 0) {
        t2s_engine_reset_all(e, now);
      }
      for (int j = 0; j < 4; j++) {
        if (live[j]) {
          tc_read(&c[j]);
          if (c[j].rxlen > sizeof(c[j].rx) / 2) {
            c[j].rxlen = 0; /* only the sequence numbers matter here */
          }
          c[j].seen = 0;
        }
      }
      F.npkts = 0;
    }
    /* The clients close; the timers end what is left (idle, TIME-WAIT, retransmissions). */
    for (int j = 0; j < 4; j++) {
      if (live[j] && !c[j].rst) {
        tc_seg(e, &c[j], T2S_TCP_ACK | T2S_TCP_FIN, NULL, 0, now);
      }
    }
    for (int j = 0; j < 200; j++) {
      now += 500 * T2S_MILLISECONDS;
      t2s_engine_handle_expiry(e, now);
    }
    t2s_engine_get_stats(e, &st);
    CU_ASSERT_EQUAL(st.tcp_flows_active, 0);
    CU_ASSERT_EQUAL(st.mem_blocks, base_blocks);
    framing += st.drops[T2S_DROP_DNS_TCP_BAD];
    t2s_fakedns_stats fs;
    t2s_fakedns_get_stats(t, &fs);
    answered += fs.answered;
    forwarded += fs.forwarded;
    t2s_engine_del(e);
    t2s_fakedns_del(t);
  }
  /* The traffic reached every path. */
  CU_ASSERT(answered > 100);
  CU_ASSERT(forwarded > 20);
  CU_ASSERT(framing > 10);
}

/* The dns_tcp fuzz target's interpreter (fuzz/fuzz_dnstcp.c) on 400 seeded inputs: its stubs
 * check the connector's contract at every call (no write to a stream not open, no double
 * close, no timer left due, every stream closed at the end) and it checks that no connection
 * or pinned entry is left once the clients closed; a failure aborts with the reason. Inputs
 * are random operations, SYNs first on some tuples so that the framing is reached. */
static void test_tcp_dns_fuzz_interpreter(void) {
  t2s_rand r;
  t2s_rand_init(&r, 53);
  uint8_t in[700];
  for (int k = 0; k < 400; k++) {
    size_t n = 0;
    for (int j = 0; j < 4; j++) {
      in[n++] = (uint8_t)t2s_rand_u32(&r);
    }
    for (int t = 0; t < 3; t++) { /* OP_SYN on three tuples, then their ACKs */
      uint8_t tuple = (uint8_t)t2s_rand_below(&r, 8);
      in[n++] = 0;
      in[n++] = tuple;
      in[n++] = 5;
      in[n++] = tuple;
    }
    size_t len = n + (size_t)t2s_rand_below(&r, sizeof(in) - n);
    while (n < len) {
      uint8_t op = (uint8_t)t2s_rand_below(&r, 16);
      in[n++] = op;
      if (op == 2 && n + 4 <= len) { /* a query on a tuple likely open */
        in[n++] = (uint8_t)t2s_rand_below(&r, 8);
        in[n++] = (uint8_t)t2s_rand_u32(&r);
        in[n++] = (uint8_t)t2s_rand_u32(&r);
        in[n++] = (uint8_t)t2s_rand_u32(&r);
      } else if (op == 1 && n + 2 <= len) { /* short raw data */
        in[n++] = (uint8_t)t2s_rand_below(&r, 8);
        in[n++] = (uint8_t)t2s_rand_below(&r, 24);
      } else if (n < len) {
        in[n++] = (uint8_t)t2s_rand_u32(&r);
      }
    }
    fz_run_dns_tcp(in, len);
  }
  CU_PASS("400 inputs through the dns_tcp interpreter");
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
  CU_add_test(s, "tcp_dns_answered_locally", test_tcp_dns_answered_locally);
  CU_add_test(s, "tcp_dns_forwarded", test_tcp_dns_forwarded);
  CU_add_test(s, "tcp_dns_bad_framing", test_tcp_dns_bad_framing);
  CU_add_test(s, "tcp_dns_idle_and_off", test_tcp_dns_idle_and_off);
  CU_add_test(s, "tcp_dns_upstream_fails_servfail", test_tcp_dns_upstream_fails_servfail);
  CU_add_test(s, "tcp_dns_random_traffic", test_tcp_dns_random_traffic);
  CU_add_test(s, "tcp_dns_fuzz_interpreter", test_tcp_dns_fuzz_interpreter);
  return 0;
}
