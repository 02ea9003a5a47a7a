/* tun_linux.c: the Linux TUN device (see tun_linux.h). */
#include "tun_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "log.h"
#include "netlink_linux.h"
#include "os_error.h"
#include "packet.h"
#include "tun_linux_uring.h"
#include "tun_fd_linux.h"

struct t2s_tun {
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
  /* Without IFF_VNET_HDR every packet is a system call of its own: batched through io_uring
   * when available (tun_linux_uring.h), set up at the first packet (the MTU is final then). */
  t2s_tun_uring *uring;
  bool uring_tried;
};

/* The io_uring batcher of a TUN without IFF_VNET_HDR, made at the first use; NULL: plain I/O. */
static t2s_tun_uring *uring_of(t2s_tun *tun) {
  if (!tun->uring_tried) {
    tun->uring_tried = true;
    if (!tun->vnet) {
      tun->uring = t2s_tun_uring_new(tun->fd, T2S_MAX(tun->mtu, 1500u));
      if (tun->uring) {
        T2S_INFO("%s: packets read and written in batches through io_uring", tun->ifname);
      }
    }
  }
  return tun->uring;
}

/* ---------------- offloads (IFF_VNET_HDR) ----------------
 *
 * With IFF_VNET_HDR every packet read or written is preceded by a struct virtio_net_hdr
 * (10 bytes, host byte order on a TUN that was not told otherwise). TUNSETOFFLOAD with
 * TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 lets the kernel hand us TCP packets whose checksum
 * holds only the pseudo-header sum (VIRTIO_NET_HDR_F_NEEDS_CSUM) and TCP super-packets up
 * to 64 KiB (gso_type TCPV4/TCPV6): the device looks like a NIC with checksum offload and TSO.
 *
 * Input: a super-packet is a well-formed IP packet whose total length covers all of it: the
 * engine gets one big segment. A partial checksum (NEEDS_CSUM) is left as it is and the engine
 * told not to verify it (rx_flags): the local kernel's stack made the packet.
 * Output: a TCP packet longer than the device MTU is a super-segment built of MTU-sized
 * segments (the engine emits those only when the device reports T2S_DEVICE_OFFLOAD_TSO): we
 * describe it with gso_size = MTU - IP header - TCP header, and ask the kernel for the
 * checksum (NEEDS_CSUM: the engine put the pseudo-header sum in the field), which it computes
 * per segment when it splits. Everything else goes out with an all-zero header. */

static t2s_ssize tun_recv_vnet(t2s_tun *tun, uint8_t *buf, size_t buflen) {
  struct virtio_net_hdr h;
  struct iovec iov[2] = {{.iov_base = &h, .iov_len = sizeof(h)},
                         {.iov_base = buf, .iov_len = buflen}};
  for (int tries = 0; tries < 4; tries++) {
    ssize_t n = readv(tun->fd, iov, 2);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return -1;
    }
    if ((size_t)n < sizeof(h)) {
      return 0; /* nothing usable: the engine drops an empty packet */
    }
    size_t len = (size_t)n - sizeof(h);
    tun->rx_packets++;
    if (h.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
      tun->rx_gso++;
    }
    /* The local kernel's stack sent it: a partial checksum (NEEDS_CSUM) is not completed and
     * then verified, nor a verified one (DATA_VALID) verified again; the engine is told. */
    if (h.flags & (VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID)) {
      if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
          (h.csum_start >= len || h.csum_offset + 2u > len - h.csum_start)) {
        return 0; /* offsets outside the packet: the engine drops an empty packet */
      }
      tun->rx_flags = T2S_PARSE_L4_CSUM_VALID;
    }
    return (t2s_ssize)len;
  }
  errno = EAGAIN;
  return -1;
}

/* The IP header length and TCP header length of a TCP packet, or false. */
static bool tcp_headers(const uint8_t *pkt, size_t len, size_t *pihl, size_t *pthl, bool *pv6) {
  if (t2s_ip_l4proto(pkt, len) != T2S_IPPROTO_TCP) {
    return false;
  }
  *pv6 = pkt[0] >> 4 == 6;
  /* the engine builds IPv6 TCP without extension headers */
  size_t ihl = *pv6 ? 40 : (size_t)(pkt[0] & 0x0f) * 4;
  if (len < ihl + 20) {
    return false;
  }
  size_t thl = (size_t)(pkt[ihl + 12] >> 4) * 4;
  if (thl < 20 || len < ihl + thl) {
    return false;
  }
  *pihl = ihl;
  *pthl = thl;
  return true;
}

