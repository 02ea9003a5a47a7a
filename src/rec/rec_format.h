/*
 * rec_format.h: the flight recorder's file format (docs/recording.md), its writer and its
 * strict reader.
 *
 * A recording is a header (magic, format version, flags, the build, the command line, the
 * engine's configuration with its seed) followed by records. Each record has a kind, the
 * engine time `now` it happened at and a body whose layout the kind fixes. Records come in
 * the order they happened: an input (a call into engine.h) is followed by the outputs the
 * engine produced while handling it (calls of the device, upstream and monitor ops with what
 * they returned, the engine's events), then its return value and the engine's new expiry.
 *
 * Sans-I/O like the core: the writer appends to memory and hands bytes to a callback; the
 * reader parses a buffer and never reads beyond it. Every multi-byte integer is little-endian.
 */
#ifndef T2S_REC_FORMAT_H
#define T2S_REC_FORMAT_H

#include "engine.h"
#include "fakedns.h"

#define T2S_REC_MAGIC "T2SREC\r\n" /* 8 bytes */
#define T2S_REC_MAGIC_LEN 8
#define T2S_REC_VERSION 1
/* The largest record body the reader accepts (a packet or a write of up to 1 MiB). */
#define T2S_REC_MAX_BODY (1u << 20)
/* The largest header the reader accepts. */
#define T2S_REC_MAX_HEADER (64u * 1024)
/* The longest string of the header (build, options, username, password). */
#define T2S_REC_MAX_STRING 4095
/* The bytes of an output kept whole; the rest is in its hash. */
#define T2S_REC_OUTPUT_PREFIX 64
/* Bytes before a record's body: kind (1), body length (4), now (8). */
#define T2S_REC_RECORD_HEAD 13

/* Header flags. */
enum {
  T2S_REC_FLAG_RING_CUT = 1u << 0, /* a ring recording whose oldest records were dropped */
  /* The engine had a fake-IP DNS table (t2s_engine_config.fake_dns). */
  T2S_REC_FLAG_FAKE_DNS = 1u << 1,
  /* The header holds that table's configuration (t2s_rec_header.fakedns) and FAKEDNS_STATE
   * records right after it hold its entries at the start, so the replay can rebuild it.
   * FAKE_DNS without this flag (a recording of an older build) is refused by the replay. */
  T2S_REC_FLAG_FAKE_DNS_TABLE = 1u << 2,
  T2S_REC_FLAGS_KNOWN = (1u << 3) - 1,
};

/* Reader results (negative) and their names (t2s_rec_strerror). */
enum {
  T2S_REC_ERR_TRUNCATED = -1, /* the file ends inside the header or a record */
  T2S_REC_ERR_MAGIC = -2,     /* not a recording */
  T2S_REC_ERR_VERSION = -3,   /* another format version */
  T2S_REC_ERR_CORRUPT = -4,   /* a field out of range, an unknown kind, a bad length */
  T2S_REC_ERR_NOMEM = -5,
  T2S_REC_ERR_IO = -6, /* the write callback failed */
};

/* Names a T2S_REC_ERR_* (never NULL). */
const char *t2s_rec_strerror(int err);

