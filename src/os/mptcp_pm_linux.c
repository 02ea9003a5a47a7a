/* mptcp_pm_linux.c: tun2sock's own MPTCP subflow endpoints (see mptcp_pm_linux.h). */
#include "mptcp_pm_linux.h"

#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/if_addr.h>
#include <linux/mptcp.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "netlink_linux.h"

#define PM_BUFSIZE 16384
#define PM_DEBOUNCE_MS 100

struct t2s_mptcp_pm {
  uint16_t family; /* the genl id of "mptcp_pm" */
  uint32_t tun_ifindex;
  struct mnl_socket *events; /* rtnetlink address notifications */
  struct event *ev, *timer;
  size_t ours;
  unsigned seq;
};

/* ---------------- generic netlink ---------------- */

static struct mnl_socket *genl_open(void) {
  struct mnl_socket *nl = mnl_socket_open2(NETLINK_GENERIC, SOCK_CLOEXEC);
  if (nl && mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
    int err = errno;
    mnl_socket_close(nl);
    errno = err;
    return NULL;
  }
  return nl;
}

static struct nlmsghdr *genl_header(char *buf, uint16_t type, uint16_t flags, uint8_t cmd,
                                    uint8_t version) {
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | flags;
  struct genlmsghdr *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
  g->cmd = cmd;
  g->version = version;
  return nlh;
}

/* One request or dump on a socket of its own. Returns 0 or -errno. */
static int genl_talk(struct nlmsghdr *nlh, mnl_cb_t cb, void *arg) {
  struct mnl_socket *nl = genl_open();
  if (!nl) {
    return -errno;
  }
  char buf[PM_BUFSIZE];
  int rv = t2s_nl_talk(nl, nlh, (unsigned)time(NULL), buf, sizeof(buf), 64, cb, arg);
  mnl_socket_close(nl);
  return rv;
}

static int family_attr_cb(const struct nlattr *a, void *data) {
  if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID && mnl_attr_validate(a, MNL_TYPE_U16) == 0) {
    *(uint16_t *)data = mnl_attr_get_u16(a);
  }
  return MNL_CB_OK;
}

static int family_cb(const struct nlmsghdr *nlh, void *data) {
  mnl_attr_parse(nlh, sizeof(struct genlmsghdr), family_attr_cb, data);
  return MNL_CB_OK;
}

/* The genl id of "mptcp_pm". Returns 0 or -errno (-ENOENT: no MPTCP in this kernel). */
static int pm_family(uint16_t *pid) {
  char buf[256];
  struct nlmsghdr *nlh = genl_header(buf, GENL_ID_CTRL, 0, CTRL_CMD_GETFAMILY, 1);
  mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, MPTCP_PM_NAME);
  *pid = 0;
  int rv = genl_talk(nlh, family_cb, pid);
  return rv != 0 ? rv : *pid ? 0 : -ENOENT;
}

/* ---------------- endpoints ---------------- */

typedef struct ep_list {
  t2s_mptcp_endpoint *v;
  size_t n, max;
} ep_list;

static int ep_attr_cb(const struct nlattr *a, void *data) {
  t2s_mptcp_endpoint *e = data;
  switch (mnl_attr_get_type(a)) {
  case MPTCP_PM_ADDR_ATTR_ID:
    e->id = mnl_attr_get_u8(a);
    break;
  case MPTCP_PM_ADDR_ATTR_ADDR4:
    if (mnl_attr_get_payload_len(a) == 4) {
      e->addr.family = T2S_AF_INET;
      memcpy(e->addr.ip, mnl_attr_get_payload(a), 4);
    }
    break;
  case MPTCP_PM_ADDR_ATTR_ADDR6:
    if (mnl_attr_get_payload_len(a) == 16) {
      e->addr.family = T2S_AF_INET6;
      memcpy(e->addr.ip, mnl_attr_get_payload(a), 16);
    }
    break;
  case MPTCP_PM_ADDR_ATTR_FLAGS:
    e->flags = mnl_attr_get_u32(a);
    break;
  case MPTCP_PM_ADDR_ATTR_IF_IDX:
    e->ifindex = (int32_t)mnl_attr_get_u32(a);
    break;
  default:
    break;
  }
  return MNL_CB_OK;
}

static int ep_top_cb(const struct nlattr *a, void *data) {
  if (mnl_attr_get_type(a) == MPTCP_PM_ATTR_ADDR) {
    mnl_attr_parse_nested(a, ep_attr_cb, data);
  }
  return MNL_CB_OK;
}

