/*
 * frag.c: IPv4/IPv6 reassembly with bounded memory and time, and fragmentation of outgoing
 * packets larger than the MTU.
 *
 * Datagrams in progress live in a FIFO list (the timeout is the same for all, so the head is
 * always the first to expire); each holds its fragments in an array sorted by offset. Bounds
 * are few and small (def. 64 datagrams of at most 64 fragments), so lookups are linear.
 */
#include "frag.h"

#include <stdlib.h>
#include <string.h>

#include "alloc.h"

enum { IPV4_HDRLEN = 20, IPV6_HDRLEN = 40, IPV6_FRAGHDR_LEN = 8, IPV6_NH_FRAGMENT = 44 };

#define IPV4_MF 0x2000u
#define IPV4_DF 0x4000u
#define IPV6_MIN_MTU 1280u

typedef struct frag_piece {
  size_t off; /* offset in the fragmentable part */
  size_t len;
  uint8_t *data;
} frag_piece;

typedef struct frag_dgram {
  uint8_t ver;
  uint8_t proto; /* v4: protocol; v6: next header after the fragment header */
  uint8_t src[16], dst[16];
  uint32_t id;
  t2s_tstamp deadline;
  uint8_t *hdr; /* the offset-0 fragment's header (v4) or unfragmentable part (v6) */
  size_t hdrlen;
  bool have_last;
  size_t total; /* length of the fragmentable part, once the last fragment arrived */
  size_t got;   /* bytes of fragment data held (no overlaps: coverage) */
  frag_piece *pieces;
  size_t npieces, cappieces;
  struct frag_dgram *next;
} frag_dgram;

struct t2s_reasm {
  t2s_reasm_config cfg;
  frag_dgram *head, *tail;
  size_t ndgrams;
  size_t bytes;
};

void t2s_reasm_config_default(t2s_reasm_config *cfg) {
  cfg->max_datagrams = 64;
  cfg->max_bytes = 1024 * 1024;
  cfg->max_frags = 64;
  cfg->timeout = 30 * T2S_SECONDS;
  cfg->mem = NULL;
}

int t2s_reasm_new(t2s_reasm **preasm, const t2s_reasm_config *cfg) {
  if (preasm == NULL || cfg == NULL || cfg->max_datagrams == 0 || cfg->max_frags == 0) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  t2s_reasm *r = t2s_calloc(cfg->mem, 1, sizeof(*r));
  if (r == NULL) {
    return T2S_ERR_NOMEM;
  }
  r->cfg = *cfg;
  *preasm = r;
  return 0;
}

static void dgram_free(t2s_reasm *r, frag_dgram *d) {
  for (size_t i = 0; i < d->npieces; i++) {
    r->bytes -= d->pieces[i].len;
    t2s_free(r->cfg.mem, d->pieces[i].data);
  }
  r->bytes -= d->hdrlen;
  t2s_free(r->cfg.mem, d->pieces);
  t2s_free(r->cfg.mem, d->hdr);
  t2s_free(r->cfg.mem, d);
}

/* Unlinks d from the list (prev is its predecessor or NULL) and frees it. */
static void dgram_remove(t2s_reasm *r, frag_dgram *prev, frag_dgram *d) {
  if (prev) {
    prev->next = d->next;
  } else {
    r->head = d->next;
  }
  if (r->tail == d) {
    r->tail = prev;
  }
  r->ndgrams--;
  dgram_free(r, d);
}

void t2s_reasm_del(t2s_reasm *r) {
  if (r == NULL) {
    return;
  }
  while (r->head) {
    dgram_remove(r, NULL, r->head);
  }
  t2s_free(r->cfg.mem, r);
}

size_t t2s_reasm_pending(const t2s_reasm *r) {
  return r->ndgrams;
}

size_t t2s_reasm_bytes(const t2s_reasm *r) {
  return r->bytes;
}