/* Writes one packet (its pieces in iov), retrying a signal a few times. Returns 0,
 * T2S_ERR_WOULDBLOCK (the kernel's queue is full) or T2S_ERR_CLOSED. */
static int tun_write(t2s_tun *tun, const struct iovec *iov, int niov) {
  int rv = t2s_tun_fd_writev(tun->fd, iov, niov);
  if (rv == 0) {
    tun->tx_packets++;
  } else {
    tun->tx_errors++;
  }
  return rv;
}

/* A TCP packet over the MTU is a super-segment whose checksum field the engine already filled
 * with the pseudo-header sum (the device contract, iface.h): the kernel completes it for each
 * segment it cuts. Everything else goes out with an all-zero header. The packet is pktlen
 * bytes in niov pieces (at most 3) of which the first holds the IP and TCP headers whole. */
static int tun_send_vnet(t2s_tun *tun, const t2s_iovec *piov, size_t niov, size_t pktlen) {
  struct virtio_net_hdr h;
  memset(&h, 0, sizeof(h));
  size_t ihl, thl;
  bool v6;
  if (pktlen > tun->mtu && (tun->offloads & T2S_DEVICE_OFFLOAD_TSO) &&
      tcp_headers(piov[0].base, piov[0].len, &ihl, &thl, &v6) && tun->mtu > ihl + thl) {
    h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
    h.gso_type = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
    h.hdr_len = (uint16_t)(ihl + thl);
    h.gso_size = (uint16_t)(tun->mtu - ihl - thl);
    h.csum_start = (uint16_t)ihl;
    h.csum_offset = 16;
    tun->tx_gso++;
  }
  struct iovec iov[4] = {{.iov_base = &h, .iov_len = sizeof(h)}};
  int n = 1;
  for (size_t i = 0; i < niov && i < 3; i++) {
    if (piov[i].len > 0) {
      iov[n].iov_base = (void *)piov[i].base;
      iov[n].iov_len = piov[i].len;
      n++;
    }
  }
  return tun_write(tun, iov, n);
}

/* A failed read: the errno read here goes into the warning; the caller gets T2S_ERR_*. */
static t2s_ssize recv_error(const t2s_tun *tun, int err) {
  t2s_ssize rv = t2s_tun_fd_read_error(err);
  if (rv == T2S_ERR_CLOSED) {
    T2S_WARN("reading the TUN %s: %s", tun->ifname, strerror(err));
  }
  return rv;
}

static t2s_ssize tun_recv(void *self, uint8_t *buf, size_t buflen) {
  t2s_tun *tun = self;
  tun->rx_flags = 0;
  if (tun->vnet) {
    t2s_ssize n = tun_recv_vnet(tun, buf, buflen);
    return n >= 0 ? n : recv_error(tun, errno);
  }
  t2s_tun_uring *u = uring_of(tun);
  if (u) {
    t2s_ssize n = t2s_tun_uring_recv(u, buf, buflen);
    return n >= 0 || n == T2S_ERR_WOULDBLOCK ? n : recv_error(tun, errno);
  }
  t2s_ssize n = t2s_tun_fd_read(tun->fd, buf, buflen);
  if (n >= 0) {
    tun->rx_packets++;
    return n;
  }
  return n == T2S_ERR_WOULDBLOCK ? n : recv_error(tun, errno);
}

static int tun_send(void *self, const uint8_t *pkt, size_t pktlen) {
  t2s_tun *tun = self;
  if (tun->vnet) {
    t2s_iovec iov = {pkt, pktlen};
    return tun_send_vnet(tun, &iov, 1, pktlen);
  }
  t2s_tun_uring *u = uring_of(tun);
  if (u) {
    return t2s_tun_uring_send(u, pkt, pktlen);
  }
  struct iovec iov = {.iov_base = (void *)pkt, .iov_len = pktlen};
  return tun_write(tun, &iov, 1);
}

static void tun_get_caps(void *self, t2s_device_caps *caps) {
  t2s_tun *tun = self;
  caps->mtu = tun->mtu;
  caps->offloads = tun->offloads;
}

static unsigned tun_rx_flags(void *self) {
  return ((t2s_tun *)self)->rx_flags;
}

/* With IFF_VNET_HDR a segment is written gathered (header, then the payload where the engine
 * holds it): one writev, no copy into a packet buffer. */
