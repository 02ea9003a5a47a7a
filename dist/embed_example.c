/*
 * embed_example.c: the smallest program that embeds tun2sock (include/tun2sock.h).
 *
 * It creates the TUN itself (as an application that owns its TUN would), hands the fd to
 * tun2sock and runs until SIGINT/SIGTERM. Configure addresses and routes on the TUN yourself.
 *
 *   cc embed_example.c -o embed $(pkg-config --cflags --libs tun2sock)
 * or, with the CMakeLists.txt installed beside it (PKG_CONFIG_PATH=PREFIX/lib/pkgconfig):
 *   cmake -S PREFIX/share/doc/tun2sock/examples -B build && cmake --build build
 *   ./embed tun7 socks5://127.0.0.1:1080 [protect-bind=IFNAME | protect-fail] [host-events]
 *           [packets]
 *
 * protect-bind=IFNAME: the protect callback binds every upstream socket to the uplink IFNAME
 * (SO_BINDTODEVICE, as a host that routes everything into its TUN must; on Android it would
 * call VpnService.protect() instead); protect-fail: it refuses every socket (each flow is
 * refused). Without either, no protect callback. With host-events, "net IF" also moves the
 * protect callback to IF (the host knows its uplink). host-events: tun2sock opens no rtnetlink
 * socket; network events are read from stdin (see read_events). packets: tun2sock gets no fd;
 * the host moves the packets itself (as an iOS NetworkExtension's packetFlow would): a thread
 * reads the TUN and calls tun2sock_input_packet(), the output callback writes to the TUN.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tun2sock.h"

static tun2sock *running;

/* The uplink the protect callback binds to: the one given, then whichever the host last
 * reported with "net IF" (read_events, another thread; hence the lock). Empty: protect-fail. */
static pthread_mutex_t uplink_lock = PTHREAD_MUTEX_INITIALIZER;
static char uplink[IFNAMSIZ];
static unsigned long protect_seen;

/* The protect callback: runs on tun2sock_run()'s thread for every upstream socket, before it
 * connects or sends. */
static int protect(void *arg, int fd) {
  (void)arg;
  protect_seen++;
  char name[IFNAMSIZ];
  pthread_mutex_lock(&uplink_lock);
  memcpy(name, uplink, sizeof(name));
  pthread_mutex_unlock(&uplink_lock);
  if (!name[0]) {
    printf("protect: fd %d refused\n", fd);
    fflush(stdout);
    return -1;
  }
  if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, (socklen_t)strlen(name)) != 0) {
    perror("protect: SO_BINDTODEVICE");
    return -1;
  }
  int type = 0;
  socklen_t tlen = sizeof(type);
  getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen);
  printf("protect: fd %d (%s) bound to %s\n", fd, type == SOCK_DGRAM ? "datagram" : "stream", name);
  fflush(stdout);
  return 0;
}

/* packets: the host's side of packet I/O by callback. */
static int tun_fd = -1;
static unsigned long host_writes, host_write_errors;
static unsigned long host_drops; /* written by the reader thread, read after it is joined */

/* The output callback: every packet tun2sock would write to a TUN, on tun2sock_run()'s thread. */
static int output(void *arg, const uint8_t *pkt, size_t len) {
  (void)arg;
  if (write(tun_fd, pkt, len) != (ssize_t)len) {
    host_write_errors++;
    return -1;
  }
  host_writes++;
  return 0;
}

/* The host's packet reader, on a thread of its own: whatever the tunnel gives, tun2sock gets. */
static void *read_packets(void *arg) {
  tun2sock *t = arg;
  static uint8_t buf[65536];
  for (;;) {
    ssize_t n = read(tun_fd, buf, sizeof(buf));
    if (n < 0) {
      perror("reading the TUN");
      return NULL;
    }
    /* A full queue is backpressure: wait for the loop a little (at most 100 ms), then drop. */
    for (int tries = 0; n > 0 && tun2sock_input_packet(t, buf, (size_t)n) != TUN2SOCK_OK;) {
      if (++tries == 1000) {
        host_drops++;
        break;
      }
      usleep(100);
    }
  }
}

static void on_signal(int sig) {
  (void)sig;
  if (running) {
    tun2sock_stop(running); /* async-signal-safe */
  }
}

/* Network-change callbacks: they run on tun2sock_run()'s thread and must not block. */
static void on_default_interface(void *arg, const char *name, unsigned index) {
  (void)arg;
  printf("listener: default interface %s (%u)\n", index ? name : "none", index);
  fflush(stdout);
}

static void on_paused(void *arg) {
  (void)arg;
  printf("listener: network paused\n");
  fflush(stdout);
}

static void on_resumed(void *arg, uint64_t slept_ms) {
  (void)arg;
  printf("listener: network resumed after %llu ms\n", (unsigned long long)slept_ms);
  fflush(stdout);
}

static void on_routes(void *arg) {
  (void)arg;
  printf("listener: routes changed\n");
  fflush(stdout);
}

