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

typedef struct t2s_tun t2s_tun;

/* What the composition root needs to know about the TUN beyond the device ops: its name and
 * index (logs, the egress check, the monitor, --auto-route), what was in force at start (MTU,
 * queue length, offloads, for the start line) and what stopping has to undo. */
typedef struct t2s_tun_info {
  char ifname[T2S_IFNAMSIZ];
  uint32_t ifindex;
  uint32_t mtu;
  uint32_t txqlen;     /* the transmit queue length (txqueuelen) in force; 0 = unknown */
  bool created;        /* the TUN did not exist before we opened it */
  bool outlives;       /* it stays after t2s_tun_close (attached to, or an fd that is not ours) */
  size_t naddrs_added; /* addresses we added (removed on close when the TUN outlives us) */
  bool vnet;           /* IFF_VNET_HDR: each packet is preceded by a struct virtio_net_hdr */
  uint32_t offloads;   /* T2S_DEVICE_OFFLOAD_* in force (TUNSETOFFLOAD accepted) */
} t2s_tun_info;

/* Device-level counters (for the metrics). */
typedef struct t2s_tun_counters {
  uint64_t rx_packets, tx_packets, tx_errors;
  uint64_t rx_gso, tx_gso; /* super-packets read and written */
} t2s_tun_counters;

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
 * refuses it (the info's offloads say what is in force); an adopted fd keeps the IFF_VNET_HDR
 * setting it was opened with. Returns 0 with *ptun set, or T2S_ERR_INVALID_ARGUMENT (fd:// is
 * not a TUN), T2S_ERR_NOMEM or T2S_ERR_INTERNAL, with *pfail saying why and *perrno the errno
 * read (for the message; 0 when none). */
int t2s_tun_open(t2s_tun **ptun, const char *ifname, int fd, bool owns_fd, bool offload,
                 t2s_tun_failure *pfail, int *perrno);

/* Sets the MTU, the transmit queue length (txqlen != 0; the kernel's queue of packets waiting
 * for us to read them, 500 on a new TUN), adds each address (remembering the ones it added),
 * and brings the link up. Neither the MTU nor the queue length is restored on close.
 * Returns 0, or the T2S_ERR_* of the first failing step with *pstep naming it and *perrno the
 * kernel's errno (EPERM, EACCES, ...). */
int t2s_tun_configure(t2s_tun *tun, uint32_t mtu, uint32_t txqlen, const t2s_cidr *addrs,
                      size_t naddrs, const char **pstep, int *perrno);

/* Removes the addresses this process added (when the TUN outlives us), closes the fd (when
 * ours) and frees tun (NULL is fine). */
void t2s_tun_close(t2s_tun *tun);

/* A t2s_device over tun (borrowed). recv() logs a read error other than "nothing waiting"
 * with its errno (a warning) and returns T2S_ERR_CLOSED, or T2S_ERR_FATAL when the fd is
 * gone. */
void t2s_tun_device(t2s_tun *tun, t2s_device *dev);

/* The fd to wait on for readability (the loop's only use of it). */
int t2s_tun_fd(const t2s_tun *tun);
/* Copies the name, index, settings in force and what close will undo. */
void t2s_tun_get_info(const t2s_tun *tun, t2s_tun_info *info);
/* Copies the device-level counters. */
void t2s_tun_get_counters(const t2s_tun *tun, t2s_tun_counters *c);
/* Writes out the packets queued by the device's send (a TUN without IFF_VNET_HDR batches its
 * writes through io_uring: tun_linux_uring.h); the loop calls it after every callback. Returns
 * 0, or T2S_ERR_* (T2S_ERR_FATAL: the fd is gone). */
int t2s_tun_flush(t2s_tun *tun);
/* Packets read in a batch and not yet returned by the device's recv: the loop must come back
 * for them even though the fd may not be readable any more. */
bool t2s_tun_rx_pending(const t2s_tun *tun);

#endif