static int ep_cb(const struct nlmsghdr *nlh, void *data) {
  ep_list *l = data;
  t2s_mptcp_endpoint e;
  memset(&e, 0, sizeof(e));
  mnl_attr_parse(nlh, sizeof(struct genlmsghdr), ep_top_cb, &e);
  if (e.addr.family && l->n < l->max) {
    l->v[l->n++] = e;
  }
  return MNL_CB_OK;
}

static int dump_endpoints(uint16_t family, t2s_mptcp_endpoint *out, size_t max) {
  char buf[256];
  struct nlmsghdr *nlh = genl_header(buf, family, NLM_F_DUMP, MPTCP_PM_CMD_GET_ADDR, MPTCP_PM_VER);
  ep_list l = {out, 0, max};
  int rv = genl_talk(nlh, ep_cb, &l);
  return rv != 0 ? rv : (int)l.n;
}

int t2s_mptcp_pm_dump(t2s_mptcp_endpoint *out, size_t max) {
  uint16_t family;
  int rv = pm_family(&family);
  return rv != 0 ? rv : dump_endpoints(family, out, max);
}

static int endpoint_add(uint16_t family, uint8_t id, const t2s_addr *a, uint32_t ifindex) {
  char buf[512];
  struct nlmsghdr *nlh = genl_header(buf, family, 0, MPTCP_PM_CMD_ADD_ADDR, MPTCP_PM_VER);
  struct nlattr *nest = mnl_attr_nest_start(nlh, MPTCP_PM_ATTR_ADDR);
  mnl_attr_put_u16(nlh, MPTCP_PM_ADDR_ATTR_FAMILY, a->family == T2S_AF_INET ? AF_INET : AF_INET6);
  mnl_attr_put_u8(nlh, MPTCP_PM_ADDR_ATTR_ID, id);
  if (a->family == T2S_AF_INET) {
    mnl_attr_put(nlh, MPTCP_PM_ADDR_ATTR_ADDR4, 4, a->ip);
  } else {
    mnl_attr_put(nlh, MPTCP_PM_ADDR_ATTR_ADDR6, 16, a->ip);
  }
  mnl_attr_put_u32(nlh, MPTCP_PM_ADDR_ATTR_FLAGS, MPTCP_PM_ADDR_FLAG_SUBFLOW);
  mnl_attr_put_u32(nlh, MPTCP_PM_ADDR_ATTR_IF_IDX, ifindex);
  mnl_attr_nest_end(nlh, nest);
  return genl_talk(nlh, NULL, NULL);
}

static int endpoint_del(uint16_t family, uint8_t id) {
  char buf[256];
  struct nlmsghdr *nlh = genl_header(buf, family, 0, MPTCP_PM_CMD_DEL_ADDR, MPTCP_PM_VER);
  struct nlattr *nest = mnl_attr_nest_start(nlh, MPTCP_PM_ATTR_ADDR);
  mnl_attr_put_u8(nlh, MPTCP_PM_ADDR_ATTR_ID, id);
  mnl_attr_nest_end(nlh, nest);
  return genl_talk(nlh, NULL, NULL);
}

typedef struct limits {
  uint32_t subflows, add_addr_accepted;
  bool have;
} limits;

static int limits_attr_cb(const struct nlattr *a, void *data) {
  limits *l = data;
  if (mnl_attr_get_type(a) == MPTCP_PM_ATTR_SUBFLOWS) {
    l->subflows = mnl_attr_get_u32(a);
    l->have = true;
  } else if (mnl_attr_get_type(a) == MPTCP_PM_ATTR_RCV_ADD_ADDRS) {
    l->add_addr_accepted = mnl_attr_get_u32(a);
  }
  return MNL_CB_OK;
}

static int limits_cb(const struct nlmsghdr *nlh, void *data) {
  mnl_attr_parse(nlh, sizeof(struct genlmsghdr), limits_attr_cb, data);
  return MNL_CB_OK;
}

/* ---------------- the host's addresses ---------------- */

typedef struct host_addr {
  t2s_addr addr;
  uint32_t ifindex;
} host_addr;

typedef struct addr_list {
  host_addr *v;
  size_t n, max;
  uint32_t skip_ifindex;
} addr_list;

