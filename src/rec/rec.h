/*
 * rec.h: the flight recorder (docs/recording.md). It writes down every input the engine gets
 * and every output it makes, so that tun2sock-sim --replay-record can run a fresh engine on
 * the same inputs and compare each output.
 *
 * Two halves:
 *  - middleware with the iface.h ops tables: the wrapped device, upstream connector, monitor
 *    and clock record each call the engine (or the host) makes and what it returned; the
 *    wrapped hooks record the engine's events;
 *  - the engine.h entry points with a t2s_rec first argument (t2s_rec_input_ex, ...): each
 *    records the input with its `now`, calls the engine, then records its return value and the
 *    engine's new expiry. With rec == NULL they only call the engine, so a driver can call
 *    them unconditionally.
 *
 * Like the core it makes no system call: bytes go to the caller's sink. Not thread-safe (one
 * engine, one thread, as everywhere).
 */
#ifndef T2S_REC_H
#define T2S_REC_H

#include "engine.h"
#include "rec_format.h"

typedef struct t2s_rec t2s_rec;

/* Where the recording goes. */
typedef struct t2s_rec_sink {
  /* Appends len bytes. Returns 0 or a negative error (the recorder then stops recording). */
  int (*write)(void *arg, const uint8_t *data, size_t len);
  /* Ring mode: empties the destination before a flush rewrites it whole. NULL in stop mode. */
  int (*rewind)(void *arg);
  void *arg;
} t2s_rec_sink;

typedef enum t2s_rec_mode {
  /* Records stream to the sink; at max_bytes an END record closes the file and recording
   * stops (the replay checks everything up to there). */
  T2S_REC_MODE_STOP = 0,
  /* Records stay in a memory ring of max_bytes; each flush rewrites the file with the header
   * and the ring. Once the oldest records are dropped the file is marked RING_CUT: readable,
   * but no longer replayable from a fresh engine. */
  T2S_REC_MODE_RING,
} t2s_rec_mode;

typedef struct t2s_rec_opts {
  t2s_rec_sink sink;
  t2s_rec_mode mode;
  uint64_t max_bytes;  /* the file's bound (header included); 0 = none (stop mode only) */
  const char *build;   /* for the header: "tun2sock 0.1.0" */
  const char *options; /* for the header: the command line */
  bool clock_reads;    /* record every read of the wrapped clock (notes; off: fewer bytes) */
} t2s_rec_opts;

/*
 * Creates a recorder for an engine configured with *cfg (its seed included; copied into the
 * header now). Returns 0, T2S_REC_ERR_NOMEM, or T2S_ERR_INVALID_ARGUMENT (no sink, a ring
 * without max_bytes or rewind, a max_bytes smaller than the header).
 */
int t2s_rec_new(t2s_rec **prec, const t2s_rec_opts *opts, const t2s_engine_config *cfg);
/* Writes what is pending (stop mode) or rewrites the whole file (ring). Returns 0 or
 * T2S_REC_ERR_IO. Call it on a clean stop and on SIGUSR2. */
int t2s_rec_flush(t2s_rec *rec);
/* Appends the END record (a clean stop) and flushes. */
int t2s_rec_finish(t2s_rec *rec);
/* Frees the recorder (without flushing). NULL is fine. */
void t2s_rec_del(t2s_rec *rec);
/* Appends a NOTE record with text (e.g. "SIGUSR2"). */
void t2s_rec_note(t2s_rec *rec, t2s_tstamp now, const char *text);

typedef struct t2s_rec_stats {
  uint64_t records; /* records appended */
  uint64_t bytes;   /* bytes of the file so far (stop) or in the ring with the header */
  uint64_t dropped; /* ring: records dropped from the oldest end */
  bool stopped;     /* stop mode: max_bytes reached, or the sink failed */
  int error;        /* the sink's first error, 0 while none */
} t2s_rec_stats;
void t2s_rec_get_stats(const t2s_rec *rec, t2s_rec_stats *st);