static int tun_sendv(void *self, const t2s_iovec *iov, size_t niov) {
  size_t len = 0;
  for (size_t i = 0; i < niov; i++) {
    len += iov[i].len;
  }
  return tun_send_vnet(self, iov, niov, len);
}

/* Without IFF_VNET_HDR, through io_uring: the packet is lent where the ring read it (no copy
 * into the runner's buffer). */
static t2s_ssize tun_recv_ref(void *self, const uint8_t **ppkt) {
  t2s_tun *tun = self;
  t2s_tun_uring *u = uring_of(tun);
  if (!u) {
    return T2S_ERR_UNSUPPORTED;
  }
  tun->rx_flags = 0;
  t2s_ssize n = t2s_tun_uring_recv_ref(u, ppkt);
  return n >= 0 || n == T2S_ERR_WOULDBLOCK ? n : recv_error(tun, errno);
}

static const t2s_device_ops tun_ops = {
    .recv = tun_recv,
    .send = tun_send,
    .get_caps = tun_get_caps,
    .rx_flags = tun_rx_flags,
    .recv_ref = tun_recv_ref,
};

static const t2s_device_ops tun_vnet_ops = {
    .recv = tun_recv,
    .send = tun_send,
    .get_caps = tun_get_caps,
    .rx_flags = tun_rx_flags,
    .sendv = tun_sendv,
};

int t2s_tun_flush(t2s_tun *tun) {
  if (!tun->uring) {
    return 0;
  }
  int rv = t2s_tun_uring_flush(tun->uring);
  if (rv != 0) {
    T2S_WARN("writing to the TUN %s: %s", tun->ifname, strerror(errno));
  }
  return rv;
}

bool t2s_tun_rx_pending(const t2s_tun *tun) {
  return tun->uring && t2s_tun_uring_rx_pending(tun->uring);
}

void t2s_tun_device(t2s_tun *tun, t2s_device *dev) {
  dev->ops = tun->vnet ? &tun_vnet_ops : &tun_ops;
  dev->self = tun;
}

int t2s_tun_fd(const t2s_tun *tun) {
  return tun->fd;
}

void t2s_tun_get_info(const t2s_tun *tun, t2s_tun_info *info) {
  memset(info, 0, sizeof(*info));
  snprintf(info->ifname, sizeof(info->ifname), "%s", tun->ifname);
  info->ifindex = tun->ifindex;
  info->mtu = tun->mtu;
  info->txqlen = tun->txqlen;
  info->created = tun->created;
  info->outlives = !tun->created || !tun->owns_fd;
  info->naddrs_added = tun->nadded;
  info->vnet = tun->vnet;
  info->offloads = tun->offloads;
}

void t2s_tun_get_counters(const t2s_tun *tun, t2s_tun_counters *c) {
  c->rx_packets = tun->rx_packets;
  c->tx_packets = tun->tx_packets;
  c->tx_errors = tun->tx_errors;
  c->rx_gso = tun->rx_gso;
  c->tx_gso = tun->tx_gso;
  if (tun->uring) {
    t2s_tun_uring_counters u;
    t2s_tun_uring_get_counters(tun->uring, &u);
    c->rx_packets += u.rx_packets;
    c->tx_packets += u.tx_packets;
    c->tx_errors += u.tx_errors;
  }
}

static t2s_tun_failure failure_of(int err) {
  switch (err) {
  case EPERM:
  case EACCES:
    return T2S_TUN_FAIL_PRIVILEGE;
  case ENOENT:
  case ENODEV:
  case ENXIO:
    return T2S_TUN_FAIL_NODEV;
  case EBUSY:
    return T2S_TUN_FAIL_BUSY;
  default:
    return T2S_TUN_FAIL_OTHER;
  }
}

/* Turns on what the kernel offers of checksum offload and TSO on a TUN opened with
 * IFF_VNET_HDR; leaves tun->offloads at what is in force. */
