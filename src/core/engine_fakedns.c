/* engine_fakedns.c: the engine's side of --fake-dns: the UDP responder and the name of a flow
 * to a pool address (engine_fakedns.h). */
#include "engine_fakedns.h"

#include "engine_internal.h"
#include "fakedns.h"

bool t2s_engine_fakedns_on(const t2s_engine *e) {
  return e->cfg.fake_dns != NULL;
}

bool t2s_engine_fakedns_udp_query(t2s_engine *e, const t2s_pkt *pkt, t2s_tstamp now) {
  uint8_t answer[T2S_FAKEDNS_ANSWER_MAX];
  size_t alen = 0;
  t2s_fakedns_verdict v = t2s_fakedns_respond(e->cfg.fake_dns, pkt->payload, pkt->payload_len,
                                              false, answer, sizeof(answer), &alen);
  if (v == T2S_FAKEDNS_FORWARD) {
    return false;
  }
  if (v == T2S_FAKEDNS_DROP) {
    t2s_engine_drop(e, T2S_DROP_DNS_NOT_QUERY, now, pkt);
    return true;
  }
  /* The answer comes from the address the client asked, to the port it asked from. */
  uint8_t out[60 + T2S_FAKEDNS_ANSWER_MAX];
  t2s_ssize n = t2s_build_udp(out, sizeof(out), &pkt->dst, &pkt->src, answer, alen);
  if (n < 0) {
    t2s_engine_drop(e, T2S_DROP_NO_BUFFER, now, pkt);
    return true;
  }
  if (t2s_engine_send(e, out, (size_t)n) == 0) {
    e->stats.udp_datagrams_down++;
    e->stats.bytes_down += alen;
  }
  return true;
}

int t2s_engine_fakedns_flow_start(t2s_engine *e, const t2s_addr *dst, const char **pname,
                                  t2s_tstamp now) {
  *pname = NULL;
  if (e->cfg.fake_dns == NULL || !t2s_fakedns_in_pool(e->cfg.fake_dns, dst)) {
    return 0;
  }
  const char *name = t2s_fakedns_pin(e->cfg.fake_dns, dst);
  if (name == NULL) {
    t2s_engine_drop(e, T2S_DROP_FAKE_DNS_STALE, now, NULL);
    return T2S_ERR_NOT_FOUND;
  }
  *pname = name;
  return 1;
}

void t2s_engine_fakedns_flow_end(t2s_engine *e, const t2s_addr *dst) {
  if (e->cfg.fake_dns != NULL) {
    t2s_fakedns_unpin(e->cfg.fake_dns, dst);
  }
}