static int addr_attr_cb(const struct nlattr *a, void *data) {
  const struct nlattr **tb = data;
  int type = mnl_attr_get_type(a);
  if (type <= IFA_MAX) {
    tb[type] = a;
  }
  return MNL_CB_OK;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data) {
  addr_list *l = data;
  if (nlh->nlmsg_type != RTM_NEWADDR) {
    return MNL_CB_OK;
  }
  const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
  const struct nlattr *tb[IFA_MAX + 1] = {0};
  mnl_attr_parse(nlh, sizeof(*ifa), addr_attr_cb, tb);
  uint32_t flags = tb[IFA_FLAGS] ? mnl_attr_get_u32(tb[IFA_FLAGS]) : ifa->ifa_flags;
  /* Uplink addresses only: global scope, usable (not tentative, failed or deprecated), not
   * the TUN's. */
  if (ifa->ifa_scope != RT_SCOPE_UNIVERSE || ifa->ifa_index == l->skip_ifindex ||
      (flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED | IFA_F_DEPRECATED)) || l->n >= l->max) {
    return MNL_CB_OK;
  }
  const struct nlattr *at = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
  if (!at) {
    return MNL_CB_OK;
  }
  host_addr h;
  memset(&h, 0, sizeof(h));
  h.ifindex = ifa->ifa_index;
  if (ifa->ifa_family == AF_INET && mnl_attr_get_payload_len(at) == 4) {
    h.addr.family = T2S_AF_INET;
    memcpy(h.addr.ip, mnl_attr_get_payload(at), 4);
  } else if (ifa->ifa_family == AF_INET6 && mnl_attr_get_payload_len(at) == 16) {
    h.addr.family = T2S_AF_INET6;
    memcpy(h.addr.ip, mnl_attr_get_payload(at), 16);
  } else {
    return MNL_CB_OK;
  }
  l->v[l->n++] = h;
  return MNL_CB_OK;
}

static int dump_addrs(host_addr *out, size_t max, uint32_t skip_ifindex) {
  struct mnl_socket *nl = t2s_nl_socket_open(0, 0);
  if (!nl) {
    return -errno;
  }
  char req[128];
  struct nlmsghdr *nlh = mnl_nlmsg_put_header(req);
  nlh->nlmsg_type = RTM_GETADDR;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
  ifa->ifa_family = AF_UNSPEC;
  addr_list l = {out, 0, max, skip_ifindex};
  char buf[PM_BUFSIZE];
  int rv = t2s_nl_talk(nl, nlh, (unsigned)time(NULL), buf, sizeof(buf), 256, addr_cb, &l);
  mnl_socket_close(nl);
  return rv != 0 ? rv : (int)l.n;
}

/* ---------------- the sync ---------------- */

static bool is_ours(uint8_t id) {
  return id >= T2S_MPTCP_PM_ID_FIRST && id < T2S_MPTCP_PM_ID_FIRST + T2S_MPTCP_PM_IDS;
}

static const char *fmt(const t2s_addr *a, char *buf, size_t len) {
  return t2s_addr_format(a, false, buf, len);
}

/* Removes every endpoint of our range (start, stop). */
static void remove_ours(t2s_mptcp_pm *pm, const char *why) {
  t2s_mptcp_endpoint eps[T2S_MPTCP_PM_MAX];
  int n = dump_endpoints(pm->family, eps, T2S_ARRAY_LEN(eps));
  for (int i = 0; i < n; i++) {
    if (is_ours(eps[i].id)) {
      char a[64];
      int rv = endpoint_del(pm->family, eps[i].id);
      T2S_INFO("mptcp: endpoint %s (id %u) removed (%s)%s%s", fmt(&eps[i].addr, a, sizeof(a)),
               eps[i].id, why, rv ? ": " : "", rv ? strerror(-rv) : "");
    }
  }
  pm->ours = 0;
}

/* Every uplink address gets an endpoint; ours whose address went are removed. */
static void sync_endpoints(t2s_mptcp_pm *pm) {
  host_addr addrs[T2S_MPTCP_PM_MAX];
  t2s_mptcp_endpoint eps[T2S_MPTCP_PM_MAX];
  int na = dump_addrs(addrs, T2S_ARRAY_LEN(addrs), pm->tun_ifindex);
  int ne = dump_endpoints(pm->family, eps, T2S_ARRAY_LEN(eps));
  if (na < 0 || ne < 0) {
    T2S_WARN("mptcp: cannot read the %s: %s", na < 0 ? "addresses" : "endpoints",
             strerror(-(na < 0 ? na : ne)));
    return;
  }
  bool used[T2S_MPTCP_PM_IDS] = {false};
  size_t ours = 0;
  char a[64], ifn[IF_NAMESIZE];
  for (int i = 0; i < ne; i++) {
    if (!is_ours(eps[i].id)) {
      continue;
    }
    bool present = false;
    for (int k = 0; k < na && !present; k++) {
      present = t2s_addr_ip_eq(&addrs[k].addr, &eps[i].addr) &&
                (uint32_t)eps[i].ifindex == addrs[k].ifindex;
    }
    if (present) {
      used[eps[i].id - T2S_MPTCP_PM_ID_FIRST] = true;
      ours++;
      continue;
    }
    int rv = endpoint_del(pm->family, eps[i].id);
    T2S_INFO("mptcp: endpoint %s (id %u) removed: the address is gone%s%s",
             fmt(&eps[i].addr, a, sizeof(a)), eps[i].id, rv ? ": " : "", rv ? strerror(-rv) : "");
    eps[i].addr.family = 0; /* no longer counts as an endpoint below */
  }
  for (int k = 0; k < na; k++) {
    bool has = false;
    for (int i = 0; i < ne && !has; i++) {
      has = eps[i].addr.family && t2s_addr_ip_eq(&eps[i].addr, &addrs[k].addr);
    }
    if (has) {
      continue; /* ours already, or someone else's: left alone */
    }
    size_t slot = 0;
    while (slot < T2S_MPTCP_PM_IDS && used[slot]) {
      slot++;
    }
    if (slot == T2S_MPTCP_PM_IDS) {
      break;
    }
    uint8_t id = (uint8_t)(T2S_MPTCP_PM_ID_FIRST + slot);
    int rv = endpoint_add(pm->family, id, &addrs[k].addr, addrs[k].ifindex);
    if (rv == 0) {
      used[slot] = true;
      ours++;
    }
    T2S_INFO("mptcp: subflow endpoint %s dev %s (id %u) %s%s", fmt(&addrs[k].addr, a, sizeof(a)),
             if_indextoname(addrs[k].ifindex, ifn) ? ifn : "?", id, rv ? "not added: " : "added",
             rv ? strerror(-rv) : "");
  }
  pm->ours = ours;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  sync_endpoints(arg);
}

