/*
 * engine_frag.c: fragments. Client fragments of any protocol are reassembled here (frag.c)
 * before the hub parses the whole packet again; packets toward clients larger than the MTU
 * (UDP answers, ICMP echo replies) are fragmented here.
 */
#include "engine_internal.h"

int t2s_engine_frag_init(t2s_engine *e) {
  t2s_reasm_config rc;
  t2s_reasm_config_default(&rc);
  rc.mem = e->mem;
  if (t2s_reasm_new(&e->frag.reasm, &rc) != 0) {
    return T2S_ERR_NOMEM;
  }
  e->frag.ident = t2s_rand_u32(&e->rand);
  return 0;
}

void t2s_engine_frag_free(t2s_engine *e) {
  t2s_reasm_del(e->frag.reasm);
  e->frag.reasm = NULL;
}

t2s_drop_reason t2s_engine_frag_input(t2s_engine *e, const t2s_pkt *frag, t2s_tstamp now,
                                      const uint8_t **pwhole, size_t *pwholelen) {
  t2s_engine_frag *fr = &e->frag;
  *pwhole = NULL;
  *pwholelen = 0;
  t2s_drop_reason why = T2S_DROP_NONE;
  t2s_ssize n = t2s_reasm_input(fr->reasm, frag, now, fr->whole, sizeof(fr->whole), &why);
  if (n < 0) {
    return why != T2S_DROP_NONE ? why : T2S_DROP_FRAG_BAD;
  }
  if (n > 0) {
    e->stats.frag_reassembled++;
    *pwhole = fr->whole;
    *pwholelen = (size_t)n;
  }
  return T2S_DROP_NONE;
}

t2s_tstamp t2s_engine_frag_get_expiry(const t2s_engine *e) {
  return t2s_reasm_get_expiry(e->frag.reasm);
}

void t2s_engine_frag_handle_expiry(t2s_engine *e, t2s_tstamp now) {
  size_t n = t2s_reasm_handle_expiry(e->frag.reasm, now);
  for (size_t i = 0; i < n; i++) {
    t2s_engine_drop(e, T2S_DROP_FRAG_TIMEOUT, now, NULL);
  }
}

static int frag_out(void *arg, const uint8_t *pkt, size_t len) {
  return t2s_engine_send(arg, pkt, len);
}

int t2s_engine_send_frag(t2s_engine *e, const uint8_t *pkt, size_t len) {
  if (len <= e->cfg.mtu) {
    return t2s_engine_send(e, pkt, len);
  }
  t2s_engine_frag *fr = &e->frag;
  uint32_t mtu = e->cfg.mtu;
  if ((pkt[0] >> 4) == 6 && mtu < 1280) {
    mtu = 1280;
  }
  fr->ident++;
  if ((pkt[0] >> 4) == 4 && (fr->ident & 0xffff) == 0) {
    fr->ident++;
  }
  t2s_ssize n =
      t2s_frag_split(pkt, len, mtu, fr->ident, fr->scratch, sizeof(fr->scratch), frag_out, e);
  if (n < 0) {
    return (int)n;
  }
  e->stats.frag_sent += (uint64_t)n;
  return 0;
}
