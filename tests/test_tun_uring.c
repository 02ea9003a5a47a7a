/* test_tun_uring.c: the io_uring batching of a TUN without offloads (src/os/tun_linux_uring.c),
 * on a SOCK_SEQPACKET socketpair, which keeps packet boundaries as a TUN does (no root, no
 * TUN), and its fall back to plain reads and writes when io_uring fails later (the test hook
 * t2s_tun_uring_test_fail). Skipped (passes) when the build has no liburing or the kernel
 * refuses io_uring. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_util.h"
#include "tun_linux_uring.h"

#define MAXPKT 1500

static void fill(uint8_t *p, size_t len, unsigned seed) {
  for (size_t i = 0; i < len; i++) {
    p[i] = (uint8_t)(seed * 31 + i * 7);
  }
}

static bool pair(int sv[2]) {
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
    return false;
  }
  int big = 4 << 20;
  setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
  setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  return true;
}

/* The device under test on one end of a fresh pair (the peer on sv[1]); NULL, with the pair
 * closed, when this build or kernel has no io_uring. */
static t2s_tun_uring *rig_open(int sv[2]) {
  CU_ASSERT_FATAL(pair(sv));
  t2s_tun_uring *u = t2s_tun_uring_new(sv[0], MAXPKT);
  if (!u) {
    close(sv[0]);
    close(sv[1]);
  }
  return u;
}

static void rig_close(t2s_tun_uring *u, int sv[2]) {
  t2s_tun_uring_free(u);
  close(sv[0]);
  close(sv[1]);
}

/* Writes are queued until the flush, then arrive whole and in order; 200 packets of up to
 * 1500 bytes take several flushes of the 256 KiB arena on the way. */
static void test_writes_queued_then_flushed_in_order(void) {
  int sv[2];
  t2s_tun_uring *u = rig_open(sv);
  if (!u) {
    return; /* no io_uring here: the plain path is used */
  }
  uint8_t pkt[MAXPKT], got[MAXPKT + 1];
  fill(pkt, 40, 1);
  CU_ASSERT(t2s_tun_uring_send(u, pkt, 40) == 0);
  CU_ASSERT(recv(sv[1], got, sizeof(got), MSG_DONTWAIT) < 0 && errno == EAGAIN); /* queued */
  CU_ASSERT(t2s_tun_uring_flush(u) == 0);
  CU_ASSERT(recv(sv[1], got, sizeof(got), MSG_DONTWAIT) == 40 && memcmp(got, pkt, 40) == 0);
  for (unsigned i = 0; i < 200; i++) {
    size_t len = 40 + (i * 97) % (MAXPKT - 40);
    fill(pkt, len, i);
    CU_ASSERT(t2s_tun_uring_send(u, pkt, len) == 0);
  }
  CU_ASSERT(t2s_tun_uring_flush(u) == 0);
  for (unsigned i = 0; i < 200; i++) {
    size_t len = 40 + (i * 97) % (MAXPKT - 40);
    fill(pkt, len, i);
    ssize_t n = recv(sv[1], got, sizeof(got), MSG_DONTWAIT);
    CU_ASSERT((size_t)n == len && memcmp(got, pkt, len) == 0);
  }
  CU_ASSERT(recv(sv[1], got, sizeof(got), MSG_DONTWAIT) < 0);
  t2s_tun_uring_counters c;
  t2s_tun_uring_get_counters(u, &c);
  CU_ASSERT(c.tx_packets == 201 && c.tx_errors == 0);
  CU_ASSERT(c.enters >= 2 && c.enters < 10); /* batched: not one call per packet */
  rig_close(u, sv);
}

/* Reads come in batches, in order; a batch that comes back short ends the burst with
 * WOULDBLOCK and no further call; packets left over are reported pending. */
