/*
 * engine_fakedns.h: the engine's side of --fake-dns (docs/fake-dns.md): DNS queries that enter
 * the device answered from the fake-IP table (t2s_engine_config.fake_dns, fakedns.h), and flows
 * to a pool address carried to the name it stands for. The TCP and UDP kinds call these few
 * hooks; the table itself belongs to the host (it outlives network changes and restarts).
 * Not part of the public API.
 */
#ifndef T2S_ENGINE_FAKEDNS_H
#define T2S_ENGINE_FAKEDNS_H

#include "engine.h"
#include "packet.h"
#include "tcp.h"

/* DNS over TCP answered here: the longest query accepted (a longer frame, or one shorter than
 * a DNS header, resets the connection). Queries are small: a name is at most 255 octets. */
#define T2S_FAKEDNS_TCP_QUERY_MAX 4096

/* True when --fake-dns is on. */
bool t2s_engine_fakedns_on(const t2s_engine *e);

/*
 * A UDP datagram from a client to port 53 (call only when t2s_engine_fakedns_on). Returns true
 * when it was dealt with here: answered (from the address the client asked) or dropped
 * (T2S_DROP_DNS_NOT_QUERY); false when it must be forwarded as without --fake-dns.
 */
bool t2s_engine_fakedns_udp_query(t2s_engine *e, const t2s_pkt *pkt, t2s_tstamp now);

/*
 * A new TCP or UDP flow to dst. Returns 0 when dst is no pool address (carry it as usual, or
 * --fake-dns is off); 1 when it is held by a name: *pname is the name (valid until
 * t2s_engine_fakedns_flow_end(dst), which the flow must call exactly once when it ends); or
 * T2S_ERR_NOT_FOUND when no entry holds it (expired, recycled, never given out): refuse the
 * flow at once (RST, ICMP unreachable); the drop is counted (T2S_DROP_FAKE_DNS_STALE).
 */
int t2s_engine_fakedns_flow_start(t2s_engine *e, const t2s_addr *dst, const char **pname,
                                  t2s_tstamp now);
/* The flow to dst that t2s_engine_fakedns_flow_start pinned ended. */
void t2s_engine_fakedns_flow_end(t2s_engine *e, const t2s_addr *dst);

/* ---- DNS over TCP, the kind T2S_FLOW_DNS_LOCAL (engine_fakedns_tcp.c) ---- */

/* True when a TCP connection to local (its original destination) is answered here: --fake-dns
 * is on and the port is 53. */
bool t2s_engine_fakedns_tcp_wants(const t2s_engine *e, const t2s_addr *local);
/* The TCP stack's callbacks for such connections (the hub dispatches to them). */
void t2s_engine_fakedns_tcp_callbacks(t2s_tcp_callbacks *cbs);
/* Frees the connections that ended (the safe point). */
void t2s_engine_fakedns_tcp_reap(t2s_engine *e);
/* The idle timeout (cfg.dns_timeout) of the least recently active connection. */
t2s_tstamp t2s_engine_fakedns_tcp_get_expiry(const t2s_engine *e);
/* Closes the connections idle for cfg.dns_timeout: FIN, or RST when a forwarded query is
 * still unanswered. */
void t2s_engine_fakedns_tcp_handle_expiry(t2s_engine *e, t2s_tstamp now);

#endif