/* host-events: the network events come from stdin, as an app's ConnectivityManager or
 * NWPathMonitor callbacks would deliver them, on a thread of their own:
 *   net IFNAME | net none | pause | resume MS */
static void *read_events(void *arg) {
  tun2sock *t = arg;
  char line[128];
  while (fgets(line, sizeof(line), stdin)) {
    char name[64];
    unsigned long long ms;
    int rv;
    if (sscanf(line, "net %63s", name) == 1) {
      if (strcmp(name, "none") != 0 && uplink[0]) { /* protect binds to the new uplink */
        pthread_mutex_lock(&uplink_lock);
        memset(uplink, 0, sizeof(uplink));
        strncpy(uplink, name, sizeof(uplink) - 1);
        pthread_mutex_unlock(&uplink_lock);
      }
      rv = strcmp(name, "none") == 0 ? tun2sock_network_changed(t, NULL, 0)
                                     : tun2sock_network_changed(t, name, 0);
    } else if (strncmp(line, "pause", 5) == 0) {
      rv = tun2sock_network_paused(t);
    } else if (sscanf(line, "resume %llu", &ms) == 1) {
      rv = tun2sock_network_resumed(t, ms);
    } else {
      continue;
    }
    printf("host: %.*s -> %d\n", (int)strcspn(line, "\n"), line, rv);
    fflush(stdout);
  }
  return NULL;
}

int main(int argc, char **argv) {
  bool use_protect = false, host_events = false, packets = false;
  for (int i = 3; i < argc; i++) {
    if (strncmp(argv[i], "protect-bind=", 13) == 0 && argv[i][13]) {
      use_protect = true;
      snprintf(uplink, sizeof(uplink), "%s", argv[i] + 13);
    } else if (strcmp(argv[i], "protect-fail") == 0) {
      use_protect = true;
    } else if (strcmp(argv[i], "host-events") == 0) {
      host_events = true;
    } else if (strcmp(argv[i], "packets") == 0) {
      packets = true;
    } else {
      argc = 0;
    }
  }
  if (argc < 3) {
    fprintf(stderr,
            "usage: %s TUN-NAME socks5://HOST:PORT [protect-bind=IFNAME|protect-fail] "
            "[host-events] [packets]\n",
            argv[0]);
    return 2;
  }
  int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
  if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) < 0) {
    perror("TUN");
    return 1;
  }
  tun2sock_config cfg;
  tun2sock_config_default(&cfg);
  tun_fd = fd;
  if (packets) {
    cfg.output = output; /* tun2sock gets no fd: the host moves the packets */
  } else {
    cfg.tun_fd = fd;
  }
  cfg.proxy = argv[2];
  if (use_protect) {
    cfg.protect = protect;
    cfg.protect_arg = NULL;
  }
  if (host_events) {
    cfg.network_monitor = TUN2SOCK_MONITOR_HOST; /* no rtnetlink: stdin tells us */
  }
  tun2sock *t;
  if (tun2sock_new(&t, &cfg) != TUN2SOCK_OK) {
    return 1;
  }
  tun2sock_listener l = {on_default_interface, on_paused, on_resumed, on_routes, NULL};
  tun2sock_set_listener(t, &l);
  running = t;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  pthread_t reader;
  bool reading = host_events && pthread_create(&reader, NULL, read_events, t) == 0;
  pthread_t pump;
  bool pumping = packets && pthread_create(&pump, NULL, read_packets, t) == 0;
  int rv = tun2sock_run(t);
  if (pumping) {
    pthread_cancel(pump); /* blocked in read */
    pthread_join(pump, NULL);
  }
  tun2sock_stats st;
  tun2sock_get_stats(t, &st);
  printf("tun2sock %s: packets in %llu out %llu, icmp echo replies %llu, network changes %llu, "
         "route updates %llu, flows reset %llu\n",
         tun2sock_version(), (unsigned long long)st.packets_in, (unsigned long long)st.packets_out,
         (unsigned long long)st.icmp_echo_replies, (unsigned long long)st.network_changes,
         (unsigned long long)st.route_updates, (unsigned long long)st.flows_reset);
  printf("upstream sockets %llu, protect calls %llu (seen by the host %lu), protect failures "
         "%llu, tcp flows %llu\n",
         (unsigned long long)st.upstream_sockets, (unsigned long long)st.protect_calls,
         protect_seen, (unsigned long long)st.protect_failures,
         (unsigned long long)st.tcp_flows_total);
  if (packets) {
    printf("packets: input %llu (refused %llu, dropped by the host %lu), output %lu (errors %llu, "
           "write errors %lu)\n",
           (unsigned long long)st.input_packets, (unsigned long long)st.input_drops, host_drops,
           host_writes, (unsigned long long)st.output_errors, host_write_errors);
  }
  if (reading) {
    pthread_cancel(reader); /* blocked in fgets */
    pthread_join(reader, NULL);
  }
  running = NULL;
  tun2sock_del(t);
  close(fd); /* the fd is ours */
  return rv == TUN2SOCK_OK ? 0 : 1;
}