static void test_reads_in_order_and_drained(void) {
  int sv[2];
  t2s_tun_uring *u = rig_open(sv);
  if (!u) {
    return; /* no io_uring here: the plain path is used */
  }
  uint8_t pkt[MAXPKT], got[MAXPKT];
  CU_ASSERT(t2s_tun_uring_recv(u, got, sizeof(got)) == T2S_ERR_WOULDBLOCK); /* empty: no wait */
  for (unsigned i = 0; i < 50; i++) {
    fill(pkt, 100 + i, i);
    CU_ASSERT(send(sv[1], pkt, 100 + i, 0) == (ssize_t)(100 + i));
  }
  for (unsigned i = 0; i < 50; i++) {
    fill(pkt, 100 + i, i);
    t2s_ssize n = t2s_tun_uring_recv(u, got, sizeof(got));
    CU_ASSERT(n == (t2s_ssize)(100 + i) && memcmp(got, pkt, 100 + i) == 0);
  }
  t2s_tun_uring_counters c0, c1;
  t2s_tun_uring_get_counters(u, &c0);
  CU_ASSERT(c0.rx_packets == 50);
  CU_ASSERT(c0.enters < 12); /* batches of 2, 4, ... 32 reads */
  /* Drain: at most one more batch finds the socket empty; then WOULDBLOCK without a call. */
  CU_ASSERT(t2s_tun_uring_recv(u, got, sizeof(got)) == T2S_ERR_WOULDBLOCK);
  CU_ASSERT(!t2s_tun_uring_rx_pending(u));
  /* Three packets: the first batch reads all of them; two are pending after the first. */
  for (unsigned i = 0; i < 3; i++) {
    CU_ASSERT(send(sv[1], pkt, 60, 0) == 60);
  }
  CU_ASSERT(t2s_tun_uring_recv(u, got, sizeof(got)) == 60);
  t2s_tun_uring_get_counters(u, &c0);
  if (t2s_tun_uring_rx_pending(u)) {
    CU_ASSERT(t2s_tun_uring_recv(u, got, sizeof(got)) == 60);
  }
  while (t2s_tun_uring_rx_pending(u)) {
    CU_ASSERT(t2s_tun_uring_recv(u, got, sizeof(got)) == 60);
  }
  t2s_tun_uring_get_counters(u, &c1);
  CU_ASSERT(c1.rx_packets == 53);
  rig_close(u, sv);
}

/* Writes to an fd that is gone fail one by one (counted), and the flush returns: every request
 * completes (on kernels that fail a bad fd at submission, thanks to IORING_SETUP_SUBMIT_ALL). */
static void test_writes_to_a_closed_fd_fail_without_hanging(void) {
  int sv[2];
  CU_ASSERT_FATAL(pair(sv));
  t2s_tun_uring *u = t2s_tun_uring_new(sv[0], MAXPKT);
  close(sv[0]);
  close(sv[1]);
  if (!u) {
    return;
  }
  uint8_t pkt[100];
  fill(pkt, sizeof(pkt), 3);
  for (int i = 0; i < 3; i++) {
    CU_ASSERT(t2s_tun_uring_send(u, pkt, sizeof(pkt)) == 0);
  }
  CU_ASSERT(t2s_tun_uring_flush(u) == 0);
  t2s_tun_uring_counters c;
  t2s_tun_uring_get_counters(u, &c);
  CU_ASSERT(c.tx_errors == 3 && c.tx_packets == 0);
  t2s_tun_uring_free(u);
}

/* The packets a peer sends: 60 + i bytes, pattern i. */
static void peer_sends(int fd, unsigned from, unsigned n) {
  uint8_t pkt[MAXPKT];
  for (unsigned i = from; i < from + n; i++) {
    fill(pkt, 60 + i, i);
    CU_ASSERT(send(fd, pkt, 60 + i, 0) == (ssize_t)(60 + i));
  }
}

/* The peer receives exactly packets [from, from + n) (as sent with t2s_tun_uring_send by
 * our_sends) and nothing more. */
static void peer_receives(int fd, unsigned from, unsigned n) {
  uint8_t pkt[MAXPKT], got[MAXPKT + 1];
  for (unsigned i = from; i < from + n; i++) {
    fill(pkt, 100 + i, i);
    ssize_t k = recv(fd, got, sizeof(got), MSG_DONTWAIT);
    CU_ASSERT(k == (ssize_t)(100 + i) && memcmp(got, pkt, 100 + i) == 0);
  }
  CU_ASSERT(recv(fd, got, sizeof(got), MSG_DONTWAIT) < 0 && errno == EAGAIN);
}

