/*
 * record_linux.h: --record, --pcap and --device-fault in the binary (docs/recording.md): opens
 * the files, builds the device chain TUN -> pcap tee -> fault injector -> recorder -> engine,
 * wraps the upstream connector, the monitor and the engine's hooks in the recorder, and
 * flushes on SIGUSR2 and at a clean stop. The recorder itself (src/rec) makes no system call:
 * its sink is here.
 */
#ifndef T2S_RECORD_LINUX_H
#define T2S_RECORD_LINUX_H

#include <stdio.h>

#include "cli.h"
#include "rec.h"
#include "rec_wrap.h"

typedef struct t2s_os_record {
  t2s_rec *rec; /* --record, or NULL */
  int rec_fd;
  t2s_fault fault; /* --device-fault */
  bool fault_on;
  t2s_pcap_tee tee; /* --pcap */
  FILE *pcap;
  bool tee_on;
  uint32_t snaplen; /* --pcap-snaplen */
  t2s_clock clk;    /* stamps the pcap, times the injector's delays (not wrapped) */
} t2s_os_record;

/*
 * Opens what the options ask for (nothing when none of --record, --pcap, --device-fault is
 * given). cfg is the engine's configuration (its seed is written into the recording's header);
 * cmdline is the command line for the header; clk stamps the pcap and times the injector's
 * delays. Returns 0, or -1 with a message in err (a file that cannot be created).
 */
int t2s_os_record_open(t2s_os_record *r, const t2s_cli_opts *opts, const char *cmdline,
                       const t2s_engine_config *cfg, const t2s_clock *clk, char *err,
                       size_t errlen);
/* Wraps *dev, *up, *pclk and *hooks in place (each is left as it is when not needed). The
 * clock's reads and timer arms become notes of the recording (the boottime reads show how a
 * sleep was detected); the engine never reads a clock, so the replay skips them. */
void t2s_os_record_wrap(t2s_os_record *r, t2s_device *dev, t2s_upstream *up, t2s_clock *pclk,
                        t2s_engine_hooks *hooks);
/* Wraps the monitor the engine is given (its route_get answers are recorded). */
void t2s_os_record_wrap_monitor(t2s_os_record *r, t2s_monitor *mon);
/* Writes what is pending to the files (SIGUSR2; a note `why` goes into the recording). */
void t2s_os_record_flush(t2s_os_record *r, t2s_tstamp now, const char *why);
/* Ends the recording (END, flush), closes the files. Call after t2s_rec_engine_del. */
void t2s_os_record_close(t2s_os_record *r);

#endif
