/* autoroute_linux.c: --auto-route policy routing through rtnetlink (see autoroute_linux.h):
 * the public functions and the one-instance claims; autoroute_internal.h says where the rest is. */
#include "autoroute_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "os_error.h"

/* ---------------- one instance per table and priority range ---------------- */

/* An abstract unix socket name belongs to one network namespace and is released by the kernel
 * when its process ends, SIGKILL included. Binding one for the table and one per reserved
 * priority claims them: a second tun2sock in this namespace whose table or priorities overlap
 * ours refuses to start, instead of removing our rules as if a crash had left them, while a
 * crashed run's claims are gone and its leftovers are still cleaned up. Returns an fd or
 * -errno (-EADDRINUSE: claimed). */
static int claim_name(const char *kind, uint32_t v) {
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof(sa));
  sa.sun_family = AF_UNIX;
  int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "tun2sock-autoroute-%s-%u", kind, v);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return -errno;
  }
  socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
  if (bind(fd, (struct sockaddr *)&sa, len) != 0) {
    int err = -errno;
    close(fd);
    return err;
  }
  return fd;
}

static void release_all(t2s_autoroute *ar) {
  for (size_t i = 0; i < T2S_ARRAY_LEN(ar->claims); i++) {
    if (ar->claims[i] >= 0) {
      close(ar->claims[i]);
      ar->claims[i] = -1;
    }
  }
}

static int claim_all(t2s_autoroute *ar, char *why, size_t whylen) {
  uint32_t t = ar->cfg.table, p = ar->cfg.priority;
  for (size_t i = 0; i < T2S_ARRAY_LEN(ar->claims); i++) {
    int fd = i == 0 ? claim_name("table", t) : claim_name("priority", p + (uint32_t)(i - 1));
    if (fd == -EADDRINUSE) {
      snprintf(why, whylen,
               "auto-route: another tun2sock in this network namespace uses routing table %u or "
               "a rule priority in %u..%u: give this one another --route-table and "
               "--route-priority",
               t, p, p + T2S_AUTOROUTE_SPAN - 1);
      release_all(ar);
      return fd;
    }
    if (fd < 0) { /* no unix sockets at all: go on unclaimed, as before */
      T2S_WARN("auto-route: cannot claim table %u and priorities %u..%u: %s", t, p,
               p + T2S_AUTOROUTE_SPAN - 1, strerror(-fd));
      release_all(ar);
      return 0;
    }
    ar->claims[i] = fd;
  }
  return 0;
}

/* ---------------- public ---------------- */

static void events_open(t2s_autoroute *ar);

/* t2s_autoroute_cleanup with -errno. */
static int cleanup(uint32_t table, uint32_t priority) {
  ar_nl s = {0};
  int rv = t2s_ar_nl_open(&s);
  if (rv < 0) {
    return rv;
  }
  t2s_autoroute *tmp = calloc(1, sizeof(*tmp)); /* only table and priority matter */
  if (!tmp) {
    t2s_ar_nl_close(&s);
    return -ENOMEM;
  }
  tmp->cfg.table = table;
  tmp->cfg.priority = priority;
  unsigned added = 0, removed = 0;
  int r4 = t2s_ar_apply_family(&s, tmp, AF_INET, false, &added, &removed);
  int r6 = t2s_ar_apply_family(&s, tmp, AF_INET6, false, &added, &removed);
  free(tmp);
  t2s_ar_nl_close(&s);
  t2s_ar_nft_cleanup(table);
  if (r4 < 0) {
    return r4;
  }
  (void)r6; /* IPv6 may be disabled: nothing of ours there then */
  return (int)removed;
}

int t2s_autoroute_cleanup(uint32_t table, uint32_t priority) {
  int rv = cleanup(table, priority);
  return rv < 0 ? t2s_err_from_errno(-rv) : rv;
}

/* The start, with -errno. */
static int start(t2s_autoroute **par, const t2s_autoroute_config *cfg, char *why, size_t whylen);

