/*
 * test_iface_wrap.c: the device middleware of src/rec: the seeded fault injector (loss,
 * duplication, reordering, delay; the same seed gives the same decisions) and the pcap tee.
 */
#include <stdlib.h>
#include <string.h>

#include "rec_wrap.h"
#include "test_util.h"

/* An inner device: recv hands out numbered 1-byte packets 0..n-1; send logs what it gets. */
typedef struct inner {
  int next, n;
  uint8_t sent[4096];
  size_t nsent;
  t2s_tstamp now; /* the clock */
} inner;

static t2s_ssize in_recv(void *self, uint8_t *buf, size_t buflen) {
  inner *d = self;
  if (d->next >= d->n || buflen < 1) {
    return T2S_ERR_WOULDBLOCK;
  }
  buf[0] = (uint8_t)d->next++;
  return 1;
}

static int in_send(void *self, const uint8_t *pkt, size_t len) {
  inner *d = self;
  if (d->nsent < sizeof(d->sent) && len > 0) {
    d->sent[d->nsent++] = pkt[0];
  }
  return 0;
}

static void in_caps(void *self, t2s_device_caps *caps) {
  (void)self;
  caps->mtu = 1400;
  caps->offloads = 0;
}

static const t2s_device_ops in_ops = {in_recv, in_send, in_caps, NULL, NULL, NULL};

static t2s_tstamp clk_now(void *self) {
  return ((inner *)self)->now;
}
static t2s_tstamp clk_boot(void *self) {
  return ((inner *)self)->now;
}
static void clk_arm(void *self, t2s_tstamp t) {
  (void)self;
  (void)t;
}
static const t2s_clock_ops clk_ops = {clk_now, clk_boot, clk_arm};

/* Receives everything through the injector; out[] gets the packet numbers in order. */
static size_t drain(t2s_device *dev, uint8_t *out, size_t max) {
  size_t n = 0;
  uint8_t b[16];
  for (int i = 0; i < 10000; i++) {
    t2s_ssize r = dev->ops->recv(dev->self, b, sizeof(b));
    if (r < 0) {
      break;
    }
    if (n < max) {
      out[n++] = b[0];
    }
  }
  return n;
}