/* Record kinds. Inputs are the engine.h entry points; outputs are what the engine did. */
typedef enum t2s_rec_kind {
  /* inputs (replay calls the engine) */
  T2S_REC_DEV_IN = 1,       /* t2s_engine_input_ex: flags, packet */
  T2S_REC_EXPIRY,           /* t2s_engine_handle_expiry */
  T2S_REC_STREAM_OPENED,    /* id, err */
  T2S_REC_STREAM_RECV,      /* id, bytes */
  T2S_REC_STREAM_EOF,       /* id */
  T2S_REC_STREAM_WRITABLE,  /* id */
  T2S_REC_STREAM_ERROR,     /* id, err */
  T2S_REC_DGRAM_RECV,       /* id, bytes */
  T2S_REC_DGRAM_ERROR,      /* id, err */
  T2S_REC_NET_EVENT,        /* a monitor event */
  T2S_REC_RESET_ALL,        /* t2s_engine_reset_all */
  T2S_REC_ENGINE_DEL,       /* t2s_engine_del (a clean stop) */
  T2S_REC_SET_PROXIES,      /* t2s_engine_set_proxies: the list (t2s_rec_proxies_encode) */
  T2S_REC_REPLACE_PROXIES,  /* t2s_engine_replace_proxies (a reload): the list */
  T2S_REC_PROXY_SET_ADDR,   /* t2s_engine_proxy_set_addr: index (u32a), addr */
  T2S_REC_PROXY_PROBE,      /* t2s_engine_proxy_probe_result: index (u32a), err */
  T2S_REC_STREAM_MULTIPATH, /* t2s_engine_stream_multipath: id, mp (u32a), subflows (u32b) */
  T2S_REC_SET_RUNTIME,      /* t2s_engine_set_runtime (a reload): t2s_rec_runtime_encode */
  T2S_REC_INPUT_MAX_,
  /* outputs (replay compares them and returns the recorded result to the engine) */
  T2S_REC_RET = 32,        /* the return value of the input just above: rv */
  T2S_REC_TIMER,           /* the engine's expiry changed: deadline (t1) */
  T2S_REC_DEV_CAPS,        /* device get_caps: mtu (u32a), offloads (u32b) */
  T2S_REC_DEV_SEND,        /* device send: rv, packet */
  T2S_REC_STREAM_OPEN,     /* id, dst (addr), egress, rv */
  T2S_REC_STREAM_WRITE,    /* id, rv (bytes taken), the bytes offered */
  T2S_REC_STREAM_SHUTDOWN, /* id, rv */
  T2S_REC_STREAM_PAUSE,    /* id, paused (flag) */
  T2S_REC_STREAM_CLOSE,    /* id, abort (flag) */
  T2S_REC_DGRAM_OPEN,      /* id, relay (addr), egress, rv */
  T2S_REC_DGRAM_SEND,      /* id, rv (0, or a refusal), the datagram */
  T2S_REC_DGRAM_CLOSE,     /* id */
  T2S_REC_ROUTE_GET,       /* dst (addr), mark (u32a), rv, the answer (route) */
  T2S_REC_EVENT,           /* an engine event (engine.h hooks) */
  T2S_REC_OUTPUT_MAX_,
  /* notes (replay skips them) */
  T2S_REC_CLOCK_NOW = 64, /* the clock's now was read: t1 */
  T2S_REC_CLOCK_BOOT,     /* the clock's boottime was read: t1 */
  T2S_REC_TIMER_ARM,      /* the host armed its timer: t1 (may merge other deadlines) */
  T2S_REC_NOTE,           /* free text (a flush on SIGUSR2, ...) */
  T2S_REC_END,            /* the recording ends: u32a = T2S_REC_END_* */
  /* A piece of the fake-IP table's state at the start (the --fake-dns-state text, fakedns.h),
   * in order, right after the header (FLAG_FAKE_DNS_TABLE): the bytes. */
  T2S_REC_FAKEDNS_STATE,
  T2S_REC_NOTE_MAX_,
} t2s_rec_kind;

/* Why a recording ended (T2S_REC_END's u32a). */
enum {
  T2S_REC_END_STOP = 0, /* the host stopped cleanly */
  T2S_REC_END_MAX = 1,  /* --record-max reached in stop mode: the records stop here */
};

/* The 64-bit hash of an output's bytes (fixed by the format: 8-byte little-endian words
 * mixed by multiply and xor-shift, the tail zero-padded, the length folded in). */
uint64_t t2s_rec_hash(const uint8_t *data, size_t len);

/* The record kind's name ("dev_in", "stream_write", ...), or NULL when unknown. */
const char *t2s_rec_kind_name(int kind);
/* True for the kinds that are calls into the engine. */
static inline bool t2s_rec_kind_is_input(int kind) {
  return kind >= T2S_REC_DEV_IN && kind < T2S_REC_INPUT_MAX_;
}
static inline bool t2s_rec_kind_is_output(int kind) {
  return kind >= T2S_REC_RET && kind < T2S_REC_OUTPUT_MAX_;
}
static inline bool t2s_rec_kind_is_note(int kind) {
  return kind >= T2S_REC_CLOCK_NOW && kind < T2S_REC_NOTE_MAX_;
}

/* One record, decoded. Only the fields its kind carries are set (the others are zero). */
typedef struct t2s_rec_record {
  uint8_t kind;
  t2s_tstamp now;
  uint64_t id;   /* stream or datagram id */
  int64_t rv;    /* a return value or an error (err) */
  uint32_t u32a; /* flags, mtu, mark, end reason */
  uint32_t u32b; /* offloads */
  uint8_t flag;  /* paused, abort */
  uint64_t t1;   /* a time (TIMER, CLOCK_*) */
  t2s_addr addr; /* dst, relay */
  t2s_egress egress;
  t2s_route route;
  t2s_net_event nev;
  t2s_engine_event eev; /* eev.now = now */
  const uint8_t *data;  /* points into the reader's or the caller's buffer */
  size_t datalen;
  /* Outputs' bytes (dev_send, stream_write, dgram_send) are kept as their length, their hash
   * and their first T2S_REC_OUTPUT_PREFIX bytes (data, datalen): the replay only compares
   * them, and the headers stay readable in a difference. */
  uint32_t fulllen;
  uint64_t hash; /* t2s_rec_hash of all fulllen bytes */
} t2s_rec_record;

/* Fills r->fulllen, r->hash, r->data and r->datalen for an output of len bytes at data. */
void t2s_rec_set_output_bytes(t2s_rec_record *r, const uint8_t *data, size_t len);