int t2s_autoroute_start(t2s_autoroute **par, const t2s_autoroute_config *cfg, char *why,
                        size_t whylen) {
  int rv = start(par, cfg, why, whylen);
  return rv == -E2BIG ? T2S_ERR_LIMIT : rv < 0 ? t2s_err_from_errno(-rv) : 0;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) {
    memcpy(d, s, n);
  }
  return d;
}

static int start(t2s_autoroute **par, const t2s_autoroute_config *cfg, char *why, size_t whylen) {
  *par = NULL;
  why[0] = '\0';
  if (cfg->nexclude > AR_MAX_LIST || cfg->ninclude > AR_MAX_LIST || cfg->nuids > AR_MAX_LIST ||
      cfg->ncgroups > AR_MAX_LIST) {
    snprintf(why, whylen, "auto-route: too many excludes, includes, uids or cgroups (max %d)",
             AR_MAX_LIST);
    return -E2BIG;
  }
  t2s_autoroute *ar = calloc(1, sizeof(*ar));
  if (!ar) {
    snprintf(why, whylen, "out of memory");
    return -ENOMEM;
  }
  ar->cfg = *cfg;
  for (size_t i = 0; i < T2S_ARRAY_LEN(ar->claims); i++) {
    ar->claims[i] = -1;
  }
  int rv = claim_all(ar, why, whylen);
  if (rv < 0) {
    free(ar);
    return rv;
  }
  memcpy(ar->exclude, cfg->exclude, cfg->nexclude * sizeof(*cfg->exclude));
  memcpy(ar->include, cfg->include, cfg->ninclude * sizeof(*cfg->include));
  memcpy(ar->uids, cfg->uids, cfg->nuids * sizeof(*cfg->uids));
  for (size_t i = 0; i < cfg->ncgroups; i++) {
    ar->cgroups[i] = dup_str(cfg->cgroups[i]);
    ar->cgroup_ptrs[i] = ar->cgroups[i] ? ar->cgroups[i] : "";
  }
  ar->cfg.exclude = ar->exclude;
  ar->cfg.include = ar->include;
  ar->cfg.uids = ar->uids;
  ar->cfg.cgroups = ar->cgroup_ptrs;

  int stale = cleanup(cfg->table, cfg->priority);
  if (stale > 0) {
    T2S_WARN("auto-route: removed %d stale rules and routes (table %u, priorities %u..%u) left "
             "by an earlier run",
             stale, cfg->table, cfg->priority, cfg->priority + T2S_AUTOROUTE_SPAN - 1);
  }

  ar_nl s = {0};
  rv = t2s_ar_nl_open(&s);
  if (rv < 0) {
    snprintf(why, whylen, "auto-route: cannot open rtnetlink: %s", strerror(-rv));
    goto fail;
  }
  unsigned added = 0, removed = 0;
  rv = t2s_ar_apply_family(&s, ar, AF_INET, true, &added, &removed);
  if (rv < 0) {
    snprintf(why, whylen, "auto-route: installing the IPv4 rules and routes: %s%s", strerror(-rv),
             rv == -EPERM ? " (needs CAP_NET_ADMIN)" : "");
    t2s_ar_nl_close(&s);
    goto fail;
  }
  rv = t2s_ar_apply_family(&s, ar, AF_INET6, true, &added, &removed);
  if (rv < 0) {
    T2S_WARN("auto-route: IPv6 not routed into the TUN: %s (is IPv6 disabled?)", strerror(-rv));
    t2s_ar_apply_family(&s, ar, AF_INET6, false, &added, &removed);
  } else {
    ar->have_v6 = true;
  }
  t2s_ar_nl_close(&s);
  if (cfg->ncgroups > 0) {
    rv = t2s_ar_nft_install(ar, why, whylen);
    if (rv < 0) {
      goto fail;
    }
  }
  T2S_INFO("auto-route: table %u, rules %u..%u, fwmark 0x%x, %zu excluded ranges, %zu included, "
           "%zu uid ranges, %zu cgroups%s",
           cfg->table, cfg->priority, cfg->priority + PRIO_TABLE, cfg->fwmark, cfg->nexclude,
           cfg->ninclude, cfg->nuids, cfg->ncgroups, ar->have_v6 ? "" : " (IPv4 only)");
  events_open(ar);
  *par = ar;
  return 0;

fail:
  cleanup(cfg->table, cfg->priority);
  release_all(ar);
  for (size_t i = 0; i < AR_MAX_LIST; i++) {
    free(ar->cgroups[i]);
  }
  free(ar);
  return rv;
}