static void our_sends(t2s_tun_uring *u, unsigned from, unsigned n) {
  uint8_t pkt[MAXPKT];
  for (unsigned i = from; i < from + n; i++) {
    fill(pkt, 100 + i, i);
    CU_ASSERT(t2s_tun_uring_send(u, pkt, 100 + i) == 0);
  }
}

/* We receive exactly packets [from, from + n) (peer_sends), then WOULDBLOCK. */
static void we_receive(t2s_tun_uring *u, unsigned from, unsigned n) {
  uint8_t pkt[MAXPKT], got[MAXPKT];
  for (unsigned i = from; i < from + n; i++) {
    fill(pkt, 60 + i, i);
    t2s_ssize k = t2s_tun_uring_recv(u, got, sizeof(got));
    CU_ASSERT(k == (t2s_ssize)(60 + i) && memcmp(got, pkt, 60 + i) == 0);
  }
  CU_ASSERT(t2s_tun_uring_recv(u, got, sizeof(got)) == T2S_ERR_WOULDBLOCK);
  CU_ASSERT(!t2s_tun_uring_rx_pending(u));
}

/* After the fall back: packets go out at once and come in one read each, without io_uring. */
static void plain_from_now_on(t2s_tun_uring *u, int peer, unsigned from) {
  t2s_tun_uring_counters c0, c1;
  t2s_tun_uring_get_counters(u, &c0);
  our_sends(u, from, 3);
  peer_receives(peer, from, 3); /* without a flush */
  peer_sends(peer, from, 3);
  we_receive(u, from, 3);
  CU_ASSERT(t2s_tun_uring_flush(u) == 0);
  t2s_tun_uring_get_counters(u, &c1);
  CU_ASSERT(c1.enters == c0.enters && c1.fallbacks == 1);
  CU_ASSERT(c1.tx_packets == c0.tx_packets + 3 && c1.rx_packets == c0.rx_packets + 3);
}

/* io_uring_enter fails after setup: the TUN falls back to plain I/O at once, the queued
 * writes go out (in order) and a packet read before the failure is still returned. */
static void test_submit_failure_falls_back_without_loss(void) {
  int sv[2];
  t2s_tun_uring *u = rig_open(sv);
  if (!u) {
    return; /* no io_uring here: the plain path is used */
  }
  uint8_t got[MAXPKT];
  peer_sends(sv[1], 0, 3);
  CU_ASSERT(t2s_tun_uring_recv(u, got, sizeof(got)) == 60); /* a batch of 2: one pending */
  CU_ASSERT(t2s_tun_uring_rx_pending(u));
  our_sends(u, 0, 50);
  t2s_tun_uring_counters c;
  t2s_tun_uring_get_counters(u, &c);
  t2s_tun_uring_test_fail(u, T2S_TUN_URING_FAIL_SUBMIT, 0);
  CU_ASSERT(t2s_tun_uring_flush(u) == 0);
  peer_receives(sv[1], 0, 50);
  we_receive(u, 1, 2); /* the pending one, then a plain read */
  t2s_tun_uring_get_counters(u, &c);
  CU_ASSERT(c.fallbacks == 1 && c.tx_packets == 50 && c.tx_errors == 0 && c.rx_packets == 3);
  plain_from_now_on(u, sv[1], 50);
  rig_close(u, sv);
}

/* Every read completes with EOPNOTSUPP (as on a kernel whose TUN lacks RWF_NOWAIT): a plain
 * read works, so the TUN falls back; no packet is lost. Before, the TUN reported itself
 * closed. */
static void test_read_failure_falls_back_without_loss(void) {
  int sv[2];
  t2s_tun_uring *u = rig_open(sv);
  if (!u) {
    return; /* no io_uring here: the plain path is used */
  }
  uint8_t got[MAXPKT];
  peer_sends(sv[1], 0, 10);
  CU_ASSERT(t2s_tun_uring_recv(u, got, sizeof(got)) == 60); /* a batch of 2: one pending */
  t2s_tun_uring_test_fail(u, T2S_TUN_URING_FAIL_READS, 0);
  we_receive(u, 1, 9);
  t2s_tun_uring_counters c;
  t2s_tun_uring_get_counters(u, &c);
  CU_ASSERT(c.fallbacks == 1 && c.rx_packets == 10);
  plain_from_now_on(u, sv[1], 10);
  rig_close(u, sv);
}