/* The header. Strings are NUL-terminated; the reader points them into its own copy. */
typedef struct t2s_rec_header {
  uint32_t version;
  uint32_t flags;        /* T2S_REC_FLAG_* */
  const char *build;     /* "tun2sock 0.1.0 (git abcdef)" */
  const char *options;   /* the command line, for the reader of the file */
  t2s_engine_config cfg; /* with seed, username and password; mem = NULL */
  /* FLAG_FAKE_DNS_TABLE: the fake-IP table's configuration (t2s_fakedns_get_config), else
   * NULL. cfg.fake_dns is always NULL. */
  const t2s_fakedns_config *fakedns;
} t2s_rec_header;

/* The largest body of a FAKEDNS_STATE record (a longer state takes several). */
#define T2S_REC_FAKEDNS_STATE_CHUNK (512u * 1024)

/*
 * Encodes the header into buf (buflen bytes). Returns its length, or T2S_REC_ERR_NOMEM when
 * buf is too small (T2S_REC_MAX_HEADER always suffices).
 */
t2s_ssize t2s_rec_encode_header(const t2s_rec_header *hdr, uint8_t *buf, size_t buflen);
/* The encoded length of record r (head included). */
size_t t2s_rec_record_len(const t2s_rec_record *r);
/* Encodes r into buf, which has at least t2s_rec_record_len(r) bytes. Returns the length. */
size_t t2s_rec_encode_record(const t2s_rec_record *r, uint8_t *buf);

/* The body of SET_PROXIES and REPLACE_PROXIES: `u8 n`, n × (`addr, string username, string
 * password`), `u8 has_health` and, when 1, `u32 down_after, u64 probe_interval, u64
 * probe_interval_max, u64 report_interval`. */
typedef struct t2s_rec_proxies {
  t2s_engine_proxy list[T2S_PROXY_MAX];
  size_t n;
  bool has_health;
  t2s_proxy_health_config health;
  char strings[T2S_PROXY_MAX][2][256]; /* list[i].username / password point here */
} t2s_rec_proxies;
#define T2S_REC_PROXIES_MAX (1 + T2S_PROXY_MAX * (19 + 2 * (2 + 255)) + 1 + 4 + 3 * 8)
/* Encodes list[0..n) and health (may be NULL) into buf (T2S_REC_PROXIES_MAX bytes). Returns
 * the length, or T2S_REC_ERR_CORRUPT for n outside 1..T2S_PROXY_MAX or a string over 255. */
t2s_ssize t2s_rec_proxies_encode(const t2s_engine_proxy *list, size_t n,
                                 const t2s_proxy_health_config *health, uint8_t *buf);
/* Decodes (strictly) a body written by t2s_rec_proxies_encode. Returns 0 or T2S_REC_ERR_CORRUPT. */
int t2s_rec_proxies_decode(const uint8_t *data, size_t len, t2s_rec_proxies *out);

/* The body of SET_RUNTIME: the fields t2s_engine_set_runtime takes, `u64 tcp_connect_timeout,
 * u64 udp_timeout, u64 dns_timeout, u8 on_network_change, u64 network_debounce, u8
 * icmp_unreach_on_refuse, u8 socks5_pipelined`. */
#define T2S_REC_RUNTIME_LEN (8 * 3 + 1 + 8 + 1 + 1)
void t2s_rec_runtime_encode(const t2s_engine_config *cfg, uint8_t buf[T2S_REC_RUNTIME_LEN]);
/* Fills those fields of *cfg (the others are left alone). Returns 0 or T2S_REC_ERR_CORRUPT. */
int t2s_rec_runtime_decode(const uint8_t *data, size_t len, t2s_engine_config *cfg);

/* The reader: a view of a whole recording in memory. */
typedef struct t2s_rec_reader {
  const uint8_t *buf;
  size_t len;
  size_t pos;    /* offset of the next record */
  uint64_t nrec; /* records returned so far */
  t2s_rec_header hdr;
  int err;                                 /* the sticky error, 0 while none */
  char strings[4][T2S_REC_MAX_STRING + 1]; /* build, options, username, password */
  t2s_fakedns_config fakedns;              /* hdr.fakedns points here */
  char fakedns_exclude[T2S_FAKEDNS_MAX_EXCLUDE][T2S_DNS_TEXT_MAX];
} t2s_rec_reader;

/*
 * Parses the header of the recording in buf (borrowed for the reader's life). Returns 0,
 * T2S_REC_ERR_TRUNCATED, _MAGIC, _VERSION or _CORRUPT.
 */
int t2s_rec_reader_init(t2s_rec_reader *rd, const uint8_t *buf, size_t len);
/*
 * Decodes the next record into *out. Returns 1 (a record), 0 (the end of the file, exactly at
 * a record boundary), T2S_REC_ERR_TRUNCATED or T2S_REC_ERR_CORRUPT. After an error every later
 * call returns the same error.
 */
int t2s_rec_reader_next(t2s_rec_reader *rd, t2s_rec_record *out);

#endif
