/*
 * embed_packets.h: a t2s_device whose packets come from the embedding program instead of a TUN
 * fd (tun2sock.h, API 4: tun2sock_input_packet and tun2sock_config.output; an iOS
 * NetworkExtension's packetFlow has no fd).
 *
 * In: t2s_embed_packets_input() copies a packet into a bounded queue under a mutex, from any
 * thread, and an eventfd wakes the loop, which waits on it as on a TUN fd and calls the
 * device's recv() until it would block (runner_loop.c: at most T2S_RUNNER_BATCH per wakeup).
 * A full queue drops the packet and counts it (like a TUN whose kernel queue overflows).
 * Out: the device's send() hands every packet to the host's output callback, on the loop's
 * thread, borrowed for the call.
 *
 * Wakeups: recv() drains the eventfd only under the queue's lock and only when the queue is
 * empty, and input writes it after queueing, so a queued packet always has a wakeup pending.
 */
#ifndef T2S_EMBED_PACKETS_H
#define T2S_EMBED_PACKETS_H

#include "iface.h"

#define T2S_EMBED_QUEUE_PACKETS 512      /* packets waiting for the loop, at most */
#define T2S_EMBED_QUEUE_BYTES (1u << 20) /* and their bytes, at most */
#define T2S_EMBED_PACKET_MAX 65535u      /* the longest packet accepted (an IP packet) */

typedef struct t2s_embed_packets t2s_embed_packets;

/* The host's output: one IP packet toward the clients; 0 = taken, nonzero = dropped. */
typedef int (*t2s_embed_output_fn)(void *arg, const uint8_t *pkt, size_t len);

typedef struct t2s_embed_packets_counters {
  uint64_t queued;        /* packets accepted by input */
  uint64_t queue_drops;   /* refused: the queue was full (packets or bytes) */
  uint64_t invalid;       /* refused: empty or longer than T2S_EMBED_PACKET_MAX */
  uint64_t delivered;     /* handed to the engine */
  uint64_t output;        /* handed to the output callback */
  uint64_t output_errors; /* of which the callback refused */
} t2s_embed_packets_counters;

/* Creates the device with MTU mtu (576..65535) and the host's output. Returns 0,
 * T2S_ERR_NOMEM or T2S_ERR_INTERNAL (eventfd). */
int t2s_embed_packets_new(t2s_embed_packets **pp, uint32_t mtu, t2s_embed_output_fn output,
                          void *output_arg);
/* Frees p and any packet still queued (after the loop stopped; no input may be running). */
void t2s_embed_packets_del(t2s_embed_packets *p);
/* The device's ops over p (borrowed). recv() returns T2S_ERR_WOULDBLOCK when the queue is empty;
 * send() returns T2S_ERR_CLOSED when the output callback refused the packet. */
void t2s_embed_packets_device(t2s_embed_packets *p, t2s_device *dev);
/* The eventfd the loop waits on for readability. */
int t2s_embed_packets_fd(const t2s_embed_packets *p);

/* From any thread: queues a copy of pkt. Returns 0, T2S_ERR_INVALID_ARGUMENT (len 0 or above
 * T2S_EMBED_PACKET_MAX), T2S_ERR_LIMIT (the queue is full; the packet is dropped and counted)
 * or T2S_ERR_NOMEM. */
int t2s_embed_packets_input(t2s_embed_packets *p, const uint8_t *pkt, size_t len);

/* Copies the counters (safe from any thread). */
void t2s_embed_packets_get_counters(t2s_embed_packets *p, t2s_embed_packets_counters *c);

#endif
