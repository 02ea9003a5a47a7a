/*
 * record_linux.c: the files behind --record and --pcap, and the device chain (record_linux.h).
 */
#include "record_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#ifndef T2S_VERSION
#define T2S_VERSION "0.0.0"
#endif

static int fd_write(void *arg, const uint8_t *data, size_t len) {
  t2s_os_record *r = arg;
  while (len > 0) {
    ssize_t n = write(r->rec_fd, data, len);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      T2S_WARN("--record: writing the recording failed: %s; recording stops",
               n < 0 ? strerror(errno) : "short write");
      return -1;
    }
    data += n;
    len -= (size_t)n;
  }
  return 0;
}

static int fd_rewind(void *arg) {
  t2s_os_record *r = arg;
  if (ftruncate(r->rec_fd, 0) != 0 || lseek(r->rec_fd, 0, SEEK_SET) != 0) {
    T2S_WARN("--record: cannot rewrite the ring: %s", strerror(errno));
    return -1;
  }
  return 0;
}

static int pcap_write(void *arg, const uint8_t *data, size_t len) {
  t2s_os_record *r = arg;
  return fwrite(data, 1, len, r->pcap) == len ? 0 : -1;
}

int t2s_os_record_open(t2s_os_record *r, const t2s_cli_opts *opts, const char *cmdline,
                       const t2s_engine_config *cfg, const t2s_clock *clk, char *err,
                       size_t errlen) {
  memset(r, 0, sizeof(*r));
  r->rec_fd = -1;
  if (opts->record_path[0]) {
    r->rec_fd = open(opts->record_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (r->rec_fd < 0) {
      snprintf(err, errlen, "--record %s: %s", opts->record_path, strerror(errno));
      return -1;
    }
    t2s_rec_opts ro = {.sink = {fd_write, opts->record_ring ? fd_rewind : NULL, r},
                       .mode = opts->record_ring ? T2S_REC_MODE_RING : T2S_REC_MODE_STOP,
                       .max_bytes = opts->record_max,
                       .build = "tun2sock " T2S_VERSION,
                       .options = cmdline,
                       .clock_reads = true};
    int rv = t2s_rec_new(&r->rec, &ro, cfg);
    if (rv != 0) {
      snprintf(err, errlen, "--record: %s",
               rv == T2S_ERR_INVALID_ARGUMENT ? "--record-max is smaller than the header"
                                              : "out of memory");
      t2s_os_record_close(r);
      return -1;
    }
    T2S_INFO("recording to %s (%s%s): payloads and the proxy's credentials are in it",
             opts->record_path, opts->record_ring ? "ring" : "stop",
             opts->record_max ? " at --record-max" : ", unbounded");
  }
  if (opts->pcap_path[0]) {
    r->pcap = fopen(opts->pcap_path, "we");
    if (r->pcap == NULL) {
      snprintf(err, errlen, "--pcap %s: %s", opts->pcap_path, strerror(errno));
      t2s_os_record_close(r);
      return -1;
    }
    r->tee_on = true;
    r->snaplen = opts->pcap_snaplen;
  }
  if (opts->device_fault[0]) {
    t2s_fault_opts fo;
    char ferr[160];
    if (t2s_fault_parse(opts->device_fault, &fo, ferr, sizeof(ferr)) != 0) {
      snprintf(err, errlen, "--device-fault: %s", ferr);
      t2s_os_record_close(r);
      return -1;
    }
    r->fault_on = true;
    r->fault.o = fo; /* t2s_fault_init in wrap, around the device */
    T2S_WARN("--device-fault %s: faults are injected on the TUN (for tests)", opts->device_fault);
  }
  if (clk) {
    r->clk = *clk;
  }
  return 0;
}

void t2s_os_record_wrap(t2s_os_record *r, t2s_device *dev, t2s_upstream *up, t2s_clock *pclk,
                        t2s_engine_hooks *hooks) {
  t2s_clock clk = r->clk;
  if (r->tee_on) {
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    uint64_t wall = (uint64_t)rt.tv_sec * T2S_SECONDS + (uint64_t)rt.tv_nsec;
    t2s_tstamp mono = clk.ops ? clk.ops->now(clk.self) : 0;
    t2s_device inner = *dev;
    t2s_pcap_tee_init(&r->tee, &inner, clk.ops ? &clk : NULL, r->snaplen, wall - mono, pcap_write,
                      r);
    t2s_pcap_tee_device(&r->tee, dev);
  }
  if (r->fault_on) {
    t2s_fault_opts fo = r->fault.o;
    t2s_device inner = *dev;
    t2s_fault_init(&r->fault, &fo, &inner, clk.ops ? &clk : NULL);
    t2s_fault_device(&r->fault, dev);
  }
  if (r->rec) {
    t2s_device d = *dev;
    t2s_rec_wrap_device(r->rec, &d, dev);
    t2s_upstream u = *up;
    t2s_rec_wrap_upstream(r->rec, &u, up);
    t2s_engine_hooks h = *hooks;
    t2s_rec_wrap_hooks(r->rec, &h, hooks);
    t2s_clock c = *pclk;
    t2s_rec_wrap_clock(r->rec, &c, pclk);
  }
}

void t2s_os_record_wrap_monitor(t2s_os_record *r, t2s_monitor *mon) {
  if (r->rec) {
    t2s_monitor m = *mon;
    t2s_rec_wrap_monitor(r->rec, &m, mon);
  }
}

void t2s_os_record_flush(t2s_os_record *r, t2s_tstamp now, const char *why) {
  if (r->rec) {
    t2s_rec_note(r->rec, now, why);
    if (t2s_rec_flush(r->rec) == 0) {
      fdatasync(r->rec_fd);
    }
  }
  if (r->pcap) {
    fflush(r->pcap);
  }
}

void t2s_os_record_close(t2s_os_record *r) {
  if (r->rec) {
    t2s_rec_stats st;
    t2s_rec_finish(r->rec);
    t2s_rec_get_stats(r->rec, &st);
    T2S_INFO("recording: %llu records, %llu bytes%s%s", (unsigned long long)st.records,
             (unsigned long long)st.bytes, st.stopped ? " (stopped at --record-max)" : "",
             st.dropped ? " (ring: oldest records dropped)" : "");
    t2s_rec_del(r->rec);
    r->rec = NULL;
  }
  if (r->rec_fd >= 0) {
    fdatasync(r->rec_fd);
    close(r->rec_fd);
    r->rec_fd = -1;
  }
  if (r->pcap) {
    fclose(r->pcap);
    r->pcap = NULL;
  }
  if (r->fault_on) {
    const t2s_fault *f = &r->fault;
    T2S_INFO("device-fault: lost %llu, duplicated %llu, reordered %llu, delayed %llu packets",
             (unsigned long long)(f->lost[0] + f->lost[1]),
             (unsigned long long)(f->duplicated[0] + f->duplicated[1]),
             (unsigned long long)(f->reordered[0] + f->reordered[1]),
             (unsigned long long)(f->delayed[0] + f->delayed[1]));
    t2s_fault_free(&r->fault);
    r->fault_on = false;
  }
}