static void setup_offloads(t2s_tun *tun) {
  int sz = (int)sizeof(struct virtio_net_hdr);
  if (ioctl(tun->fd, TUNSETVNETHDRSZ, &sz) < 0) {
    T2S_DEBUG("TUNSETVNETHDRSZ: %s", strerror(errno));
  }
  static const struct {
    unsigned flags;
    uint32_t offloads;
  } tries[] = {
      {TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6, T2S_DEVICE_OFFLOAD_CSUM | T2S_DEVICE_OFFLOAD_TSO},
      {TUN_F_CSUM | TUN_F_TSO4, T2S_DEVICE_OFFLOAD_CSUM | T2S_DEVICE_OFFLOAD_TSO},
      {TUN_F_CSUM, T2S_DEVICE_OFFLOAD_CSUM},
  };
  tun->offloads = 0;
  for (size_t i = 0; i < T2S_ARRAY_LEN(tries); i++) {
    if (ioctl(tun->fd, TUNSETOFFLOAD, tries[i].flags) == 0) {
      tun->offloads = tries[i].offloads;
      tun->tun_f = tries[i].flags;
      return;
    }
  }
  T2S_INFO("%s: the kernel offers no TUN offloads (TUNSETOFFLOAD: %s)", tun->ifname,
           strerror(errno));
  (void)ioctl(tun->fd, TUNSETOFFLOAD, 0u);
}

static int tun_open(t2s_tun *tun, const char *ifname, int fd, bool owns_fd, bool offload,
                    t2s_tun_failure *pfail, int *perrno) {
  tun->fd = -1;
  *pfail = T2S_TUN_FAIL_NONE;
  *perrno = 0;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  if (fd >= 0) {
    /* Adopt: ask the fd which TUN it is. */
    if (ioctl(fd, TUNGETIFF, &ifr) < 0) {
      *perrno = errno;
      *pfail = T2S_TUN_FAIL_BADFD;
      return T2S_ERR_INVALID_ARGUMENT;
    }
    if ((ifr.ifr_flags & (IFF_TUN | IFF_TAP)) != IFF_TUN || !(ifr.ifr_flags & IFF_NO_PI)) {
      *pfail = T2S_TUN_FAIL_BADFD;
      *perrno = EINVAL;
      return T2S_ERR_INVALID_ARGUMENT;
    }
    /* An fd opened with IFF_VNET_HDR carries the header whatever we want: honour it. */
    tun->vnet = (ifr.ifr_flags & IFF_VNET_HDR) != 0;
    tun->fd = fd;
    tun->owns_fd = owns_fd;
    tun->created = false;
  } else {
    bool existed = if_nametoindex(ifname) != 0;
    int tfd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (tfd < 0) {
      *perrno = errno;
      *pfail = errno == EACCES || errno == EPERM ? T2S_TUN_FAIL_DEVPERM : failure_of(errno);
      return T2S_ERR_INTERNAL;
    }
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI | (offload ? IFF_VNET_HDR : 0);
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    int irv = ioctl(tfd, TUNSETIFF, &ifr);
    if (irv < 0 && offload && errno == EINVAL) {
      /* A kernel without IFF_VNET_HDR: fall back to plain packets. */
      ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
      irv = ioctl(tfd, TUNSETIFF, &ifr);
    }
    tun->vnet = irv == 0 && (ifr.ifr_flags & IFF_VNET_HDR);
    if (irv < 0) {
      *perrno = errno;
      *pfail = errno == ENODEV ? T2S_TUN_FAIL_OTHER : failure_of(errno);
      close(tfd);
      return T2S_ERR_INTERNAL;
    }
    tun->fd = tfd;
    tun->owns_fd = true;
    tun->created = !existed;
  }
  snprintf(tun->ifname, sizeof(tun->ifname), "%s", ifr.ifr_name);
  tun->ifindex = if_nametoindex(tun->ifname);
  if (tun->vnet && offload) {
    setup_offloads(tun);
  } else if (tun->vnet) {
    /* An adopted fd with IFF_VNET_HDR and offloads not wanted: the header stays, empty. */
    int sz = (int)sizeof(struct virtio_net_hdr);
    (void)ioctl(tun->fd, TUNSETVNETHDRSZ, &sz);
    (void)ioctl(tun->fd, TUNSETOFFLOAD, 0u);
  }
  int fl = fcntl(tun->fd, F_GETFL);
  if (fl < 0 || fcntl(tun->fd, F_SETFL, fl | O_NONBLOCK) < 0 || tun->ifindex == 0) {
    *perrno = errno;
    *pfail = T2S_TUN_FAIL_OTHER;
    if (tun->owns_fd) {
      close(tun->fd);
    }
    tun->fd = -1;
    return T2S_ERR_INTERNAL;
  }
  /* The MTU and queue length the kernel has now (t2s_tun_configure may change them). */
  int sfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  tun->mtu = 1500;
  if (sfd >= 0) {
    struct ifreq mr;
    memset(&mr, 0, sizeof(mr));
    snprintf(mr.ifr_name, sizeof(mr.ifr_name), "%s", tun->ifname);
    if (ioctl(sfd, SIOCGIFMTU, &mr) == 0 && mr.ifr_mtu > 0) {
      tun->mtu = (uint32_t)mr.ifr_mtu;
    }
    if (ioctl(sfd, SIOCGIFTXQLEN, &mr) == 0 && mr.ifr_qlen > 0) {
      tun->txqlen = (uint32_t)mr.ifr_qlen;
    }
    close(sfd);
  }
  return 0;
}

