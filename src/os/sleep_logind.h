/*
 * sleep_logind.h: systemd-logind's PrepareForSleep signal as a source of the network
 * monitor's PAUSED and RESUMED events (optional, never required; docs/network-change.md).
 *
 * Connects to the system bus with sd-bus (sd_bus_open_system: DBUS_SYSTEM_BUS_ADDRESS is
 * honoured, /run/dbus/system_bus_socket otherwise), asks the bus for the signal
 * org.freedesktop.login1.Manager.PrepareForSleep on /org/freedesktop/login1 sent by the owner
 * of org.freedesktop.login1 (only logind itself: another process cannot fake a sleep), and
 * runs the connection from a libevent loop. logind sends it with `true` before the machine
 * sleeps and with `false` after it woke.
 *
 * libsystemd is loaded at run time (dlopen "libsystemd.so.0"), so neither the binary nor an
 * embedder's link line needs it; the sd-bus header is needed at build time (Debian
 * libsystemd-dev; CMake says when it is missing and then builds a stub that always fails
 * with T2S_ERR_UNSUPPORTED).
 */
#ifndef T2S_SLEEP_LOGIND_H
#define T2S_SLEEP_LOGIND_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "common.h"

typedef struct t2s_sleep_logind t2s_sleep_logind;

/* Called on the loop's thread: sleeping = true before a sleep, false after the wake. */
typedef void (*t2s_sleep_logind_cb)(void *arg, bool sleeping);

/* Connects and subscribes (the subscription completes asynchronously; a refusal is logged at
 * info level). Returns 0 with *ps set, or a T2S_ERR_* with why (whylen bytes) saying what
 * failed, the errno's text included: T2S_ERR_UNSUPPORTED when built without sd-bus or
 * libsystemd cannot be loaded, the connection's error otherwise (T2S_ERR_NOT_FOUND: no system
 * bus). Nothing is logged on failure. */
int t2s_sleep_logind_new(t2s_sleep_logind **ps, struct event_base *base, t2s_sleep_logind_cb cb,
                         void *arg, char *why, size_t whylen);

/* Closes the connection and frees s (NULL is fine). */
void t2s_sleep_logind_del(t2s_sleep_logind *s);

#endif