static void test_fault_parse(void) {
  t2s_fault_opts o;
  char err[128];
  CU_ASSERT_EQUAL(t2s_fault_parse("loss=2%,seed=9", &o, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(o.loss_num * 100, o.loss_den * 2);
  CU_ASSERT_EQUAL(o.seed, 9);
  CU_ASSERT_EQUAL(o.dirs, T2S_FAULT_DIR_IN | T2S_FAULT_DIR_OUT);
  CU_ASSERT_EQUAL(t2s_fault_parse("dup=1/50,reorder=0.5%,delay=20ms,dir=in", &o, err, sizeof(err)),
                  0);
  CU_ASSERT_EQUAL(o.dup_num, 1);
  CU_ASSERT_EQUAL(o.dup_den, 50);
  CU_ASSERT_EQUAL(o.reorder_num * 200, o.reorder_den);
  CU_ASSERT_EQUAL(o.delay, 20 * T2S_MILLISECONDS);
  CU_ASSERT_EQUAL(o.delay_num, 1); /* every packet when no delay-ratio */
  CU_ASSERT_EQUAL(o.dirs, T2S_FAULT_DIR_IN);
  const char *bad[] = {"loss",       "loss=101%", "loss=2", "dup=3/2", "delay=5parsecs",
                       "colour=red", "seed=-1",   "dir=up", "loss=%"};
  for (size_t i = 0; i < T2S_ARRAY_LEN(bad); i++) {
    err[0] = 0;
    CU_ASSERT_EQUAL(t2s_fault_parse(bad[i], &o, err, sizeof(err)), T2S_ERR_INVALID_ARGUMENT);
    CU_ASSERT(err[0] != 0);
  }
}

static void test_fault_loss_is_seeded(void) {
  uint8_t a[256], b[256], c[256];
  size_t na, nb, nc;
  t2s_fault_opts o;
  char err[64];
  CU_ASSERT_EQUAL_FATAL(t2s_fault_parse("loss=20%,seed=5", &o, err, sizeof(err)), 0);
  for (int run = 0; run < 3; run++) {
    inner d = {.n = 200};
    t2s_device in = {&in_ops, &d}, dev;
    t2s_fault f;
    if (run == 2) {
      o.seed = 6;
    }
    t2s_fault_init(&f, &o, &in, NULL);
    t2s_fault_device(&f, &dev);
    size_t n = drain(&dev, run == 0 ? a : run == 1 ? b : c, 256);
    *(run == 0 ? &na : run == 1 ? &nb : &nc) = n;
    CU_ASSERT_EQUAL(f.lost[0] + n, 200);
    CU_ASSERT(f.lost[0] > 20 && f.lost[0] < 60); /* 20 % of 200, loosely */
    t2s_fault_free(&f);
  }
  CU_ASSERT(na == nb && memcmp(a, b, na) == 0); /* same seed: the same packets lost */
  CU_ASSERT(na != nc || memcmp(a, c, na) != 0); /* another seed: others */
}

static void test_fault_dup_and_reorder(void) {
  t2s_fault_opts o;
  char err[64];
  CU_ASSERT_EQUAL_FATAL(t2s_fault_parse("dup=10%,reorder=10%,seed=3", &o, err, sizeof(err)), 0);
  inner d = {.n = 200};
  t2s_device in = {&in_ops, &d}, dev;
  t2s_fault f;
  t2s_fault_init(&f, &o, &in, NULL);
  t2s_fault_device(&f, &dev);
  uint8_t out[512];
  size_t n = drain(&dev, out, sizeof(out));
  CU_ASSERT(f.duplicated[0] > 0);
  CU_ASSERT(f.reordered[0] > 0);
  CU_ASSERT_EQUAL(n, 200 + f.duplicated[0]); /* nothing lost, nothing left held */
  CU_ASSERT_EQUAL(f.nheld[0], 0);
  size_t inversions = 0;
  int seen[200] = {0};
  for (size_t i = 0; i < n; i++) {
    seen[out[i]]++;
    if (i > 0 && out[i] < out[i - 1]) {
      inversions++;
    }
  }
  for (int i = 0; i < 200; i++) {
    CU_ASSERT(seen[i] >= 1);
  }
  CU_ASSERT(inversions > 0);
  t2s_fault_free(&f);
}

static void test_fault_delay_and_send_side(void) {
  t2s_fault_opts o;
  char err[64];
  CU_ASSERT_EQUAL_FATAL(t2s_fault_parse("delay=10ms,dir=out", &o, err, sizeof(err)), 0);
  inner d = {.n = 0, .now = 1000};
  t2s_device in = {&in_ops, &d}, dev;
  t2s_clock clk = {&clk_ops, &d};
  t2s_fault f;
  t2s_fault_init(&f, &o, &in, &clk);
  t2s_fault_device(&f, &dev);
  uint8_t p = 1;
  CU_ASSERT_EQUAL(dev.ops->send(dev.self, &p, 1), 0);
  CU_ASSERT_EQUAL(d.nsent, 0); /* held */
  d.now += 5 * T2S_MILLISECONDS;
  p = 2;
  dev.ops->send(dev.self, &p, 1);
  CU_ASSERT_EQUAL(d.nsent, 0);
  d.now += 6 * T2S_MILLISECONDS; /* the first is due, the second not yet */
  p = 3;
  dev.ops->send(dev.self, &p, 1);
  CU_ASSERT_EQUAL(d.nsent, 1);
  CU_ASSERT_EQUAL(d.sent[0], 1);
  t2s_device_caps caps;
  dev.ops->get_caps(dev.self, &caps);
  CU_ASSERT_EQUAL(caps.mtu, 1400);
  t2s_fault_free(&f);
}

typedef struct membuf {
  uint8_t data[4096];
  size_t len;
} membuf;

static int mem_write(void *arg, const uint8_t *d, size_t n) {
  membuf *m = arg;
  if (m->len + n > sizeof(m->data)) {
    return -1;
  }
  memcpy(m->data + m->len, d, n);
  m->len += n;
  return 0;
}

static uint32_t le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void test_pcap_tee(void) {
  inner d = {.n = 1, .now = 3 * T2S_SECONDS + 250 * T2S_MICROSECONDS};
  t2s_device in = {&in_ops, &d}, dev;
  t2s_clock clk = {&clk_ops, &d};
  static membuf m;
  memset(&m, 0, sizeof(m));
  t2s_pcap_tee t;
  CU_ASSERT_EQUAL_FATAL(t2s_pcap_tee_init(&t, &in, &clk, 8, 0, mem_write, &m), 0);
  t2s_pcap_tee_device(&t, &dev);
  CU_ASSERT_EQUAL(m.len, 24);
  CU_ASSERT_EQUAL(le32(m.data), 0xa1b2c3d4);
  CU_ASSERT_EQUAL(le32(m.data + 16), 8);   /* snaplen */
  CU_ASSERT_EQUAL(le32(m.data + 20), 101); /* LINKTYPE_RAW */
  uint8_t b[16];
  CU_ASSERT_EQUAL(dev.ops->recv(dev.self, b, sizeof(b)), 1);
  CU_ASSERT_EQUAL(m.len, 24 + 16 + 1);
  CU_ASSERT_EQUAL(le32(m.data + 24), 3);   /* seconds */
  CU_ASSERT_EQUAL(le32(m.data + 28), 250); /* microseconds */
  uint8_t big[20];
  memset(big, 0x45, sizeof(big));
  CU_ASSERT_EQUAL(dev.ops->send(dev.self, big, sizeof(big)), 0);
  CU_ASSERT_EQUAL(m.len, 24 + 17 + 16 + 8); /* cut at the snaplen */
  CU_ASSERT_EQUAL(le32(m.data + 41 + 8), 8);
  CU_ASSERT_EQUAL(le32(m.data + 41 + 12), 20); /* the original length */
  CU_ASSERT_EQUAL(d.nsent, 1);
  CU_ASSERT_EQUAL(t.packets, 2);
  /* WOULDBLOCK writes nothing */
  CU_ASSERT_EQUAL(dev.ops->recv(dev.self, b, sizeof(b)), T2S_ERR_WOULDBLOCK);
  CU_ASSERT_EQUAL(t.packets, 2);
}

int t2s_test_register_iface_wrap(void) {
  CU_pSuite s = CU_add_suite("iface_wrap", NULL, NULL);
  if (s == NULL) {
    return -1;
  }
  CU_add_test(s, "fault_parse", test_fault_parse);
  CU_add_test(s, "fault_loss_is_seeded", test_fault_loss_is_seeded);
  CU_add_test(s, "fault_dup_and_reorder", test_fault_dup_and_reorder);
  CU_add_test(s, "fault_delay_and_send_side", test_fault_delay_and_send_side);
  CU_add_test(s, "pcap_tee", test_pcap_tee);
  return CU_get_error() == CUE_SUCCESS ? 0 : -1;
}