/* Every write completes with EOPNOTSUPP while a plain write works: each is written plainly
 * (none lost, in order), and the TUN falls back. A write the device itself refuses (a closed
 * fd, above) stays counted as an error without a fall back. */
static void test_write_failure_falls_back_without_loss(void) {
  int sv[2];
  t2s_tun_uring *u = rig_open(sv);
  if (!u) {
    return; /* no io_uring here: the plain path is used */
  }
  our_sends(u, 0, 5);
  CU_ASSERT(t2s_tun_uring_flush(u) == 0);
  peer_receives(sv[1], 0, 5);
  t2s_tun_uring_test_fail(u, T2S_TUN_URING_FAIL_WRITES, 0);
  our_sends(u, 5, 40);
  CU_ASSERT(t2s_tun_uring_flush(u) == 0);
  peer_receives(sv[1], 5, 40);
  t2s_tun_uring_counters c;
  t2s_tun_uring_get_counters(u, &c);
  CU_ASSERT(c.fallbacks == 1 && c.tx_packets == 45 && c.tx_errors == 0);
  plain_from_now_on(u, sv[1], 45);
  rig_close(u, sv);
}

/* Reads one ahead through t2s_tun_uring_recv_ref, as the runner does: each packet lent in
 * place is still whole after the next one was read (batches fill the other half of the read
 * buffer), also when io_uring failed and reads are plain. */
static void test_reads_lent_in_place_survive_the_next(void) {
  int sv[2];
  t2s_tun_uring *u = rig_open(sv);
  if (!u) {
    return; /* no io_uring here: the plain path is used */
  }
  uint8_t want[MAXPKT];
  for (unsigned round = 0; round < 2; round++) {
    unsigned base = round * 100, i = base;
    if (round == 1) {
      t2s_tun_uring_test_fail(u, T2S_TUN_URING_FAIL_READS, 0);
    }
    peer_sends(sv[1], base, 100);
    const uint8_t *prev = NULL;
    for (int calls = 0; calls < 200; calls++) {
      const uint8_t *p = NULL;
      t2s_ssize n = t2s_tun_uring_recv_ref(u, &p);
      if (prev) { /* the packet before, read one call ago */
        fill(want, 60 + i - 1, i - 1);
        CU_ASSERT(memcmp(prev, want, 60 + i - 1) == 0);
      }
      if (n == T2S_ERR_WOULDBLOCK) {
        break;
      }
      fill(want, 60 + i, i);
      CU_ASSERT_FATAL(n == (t2s_ssize)(60 + i) && p != NULL);
      CU_ASSERT(memcmp(p, want, 60 + i) == 0);
      prev = p;
      i++;
    }
    CU_ASSERT(i == base + 100);
  }
  t2s_tun_uring_counters c;
  t2s_tun_uring_get_counters(u, &c);
  CU_ASSERT(c.rx_packets == 200 && c.fallbacks == 1);
  rig_close(u, sv);
}

int t2s_test_register_tun_uring(void) {
  CU_pSuite s = CU_add_suite("tun_uring", NULL, NULL);
  if (s == NULL ||
      !CU_add_test(s, "writes queued, then flushed in order",
                   test_writes_queued_then_flushed_in_order) ||
      !CU_add_test(s, "reads in order, drained without a call", test_reads_in_order_and_drained) ||
      !CU_add_test(s, "writes to a closed fd fail without hanging",
                   test_writes_to_a_closed_fd_fail_without_hanging) ||
      !CU_add_test(s, "io_uring_enter failing: plain I/O, nothing lost",
                   test_submit_failure_falls_back_without_loss) ||
      !CU_add_test(s, "reads failing: plain I/O, nothing lost",
                   test_read_failure_falls_back_without_loss) ||
      !CU_add_test(s, "writes failing: plain I/O, nothing lost",
                   test_write_failure_falls_back_without_loss) ||
      !CU_add_test(s, "reads lent in place survive the next read",
                   test_reads_lent_in_place_survive_the_next)) {
    return -1;
  }
  return 0;
}