/* ---- middleware: wraps inner into *out (same ops; out->self is rec). inner is copied. ---- */

void t2s_rec_wrap_device(t2s_rec *rec, const t2s_device *inner, t2s_device *out);
void t2s_rec_wrap_upstream(t2s_rec *rec, const t2s_upstream *inner, t2s_upstream *out);
void t2s_rec_wrap_monitor(t2s_rec *rec, const t2s_monitor *inner, t2s_monitor *out);
/* The clock: now/boottime reads become notes (when opts.clock_reads), timer arms too. */
void t2s_rec_wrap_clock(t2s_rec *rec, const t2s_clock *inner, t2s_clock *out);
/* The engine's hooks: every event is recorded, then passed to inner (which may be NULL). */
void t2s_rec_wrap_hooks(t2s_rec *rec, const t2s_engine_hooks *inner, t2s_engine_hooks *out);

/* ---- the engine.h entry points, recorded (rec may be NULL) ---- */

int t2s_rec_input_ex(t2s_rec *rec, t2s_engine *e, const uint8_t *pkt, size_t len, unsigned flags,
                     t2s_tstamp now);
int t2s_rec_handle_expiry(t2s_rec *rec, t2s_engine *e, t2s_tstamp now);
void t2s_rec_stream_opened(t2s_rec *rec, t2s_engine *e, uint64_t id, int err, t2s_tstamp now);
size_t t2s_rec_stream_recv(t2s_rec *rec, t2s_engine *e, uint64_t id, const uint8_t *data,
                           size_t len, t2s_tstamp now);
void t2s_rec_stream_eof(t2s_rec *rec, t2s_engine *e, uint64_t id, t2s_tstamp now);
void t2s_rec_stream_writable(t2s_rec *rec, t2s_engine *e, uint64_t id, t2s_tstamp now);
void t2s_rec_stream_error(t2s_rec *rec, t2s_engine *e, uint64_t id, int err, t2s_tstamp now);
void t2s_rec_dgram_recv(t2s_rec *rec, t2s_engine *e, uint64_t id, const uint8_t *data, size_t len,
                        t2s_tstamp now);
void t2s_rec_dgram_error(t2s_rec *rec, t2s_engine *e, uint64_t id, int err, t2s_tstamp now);
void t2s_rec_network_event(t2s_rec *rec, t2s_engine *e, const t2s_net_event *ev, t2s_tstamp now);
size_t t2s_rec_reset_all(t2s_rec *rec, t2s_engine *e, t2s_tstamp now);
/* t2s_engine_del, recorded (the closes it makes are outputs); now is the stop's time. */
void t2s_rec_engine_del(t2s_rec *rec, t2s_engine *e, t2s_tstamp now);
/* Several proxies, their addresses and probes, a reload (engine.h): recorded like the others. */
int t2s_rec_set_proxies(t2s_rec *rec, t2s_engine *e, const t2s_engine_proxy *list, size_t n,
                        const t2s_proxy_health_config *hcfg, t2s_tstamp now);
t2s_ssize t2s_rec_replace_proxies(t2s_rec *rec, t2s_engine *e, const t2s_engine_proxy *list,
                                  size_t n, const t2s_proxy_health_config *hcfg, t2s_tstamp now);
int t2s_rec_proxy_set_addr(t2s_rec *rec, t2s_engine *e, size_t i, const t2s_addr *addr,
                           t2s_tstamp now);
void t2s_rec_proxy_probe_result(t2s_rec *rec, t2s_engine *e, size_t i, int err, t2s_tstamp now);
void t2s_rec_stream_multipath(t2s_rec *rec, t2s_engine *e, uint64_t id, t2s_stream_mp mp,
                              uint32_t subflows, t2s_tstamp now);
/* t2s_engine_set_runtime has no time: now is the one the record carries (the host's clock). */
void t2s_rec_set_runtime(t2s_rec *rec, t2s_engine *e, const t2s_engine_config *cfg, t2s_tstamp now);

#endif
