/* tun_linux.c: the Linux TUN device (see tun_linux.h). */
#include "tun_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "log.h"
#include "netlink_linux.h"

static t2s_ssize tun_recv(void *self, uint8_t *buf, size_t buflen) {
  t2s_tun *tun = self;
  /* Bounded: a signal may interrupt the read; retry a few times, then report nothing. */
  for (int tries = 0; tries < 4; tries++) {
    ssize_t n = read(tun->fd, buf, buflen);
    if (n >= 0) {
      tun->rx_packets++;
      return (t2s_ssize)n;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return T2S_ERR_WOULDBLOCK;
    }
    return errno == EBADFD || errno == EBADF ? T2S_ERR_FATAL : T2S_ERR_CLOSED;
  }
  return T2S_ERR_WOULDBLOCK;
}

static int tun_send(void *self, const uint8_t *pkt, size_t pktlen) {
  t2s_tun *tun = self;
  for (int tries = 0; tries < 4; tries++) {
    ssize_t n = write(tun->fd, pkt, pktlen);
    if (n >= 0) {
      tun->tx_packets++;
      return 0;
    }
    if (errno != EINTR) {
      break;
    }
  }
  tun->tx_errors++;
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS ? T2S_ERR_WOULDBLOCK
                                                                     : T2S_ERR_CLOSED;
}

static void tun_get_caps(void *self, t2s_device_caps *caps) {
  t2s_tun *tun = self;
  caps->mtu = tun->mtu;
  caps->offloads = 0;
}

static const t2s_device_ops tun_ops = {
    .recv = tun_recv,
    .send = tun_send,
    .get_caps = tun_get_caps,
};

void t2s_tun_device(t2s_tun *tun, t2s_device *dev) {
  dev->ops = &tun_ops;
  dev->self = tun;
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

int t2s_tun_open(t2s_tun *tun, const char *ifname, int fd, bool owns_fd, t2s_tun_failure *pfail,
                 int *perrno) {
  memset(tun, 0, sizeof(*tun));
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
    ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    if (ioctl(tfd, TUNSETIFF, &ifr) < 0) {
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
  /* The MTU the kernel has now (t2s_tun_configure may change it). */
  int sfd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  tun->mtu = 1500;
  if (sfd >= 0) {
    struct ifreq mr;
    memset(&mr, 0, sizeof(mr));
    snprintf(mr.ifr_name, sizeof(mr.ifr_name), "%s", tun->ifname);
    if (ioctl(sfd, SIOCGIFMTU, &mr) == 0 && mr.ifr_mtu > 0) {
      tun->mtu = (uint32_t)mr.ifr_mtu;
    }
    close(sfd);
  }
  return 0;
}

int t2s_tun_configure(t2s_tun *tun, uint32_t mtu, const t2s_cidr *addrs, size_t naddrs,
                      const char **pstep) {
  int rv;
  if (mtu && mtu != tun->mtu) {
    rv = t2s_nl_link_set(tun->ifindex, mtu, false);
    if (rv < 0) {
      *pstep = "setting the MTU";
      return rv;
    }
    tun->mtu = mtu;
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

void t2s_tun_close(t2s_tun *tun) {
  if (tun->fd < 0) {
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
  if (tun->owns_fd) {
    close(tun->fd);
  }
  tun->fd = -1;
}