static void events_open(t2s_autoroute *ar) {
  ar->events = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (!ar->events) {
    return;
  }
  unsigned groups = (1u << (RTNLGRP_LINK - 1)) | (1u << (RTNLGRP_IPV4_ROUTE - 1)) |
                    (1u << (RTNLGRP_IPV6_ROUTE - 1)) | (1u << (RTNLGRP_IPV4_RULE - 1)) |
                    (1u << (RTNLGRP_IPV6_RULE - 1)) | (1u << (RTNLGRP_IPV4_IFADDR - 1)) |
                    (1u << (RTNLGRP_IPV6_IFADDR - 1));
  if (mnl_socket_bind(ar->events, groups, MNL_SOCKET_AUTOPID) < 0) {
    mnl_socket_close(ar->events);
    ar->events = NULL;
  }
}

int t2s_autoroute_event_fd(const t2s_autoroute *ar) {
  return ar && ar->events ? mnl_socket_get_fd(ar->events) : -1;
}

bool t2s_autoroute_drain(t2s_autoroute *ar) {
  if (!ar || !ar->events) {
    return false;
  }
  char *buf = ar->evbuf;
  bool any = false;
  /* Bounded: at most this many reads per wakeup; the rest wakes us again. */
  for (int i = 0; i < 64; i++) {
    ssize_t n = mnl_socket_recvfrom(ar->events, buf, AR_DUMP_BUFSIZE);
    if (n < 0) {
      if (errno == ENOBUFS) {
        any = true; /* overrun: something changed, we do not know what */
        continue;
      }
      break;
    }
    if (n > 0) {
      any = true;
    }
  }
  return any;
}

int t2s_autoroute_refresh(t2s_autoroute *ar) {
  if (!ar) {
    return 0;
  }
  ar_nl s = {0};
  int rv = t2s_ar_nl_open(&s);
  if (rv < 0) {
    return t2s_err_from_errno(-rv);
  }
  unsigned added = 0, removed = 0;
  rv = t2s_ar_apply_family(&s, ar, AF_INET, true, &added, &removed);
  if (ar->have_v6) {
    int r6 = t2s_ar_apply_family(&s, ar, AF_INET6, true, &added, &removed);
    rv = rv ? rv : r6;
  }
  t2s_ar_nl_close(&s);
  if (added || removed) {
    ar->repairs++;
    T2S_INFO("auto-route: re-applied after a network change (%u added, %u removed)", added,
             removed);
  }
  if (rv < 0 && rv != -ENETDOWN) {
    T2S_WARN("auto-route: re-applying: %s", strerror(-rv));
  }
  return rv < 0 ? t2s_err_from_errno(-rv) : 0;
}

void t2s_autoroute_stop(t2s_autoroute *ar) {
  if (!ar) {
    return;
  }
  int n = cleanup(ar->cfg.table, ar->cfg.priority);
  if (n < 0) {
    T2S_WARN("auto-route: removing the rules and routes: %s (the next start removes them)",
             strerror(-n));
  } else {
    T2S_INFO("auto-route: removed %d rules and routes", n);
  }
  if (ar->events) {
    mnl_socket_close(ar->events);
  }
  release_all(ar); /* after the cleanup: a next instance cannot start in between */
  for (size_t i = 0; i < AR_MAX_LIST; i++) {
    free(ar->cgroups[i]);
  }
  free(ar);
}

uint64_t t2s_autoroute_repairs(const t2s_autoroute *ar) {
  return ar ? ar->repairs : 0;
}
