/*
 * mptcp_pm_linux.h: with --mptcp, tun2sock makes sure every uplink address can carry a subflow
 * (docs/mptcp.md, "Endpoints"). It talks to the kernel's in-kernel path manager over generic
 * netlink (family "mptcp_pm", libmnl), the way `ip mptcp endpoint` does:
 *
 *   - every global IPv4/IPv6 address of an interface other than the TUN that has no endpoint
 *     gets a `subflow` endpoint bound to its interface (`ip mptcp endpoint add ADDR dev IF
 *     subflow`), with an id of tun2sock's own range (T2S_MPTCP_PM_ID_FIRST...);
 *   - an endpoint of that range whose address is gone is removed; endpoints of other ids
 *     (NetworkManager's, mptcpd's, an operator's) are never touched;
 *   - at start the endpoints of the range are removed first (a run killed with SIGKILL left
 *     them), and at stop every one of them is removed;
 *   - the path manager's limits are read and reported (a subflows limit of 0 allows no extra
 *     subflow: warned, with the command that raises it).
 *
 * Address changes come from its own rtnetlink subscription (address groups), debounced 100 ms.
 */
#ifndef T2S_MPTCP_PM_LINUX_H
#define T2S_MPTCP_PM_LINUX_H

#include <event2/event.h>

#include "common.h"

/* tun2sock's endpoint ids: T2S_MPTCP_PM_ID_FIRST .. + T2S_MPTCP_PM_IDS - 1. */
#define T2S_MPTCP_PM_ID_FIRST 200
#define T2S_MPTCP_PM_IDS 32
/* The most addresses and endpoints looked at per sync. */
#define T2S_MPTCP_PM_MAX 64

typedef struct t2s_mptcp_pm t2s_mptcp_pm;

/* One endpoint of the kernel's path manager. */
typedef struct t2s_mptcp_endpoint {
  uint8_t id;
  t2s_addr addr;  /* port 0 */
  uint32_t flags; /* MPTCP_PM_ADDR_FLAG_* */
  int32_t ifindex;
} t2s_mptcp_endpoint;

/* Starts on base: removes stale endpoints of our range, adds what is missing, reports the
 * limits, watches address changes. tun_ifindex: our TUN (never given an endpoint). Returns 0
 * with *ppm set, or a T2S_ERR_* (logged: no MPTCP path manager, no privilege); the caller goes
 * on without. */
int t2s_mptcp_pm_new(t2s_mptcp_pm **ppm, struct event_base *base, uint32_t tun_ifindex);
/* Removes every endpoint of our range and frees. NULL is fine. */
void t2s_mptcp_pm_del(t2s_mptcp_pm *pm);
/* Endpoints of our range now (after the last sync). */
size_t t2s_mptcp_pm_ours(const t2s_mptcp_pm *pm);

/* The kernel's endpoints (`ip mptcp endpoint show`) into out[0..max). Returns how many, or
 * -errno. */
int t2s_mptcp_pm_dump(t2s_mptcp_endpoint *out, size_t max);

#endif