t2s_tstamp t2s_reasm_get_expiry(const t2s_reasm *r) {
  return r->head ? r->head->deadline : T2S_TSTAMP_MAX;
}

size_t t2s_reasm_handle_expiry(t2s_reasm *r, t2s_tstamp now) {
  size_t n = 0;
  /* Bounded by the number of datagrams held. */
  while (r->head && r->head->deadline <= now) {
    dgram_remove(r, NULL, r->head);
    n++;
  }
  return n;
}

static bool key_eq(const frag_dgram *d, const t2s_pkt *p) {
  size_t alen = p->ipver == 4 ? 4 : 16;
  return d->ver == p->ipver && d->id == p->frag_id && (p->ipver == 6 || d->proto == p->proto) &&
         memcmp(d->src, p->src.ip, alen) == 0 && memcmp(d->dst, p->dst.ip, alen) == 0;
}

/* Writes the whole datagram into out. Returns its length or T2S_ERR_NOBUF. */
static t2s_ssize assemble(const frag_dgram *d, uint8_t *out, size_t outlen) {
  size_t len = d->hdrlen + d->total;
  if (len > outlen) {
    return T2S_ERR_NOBUF;
  }
  memcpy(out, d->hdr, d->hdrlen);
  for (size_t i = 0; i < d->npieces; i++) {
    memcpy(out + d->hdrlen + d->pieces[i].off, d->pieces[i].data, d->pieces[i].len);
  }
  if (d->ver == 4) {
    t2s_put16(out + 2, (uint16_t)len);
    uint16_t fo = t2s_get16(out + 6) & IPV4_DF;
    t2s_put16(out + 6, fo);
    t2s_put16(out + 10, 0);
    t2s_put16(out + 10, t2s_csum_fold(t2s_csum_add(0, out, d->hdrlen)));
  } else {
    t2s_put16(out + 4, (uint16_t)(len - IPV6_HDRLEN));
    /* The next-header field that named the fragment header now names what followed it. */
    size_t nhoff = 6, off = IPV6_HDRLEN;
    while (off < d->hdrlen) { /* bounded: each step advances by at least 8 bytes */
      nhoff = off;
      off += ((size_t)out[off + 1] + 1) * 8;
    }
    out[nhoff] = d->proto;
  }
  return (t2s_ssize)len;
}

static t2s_ssize fail(t2s_drop_reason *preason, t2s_drop_reason r, int err) {
  if (preason) {
    *preason = r;
  }
  return err;
}

