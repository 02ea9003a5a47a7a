/*
 * engine_out.c: what every part of the engine sends toward the clients (packets, ICMP
 * destination unreachable) and reports to its host (drops by reason, events). The bottom of
 * the engine's call graph: it calls the device and the hooks, nothing else of the engine.
 */
#include <string.h>

#include "engine_internal.h"

void t2s_engine_emit_ev(t2s_engine *e, const t2s_engine_event *ev) {
  if (e->hooks.on_event != NULL) {
    e->hooks.on_event(e->hooks.arg, ev);
  }
}

void t2s_engine_emit(t2s_engine *e, t2s_engine_event_type type, t2s_tstamp now, uint64_t id,
                     const t2s_addr *src, const t2s_addr *dst, int reason) {
  if (e->hooks.on_event == NULL) {
    return;
  }
  t2s_engine_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = type;
  ev.now = now;
  ev.flow_id = id;
  if (src) {
    ev.src = *src;
  }
  if (dst) {
    ev.dst = *dst;
  }
  ev.reason = reason;
  e->hooks.on_event(e->hooks.arg, &ev);
}

void t2s_engine_drop(t2s_engine *e, t2s_drop_reason reason, t2s_tstamp now, const t2s_pkt *pkt) {
  if (reason <= T2S_DROP_NONE || reason >= T2S_DROP_MAX) {
    return;
  }
  e->stats.drops[reason]++;
  t2s_engine_emit(e, T2S_EV_DROP, now, 0, pkt ? &pkt->src : NULL, pkt ? &pkt->dst : NULL,
                  (int)reason);
}

/* One packet handed to the device: counted as sent, or as a device-error drop. */
static int count_sent(t2s_engine *e, int rv) {
  if (rv != 0) {
    e->stats.drops[T2S_DROP_DEVICE_ERROR]++;
    return rv;
  }
  e->stats.packets_out++;
  return 0;
}

int t2s_engine_send(t2s_engine *e, const uint8_t *pkt, size_t len) {
  return count_sent(e, e->dev.ops->send(e->dev.self, pkt, len));
}

int t2s_engine_sendv(t2s_engine *e, const t2s_iovec *iov, size_t niov) {
  return count_sent(e, e->dev.ops->sendv(e->dev.self, iov, niov));
}

bool t2s_engine_send_unreach(t2s_engine *e, const t2s_addr *from, const t2s_pkt *orig,
                             uint8_t code) {
  t2s_ssize n = t2s_build_icmp_unreach(e->outbuf, sizeof(e->outbuf), from, orig, code);
  return n > 0 && t2s_engine_send(e, e->outbuf, (size_t)n) == 0;
}

bool t2s_engine_send_unreach_rebuilt(t2s_engine *e, const t2s_addr *from, const uint8_t *pkt,
                                     t2s_ssize len, uint8_t code) {
  t2s_pkt quoted;
  if (len < 0 || t2s_pkt_parse(pkt, (size_t)len, &quoted) != T2S_DROP_NONE) {
    return false;
  }
  return t2s_engine_send_unreach(e, from, &quoted, code);
}
