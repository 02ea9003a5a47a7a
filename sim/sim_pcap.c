/* sim_pcap.c: capture reader (link headers stripped) and LINKTYPE_RAW writer on libpcap. */
#include "sim_pcap.h"

#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Link types by number, so that the reader does not depend on which DLT_* macros a given
 * libpcap defines on this platform. */
enum {
  LT_NULL = 0,
  LT_EN10MB = 1,
  LT_RAW_12 = 12,
  LT_RAW_14 = 14,
  LT_RAW_101 = 101,
  LT_LOOP = 108,
  LT_LINUX_SLL = 113,
  LT_IPV4 = 228,
  LT_IPV6 = 229,
  LT_LINUX_SLL2 = 276,
};

enum { ETH_P_IPV4 = 0x0800, ETH_P_IPV6 = 0x86dd, ETH_P_8021Q = 0x8100 };

struct sim_pcap_reader {
  pcap_t *p;
  int linktype;
  uint64_t skipped;
};

struct sim_pcap_writer {
  pcap_t *p;
  pcap_dumper_t *d;
};

static bool linktype_supported(int lt) {
  switch (lt) {
  case LT_NULL:
  case LT_EN10MB:
  case LT_RAW_12:
  case LT_RAW_14:
  case LT_RAW_101:
  case LT_LOOP:
  case LT_LINUX_SLL:
  case LT_IPV4:
  case LT_IPV6:
  case LT_LINUX_SLL2:
    return true;
  default:
    return false;
  }
}

int sim_pcap_reader_open(sim_pcap_reader **preader, const char *path, char *err, size_t errlen) {
  char ebuf[PCAP_ERRBUF_SIZE] = {0};
  pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
  if (p == NULL) {
    snprintf(err, errlen, "cannot read capture %s: %s", path, ebuf);
    return T2S_ERR_NOT_FOUND;
  }
  int lt = pcap_datalink(p);
  if (!linktype_supported(lt)) {
    snprintf(err, errlen, "capture %s: link type %d (%s) is not supported", path, lt,
             pcap_datalink_val_to_name(lt) ? pcap_datalink_val_to_name(lt) : "?");
    pcap_close(p);
    return T2S_ERR_UNSUPPORTED;
  }
  sim_pcap_reader *r = calloc(1, sizeof(*r));
  if (r == NULL) {
    pcap_close(p);
    snprintf(err, errlen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  r->p = p;
  r->linktype = lt;
  *preader = r;
  return 0;
}

/* Offset of the IP packet inside a record, or -1 when the record carries none. */
static long ip_offset(int lt, const uint8_t *d, size_t caplen) {
  switch (lt) {
  case LT_RAW_12:
  case LT_RAW_14:
  case LT_RAW_101:
  case LT_IPV4:
  case LT_IPV6:
    return 0;
  case LT_NULL:
  case LT_LOOP:
    return caplen >= 4 ? 4 : -1;
  case LT_EN10MB: {
    if (caplen < 14) {
      return -1;
    }
    uint16_t et = t2s_get16(d + 12);
    size_t off = 14;
    if (et == ETH_P_8021Q) {
      if (caplen < 18) {
        return -1;
      }
      et = t2s_get16(d + 16);
      off = 18;
    }
    return (et == ETH_P_IPV4 || et == ETH_P_IPV6) ? (long)off : -1;
  }
  case LT_LINUX_SLL: {
    if (caplen < 16) {
      return -1;
    }
    uint16_t et = t2s_get16(d + 14);
    return (et == ETH_P_IPV4 || et == ETH_P_IPV6) ? 16 : -1;
  }
  case LT_LINUX_SLL2: {
    if (caplen < 20) {
      return -1;
    }
    uint16_t et = t2s_get16(d);
    return (et == ETH_P_IPV4 || et == ETH_P_IPV6) ? 20 : -1;
  }
  default:
    return -1;
  }
}

int sim_pcap_reader_next(sim_pcap_reader *r, const uint8_t **ppkt, size_t *plen, t2s_tstamp *pts,
                         char *err, size_t errlen) {
  /* Bounded by the file: each iteration consumes one record. */
  for (;;) {
    struct pcap_pkthdr *h;
    const u_char *d;
    int rv = pcap_next_ex(r->p, &h, &d);
    if (rv == PCAP_ERROR_BREAK) {
      return 0;
    }
    if (rv != 1) {
      snprintf(err, errlen, "damaged capture: %s", pcap_geterr(r->p));
      return T2S_ERR_MALFORMED;
    }
    long off = ip_offset(r->linktype, d, h->caplen);
    if (off < 0) {
      r->skipped++;
      continue;
    }
    *ppkt = d + off;
    *plen = h->caplen - (size_t)off;
    /* tv_usec holds nanoseconds with PCAP_TSTAMP_PRECISION_NANO. */
    *pts = (t2s_tstamp)h->ts.tv_sec * T2S_SECONDS + (t2s_tstamp)h->ts.tv_usec;
    return 1;
  }
}

int sim_pcap_reader_linktype(const sim_pcap_reader *r) {
  return r->linktype;
}

uint64_t sim_pcap_reader_skipped(const sim_pcap_reader *r) {
  return r->skipped;
}

void sim_pcap_reader_close(sim_pcap_reader *r) {
  if (r == NULL) {
    return;
  }
  pcap_close(r->p);
  free(r);
}

int sim_pcap_writer_open(sim_pcap_writer **pwriter, const char *path, char *err, size_t errlen) {
  pcap_t *p = pcap_open_dead_with_tstamp_precision(DLT_RAW, 262144, PCAP_TSTAMP_PRECISION_NANO);
  if (p == NULL) {
    snprintf(err, errlen, "pcap_open_dead failed");
    return T2S_ERR_NOMEM;
  }
  pcap_dumper_t *d = pcap_dump_open(p, path);
  if (d == NULL) {
    snprintf(err, errlen, "cannot write capture %s: %s", path, pcap_geterr(p));
    pcap_close(p);
    return T2S_ERR_NOT_FOUND;
  }
  sim_pcap_writer *w = calloc(1, sizeof(*w));
  if (w == NULL) {
    pcap_dump_close(d);
    pcap_close(p);
    return T2S_ERR_NOMEM;
  }
  w->p = p;
  w->d = d;
  *pwriter = w;
  return 0;
}

int sim_pcap_writer_write(sim_pcap_writer *w, t2s_tstamp ts, const uint8_t *pkt, size_t len) {
  struct pcap_pkthdr h;
  memset(&h, 0, sizeof(h));
  h.ts.tv_sec = (time_t)(ts / T2S_SECONDS);
  h.ts.tv_usec = (suseconds_t)(ts % T2S_SECONDS); /* nanoseconds in a NANO-precision dump */
  h.caplen = (bpf_u_int32)len;
  h.len = (bpf_u_int32)len;
  pcap_dump((u_char *)w->d, &h, pkt);
  return 0;
}

void sim_pcap_writer_close(sim_pcap_writer *w) {
  if (w == NULL) {
    return;
  }
  pcap_dump_close(w->d);
  pcap_close(w->p);
  free(w);
}