/* Address notifications: drained (bounded), then a sync 100 ms after the last. */
static void event_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_mptcp_pm *pm = arg;
  char buf[PM_BUFSIZE];
  bool any = false;
  for (int i = 0; i < 64; i++) {
    ssize_t n = mnl_socket_recvfrom(pm->events, buf, sizeof(buf));
    if (n <= 0) {
      any |= n < 0 && errno == ENOBUFS; /* lost some: sync anyway */
      break;
    }
    any = true;
  }
  if (any) {
    struct timeval tv = {0, PM_DEBOUNCE_MS * 1000};
    evtimer_add(pm->timer, &tv);
  }
}

int t2s_mptcp_pm_new(t2s_mptcp_pm **ppm, struct event_base *base, uint32_t tun_ifindex) {
  t2s_mptcp_pm *pm = calloc(1, sizeof(*pm));
  if (!pm) {
    return T2S_ERR_NOMEM;
  }
  pm->tun_ifindex = tun_ifindex;
  int rv = pm_family(&pm->family);
  if (rv != 0) {
    T2S_WARN("mptcp: no path manager (generic netlink family %s: %s): tun2sock adds no "
             "subflow endpoints",
             MPTCP_PM_NAME, strerror(-rv));
    free(pm);
    return rv == -EPERM ? T2S_ERR_PERMISSION : T2S_ERR_UNSUPPORTED;
  }
  char buf[256];
  limits lim = {0, 0, false};
  struct nlmsghdr *nlh = genl_header(buf, pm->family, 0, MPTCP_PM_CMD_GET_LIMITS, MPTCP_PM_VER);
  if (genl_talk(nlh, limits_cb, &lim) == 0 && lim.have) {
    if (lim.subflows == 0) {
      T2S_WARN("mptcp: the path manager allows no extra subflow (limits: subflows 0): no flow "
               "can survive a change; raise it with `ip mptcp limits set subflows 2`");
    } else {
      T2S_INFO("mptcp: path manager limits: subflows %u, add_addr_accepted %u", lim.subflows,
               lim.add_addr_accepted);
    }
  }
  remove_ours(pm, "left by an earlier run");
  sync_endpoints(pm);
  pm->events = t2s_nl_socket_open(SOCK_NONBLOCK, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR);
  pm->timer = evtimer_new(base, timer_cb, pm);
  if (pm->events) {
    pm->ev = event_new(base, mnl_socket_get_fd(pm->events), EV_READ | EV_PERSIST, event_cb, pm);
    if (pm->ev) {
      event_add(pm->ev, NULL);
    }
  }
  if (!pm->ev) {
    T2S_WARN("mptcp: no address notifications: endpoints follow no address change");
  }
  *ppm = pm;
  return 0;
}

void t2s_mptcp_pm_del(t2s_mptcp_pm *pm) {
  if (!pm) {
    return;
  }
  if (pm->ev) {
    event_free(pm->ev);
  }
  if (pm->timer) {
    event_free(pm->timer);
  }
  if (pm->events) {
    mnl_socket_close(pm->events);
  }
  remove_ours(pm, "tun2sock stops");
  free(pm);
}

size_t t2s_mptcp_pm_ours(const t2s_mptcp_pm *pm) {
  return pm ? pm->ours : 0;
}
