/*
 * sim_client.h: closed-loop client hosts. One client host owns the addresses 198.18.0.2 and
 * fd00:18::2 (or others given with `from`) and runs its own t2s_tcp_stack, the same TCP code
 * as the engine. Its packets go into the engine through the simulated device link (with the
 * configured faults); the engine's packets to those addresses come back the same way.
 *
 * Each client connects (active open, seeded ephemeral port), sends its data (the byte
 * pattern of sim_util.h, or a text), half-closes, reads until the peer's FIN and checks
 * what it read. A byte that differs from what the check expects is an invariant failure.
 *
 * UDP clients send `count` datagrams from one socket (`from ADDR:PORT` fixes the port) and
 * check the replies (echo, a number of replies from any source, or an ICMP port unreachable);
 * ping clients send echo requests and check the replies. Packets over the MTU are fragmented
 * and fragments received are reassembled (frag.h), as a host's kernel does.
 */
#ifndef T2S_SIM_CLIENT_H
#define T2S_SIM_CLIENT_H

#include <stdio.h>
#include "common.h"
#include "sim_world.h"

typedef enum sim_client_check {
  SIM_CHECK_READ_ALL = 0, /* read until FIN, count the bytes */
  SIM_CHECK_ECHO,         /* read back exactly what was sent (UDP, ping: every datagram) */
  SIM_CHECK_BYTES,        /* read exactly expect_len bytes of the pattern */
  SIM_CHECK_REPLIES,      /* UDP: at least expect_len datagrams, from any source */
  SIM_CHECK_UNREACHABLE,  /* UDP: an ICMP port unreachable arrives */
} sim_client_check;

typedef enum sim_client_proto {
  SIM_CLIENT_TCP = 0,
  SIM_CLIENT_UDP,  /* datagrams from one socket (fragmented when over the MTU) */
  SIM_CLIENT_PING, /* ICMP / ICMPv6 echo requests (fragmented when over the MTU) */
} sim_client_proto;

typedef struct sim_client_spec {
  char name[32];
  int line;            /* scenario line (for messages) */
  t2s_addr remote;     /* destination with port */
  t2s_addr local;      /* family 0: the host's default address of remote's family */
  const uint8_t *text; /* data to send when not NULL (borrowed until the client starts) */
  size_t text_len;
  uint64_t send_len; /* pattern bytes to send when text is NULL */
  sim_client_check check;
  uint64_t expect_len; /* SIM_CHECK_BYTES; SIM_CHECK_REPLIES: datagrams */
  sim_client_proto proto;
  uint32_t count;      /* UDP, ping: datagrams to send (0 = 1) */
  t2s_tstamp interval; /* UDP, ping: between two sends */
} sim_client_spec;

typedef enum sim_client_state {
  SIM_CLIENT_IDLE = 0,   /* not started */
  SIM_CLIENT_CONNECTING, /* SYN sent */
  SIM_CLIENT_OPEN,       /* established, transferring */
  SIM_CLIENT_DONE,       /* its check passed and the peer's FIN arrived */
  SIM_CLIENT_RESET,      /* reset by the peer */
  SIM_CLIENT_REFUSED,    /* the connect was answered with a RST */
  SIM_CLIENT_FAILED,     /* timeout, a failed check, or a local error */
} sim_client_state;

const char *sim_client_state_name(sim_client_state s);

typedef struct sim_client_result {
  sim_client_state state;
  t2s_tstamp started_at, established_at, ended_at; /* ended_at: done / reset / failure */
  uint64_t sent, received, bad_bytes;
  int err; /* on_closed error */
  /* TCP: the last time a byte was read or newly acknowledged (the flow made progress), and
   * the longest time between two such moments up to now (scripts/soak --loss reports it). */
  t2s_tstamp progress_at, stall_max;
  uint64_t acked; /* bytes the peer acknowledged so far */
} sim_client_result;

/* Creates the client hosts of world w (sets w->clients) with their TCP stack seeded from
 * w->rand. Returns 0 or an error. */
int sim_clients_new(sim_world *w);
void sim_clients_del(sim_clients *c);
/* Starts a client now (an active open). Returns 0 or an error. */
int sim_clients_start(sim_clients *c, const sim_client_spec *spec, t2s_tstamp now);
/* The result of the client called name, or NULL when none started. */
const sim_client_result *sim_clients_result(const sim_clients *c, const char *name);
/* Clients whose connection has not ended yet. */
uint64_t sim_clients_unfinished(const sim_clients *c);
/* The i-th client started (in start order): its spec (spec->local carries the port it used),
 * its result, and whether it sent the byte pattern (not a text). False when i is past the
 * last. For the invariant checkers (sim_check.c). */
/* Prints one line per TCP client: how it ended and when, and the longest time it spent
 * without progress (counting an unfinished client's time since its last progress). */
void sim_clients_print(const sim_clients *c, FILE *f, t2s_tstamp now);
bool sim_clients_get(const sim_clients *c, size_t i, const sim_client_spec **pspec,
                     const sim_client_result **pres, bool *ppattern);

#endif
