/* sleep_logind.c: systemd-logind's PrepareForSleep through sd-bus (see sleep_logind.h). */
#include "sleep_logind.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "os_error.h"

#ifndef T2S_HAVE_SD_BUS

int t2s_sleep_logind_new(t2s_sleep_logind **ps, struct event_base *base, t2s_sleep_logind_cb cb,
                         void *arg, char *why, size_t whylen) {
  (void)base;
  (void)cb;
  (void)arg;
  *ps = NULL;
  snprintf(why, whylen, "built without sd-bus (libsystemd-dev)");
  return T2S_ERR_UNSUPPORTED;
}

void t2s_sleep_logind_del(t2s_sleep_logind *s) {
  (void)s;
}

#else

#include <dlfcn.h>
#include <poll.h>
#include <systemd/sd-bus.h>
#include <time.h>

/* The sd-bus calls used, resolved from libsystemd.so.0 at run time. */
#define SD_FUNCS(X)                                                                                \
  X(sd_bus_open_system)                                                                            \
  X(sd_bus_flush_close_unref)                                                                      \
  X(sd_bus_get_fd)                                                                                 \
  X(sd_bus_get_events)                                                                             \
  X(sd_bus_get_timeout)                                                                            \
  X(sd_bus_process)                                                                                \
  X(sd_bus_add_match_async)                                                                        \
  X(sd_bus_message_read)                                                                           \
  X(sd_bus_message_is_method_error)                                                                \
  X(sd_bus_message_get_error)

typedef struct sd_api {
#define SD_FIELD(name) __typeof__(name) *name;
  SD_FUNCS(SD_FIELD)
#undef SD_FIELD
} sd_api;

/* Only logind (the owner of org.freedesktop.login1) can send what we listen to. */
static const char match_rule[] = "type='signal',sender='org.freedesktop.login1',"
                                 "path='/org/freedesktop/login1',"
                                 "interface='org.freedesktop.login1.Manager',"
                                 "member='PrepareForSleep'";

/* sd_bus_process calls per wakeup; more work left waits for the next loop iteration. */
#define PROCESS_PER_WAKEUP 64

struct t2s_sleep_logind {
  void *lib; /* dlopen handle of libsystemd.so.0 */
  sd_api api;
  sd_bus *bus;
  struct event_base *base;
  struct event *ev; /* the bus fd, re-armed after each processing with what sd-bus wants */
  t2s_sleep_logind_cb cb;
  void *arg;
};

static void bus_cb(evutil_socket_t fd, short what, void *arg);

static void close_bus(t2s_sleep_logind *s) {
  if (s->ev) {
    event_free(s->ev);
    s->ev = NULL;
  }
  if (s->bus) {
    s->api.sd_bus_flush_close_unref(s->bus);
    s->bus = NULL;
  }
}

/* Waits for what sd-bus wants next: readable and/or writable fd, and its timeout. */
static int arm(t2s_sleep_logind *s) {
  int fd = s->api.sd_bus_get_fd(s->bus);
  int events = s->api.sd_bus_get_events(s->bus);
  uint64_t until_us = UINT64_MAX;
  if (fd < 0 || events < 0 || s->api.sd_bus_get_timeout(s->bus, &until_us) < 0) {
    return fd < 0 ? fd : events < 0 ? events : -EIO;
  }
  short what = (short)(((events & POLLIN) ? EV_READ : 0) | ((events & POLLOUT) ? EV_WRITE : 0));
  if (s->ev) {
    event_del(s->ev);
    event_assign(s->ev, s->base, fd, what, bus_cb, s);
  } else {
    s->ev = event_new(s->base, fd, what, bus_cb, s);
    if (!s->ev) {
      return -ENOMEM;
    }
  }
  if (until_us == UINT64_MAX) {
    return event_add(s->ev, NULL) == 0 ? 0 : -EIO;
  }
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  uint64_t now_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
  uint64_t left_us = until_us > now_us ? until_us - now_us : 0;
  struct timeval tv = {.tv_sec = (time_t)(left_us / 1000000u),
                       .tv_usec = (suseconds_t)(left_us % 1000000u)};
  return event_add(s->ev, &tv) == 0 ? 0 : -EIO;
}

