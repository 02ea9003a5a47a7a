/* embed_packets.c: packets from and to the embedding program (embed_packets.h). */
#include "embed_packets.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct slot {
  uint8_t *data;
  size_t len;
} slot;

struct t2s_embed_packets {
  uint32_t mtu;
  t2s_embed_output_fn output;
  void *output_arg;
  int efd;
  /* The queue and the counters (under lock). */
  pthread_mutex_t lock;
  slot q[T2S_EMBED_QUEUE_PACKETS];
  size_t head, count, bytes;
  t2s_embed_packets_counters c;
};

int t2s_embed_packets_new(t2s_embed_packets **pp, uint32_t mtu, t2s_embed_output_fn output,
                          void *output_arg) {
  t2s_embed_packets *p = calloc(1, sizeof(*p));
  if (!p) {
    return T2S_ERR_NOMEM;
  }
  p->mtu = mtu;
  p->output = output;
  p->output_arg = output_arg;
  p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (p->efd < 0) {
    free(p);
    return T2S_ERR_INTERNAL;
  }
  pthread_mutex_init(&p->lock, NULL);
  *pp = p;
  return 0;
}

void t2s_embed_packets_del(t2s_embed_packets *p) {
  if (!p) {
    return;
  }
  for (size_t i = 0; i < p->count; i++) {
    free(p->q[(p->head + i) % T2S_EMBED_QUEUE_PACKETS].data);
  }
  close(p->efd);
  pthread_mutex_destroy(&p->lock);
  free(p);
}

int t2s_embed_packets_fd(const t2s_embed_packets *p) {
  return p->efd;
}

int t2s_embed_packets_input(t2s_embed_packets *p, const uint8_t *pkt, size_t len) {
  if (!pkt || len == 0 || len > T2S_EMBED_PACKET_MAX) {
    pthread_mutex_lock(&p->lock);
    p->c.invalid++;
    pthread_mutex_unlock(&p->lock);
    return T2S_ERR_INVALID_ARGUMENT;
  }
  /* Copied outside the lock; the queue's bounds are checked under it. */
  uint8_t *copy = malloc(len);
  if (!copy) {
    return T2S_ERR_NOMEM;
  }
  memcpy(copy, pkt, len);
  pthread_mutex_lock(&p->lock);
  if (p->count == T2S_EMBED_QUEUE_PACKETS || p->bytes + len > T2S_EMBED_QUEUE_BYTES) {
    p->c.queue_drops++;
    pthread_mutex_unlock(&p->lock);
    free(copy);
    return T2S_ERR_LIMIT;
  }
  p->q[(p->head + p->count) % T2S_EMBED_QUEUE_PACKETS] = (slot){copy, len};
  p->count++;
  p->bytes += len;
  p->c.queued++;
  pthread_mutex_unlock(&p->lock);
  /* After the packet is queued: a recv() that drained the eventfd before this write saw the
   * queue non-empty or will be woken again by it. */
  uint64_t one = 1;
  ssize_t n = write(p->efd, &one, sizeof(one));
  (void)n; /* EAGAIN only at a counter of 2^64-2: the loop is awake anyway */
  return 0;
}

static t2s_ssize ep_recv(void *self, uint8_t *buf, size_t buflen) {
  t2s_embed_packets *p = self;
  pthread_mutex_lock(&p->lock);
  if (p->count == 0) {
    /* Empty: the pending wakeups are spent (under the lock, see embed_packets.h). */
    uint64_t v;
    ssize_t n = read(p->efd, &v, sizeof(v));
    (void)n;
    pthread_mutex_unlock(&p->lock);
    return T2S_ERR_WOULDBLOCK;
  }
  slot s = p->q[p->head];
  p->head = (p->head + 1) % T2S_EMBED_QUEUE_PACKETS;
  p->count--;
  p->bytes -= s.len;
  p->c.delivered++;
  pthread_mutex_unlock(&p->lock);
  t2s_ssize rv = (t2s_ssize)s.len;
  if (s.len > buflen) { /* not with the loop's 64 KiB buffers */
    rv = T2S_ERR_NOBUF;
  } else {
    memcpy(buf, s.data, s.len);
  }
  free(s.data);
  return rv;
}

static int ep_send(void *self, const uint8_t *pkt, size_t pktlen) {
  t2s_embed_packets *p = self;
  int rv = p->output(p->output_arg, pkt, pktlen);
  pthread_mutex_lock(&p->lock);
  p->c.output++;
  p->c.output_errors += rv != 0;
  pthread_mutex_unlock(&p->lock);
  return rv == 0 ? 0 : T2S_ERR_CLOSED;
}

static void ep_get_caps(void *self, t2s_device_caps *caps) {
  t2s_embed_packets *p = self;
  caps->mtu = p->mtu;
  caps->offloads = 0;
}

static const t2s_device_ops embed_ops = {ep_recv, ep_send, ep_get_caps, NULL, NULL, NULL};

void t2s_embed_packets_device(t2s_embed_packets *p, t2s_device *dev) {
  dev->ops = &embed_ops;
  dev->self = p;
}

void t2s_embed_packets_get_counters(t2s_embed_packets *p, t2s_embed_packets_counters *c) {
  pthread_mutex_lock(&p->lock);
  *c = p->c;
  pthread_mutex_unlock(&p->lock);
}
