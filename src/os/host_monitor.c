/* host_monitor.c: network events from the embedding program (host_monitor.h). */
#include "host_monitor.h"

#include <errno.h>
#include <net/if.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"

#define HOST_QUEUE 64

struct t2s_host_monitor {
  struct event_base *base;
  t2s_addr proxy;
  int efd;
  struct event *ev;
  t2s_host_route_fn route;
  void *route_arg;
  t2s_net_event_cb cb;
  void *cb_arg;
  /* The host's view, as of the last report delivered (loop thread only). */
  uint32_t ifindex;
  char ifname[T2S_IFNAMSIZ];
  /* The queue (under lock). */
  pthread_mutex_t lock;
  t2s_net_event q[HOST_QUEUE];
  size_t head, count;
};

static bool proxy_is_loopback(const t2s_addr *a) {
  if (a->family == T2S_AF_INET) {
    return a->ip[0] == 127;
  }
  static const uint8_t lo6[16] = {[15] = 1};
  return memcmp(a->ip, lo6, 16) == 0;
}

static void deliver(evutil_socket_t fd, short what, void *arg) {
  (void)what;
  t2s_host_monitor *m = arg;
  uint64_t n;
  if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN) {
    T2S_DEBUG("host monitor: eventfd read: %s", strerror(errno));
  }
  /* Bounded: at most HOST_QUEUE reports per wake-up (later ones wake it again). */
  t2s_net_event batch[HOST_QUEUE];
  size_t k = 0;
  pthread_mutex_lock(&m->lock);
  while (m->count > 0) {
    batch[k++] = m->q[m->head];
    m->head = (m->head + 1) % HOST_QUEUE;
    m->count--;
  }
  pthread_mutex_unlock(&m->lock);
  for (size_t i = 0; i < k; i++) {
    const t2s_net_event *ev = &batch[i];
    if (ev->type == T2S_NET_DEFAULT_ROUTE_CHANGED) {
      m->ifindex = ev->removed ? 0 : ev->ifindex;
      memcpy(m->ifname, ev->ifname, sizeof(m->ifname));
      T2S_DEBUG("network: the host reports the default interface %s (%u)",
                m->ifindex ? m->ifname : "none", m->ifindex);
    }
    if (m->cb) {
      m->cb(m->cb_arg, ev);
    }
  }
}

static int push(t2s_host_monitor *m, const t2s_net_event *ev) {
  pthread_mutex_lock(&m->lock);
  if (m->count == HOST_QUEUE) {
    pthread_mutex_unlock(&m->lock);
    return -1;
  }
  m->q[(m->head + m->count) % HOST_QUEUE] = *ev;
  m->count++;
  pthread_mutex_unlock(&m->lock);
  uint64_t one = 1;
  if (write(m->efd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
    return -1;
  }
  return 0;
}

static int hm_start(void *self, t2s_net_event_cb cb, void *arg) {
  t2s_host_monitor *m = self;
  m->cb = cb;
  m->cb_arg = arg;
  if (event_add(m->ev, NULL) != 0) {
    return T2S_ERR_INTERNAL;
  }
  return 0;
}

static void hm_stop(void *self) {
  t2s_host_monitor *m = self;
  event_del(m->ev);
  m->cb = NULL;
}

static int hm_route_get(void *self, const t2s_addr *dst, uint32_t mark, t2s_route *out) {
  (void)mark;
  t2s_host_monitor *m = self;
  memset(out, 0, sizeof(*out));
  if (m->route) {
    char name[T2S_IFNAMSIZ] = "";
    unsigned index = 0;
    if (m->route(m->route_arg, dst->family, dst->ip, name, &index) != 0) {
      return T2S_ERR_UNREACHABLE;
    }
    name[T2S_IFNAMSIZ - 1] = 0;
    if (name[0] && !index) {
      index = if_nametoindex(name);
    } else if (!name[0] && index && !if_indextoname(index, name)) {
      name[0] = 0;
    }
    out->ifindex = index;
    memcpy(out->ifname, name, sizeof(out->ifname));
    out->local = !index && !name[0];
    return 0;
  }
  if (proxy_is_loopback(dst)) {
    out->local = true;
    return 0;
  }
  if (!m->ifindex) {
    return T2S_ERR_UNREACHABLE;
  }
  out->ifindex = m->ifindex;
  memcpy(out->ifname, m->ifname, sizeof(out->ifname));
  return 0;
}

static const t2s_monitor_ops host_ops = {hm_start, hm_stop, hm_route_get};

int t2s_host_monitor_new(t2s_host_monitor **pm, struct event_base *base, const t2s_addr *proxy,
                         const t2s_egress *initial) {
  t2s_host_monitor *m = calloc(1, sizeof(*m));
  if (!m) {
    return T2S_ERR_NOMEM;
  }
  m->base = base;
  m->proxy = *proxy;
  m->ifindex = initial->ifindex;
  memcpy(m->ifname, initial->ifname, sizeof(m->ifname));
  m->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (m->efd < 0) {
    free(m);
    return T2S_ERR_INTERNAL;
  }
  m->ev = event_new(base, m->efd, EV_READ | EV_PERSIST, deliver, m);
  if (!m->ev) {
    close(m->efd);
    free(m);
    return T2S_ERR_NOMEM;
  }
  pthread_mutex_init(&m->lock, NULL);
  *pm = m;
  return 0;
}

void t2s_host_monitor_ops(t2s_host_monitor *m, t2s_monitor *out) {
  out->ops = &host_ops;
  out->self = m;
}

void t2s_host_monitor_del(t2s_host_monitor *m) {
  if (!m) {
    return;
  }
  event_free(m->ev);
  close(m->efd);
  pthread_mutex_destroy(&m->lock);
  free(m);
}

void t2s_host_monitor_set_route(t2s_host_monitor *m, t2s_host_route_fn fn, void *arg) {
  m->route = fn;
  m->route_arg = arg;
}

int t2s_host_monitor_changed(t2s_host_monitor *m, const char *ifname, uint32_t ifindex) {
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = T2S_NET_DEFAULT_ROUTE_CHANGED;
  ev.family = m->proxy.family;
  if (ifname && ifname[0]) {
    if (strlen(ifname) >= sizeof(ev.ifname)) {
      return -1;
    }
    strcpy(ev.ifname, ifname);
    if (!ifindex) {
      ifindex = if_nametoindex(ifname);
    }
  } else if (ifindex && !if_indextoname(ifindex, ev.ifname)) {
    ev.ifname[0] = 0;
  }
  ev.ifindex = ifindex;
  ev.removed = ifindex == 0;
  return push(m, &ev);
}

int t2s_host_monitor_paused(t2s_host_monitor *m) {
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = T2S_NET_PAUSED;
  return push(m, &ev);
}

int t2s_host_monitor_resumed(t2s_host_monitor *m, uint64_t slept_ms) {
  t2s_net_event ev;
  memset(&ev, 0, sizeof(ev));
  ev.type = T2S_NET_RESUMED;
  ev.slept_ns = slept_ms * T2S_MILLISECONDS;
  return push(m, &ev);
}