t2s_ssize t2s_reasm_input(t2s_reasm *r, const t2s_pkt *p, t2s_tstamp now, uint8_t *out,
                          size_t outlen, t2s_drop_reason *preason) {
  if (preason) {
    *preason = T2S_DROP_NONE;
  }
  if (!p->is_fragment || p->l4off > p->len || (p->ipver != 4 && p->ipver != 6)) {
    return fail(preason, T2S_DROP_FRAG_BAD, T2S_ERR_INVALID_ARGUMENT);
  }
  /* The part before the fragmentable data: v4 header, or v6 header + extension headers
   * before the fragment header. */
  size_t hdrlen = p->ipver == 4 ? p->l4off : p->frag_hdroff;
  size_t off = p->frag_off;
  size_t dlen = p->len - p->l4off;
  size_t limit = p->ipver == 4 ? 65535 - hdrlen : 65535 - (hdrlen - IPV6_HDRLEN);
  if ((p->more_frags && (dlen == 0 || dlen % 8 != 0)) || off + dlen > limit ||
      (p->ipver == 6 && hdrlen < IPV6_HDRLEN)) {
    return fail(preason, T2S_DROP_FRAG_BAD, T2S_ERR_MALFORMED);
  }
  frag_dgram *d = r->head, *prev = NULL;
  while (d && !key_eq(d, p)) {
    prev = d;
    d = d->next;
  }
  if (d == NULL) {
    if (r->ndgrams >= r->cfg.max_datagrams) {
      return fail(preason, T2S_DROP_FRAG_LIMIT, T2S_ERR_LIMIT);
    }
    d = t2s_calloc(r->cfg.mem, 1, sizeof(*d));
    if (d == NULL) {
      return fail(preason, T2S_DROP_NO_BUFFER, T2S_ERR_NOMEM);
    }
    d->ver = p->ipver;
    d->proto = p->proto;
    d->id = p->frag_id;
    memcpy(d->src, p->src.ip, p->ipver == 4 ? 4 : 16);
    memcpy(d->dst, p->dst.ip, p->ipver == 4 ? 4 : 16);
    d->deadline = now + r->cfg.timeout;
    prev = r->tail;
    if (r->tail) {
      r->tail->next = d;
    } else {
      r->head = d;
    }
    r->tail = d;
    r->ndgrams++;
  }
  /* Duplicates are ignored; any other overlap kills the datagram (RFC 5722). */
  for (size_t i = 0; i < d->npieces; i++) {
    const frag_piece *q = &d->pieces[i];
    if (q->off == off && q->len == dlen) {
      return 0;
    }
    if (off < q->off + q->len && q->off < off + dlen) {
      dgram_remove(r, prev, d);
      return fail(preason, T2S_DROP_FRAG_OVERLAP, T2S_ERR_MALFORMED);
    }
  }
  if (!p->more_frags) {
    if (d->have_last && d->total != off + dlen) {
      dgram_remove(r, prev, d);
      return fail(preason, T2S_DROP_FRAG_OVERLAP, T2S_ERR_MALFORMED);
    }
    d->have_last = true;
    d->total = off + dlen;
  }
  if (d->have_last) {
    for (size_t i = 0; i < d->npieces; i++) {
      if (d->pieces[i].off + d->pieces[i].len > d->total) {
        dgram_remove(r, prev, d);
        return fail(preason, T2S_DROP_FRAG_OVERLAP, T2S_ERR_MALFORMED);
      }
    }
    if (off + dlen > d->total) {
      dgram_remove(r, prev, d);
      return fail(preason, T2S_DROP_FRAG_OVERLAP, T2S_ERR_MALFORMED);
    }
  }
  size_t need = dlen + (off == 0 ? hdrlen : 0);
  if (d->npieces >= r->cfg.max_frags || r->bytes + need > r->cfg.max_bytes) {
    dgram_remove(r, prev, d);
    return fail(preason, T2S_DROP_FRAG_LIMIT, T2S_ERR_LIMIT);
  }
  if (d->npieces == d->cappieces) {
    size_t cap = d->cappieces ? d->cappieces * 2 : 4;
    frag_piece *v = t2s_realloc(r->cfg.mem, d->pieces, cap * sizeof(*v));
    if (v == NULL) {
      return fail(preason, T2S_DROP_NO_BUFFER, T2S_ERR_NOMEM);
    }
    d->pieces = v;
    d->cappieces = cap;
  }
  uint8_t *data = t2s_malloc(r->cfg.mem, dlen ? dlen : 1);
  if (data == NULL) {
    return fail(preason, T2S_DROP_NO_BUFFER, T2S_ERR_NOMEM);
  }
  if (off == 0) {
    uint8_t *h = t2s_malloc(r->cfg.mem, hdrlen);
    if (h == NULL) {
      t2s_free(r->cfg.mem, data);
      return fail(preason, T2S_DROP_NO_BUFFER, T2S_ERR_NOMEM);
    }
    memcpy(h, p->data, hdrlen);
    d->hdr = h;
    d->hdrlen = hdrlen;
    r->bytes += hdrlen;
  }
  if (dlen) {
    memcpy(data, p->data + p->l4off, dlen);
  }
  /* Insert sorted by offset. */
  size_t at = d->npieces;
  while (at > 0 && d->pieces[at - 1].off > off) {
    d->pieces[at] = d->pieces[at - 1];
    at--;
  }
  d->pieces[at].off = off;
  d->pieces[at].len = dlen;
  d->pieces[at].data = data;
  d->npieces++;
  d->got += dlen;
  r->bytes += dlen;
  if (!d->have_last || d->hdr == NULL || d->got != d->total) {
    return 0;
  }
  t2s_ssize n = assemble(d, out, outlen);
  dgram_remove(r, prev, d);
  if (n < 0) {
    return fail(preason, T2S_DROP_NO_BUFFER, (int)n);
  }
  return n;
}

