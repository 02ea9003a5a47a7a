/*
 * rec_wrap.h: device middleware beside the recorder, with the iface.h device ops: a seeded
 * fault injector (loss, duplication, reordering, delay) for tests, and a pcap tee that writes
 * every packet in and out as a classic pcap (LINKTYPE_RAW) Wireshark opens.
 *
 * Sans-I/O: the tee hands bytes to a sink callback; the injector's delay reads the time from
 * a clock given to it. Either wraps the real TUN or the simulator's device alike.
 */
#ifndef T2S_REC_WRAP_H
#define T2S_REC_WRAP_H

#include "iface.h"
#include "rand.h"

/* ---------------- fault injector ---------------- */

enum { T2S_FAULT_DIR_IN = 1u << 0, T2S_FAULT_DIR_OUT = 1u << 1 };

/* Probabilities are integer ratios num/den (den 0 = never). */
typedef struct t2s_fault_opts {
  uint32_t loss_num, loss_den;
  uint32_t dup_num, dup_den;
  uint32_t reorder_num, reorder_den;
  uint32_t delay_num, delay_den; /* which packets are delayed (def. all when delay is set) */
  t2s_tstamp delay;              /* hold a delayed packet this long */
  uint64_t seed;                 /* every decision comes from it */
  unsigned dirs;                 /* T2S_FAULT_DIR_*: def. both */
} t2s_fault_opts;

/*
 * Parses "loss=2%,dup=1/100,reorder=1%,delay=20ms,seed=7,dir=in" (any subset, comma
 * separated; ratios as N% , N/M or N.N%; times with ns/us/ms/s). Returns 0, or
 * T2S_ERR_INVALID_ARGUMENT with a message in err.
 */
int t2s_fault_parse(const char *spec, t2s_fault_opts *o, char *err, size_t errlen);

#define T2S_FAULT_MAX_HELD 64 /* packets held (delay, reorder, duplicate) per direction */

typedef struct t2s_fault_pkt {
  uint8_t *data;
  size_t len;
  t2s_tstamp due; /* 0: at the next call (after the packet that overtakes it) */
  unsigned flags; /* rx_flags of a received packet */
} t2s_fault_pkt;

typedef struct t2s_fault {
  t2s_device inner;
  t2s_clock clk; /* for the delay (ops NULL: no delay) */
  t2s_fault_opts o;
  t2s_rand rand;
  t2s_fault_pkt held[2][T2S_FAULT_MAX_HELD]; /* [0] toward the engine, [1] toward clients */
  size_t nheld[2];
  unsigned last_flags; /* rx_flags of the packet recv returned */
  uint64_t lost[2], duplicated[2], reordered[2], delayed[2];
} t2s_fault;

/* Sets up f around inner (copied); clk (may be NULL) times the delays. Returns 0. */
int t2s_fault_init(t2s_fault *f, const t2s_fault_opts *o, const t2s_device *inner,
                   const t2s_clock *clk);
/* The wrapped device (self = f). */
void t2s_fault_device(t2s_fault *f, t2s_device *out);
/* Frees the packets still held. */
void t2s_fault_free(t2s_fault *f);

/* ---------------- pcap tee ---------------- */

typedef struct t2s_pcap_tee {
  t2s_device inner;
  t2s_clock clk; /* timestamps (ops NULL: 0) */
  int (*write)(void *arg, const uint8_t *data, size_t len);
  void *arg;
  uint32_t snaplen;
  int error; /* the first write error: the tee stops writing */
  uint64_t packets;
  uint64_t wall_base_ns; /* added to the clock's time (the host's wall clock at start) */
} t2s_pcap_tee;

/*
 * Sets up the tee around inner and writes the pcap file header (snaplen 0 = 65535; packets
 * longer are cut). Timestamps are clk's now plus wall_base_ns. Returns 0 or the write's error.
 */
int t2s_pcap_tee_init(t2s_pcap_tee *t, const t2s_device *inner, const t2s_clock *clk,
                      uint32_t snaplen, uint64_t wall_base_ns,
                      int (*write)(void *arg, const uint8_t *data, size_t len), void *arg);
/* The wrapped device (self = t): every packet received or sent is written. */
void t2s_pcap_tee_device(t2s_pcap_tee *t, t2s_device *out);

#endif
