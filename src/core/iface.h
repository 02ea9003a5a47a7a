/*
 * iface.h: the four interfaces that connect the sans-I/O core to the world.
 *
 *   device     packets in and out (a Linux TUN, or the simulator's pcap/closed-loop device)
 *   clock      time and one timer (libevent, or the simulator's virtual clock)
 *   monitor    network events and route queries (rtnetlink, or the scenario script)
 *   upstream   streams and datagrams toward the proxy through the egress interface
 *              (non-blocking sockets, or the simulated SOCKS5 server)
 *
 * Each is the "ops + self" pattern: a table of function pointers and an opaque pointer passed
 * back to them. Middleware (pcap tee, fault injector) wraps an inner one with the same ops.
 *
 * Re-entrancy rule for all of them: an op called by the engine must not call back into the
 * engine before it returns. Completions (a stream opened, bytes arrived, an error) are reported
 * later, from the driver's own event loop, through the t2s_engine_* entry points in engine.h.
 */
#ifndef T2S_IFACE_H
#define T2S_IFACE_H

#include "common.h"

/* ---------------- device ---------------- */

enum {
  T2S_DEVICE_OFFLOAD_CSUM = 1u << 0, /* device accepts packets with partial checksums */
  T2S_DEVICE_OFFLOAD_TSO = 1u << 1,  /* device accepts TCP super-packets */
};

typedef struct t2s_device_caps {
  uint32_t mtu;      /* largest IP packet the device carries */
  uint32_t offloads; /* T2S_DEVICE_OFFLOAD_* */
} t2s_device_caps;

/* A piece of a packet given in pieces (t2s_device_ops.sendv). */
typedef struct t2s_iovec {
  const uint8_t *base;
  size_t len;
} t2s_iovec;

typedef struct t2s_device_ops {
  /* Receives one IP packet into buf. Returns its length, T2S_ERR_WOULDBLOCK when none is
   * waiting, or another negative error. The engine does not call this: the runner does, and
   * passes each packet to t2s_engine_input(). */
  t2s_ssize (*recv)(void *self, uint8_t *buf, size_t buflen);
  /* Sends one IP packet toward the clients (the packet is only borrowed for the call).
   * On a device that reports T2S_DEVICE_OFFLOAD_TSO, a TCP packet longer than its MTU is a
   * super-segment whose checksum field holds only the pseudo-header sum, for the device to
   * complete per segment (t2s_tcp_config.partial_csum_over). Returns 0, or a negative error
   * (the engine counts a T2S_DROP_DEVICE_ERROR). */
  int (*send)(void *self, const uint8_t *pkt, size_t pktlen);
  /* Fills *caps. */
  void (*get_caps)(void *self, t2s_device_caps *caps);
  /* Optional (may be NULL): T2S_PARSE_* flags (packet.h) for the packet the last recv()
   * returned, passed to t2s_engine_input_ex(); a TUN with checksum offload vouches for the
   * checksums of packets the local kernel sent (virtio NEEDS_CSUM / DATA_VALID). */
  unsigned (*rx_flags)(void *self);
  /* Optional (may be NULL): send() of one packet given as niov pieces in order (at most 3;
   * the first holds the IP and TCP headers whole), all borrowed for the call, so a TCP
   * segment's payload goes from the send buffer to the device without a copy. NULL: the
   * engine builds every packet whole and calls send(). */
  int (*sendv)(void *self, const t2s_iovec *iov, size_t niov);
  /* Optional (may be NULL): recv() without the copy: *ppkt points at the packet in the
   * device's own buffer, valid until the second call after this one (the runner reads one
   * packet ahead). T2S_ERR_UNSUPPORTED: not on this device now, use recv(). */
  t2s_ssize (*recv_ref)(void *self, const uint8_t **ppkt);
} t2s_device_ops;

typedef struct t2s_device {
  const t2s_device_ops *ops;
  void *self;
} t2s_device;

/* ---------------- clock & timers ---------------- */

typedef struct t2s_clock_ops {
  /* Monotonic time that stops while the machine sleeps (CLOCK_MONOTONIC). */
  t2s_tstamp (*now)(void *self);
  /* Monotonic time that keeps counting while the machine sleeps (CLOCK_BOOTTIME). The
   * difference between the two growing is how a resume is detected. */
  t2s_tstamp (*boottime)(void *self);
  /* Arms the single engine timer to fire at `deadline` (replacing any earlier arming);
   * T2S_TSTAMP_MAX disarms it. When it fires the runner calls t2s_engine_handle_expiry(). */
  void (*timer_arm)(void *self, t2s_tstamp deadline);
} t2s_clock_ops;

typedef struct t2s_clock {
  const t2s_clock_ops *ops;
  void *self;
} t2s_clock;

/* ---------------- network monitor ---------------- */

#define T2S_IFNAMSIZ 16

typedef enum t2s_net_event_type {
  T2S_NET_LINK_UP = 1,
  T2S_NET_LINK_DOWN,
  T2S_NET_ADDR_ADDED,
  T2S_NET_ADDR_REMOVED,
  T2S_NET_DEFAULT_ROUTE_CHANGED, /* default route of `family` set, changed or removed */
  T2S_NET_ROUTE_CHANGED,         /* any other route change */
  T2S_NET_PAUSED,                /* about to sleep */
  T2S_NET_RESUMED,               /* woke up; slept_ns tells for how long (0 if unknown) */
} t2s_net_event_type;

