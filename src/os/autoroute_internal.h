/*
 * autoroute_internal.h: what the three files of --auto-route share (autoroute_linux.h is the
 * interface). autoroute_linux.c: the public functions and the one-instance claims;
 * autoroute_rtnl_linux.c: the rules and routes through rtnetlink (what we want, what the
 * kernel has, the reconcile between them); autoroute_nft_linux.c: the nftables table of
 * --exclude-cgroup. Internal functions return 0 or -errno; the public ones translate to
 * T2S_ERR_* (os_error.h).
 */
#ifndef T2S_AUTOROUTE_INTERNAL_H
#define T2S_AUTOROUTE_INTERNAL_H

#include <libmnl/libmnl.h>

#include "autoroute_linux.h"

#define AR_DUMP_BUFSIZE 32768 /* libmnl's MNL_SOCKET_DUMP_SIZE */
#define AR_MSG_MAX 512        /* a rule or route message we keep to echo back as a delete */
#define AR_MAX_RULES 64       /* our rules per family: 3 + uid ranges */
#define AR_MAX_ROUTES 128     /* our routes per family */
#define AR_MAX_SEEN 256       /* existing objects of ours found in one dump */
#define AR_MAX_LIST 32        /* excludes, includes, uid ranges, cgroups */
#define AR_NFT "/usr/sbin/nft"

enum {
  PRIO_MARK_MAIN = 0,
  PRIO_MARK_UNREACHABLE = 1,
  PRIO_UID_MAIN = 2,
  PRIO_TABLE = 3,
};

typedef struct ar_rule {
  uint8_t family; /* AF_INET, AF_INET6 */
  uint32_t prio;
  uint8_t action; /* FR_ACT_TO_TBL, FR_ACT_UNREACHABLE */
  uint32_t table; /* FR_ACT_TO_TBL */
  uint32_t mark, mask;
  bool has_uid;
  uint32_t uid_start, uid_end;
  bool other; /* (dumped) a selector we never set */
} ar_rule;

typedef struct ar_route {
  uint8_t family;
  uint8_t dst[16];
  uint8_t len;
  uint8_t type; /* RTN_UNICAST (dev TUN), RTN_THROW */
  uint32_t oif;
} ar_route;

/* Something of ours found in a dump, with its message to echo back as a delete. */
typedef struct ar_seen {
  bool is_rule;
  ar_rule rule;
  ar_route route;
  bool wanted;
  size_t len;
  uint8_t msg[AR_MSG_MAX];
} ar_seen;

struct t2s_autoroute {
  t2s_autoroute_config cfg;
  t2s_cidr exclude[AR_MAX_LIST];
  t2s_cidr include[AR_MAX_LIST];
  t2s_uid_range uids[AR_MAX_LIST];
  char *cgroups[AR_MAX_LIST];
  const char *cgroup_ptrs[AR_MAX_LIST];
  bool have_v6; /* the v6 part could be installed */
  uint64_t repairs;
  struct mnl_socket *events; /* link, route and rule notifications */
  char evbuf[AR_DUMP_BUFSIZE];
  int claims[1 + T2S_AUTOROUTE_SPAN]; /* the table and each priority (see claim_all) */
};

/* One rtnetlink conversation: the socket, and the buffers of one dump (on the heap: several
 * runners may live in one process, each on its own thread). */
typedef struct ar_nl {
  struct mnl_socket *nl;
  char *buf;     /* AR_DUMP_BUFSIZE */
  ar_seen *seen; /* AR_MAX_SEEN */
  unsigned seq;
} ar_nl;

/* Opens a conversation (socket and dump buffers). Returns 0 or -errno. */
int t2s_ar_nl_open(ar_nl *s);
/* Closes it (an unopened one is fine). */
void t2s_ar_nl_close(ar_nl *s);
/* Makes the rules and routes of family af (AF_INET, AF_INET6) what ar wants (want = true), or
 * removes every one of ours (want = false). Counts what it added and removed. Returns 0 or the
 * first -errno. */
int t2s_ar_apply_family(ar_nl *s, const t2s_autoroute *ar, uint8_t af, bool want, unsigned *added,
                        unsigned *removed);

/* Removes our nftables table of that table number, if any (nothing without nft). */
void t2s_ar_nft_cleanup(uint32_t table);
/* Installs the nftables table that marks the sockets of --exclude-cgroup. Returns 0, or -errno
 * with why set. */
int t2s_ar_nft_install(const t2s_autoroute *ar, char *why, size_t whylen);

#endif