/* ---- fragmentation ---- */

t2s_ssize t2s_frag_split(const uint8_t *pkt, size_t len, uint32_t mtu, uint32_t ident,
                         uint8_t *scratch, size_t scratchlen, t2s_frag_out_fn out, void *arg) {
  if (len < 1 || scratchlen < mtu) {
    return T2S_ERR_INVALID_ARGUMENT;
  }
  if (len <= mtu) {
    int rv = out(arg, pkt, len);
    return rv < 0 ? rv : 1;
  }
  unsigned ver = pkt[0] >> 4;
  t2s_ssize count = 0;
  if (ver == 4) {
    size_t ihl = (size_t)(pkt[0] & 0x0f) * 4;
    if (len < IPV4_HDRLEN || ihl < IPV4_HDRLEN || ihl > len || mtu < ihl + 8) {
      return T2S_ERR_INVALID_ARGUMENT;
    }
    size_t per = ((mtu - ihl) / 8) * 8;
    size_t data = len - ihl;
    uint16_t base = t2s_get16(pkt + 6) & 0x1fffu; /* a fragment being fragmented again */
    bool orig_mf = (t2s_get16(pkt + 6) & IPV4_MF) != 0;
    for (size_t off = 0; off < data; off += per) { /* bounded by data / per */
      size_t n = T2S_MIN(per, data - off);
      bool mf = off + n < data || orig_mf;
      memcpy(scratch, pkt, ihl);
      memcpy(scratch + ihl, pkt + ihl + off, n);
      t2s_put16(scratch + 2, (uint16_t)(ihl + n));
      t2s_put16(scratch + 4, (uint16_t)ident);
      t2s_put16(scratch + 6, (uint16_t)((mf ? IPV4_MF : 0) | (base + off / 8)));
      t2s_put16(scratch + 10, 0);
      t2s_put16(scratch + 10, t2s_csum_fold(t2s_csum_add(0, scratch, ihl)));
      int rv = out(arg, scratch, ihl + n);
      if (rv < 0) {
        return rv;
      }
      count++;
    }
    return count;
  }
  if (ver == 6) {
    if (len < IPV6_HDRLEN || mtu < IPV6_MIN_MTU) {
      return T2S_ERR_INVALID_ARGUMENT;
    }
    size_t per = ((mtu - IPV6_HDRLEN - IPV6_FRAGHDR_LEN) / 8) * 8;
    size_t data = len - IPV6_HDRLEN;
    uint8_t nh = pkt[6];
    for (size_t off = 0; off < data; off += per) {
      size_t n = T2S_MIN(per, data - off);
      bool mf = off + n < data;
      memcpy(scratch, pkt, IPV6_HDRLEN);
      scratch[6] = IPV6_NH_FRAGMENT;
      t2s_put16(scratch + 4, (uint16_t)(IPV6_FRAGHDR_LEN + n));
      uint8_t *fh = scratch + IPV6_HDRLEN;
      fh[0] = nh;
      fh[1] = 0;
      t2s_put16(fh + 2, (uint16_t)(off | (mf ? 1u : 0u)));
      t2s_put32(fh + 4, ident);
      memcpy(fh + IPV6_FRAGHDR_LEN, pkt + IPV6_HDRLEN + off, n);
      int rv = out(arg, scratch, IPV6_HDRLEN + IPV6_FRAGHDR_LEN + n);
      if (rv < 0) {
        return rv;
      }
      count++;
    }
    return count;
  }
  return T2S_ERR_INVALID_ARGUMENT;
}
