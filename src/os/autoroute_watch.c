/* autoroute_watch.c: the debounced re-apply of --auto-route (see autoroute_watch.h). */
#include "autoroute_watch.h"

#include <stdlib.h>

#include "log.h"

struct t2s_autoroute_watch {
  t2s_autoroute *ar;
  struct event *ev;    /* its rtnetlink notifications */
  struct event *timer; /* debounce before re-applying */
};

static void timer_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_autoroute_watch *w = arg;
  t2s_autoroute_refresh(w->ar);
}

void t2s_autoroute_watch_kick(t2s_autoroute_watch *w) {
  if (w && w->timer) {
    struct timeval tv = {0, T2S_AUTOROUTE_DEBOUNCE_MS * 1000};
    evtimer_add(w->timer, &tv);
  }
}

static void event_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_autoroute_watch *w = arg;
  if (t2s_autoroute_drain(w->ar)) {
    t2s_autoroute_watch_kick(w);
  }
}

int t2s_autoroute_watch_new(t2s_autoroute_watch **pw, struct event_base *base, t2s_autoroute *ar) {
  t2s_autoroute_watch *w = calloc(1, sizeof(*w));
  if (!w) {
    t2s_autoroute_stop(ar);
    return T2S_ERR_NOMEM;
  }
  w->ar = ar;
  w->timer = evtimer_new(base, timer_cb, w);
  int fd = t2s_autoroute_event_fd(ar);
  if (fd >= 0) {
    w->ev = event_new(base, fd, EV_READ | EV_PERSIST, event_cb, w);
    if (w->ev) {
      event_add(w->ev, NULL);
    }
  }
  if (!w->ev) {
    T2S_WARN("auto-route: no rtnetlink notifications: rules are not re-applied after changes");
  }
  *pw = w;
  return 0;
}

void t2s_autoroute_watch_del(t2s_autoroute_watch *w) {
  if (!w) {
    return;
  }
  if (w->ev) {
    event_free(w->ev);
  }
  if (w->timer) {
    event_free(w->timer);
  }
  t2s_autoroute_stop(w->ar);
  free(w);
}
