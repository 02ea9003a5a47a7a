/*
 * sim_events.h: the simulator's event log, one JSON object per line.
 *
 * Deterministic by construction: times are virtual nanoseconds, no wall clock, no pointers,
 * no hash-table iteration order. A line is built with sim_log_begin, the sim_log_* field
 * writers, and sim_log_end. With no file every call is a no-op.
 */
#ifndef T2S_SIM_EVENTS_H
#define T2S_SIM_EVENTS_H

#include <stdio.h>

#include "common.h"

typedef struct sim_log {
  FILE *f;      /* NULL: logging off */
  bool nocomma; /* the next field opens the line or an object */
} sim_log;

/* Starts a line {"t":T,"event":"EV". */
void sim_log_begin(sim_log *log, t2s_tstamp t, const char *ev);
/* Adds "key":"val" (JSON-escaped). */
void sim_log_str(sim_log *log, const char *key, const char *val);
/* Adds "key":v. */
void sim_log_u64(sim_log *log, const char *key, uint64_t v);
void sim_log_i64(sim_log *log, const char *key, int64_t v);
void sim_log_bool(sim_log *log, const char *key, bool v);
/* Adds "key":"ADDR" (with the port when it is not 0). */
void sim_log_addr(sim_log *log, const char *key, const t2s_addr *a);
/* Adds "key":{ ... opens a nested object; sim_log_close_obj closes it. */
void sim_log_open_obj(sim_log *log, const char *key);
void sim_log_close_obj(sim_log *log);
/* Ends the line. */
void sim_log_end(sim_log *log);

/*
 * Writes a one-line tcpdump-like summary of an IP packet into buf, e.g.
 * "IP 10.0.0.1 > 10.0.0.2 ICMP echo-request id=1 seq=2 len=56" or
 * "IP6 [fd00::1]:4000 > [fd00::2]:80 TCP [S.] seq=1 ack=2 win=65535 len=0".
 * Never reads beyond len. Returns buf.
 */
char *sim_pkt_summary(const uint8_t *pkt, size_t len, char *buf, size_t buflen);

#endif
