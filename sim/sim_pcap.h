/*
 * sim_pcap.h: reading captures into raw IP packets and writing LINKTYPE_RAW captures, on
 * libpcap (pcap and pcapng files alike).
 *
 * Link types read: RAW (LINKTYPE_RAW 101, DLT_RAW 12 and 14), IPV4 (228), IPV6 (229),
 * EN10MB (the 14-byte Ethernet header stripped, one 802.1Q tag allowed, other ethertypes
 * skipped), LINUX_SLL (16-byte header), LINUX_SLL2 (20-byte header), NULL and LOOP (4-byte
 * header). Timestamps are read with nanosecond precision.
 */
#ifndef T2S_SIM_PCAP_H
#define T2S_SIM_PCAP_H

#include "common.h"

typedef struct sim_pcap_reader sim_pcap_reader;
typedef struct sim_pcap_writer sim_pcap_writer;

/* Opens path for reading. On failure returns T2S_ERR_NOT_FOUND (cannot open),
 * T2S_ERR_UNSUPPORTED (link type not handled) or T2S_ERR_NOMEM and writes a message to err. */
int sim_pcap_reader_open(sim_pcap_reader **preader, const char *path, char *err, size_t errlen);
/*
 * Reads the next IP packet: *ppkt and *plen point at it (valid until the next call), *pts is its
 * capture time in nanoseconds. Records that carry no IP packet (other ethertypes, headers cut
 * short) are skipped and counted. Returns 1 for a packet, 0 at the end of the file, or
 * T2S_ERR_MALFORMED when the file is damaged (message in err).
 */
int sim_pcap_reader_next(sim_pcap_reader *r, const uint8_t **ppkt, size_t *plen, t2s_tstamp *pts,
                         char *err, size_t errlen);
/* The file's link type (libpcap's DLT value). */
int sim_pcap_reader_linktype(const sim_pcap_reader *r);
/* Records skipped so far because they held no IP packet. */
uint64_t sim_pcap_reader_skipped(const sim_pcap_reader *r);
void sim_pcap_reader_close(sim_pcap_reader *r);

/* Creates path as a LINKTYPE_RAW capture with nanosecond timestamps. Returns 0 or
 * T2S_ERR_NOT_FOUND (message in err). */
int sim_pcap_writer_open(sim_pcap_writer **pwriter, const char *path, char *err, size_t errlen);
/* Appends one packet stamped ts (virtual nanoseconds). Returns 0. */
int sim_pcap_writer_write(sim_pcap_writer *w, t2s_tstamp ts, const uint8_t *pkt, size_t len);
/* Flushes and closes; NULL is allowed. */
void sim_pcap_writer_close(sim_pcap_writer *w);

#endif