static void bus_cb(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  t2s_sleep_logind *s = arg;
  int rv = 0;
  for (int i = 0; i < PROCESS_PER_WAKEUP && s->bus; i++) {
    rv = s->api.sd_bus_process(s->bus, NULL);
    if (rv <= 0) {
      break;
    }
  }
  if (rv >= 0 && s->bus) {
    rv = arm(s);
  }
  if (rv < 0 && s->bus) {
    T2S_INFO("logind: the system bus connection ended (%s): sleep is noticed by the clocks only",
             strerror(-rv));
    close_bus(s);
  }
}

static int on_prepare_for_sleep(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
  (void)ret_error;
  t2s_sleep_logind *s = userdata;
  int sleeping = 0;
  int rv = s->api.sd_bus_message_read(m, "b", &sleeping);
  if (rv < 0) {
    T2S_DEBUG("logind: a PrepareForSleep without a boolean: %s", strerror(-rv));
    return 0;
  }
  T2S_DEBUG("logind: PrepareForSleep(%s)", sleeping ? "true" : "false");
  s->cb(s->arg, sleeping != 0);
  return 0;
}

static int on_match_installed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
  (void)ret_error;
  t2s_sleep_logind *s = userdata;
  if (s->api.sd_bus_message_is_method_error(m, NULL)) {
    const sd_bus_error *e = s->api.sd_bus_message_get_error(m);
    T2S_INFO("logind: the system bus refused the PrepareForSleep subscription (%s): sleep is "
             "noticed by the clocks only",
             e && e->message ? e->message : "?");
  } else {
    T2S_DEBUG("logind: listening for PrepareForSleep");
  }
  return 0;
}

static int load(t2s_sleep_logind *s, char *why, size_t whylen) {
  s->lib = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
  if (!s->lib) {
    snprintf(why, whylen, "cannot load libsystemd.so.0: %s", dlerror());
    return -ENOTSUP;
  }
#define SD_LOAD(name)                                                                              \
  s->api.name = (__typeof__(s->api.name))dlsym(s->lib, #name);                                     \
  if (!s->api.name) {                                                                              \
    snprintf(why, whylen, "libsystemd.so.0 has no %s", #name);                                     \
    return -ENOTSUP;                                                                               \
  }
  SD_FUNCS(SD_LOAD)
#undef SD_LOAD
  return 0;
}

int t2s_sleep_logind_new(t2s_sleep_logind **ps, struct event_base *base, t2s_sleep_logind_cb cb,
                         void *arg, char *why, size_t whylen) {
  *ps = NULL;
  t2s_sleep_logind *s = calloc(1, sizeof(*s));
  if (!s) {
    snprintf(why, whylen, "out of memory");
    return T2S_ERR_NOMEM;
  }
  s->base = base;
  s->cb = cb;
  s->arg = arg;
  int rv = load(s, why, whylen);
  if (rv == 0) {
    rv = s->api.sd_bus_open_system(&s->bus);
    if (rv < 0) {
      s->bus = NULL;
      snprintf(why, whylen, "cannot connect to the system bus: %s", strerror(-rv));
    } else {
      rv = 0;
    }
  }
  if (rv == 0) {
    rv = s->api.sd_bus_add_match_async(s->bus, NULL, match_rule, on_prepare_for_sleep,
                                       on_match_installed, s);
    if (rv < 0) {
      snprintf(why, whylen, "cannot subscribe to PrepareForSleep: %s", strerror(-rv));
    } else {
      rv = 0; /* sd-bus calls may return a positive number on success */
    }
  }
  if (rv == 0) {
    rv = arm(s);
    if (rv < 0) {
      snprintf(why, whylen, "cannot watch the system bus: %s", strerror(-rv));
    }
  }
  if (rv < 0) {
    t2s_sleep_logind_del(s);
    return t2s_err_from_errno(-rv); /* sd-bus's -errno, worded in why */
  }
  *ps = s;
  return 0;
}

void t2s_sleep_logind_del(t2s_sleep_logind *s) {
  if (!s) {
    return;
  }
  close_bus(s);
  if (s->lib) {
    dlclose(s->lib);
  }
  free(s);
}

#endif
