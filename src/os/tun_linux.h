/*
 * tun_linux.h: the Linux TUN device (IFF_TUN | IFF_NO_PI), as a t2s_device.
 *
 * Opens /dev/net/tun and creates or attaches to a named TUN, or adopts an already-open fd.
 * Addresses, MTU, transmit queue length and link state are set through rtnetlink
 * (netlink_linux.h). On close it undoes what it did: a TUN it created disappears with its
 * fd; on a TUN it attached to, the addresses it added are removed.
 */
#ifndef T2S_TUN_LINUX_H
#define T2S_TUN_LINUX_H

#include "cli_parse.h"
#include "iface.h"

#define T2S_TUN_MAX_ADDRS 8

typedef struct t2s_tun {
  int fd;
  uint32_t ifindex;
  char ifname[T2S_IFNAMSIZ];
  uint32_t mtu;
  uint32_t txqlen; /* the transmit queue length (txqueuelen) in force; 0 = unknown */
  bool created;    /* the TUN did not exist before we opened it */
  bool owns_fd;    /* close fd on t2s_tun_close (false for fd:// handed in by an embedder) */
  t2s_cidr added[T2S_TUN_MAX_ADDRS]; /* addresses we added (removed on close) */
  size_t nadded;
  uint64_t rx_packets, tx_packets, tx_errors; /* device-level counters */
  bool vnet;               /* IFF_VNET_HDR: each packet is preceded by a struct virtio_net_hdr */
  uint32_t offloads;       /* T2S_DEVICE_OFFLOAD_* in force (TUNSETOFFLOAD accepted) */
  unsigned tun_f;          /* the TUN_F_* flags set */
  uint64_t rx_gso, tx_gso; /* super-packets read and written */
  unsigned rx_flags;       /* T2S_PARSE_* for the packet the last recv returned */
} t2s_tun;

/* Why t2s_tun_open failed, for a message that says what to do. */
typedef enum t2s_tun_failure {
  T2S_TUN_FAIL_NONE = 0,
  T2S_TUN_FAIL_NODEV,     /* /dev/net/tun missing */
  T2S_TUN_FAIL_DEVPERM,   /* /dev/net/tun exists but this user may not open it */
  T2S_TUN_FAIL_PRIVILEGE, /* TUNSETIFF: EPERM/EACCES: needs CAP_NET_ADMIN */
  T2S_TUN_FAIL_BUSY,      /* the TUN is attached to another process */
  T2S_TUN_FAIL_BADFD,     /* fd:// is not a TUN */
  T2S_TUN_FAIL_OTHER,
} t2s_tun_failure;

/* Creates or attaches to the TUN `ifname` (fd < 0), or adopts fd (ifname ignored; owns_fd says
 * whether t2s_tun_close closes it). The fd is made non-blocking. offload asks for
 * IFF_VNET_HDR with checksum offload and TSO (TUNSETOFFLOAD), each dropped where the kernel
 * refuses it (tun->offloads says what is in force); an adopted fd keeps the IFF_VNET_HDR
 * setting it was opened with. On failure returns a negative error and sets *pfail and
 * *perrno. */
int t2s_tun_open(t2s_tun *tun, const char *ifname, int fd, bool owns_fd, bool offload,
                 t2s_tun_failure *pfail, int *perrno);

/* Sets the MTU, the transmit queue length (txqlen != 0; the kernel's queue of packets waiting
 * for us to read them, 500 on a new TUN), adds each address (remembering the ones it added),
 * and brings the link up. Neither the MTU nor the queue length is restored on close.
 * Returns 0 or -errno of the first failing step (with *pstep naming it). */
int t2s_tun_configure(t2s_tun *tun, uint32_t mtu, uint32_t txqlen, const t2s_cidr *addrs,
                      size_t naddrs, const char **pstep);

/* Removes the addresses this process added (when the TUN outlives us) and closes the fd. */
void t2s_tun_close(t2s_tun *tun);

/* A t2s_device over tun (borrowed). */
void t2s_tun_device(t2s_tun *tun, t2s_device *dev);

#endif
