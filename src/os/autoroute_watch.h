/*
 * autoroute_watch.h: when --auto-route re-applies its rules and routes. It owns the started
 * t2s_autoroute (autoroute_linux.h) and two libevent events: its rtnetlink notifications and a
 * debounce timer. Any link, route or rule change (its own notifications, or a network event
 * the runner passes on with t2s_autoroute_watch_kick) re-arms the timer; 200 ms after the last
 * of a burst, t2s_autoroute_refresh() puts back what is missing.
 */
#ifndef T2S_AUTOROUTE_WATCH_H
#define T2S_AUTOROUTE_WATCH_H

#include <event2/event.h>

#include "autoroute_linux.h"

#define T2S_AUTOROUTE_DEBOUNCE_MS 200

typedef struct t2s_autoroute_watch t2s_autoroute_watch;

/* Takes ar (started) and watches it on base. Without rtnetlink notifications it warns that
 * rules are not re-applied after changes and still works (kicks still refresh). Returns 0
 * with *pw set, or T2S_ERR_NOMEM (ar is stopped then). */
int t2s_autoroute_watch_new(t2s_autoroute_watch **pw, struct event_base *base, t2s_autoroute *ar);
/* Re-applies 200 ms after the last kick (NULL: nothing). */
void t2s_autoroute_watch_kick(t2s_autoroute_watch *w);
/* Frees the events, then removes every rule and route (t2s_autoroute_stop). NULL is fine. */
void t2s_autoroute_watch_del(t2s_autoroute_watch *w);

#endif
