/*
 * frag.h: IPv4 and IPv6 fragment reassembly (RFC 791, RFC 8200 4.5, RFC 5722) and
 * fragmentation of packets larger than the device MTU.
 *
 * Reassembly keeps at most `max_datagrams` datagrams in progress and `max_bytes` of fragment
 * data in total; a datagram not complete `timeout` after its first fragment is dropped.
 * Overlapping fragments drop the whole datagram (RFC 5722: also for IPv4, as a defence);
 * an exact duplicate is ignored. Sans-I/O: time comes in as an argument.
 */
#ifndef T2S_FRAG_H
#define T2S_FRAG_H

#include "common.h"
#include "drop.h"
#include "packet.h"

/* Largest reassembled packet: an IPv6 header with extension headers and a 65535-byte payload
 * (the unfragmentable part is bounded by what fits in one fragment). */
#define T2S_REASM_MAX_PKT (65535 + 40)

typedef struct t2s_reasm_config {
  size_t max_datagrams; /* datagrams in progress (def. 64) */
  size_t max_bytes;     /* fragment bytes held in total (def. 1 MiB) */
  size_t max_frags;     /* fragments per datagram (def. 64) */
  t2s_tstamp timeout;   /* from the first fragment (def. 30 s) */
  struct t2s_mem *mem;  /* allocation counter (alloc.h); NULL: not counted (def.) */
} t2s_reasm_config;

/* Fills *cfg with the defaults above. */
void t2s_reasm_config_default(t2s_reasm_config *cfg);

typedef struct t2s_reasm t2s_reasm;

/* Creates a reassembler. Returns 0, T2S_ERR_INVALID_ARGUMENT or T2S_ERR_NOMEM. */
int t2s_reasm_new(t2s_reasm **preasm, const t2s_reasm_config *cfg);
/* Frees it and every fragment it holds. */
void t2s_reasm_del(t2s_reasm *r);

/*
 * Takes one fragment, parsed by t2s_pkt_parse() (is_fragment set). When it completes its
 * datagram, the whole packet (fragmentation fields removed: IPv4 MF/offset cleared and header
 * checksum recomputed, IPv6 fragment header taken out) is written to out and its length
 * returned; parse it again with t2s_pkt_parse(). Returns 0 when the fragment is held, or a
 * negative error with *preason set (the fragment, and for overlaps the whole datagram, is
 * dropped): T2S_DROP_FRAG_BAD (length not a multiple of 8 with MF, beyond 65535),
 * T2S_DROP_FRAG_OVERLAP, T2S_DROP_FRAG_LIMIT (memory, datagram or fragment cap),
 * T2S_DROP_NO_BUFFER (out too small). outlen should be T2S_REASM_MAX_PKT.
 */
t2s_ssize t2s_reasm_input(t2s_reasm *r, const t2s_pkt *frag, t2s_tstamp now, uint8_t *out,
                          size_t outlen, t2s_drop_reason *preason);

/* When the oldest datagram in progress times out (T2S_TSTAMP_MAX: none). */
t2s_tstamp t2s_reasm_get_expiry(const t2s_reasm *r);
/* Drops every datagram whose time is up. Returns how many (count them as T2S_DROP_FRAG_TIMEOUT). */
size_t t2s_reasm_handle_expiry(t2s_reasm *r, t2s_tstamp now);

/* Datagrams in progress and fragment bytes held (for tests and stats). */
size_t t2s_reasm_pending(const t2s_reasm *r);
size_t t2s_reasm_bytes(const t2s_reasm *r);

/* ---- fragmentation ---- */

/* Called once per fragment (the fragment is only borrowed). Returns 0 or an error (stops). */
typedef int (*t2s_frag_out_fn)(void *arg, const uint8_t *pkt, size_t len);

/*
 * Splits the IP packet pkt[0..len) into fragments of at most mtu bytes and hands each to out,
 * in order. A packet that fits is handed over as is. IPv4: the DF bit of our own packets is
 * cleared in the fragments, ident is the identification (low 16 bits); IPv6: a fragment
 * header with identification ident follows the 40-byte header (mtu at least 1280).
 * scratch (at least mtu bytes) holds each fragment while it is written.
 * Returns the number of packets handed over (>= 1), T2S_ERR_INVALID_ARGUMENT (not IP, mtu too
 * small) or out's error.
 */
t2s_ssize t2s_frag_split(const uint8_t *pkt, size_t len, uint32_t mtu, uint32_t ident,
                         uint8_t *scratch, size_t scratchlen, t2s_frag_out_fn out, void *arg);

#endif
