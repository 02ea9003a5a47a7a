/*
 * dns.h: the DNS message codec of the fake-IP responder (docs/fake-dns.md). Sans-I/O, no heap.
 *
 * It parses one query strictly (RFC 1035 section 4, RFC 6891 for the OPT record): a header
 * with QR = 0, exactly one question, no answer or authority records, at most
 * T2S_DNS_MAX_ADDITIONAL additional records of which at most one is an OPT, no bytes after the
 * last record. Names are bounded (labels of 1..63 octets, 255 octets in all) and compression
 * pointers must point strictly backwards, each before the previous one, into the message after
 * its header: a chain of pointers always ends. It builds the answers the responder gives: an
 * A/AAAA/PTR record or none (NODATA), and the error replies (FORMERR, SERVFAIL, NXDOMAIN,
 * NOTIMP, REFUSED, BADVERS), with an OPT record when the query had one.
 */
#ifndef T2S_DNS_H
#define T2S_DNS_H

#include "common.h"

#define T2S_DNS_HEADER_LEN 12
#define T2S_DNS_NAME_MAX 255     /* octets of a name in wire form, the root's 0 included */
#define T2S_DNS_TEXT_MAX 254     /* bytes of a name as text ("a.b", no final dot), NUL included */
#define T2S_DNS_MAX_ADDITIONAL 4 /* additional records accepted in a query */
#define T2S_DNS_UDP_MIN 512      /* what a UDP answer may always be (RFC 1035) */
#define T2S_DNS_EDNS_SIZE 1232   /* the UDP payload size our OPT record offers (DNS flag day) */

/* Types and classes the responder knows by name. */
enum {
  T2S_DNS_TYPE_A = 1,
  T2S_DNS_TYPE_NS = 2,
  T2S_DNS_TYPE_CNAME = 5,
  T2S_DNS_TYPE_SOA = 6,
  T2S_DNS_TYPE_PTR = 12,
  T2S_DNS_TYPE_MX = 15,
  T2S_DNS_TYPE_TXT = 16,
  T2S_DNS_TYPE_AAAA = 28,
  T2S_DNS_TYPE_SRV = 33,
  T2S_DNS_TYPE_OPT = 41,
  T2S_DNS_TYPE_SVCB = 64,
  T2S_DNS_TYPE_HTTPS = 65,
  T2S_DNS_TYPE_ANY = 255,
  T2S_DNS_CLASS_IN = 1,
};

/* Response codes; values above 15 travel partly in the OPT record (RFC 6891). */
enum {
  T2S_DNS_RCODE_NOERROR = 0,
  T2S_DNS_RCODE_FORMERR = 1,
  T2S_DNS_RCODE_SERVFAIL = 2,
  T2S_DNS_RCODE_NXDOMAIN = 3,
  T2S_DNS_RCODE_NOTIMP = 4,
  T2S_DNS_RCODE_REFUSED = 5,
  T2S_DNS_RCODE_BADVERS = 16,
};

/* A parsed query. */
typedef struct t2s_dns_query {
  uint16_t id;
  uint16_t flags; /* header octets 2-3 as received (QR, OPCODE, AA, TC, RD, RA, Z, RCODE) */
  bool header_ok; /* id and flags are valid: a FORMERR can be sent */
  uint16_t qtype; /* the question (valid when t2s_dns_parse_query returned 0) */
  uint16_t qclass;
  uint8_t qname_wire[T2S_DNS_NAME_MAX]; /* the name uncompressed, in its original case */
  size_t qname_wirelen;
  char qname[T2S_DNS_TEXT_MAX]; /* lower-case text ("www.example.com"; "" for the root) */
  size_t qnamelen;
  bool qname_plain; /* every label is printable ASCII without '.', '\\' or space: the text is
                       the name exactly (a name that is not is never given a fake address) */
  bool edns;        /* an OPT record came with the query */
  uint8_t edns_version;
  uint16_t edns_size; /* the client's UDP payload size (at least 512 when edns) */
} t2s_dns_query;

/*
 * Parses the query msg[0..len). Returns:
 *   0                    a valid query: every field of *q is set
 *   T2S_ERR_UNSUPPORTED  a well-formed header with an OPCODE other than QUERY (answer NOTIMP)
 *   T2S_ERR_MALFORMED    anything else; q->header_ok tells whether the header could be read
 *                        and is a query's (QR = 0): then answer FORMERR, otherwise drop it
 *                        (a message shorter than a header, or a response: answering a
 *                        response could start a loop)
 */
int t2s_dns_parse_query(const uint8_t *msg, size_t len, t2s_dns_query *q);

/*
 * Reads the name at msg[off..) into wire[0..*pwirelen) (uncompressed, original case) and sets
 * *pnext to the offset just after the name's own bytes (after the first pointer, if any).
 * Pointers must point strictly before the previous one and at or after the header. Returns 0
 * or T2S_ERR_MALFORMED (past the end, a label of the reserved kinds 0x40/0x80, longer than
 * 255 octets, a bad pointer).
 */
int t2s_dns_read_name(const uint8_t *msg, size_t len, size_t off, uint8_t wire[T2S_DNS_NAME_MAX],
                      size_t *pwirelen, size_t *pnext);

/* Writes the text name ("example.com", a final dot allowed, "" or "." = root) in wire form
 * into out. Returns the length, or T2S_ERR_MALFORMED (an empty label, a label over 63, over
 * 255 in all) or T2S_ERR_NOBUF. */
t2s_ssize t2s_dns_name_to_wire(const char *text, uint8_t *out, size_t outlen);

/* The address a reverse name stands for: "4.3.2.1.in-addr.arpa" is 1.2.3.4 and 32 nibbles
 * under "ip6.arpa" an IPv6 address (name as text, lower case). Returns 0 or T2S_ERR_NOT_FOUND
 * (not a full reverse name). */
int t2s_dns_ptr_addr(const char *name, t2s_addr *out);

/*
 * Builds the answer to q: header (same ID, QR = 1, OPCODE, RD and CD copied, RA = 1), the
 * question as received, one answer record of q->qtype with rdata[0..rdatalen) and the TTL when
 * rdata is not NULL (its owner name a pointer to the question), and an OPT record when the
 * query had one. An rcode above 15 needs q->edns. When the whole does not fit in maxlen (512
 * or the client's EDNS size for UDP, 65535 for TCP) the answer record is left out and TC set.
 * Returns the length, T2S_ERR_NOBUF (buflen too small for even that) or
 * T2S_ERR_INVALID_ARGUMENT (an rcode above 15 without EDNS, rdatalen over 65535).
 */
t2s_ssize t2s_dns_build_answer(uint8_t *buf, size_t buflen, size_t maxlen, const t2s_dns_query *q,
                               int rcode, const uint8_t *rdata, size_t rdatalen, uint32_t ttl);

/* Builds a header-only error reply (no question: what FORMERR and NOTIMP send) with q's ID
 * and OPCODE and RD copied. Returns the length (12) or T2S_ERR_NOBUF. */
t2s_ssize t2s_dns_build_header_error(uint8_t *buf, size_t buflen, const t2s_dns_query *q,
                                     int rcode);

/* The largest UDP answer the client of q accepts: its EDNS size (512..65535), else 512. */
size_t t2s_dns_udp_limit(const t2s_dns_query *q);

#endif