typedef struct t2s_net_event {
  t2s_net_event_type type;
  uint32_t ifindex;          /* 0 when not about one interface */
  char ifname[T2S_IFNAMSIZ]; /* "" when unknown */
  uint8_t family;            /* T2S_AF_INET / T2S_AF_INET6 for address and route events */
  t2s_addr addr;             /* ADDR_*: the address; DEFAULT_ROUTE_CHANGED: the gateway */
  uint8_t prefixlen;         /* ADDR_* */
  bool removed;              /* DEFAULT_ROUTE_CHANGED: no default route any more */
  t2s_tstamp slept_ns;       /* RESUMED */
} t2s_net_event;

/* The answer to "how does the kernel reach dst?" (ip route get). */
typedef struct t2s_route {
  uint32_t ifindex;
  char ifname[T2S_IFNAMSIZ];
  t2s_addr src; /* preferred source address (port 0) */
  bool local;   /* dst is on this host (loopback or one of our addresses) */
} t2s_route;

typedef void (*t2s_net_event_cb)(void *arg, const t2s_net_event *ev);

typedef struct t2s_monitor_ops {
  /* Starts delivering events to cb(arg, ev) from the driver's event loop (after an initial
   * dump that reports the current links, addresses and default routes). Returns 0 or an error. */
  int (*start)(void *self, t2s_net_event_cb cb, void *arg);
  /* Stops delivering events. */
  void (*stop)(void *self);
  /* Asks which interface and source address reach dst, with socket mark `mark` (0 = none) so
   * policy rules count. Returns 0, T2S_ERR_UNREACHABLE when there is no route, or an error. */
  int (*route_get)(void *self, const t2s_addr *dst, uint32_t mark, t2s_route *out);
} t2s_monitor_ops;

typedef struct t2s_monitor {
  const t2s_monitor_ops *ops;
  void *self;
} t2s_monitor;

/* ---------------- upstream connector ---------------- */

/* Where upstream sockets leave from. ifindex 0 = unbound (the kernel chooses: a local proxy). */
typedef struct t2s_egress {
  uint32_t ifindex;
  char ifname[T2S_IFNAMSIZ];
  t2s_addr src;  /* family 0 = any */
  uint32_t mark; /* SO_MARK, 0 = none */
} t2s_egress;

/*
 * Streams and datagrams are named by an id the engine chooses (never 0, never reused while
 * open). The connector reports back through engine.h:
 *   t2s_engine_stream_opened(), _stream_recv(), _stream_eof(), _stream_writable(),
 *   _stream_error(); t2s_engine_dgram_recv(), _dgram_error().
 */
typedef struct t2s_upstream_ops {
  /* Starts a non-blocking connect to dst (the proxy, or the destination itself when no proxy is
   * configured) leaving through *egress. Returns 0 (completion reported later) or an error. */
  int (*stream_open)(void *self, uint64_t id, const t2s_addr *dst, const t2s_egress *egress);
  /* Writes up to len bytes. Returns how many were taken (0..len); fewer than len means the
   * socket is full and t2s_engine_stream_writable() will follow. Negative on error. */
  t2s_ssize (*stream_write)(void *self, uint64_t id, const uint8_t *data, size_t len);
  /* Half-close: no more writes (after what was taken is sent). */
  int (*stream_shutdown_write)(void *self, uint64_t id);
  /* Pauses (paused=true) or resumes delivery of received bytes (backpressure). */
  void (*stream_pause_read)(void *self, uint64_t id, bool paused);
  /* Closes the stream and forgets id; abort=true resets it (RST) instead of a clean close. No
   * further callbacks arrive for id. */
  void (*stream_close)(void *self, uint64_t id, bool abort);
  /* Opens a datagram socket that sends to the relay address `relay` through *egress.
   * Returns 0 or an error. */
  int (*dgram_open)(void *self, uint64_t id, const t2s_addr *relay, const t2s_egress *egress);
  /* Sends one datagram. Returns 0, T2S_ERR_WOULDBLOCK (dropped, counted by the engine) or an
   * error. */
  int (*dgram_send)(void *self, uint64_t id, const uint8_t *data, size_t len);
  /* Closes the datagram socket and forgets id. */
  void (*dgram_close)(void *self, uint64_t id);
} t2s_upstream_ops;

typedef struct t2s_upstream {
  const t2s_upstream_ops *ops;
  void *self;
} t2s_upstream;

/*
 * Multipath TCP (docs/mptcp.md). A connector that opens its streams with Multipath TCP (the
 * binary with --mptcp, the simulator with `engine mptcp`) tells the engine what each stream
 * turned out to be with t2s_engine_stream_multipath() (engine.h), from its own loop like every
 * completion: once after the connect succeeded (after t2s_engine_stream_opened), and again
 * when it learns that the number of subflows changed. A connector that never calls it (plain
 * TCP) leaves every stream T2S_STREAM_TCP. The network-change policy spares a multipath
 * stream whose proxy is still reachable (docs/network-change.md).
 */
typedef enum t2s_stream_mp {
  T2S_STREAM_TCP = 0,       /* plain TCP: nothing reported */
  T2S_STREAM_MULTIPATH = 1, /* MPTCP end to end: the far end answered MP_CAPABLE */
  T2S_STREAM_FALLBACK = 2,  /* asked for MPTCP, fell back to TCP (the proxy or a middlebox) */
} t2s_stream_mp;

#endif