int t2s_tun_open(t2s_tun **ptun, const char *ifname, int fd, bool owns_fd, bool offload,
                 t2s_tun_failure *pfail, int *perrno) {
  t2s_tun *tun = calloc(1, sizeof(*tun));
  if (!tun) {
    *pfail = T2S_TUN_FAIL_OTHER;
    *perrno = ENOMEM;
    return T2S_ERR_NOMEM;
  }
  int rv = tun_open(tun, ifname, fd, owns_fd, offload, pfail, perrno);
  if (rv != 0) {
    free(tun);
    return rv;
  }
  *ptun = tun;
  return 0;
}

/* The rtnetlink steps (-errno, netlink_linux.h). */
static int link_configure(t2s_tun *tun, uint32_t mtu, uint32_t txqlen, const t2s_cidr *addrs,
                          size_t naddrs, const char **pstep) {
  int rv;
  if (mtu && mtu != tun->mtu) {
    rv = t2s_nl_link_set(tun->ifindex, mtu, false);
    if (rv < 0) {
      *pstep = "setting the MTU";
      return rv;
    }
    tun->mtu = mtu;
  }
  if (txqlen && txqlen != tun->txqlen) {
    rv = t2s_nl_link_txqlen(tun->ifindex, txqlen);
    if (rv < 0) {
      *pstep = "setting the txqueuelen";
      return rv;
    }
    tun->txqlen = txqlen;
  }
  for (size_t i = 0; i < naddrs; i++) {
    rv = t2s_nl_addr(tun->ifindex, &addrs[i].addr, addrs[i].prefixlen, true);
    if (rv == -EEXIST) {
      continue; /* already there: not ours to remove */
    }
    if (rv < 0) {
      *pstep = "adding an address";
      return rv;
    }
    if (tun->nadded < T2S_TUN_MAX_ADDRS) {
      tun->added[tun->nadded++] = addrs[i];
    }
  }
  rv = t2s_nl_link_set(tun->ifindex, 0, true);
  if (rv < 0) {
    *pstep = "bringing the link up";
    return rv;
  }
  return 0;
}

int t2s_tun_configure(t2s_tun *tun, uint32_t mtu, uint32_t txqlen, const t2s_cidr *addrs,
                      size_t naddrs, const char **pstep, int *perrno) {
  int rv = link_configure(tun, mtu, txqlen, addrs, naddrs, pstep);
  *perrno = rv < 0 ? -rv : 0;
  return rv < 0 ? t2s_err_from_errno(-rv) : 0;
}

void t2s_tun_close(t2s_tun *tun) {
  if (!tun) {
    return;
  }
  if (tun->fd < 0) {
    free(tun);
    return;
  }
  /* A TUN we created vanishes with its last fd (it is not persistent), addresses included.
   * On one that outlives us, take back what we added. */
  bool outlives = !tun->created || !tun->owns_fd;
  if (outlives) {
    for (size_t i = 0; i < tun->nadded; i++) {
      int rv = t2s_nl_addr(tun->ifindex, &tun->added[i].addr, tun->added[i].prefixlen, false);
      if (rv < 0 && rv != -EADDRNOTAVAIL && rv != -ENODEV) {
        char buf[64];
        T2S_WARN("cannot remove address %s/%u from %s: %s",
                 t2s_addr_format(&tun->added[i].addr, false, buf, sizeof(buf)),
                 tun->added[i].prefixlen, tun->ifname, strerror(-rv));
      }
    }
  }
  tun->nadded = 0;
  if (tun->uring) {
    (void)t2s_tun_uring_flush(tun->uring); /* what the engine sent while stopping (RSTs) */
    t2s_tun_uring_free(tun->uring);
    tun->uring = NULL;
  }
  if (tun->owns_fd) {
    close(tun->fd);
  }
  free(tun);
}
