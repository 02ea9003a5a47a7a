/* upstream_sock_rec.c: the connector's completions through the flight recorder (see
 * upstream_sock.h, t2s_upstream_sock_set_recorder). Its own object file, so that only a program
 * that records links libt2s_rec. */
#include "rec.h"
#include "upstream_sock.h"

static void rec_stream_opened(void *arg, t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  t2s_rec_stream_opened(arg, e, id, err, now);
}

static size_t rec_stream_recv(void *arg, t2s_engine *e, uint64_t id, const uint8_t *data,
                              size_t len, t2s_tstamp now) {
  return t2s_rec_stream_recv(arg, e, id, data, len, now);
}

static void rec_stream_eof(void *arg, t2s_engine *e, uint64_t id, t2s_tstamp now) {
  t2s_rec_stream_eof(arg, e, id, now);
}

static void rec_stream_writable(void *arg, t2s_engine *e, uint64_t id, t2s_tstamp now) {
  t2s_rec_stream_writable(arg, e, id, now);
}

static void rec_stream_error(void *arg, t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  t2s_rec_stream_error(arg, e, id, err, now);
}

static void rec_dgram_recv(void *arg, t2s_engine *e, uint64_t id, const uint8_t *data, size_t len,
                           t2s_tstamp now) {
  t2s_rec_dgram_recv(arg, e, id, data, len, now);
}

static void rec_dgram_error(void *arg, t2s_engine *e, uint64_t id, int err, t2s_tstamp now) {
  t2s_rec_dgram_error(arg, e, id, err, now);
}

static void rec_stream_multipath(void *arg, t2s_engine *e, uint64_t id, t2s_stream_mp mp,
                                 uint32_t subflows, t2s_tstamp now) {
  t2s_rec_stream_multipath(arg, e, id, mp, subflows, now);
}

static const t2s_upstream_sink rec_sink = {
    .stream_opened = rec_stream_opened,
    .stream_recv = rec_stream_recv,
    .stream_eof = rec_stream_eof,
    .stream_writable = rec_stream_writable,
    .stream_error = rec_stream_error,
    .dgram_recv = rec_dgram_recv,
    .dgram_error = rec_dgram_error,
    .stream_multipath = rec_stream_multipath,
};

void t2s_upstream_sock_set_recorder(t2s_upstream_sock *up, t2s_rec *rec) {
  t2s_upstream_sock_set_sink(up, rec ? &rec_sink : NULL, rec);
}
