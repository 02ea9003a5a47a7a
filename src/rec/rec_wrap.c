/*
 * rec_wrap.c: the device fault injector and the pcap tee (rec_wrap.h).
 */
#include "rec_wrap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------- fault injector ---------------- */

/* "2%", "2.5%", "1/50" => num/den. */
static int parse_ratio(const char *s, size_t n, uint32_t *num, uint32_t *den) {
  char buf[32];
  if (n == 0 || n >= sizeof(buf)) {
    return -1;
  }
  memcpy(buf, s, n);
  buf[n] = 0;
  char *end;
  unsigned long a = strtoul(buf, &end, 10);
  if (end == buf) {
    return -1;
  }
  if (*end == '/') {
    char *e2;
    unsigned long b = strtoul(end + 1, &e2, 10);
    if (e2 == end + 1 || *e2 || b == 0 || a > b || b > 1000000000ul) {
      return -1;
    }
    *num = (uint32_t)a;
    *den = (uint32_t)b;
    return 0;
  }
  unsigned long frac = 0, scale = 1;
  if (*end == '.') {
    char *p = end + 1;
    while (*p >= '0' && *p <= '9' && scale < 10000) {
      frac = frac * 10 + (unsigned long)(*p - '0');
      scale *= 10;
      p++;
    }
    end = p;
  }
  if (strcmp(end, "%") != 0 || a > 100 || (a == 100 && frac)) {
    return -1;
  }
  *num = (uint32_t)(a * scale + frac);
  *den = (uint32_t)(100 * scale);
  return 0;
}

static int parse_dur(const char *s, size_t n, t2s_tstamp *out) {
  char buf[32];
  if (n == 0 || n >= sizeof(buf)) {
    return -1;
  }
  memcpy(buf, s, n);
  buf[n] = 0;
  char *end;
  unsigned long long v = strtoull(buf, &end, 10);
  if (end == buf || v > 3600000000ull) {
    return -1;
  }
  t2s_tstamp mul = strcmp(end, "ns") == 0   ? 1
                   : strcmp(end, "us") == 0 ? T2S_MICROSECONDS
                   : strcmp(end, "ms") == 0 ? T2S_MILLISECONDS
                   : strcmp(end, "s") == 0  ? T2S_SECONDS
                                            : 0;
  if (mul == 0) {
    return -1;
  }
  *out = v * mul;
  return 0;
}

int t2s_fault_parse(const char *spec, t2s_fault_opts *o, char *err, size_t errlen) {
  memset(o, 0, sizeof(*o));
  o->dirs = T2S_FAULT_DIR_IN | T2S_FAULT_DIR_OUT;
  const char *p = spec;
  while (*p) {
    const char *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    const char *eq = memchr(p, '=', n);
    if (eq == NULL) {
      snprintf(err, errlen, "'%.*s' is not KEY=VALUE", (int)n, p);
      return T2S_ERR_INVALID_ARGUMENT;
    }
    size_t kn = (size_t)(eq - p);
    const char *v = eq + 1;
    size_t vn = n - kn - 1;
    int bad = 0;
    if (kn == 4 && memcmp(p, "loss", 4) == 0) {
      bad = parse_ratio(v, vn, &o->loss_num, &o->loss_den);
    } else if (kn == 3 && memcmp(p, "dup", 3) == 0) {
      bad = parse_ratio(v, vn, &o->dup_num, &o->dup_den);
    } else if (kn == 7 && memcmp(p, "reorder", 7) == 0) {
      bad = parse_ratio(v, vn, &o->reorder_num, &o->reorder_den);
    } else if (kn == 5 && memcmp(p, "delay", 5) == 0) {
      bad = parse_dur(v, vn, &o->delay);
    } else if (kn == 11 && memcmp(p, "delay-ratio", 11) == 0) {
      bad = parse_ratio(v, vn, &o->delay_num, &o->delay_den);
    } else if (kn == 4 && memcmp(p, "seed", 4) == 0) {
      char buf[32];
      char *end;
      bad = vn == 0 || vn >= sizeof(buf);
      if (!bad) {
        memcpy(buf, v, vn);
        buf[vn] = 0;
        o->seed = strtoull(buf, &end, 0);
        bad = *end != 0 || buf[0] == '-';
      }
    } else if (kn == 3 && memcmp(p, "dir", 3) == 0) {
      if (vn == 2 && memcmp(v, "in", 2) == 0) {
        o->dirs = T2S_FAULT_DIR_IN;
      } else if (vn == 3 && memcmp(v, "out", 3) == 0) {
        o->dirs = T2S_FAULT_DIR_OUT;
      } else if (vn == 4 && memcmp(v, "both", 4) == 0) {
        o->dirs = T2S_FAULT_DIR_IN | T2S_FAULT_DIR_OUT;
      } else {
        bad = 1;
      }
    } else {
      snprintf(err, errlen,
               "unknown fault '%.*s' (loss, dup, reorder, delay, delay-ratio, seed, dir)", (int)kn,
               p);
      return T2S_ERR_INVALID_ARGUMENT;
    }
    if (bad) {
      snprintf(err, errlen, "bad value for %.*s: '%.*s'", (int)kn, p, (int)vn, v);
      return T2S_ERR_INVALID_ARGUMENT;
    }
    p += n;
    if (*p == ',') {
      p++;
    }
  }
  if (o->delay && o->delay_den == 0) {
    o->delay_num = o->delay_den = 1;
  }
  return 0;
}

int t2s_fault_init(t2s_fault *f, const t2s_fault_opts *o, const t2s_device *inner,
                   const t2s_clock *clk) {
  memset(f, 0, sizeof(*f));
  f->inner = *inner;
  if (clk) {
    f->clk = *clk;
  }
  f->o = *o;
  t2s_rand_init(&f->rand, o->seed);
  return 0;
}

void t2s_fault_free(t2s_fault *f) {
  for (int d = 0; d < 2; d++) {
    for (size_t i = 0; i < f->nheld[d]; i++) {
      free(f->held[d][i].data);
    }
    f->nheld[d] = 0;
  }
}

static t2s_tstamp fnow(t2s_fault *f) {
  return f->clk.ops ? f->clk.ops->now(f->clk.self) : 0;
}

static bool hold(t2s_fault *f, int d, const uint8_t *pkt, size_t len, t2s_tstamp due,
                 unsigned flags) {
  if (f->nheld[d] == T2S_FAULT_MAX_HELD) {
    return false;
  }
  uint8_t *c = malloc(len ? len : 1);
  if (c == NULL) {
    return false;
  }
  memcpy(c, pkt, len);
  f->held[d][f->nheld[d]++] = (t2s_fault_pkt){c, len, due, flags};
  return true;
}

/* Takes the first held packet of direction d that is due (due 0 counts as due when
 * zero_due). Returns its index, or -1. */
static int due_index(t2s_fault *f, int d, t2s_tstamp now, bool zero_due) {
  for (size_t i = 0; i < f->nheld[d]; i++) {
    t2s_fault_pkt *h = &f->held[d][i];
    if ((h->due == 0 && zero_due) || (h->due != 0 && h->due <= now)) {
      return (int)i;
    }
  }
  return -1;
}

static t2s_fault_pkt unhold(t2s_fault *f, int d, int i) {
  t2s_fault_pkt h = f->held[d][i];
  memmove(&f->held[d][i], &f->held[d][i + 1], (f->nheld[d] - (size_t)i - 1) * sizeof(h));
  f->nheld[d]--;
  return h;
}

static t2s_ssize give(t2s_fault *f, t2s_fault_pkt h, uint8_t *buf, size_t buflen) {
  t2s_ssize rv = T2S_ERR_NOBUF;
  if (h.len <= buflen) {
    memcpy(buf, h.data, h.len);
    rv = (t2s_ssize)h.len;
    f->last_flags = h.flags;
  }
  free(h.data);
  return rv;
}

static t2s_ssize fault_recv(void *self, uint8_t *buf, size_t buflen) {
  t2s_fault *f = self;
  if (!(f->o.dirs & T2S_FAULT_DIR_IN)) {
    t2s_ssize n = f->inner.ops->recv(f->inner.self, buf, buflen);
    f->last_flags = f->inner.ops->rx_flags ? f->inner.ops->rx_flags(f->inner.self) : 0;
    return n;
  }
  t2s_tstamp now = fnow(f);
  int i = due_index(f, 0, now, true);
  if (i >= 0) {
    return give(f, unhold(f, 0, i), buf, buflen);
  }
  for (int tries = 0; tries < 64; tries++) {
    t2s_ssize n = f->inner.ops->recv(f->inner.self, buf, buflen);
    if (n < 0) {
      /* Nothing to overtake a reordered packet: let it go now. */
      i = due_index(f, 0, T2S_TSTAMP_MAX - 1, true);
      if (i >= 0 && f->held[0][i].due == 0) {
        return give(f, unhold(f, 0, i), buf, buflen);
      }
      return n;
    }
    unsigned flags = f->inner.ops->rx_flags ? f->inner.ops->rx_flags(f->inner.self) : 0;
    size_t len = (size_t)n;
    if (t2s_rand_chance(&f->rand, f->o.loss_num, f->o.loss_den)) {
      f->lost[0]++;
      continue;
    }
    if (f->o.delay && f->clk.ops && t2s_rand_chance(&f->rand, f->o.delay_num, f->o.delay_den) &&
        hold(f, 0, buf, len, now + f->o.delay, flags)) {
      f->delayed[0]++;
      continue;
    }
    if (t2s_rand_chance(&f->rand, f->o.reorder_num, f->o.reorder_den) &&
        hold(f, 0, buf, len, 0, flags)) {
      f->reordered[0]++;
      continue; /* the next packet overtakes it */
    }
    if (t2s_rand_chance(&f->rand, f->o.dup_num, f->o.dup_den) && hold(f, 0, buf, len, 0, flags)) {
      f->duplicated[0]++;
    }
    f->last_flags = flags;
    return n;
  }
  return T2S_ERR_WOULDBLOCK;
}

static int fault_send(void *self, const uint8_t *pkt, size_t len) {
  t2s_fault *f = self;
  if (!(f->o.dirs & T2S_FAULT_DIR_OUT)) {
    return f->inner.ops->send(f->inner.self, pkt, len);
  }
  t2s_tstamp now = fnow(f);
  int i;
  while ((i = due_index(f, 1, now, false)) >= 0) { /* delayed packets now due */
    t2s_fault_pkt h = unhold(f, 1, i);
    f->inner.ops->send(f->inner.self, h.data, h.len);
    free(h.data);
  }
  int rv = 0;
  if (t2s_rand_chance(&f->rand, f->o.loss_num, f->o.loss_den)) {
    f->lost[1]++;
  } else if (f->o.delay && f->clk.ops &&
             t2s_rand_chance(&f->rand, f->o.delay_num, f->o.delay_den) &&
             hold(f, 1, pkt, len, now + f->o.delay, 0)) {
    f->delayed[1]++;
  } else if (t2s_rand_chance(&f->rand, f->o.reorder_num, f->o.reorder_den) &&
             hold(f, 1, pkt, len, 0, 0)) {
    f->reordered[1]++;
    return 0; /* sent after the next packet */
  } else {
    rv = f->inner.ops->send(f->inner.self, pkt, len);
    if (t2s_rand_chance(&f->rand, f->o.dup_num, f->o.dup_den)) {
      f->duplicated[1]++;
      f->inner.ops->send(f->inner.self, pkt, len);
    }
  }
  while ((i = due_index(f, 1, 0, true)) >= 0 && f->held[1][i].due == 0) { /* overtaken */
    t2s_fault_pkt h = unhold(f, 1, i);
    f->inner.ops->send(f->inner.self, h.data, h.len);
    free(h.data);
  }
  return rv;
}

static void fault_caps(void *self, t2s_device_caps *caps) {
  t2s_fault *f = self;
  f->inner.ops->get_caps(f->inner.self, caps);
}

static unsigned fault_rx_flags(void *self) {
  t2s_fault *f = self;
  return f->last_flags;
}

static const t2s_device_ops fault_ops = {fault_recv,     fault_send, fault_caps,
                                         fault_rx_flags, NULL,       NULL};

void t2s_fault_device(t2s_fault *f, t2s_device *out) {
  out->ops = &fault_ops;
  out->self = f;
}

/* ---------------- pcap tee ---------------- */

static void le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static void tee_write(t2s_pcap_tee *t, const uint8_t *pkt, size_t len) {
  if (t->error) {
    return;
  }
  t2s_tstamp ts = (t->clk.ops ? t->clk.ops->now(t->clk.self) : 0) + t->wall_base_ns;
  size_t caplen = T2S_MIN(len, (size_t)t->snaplen);
  uint8_t rh[16];
  le32(rh, (uint32_t)(ts / T2S_SECONDS));
  le32(rh + 4, (uint32_t)((ts % T2S_SECONDS) / T2S_MICROSECONDS));
  le32(rh + 8, (uint32_t)caplen);
  le32(rh + 12, (uint32_t)len);
  int rv = t->write(t->arg, rh, sizeof(rh));
  if (rv == 0) {
    rv = t->write(t->arg, pkt, caplen);
  }
  if (rv != 0) {
    t->error = rv;
    return;
  }
  t->packets++;
}

static t2s_ssize tee_recv(void *self, uint8_t *buf, size_t buflen) {
  t2s_pcap_tee *t = self;
  t2s_ssize n = t->inner.ops->recv(t->inner.self, buf, buflen);
  if (n > 0) {
    tee_write(t, buf, (size_t)n);
  }
  return n;
}

static int tee_send(void *self, const uint8_t *pkt, size_t len) {
  t2s_pcap_tee *t = self;
  tee_write(t, pkt, len);
  return t->inner.ops->send(t->inner.self, pkt, len);
}

static void tee_caps(void *self, t2s_device_caps *caps) {
  t2s_pcap_tee *t = self;
  t->inner.ops->get_caps(t->inner.self, caps);
}

static unsigned tee_rx_flags(void *self) {
  t2s_pcap_tee *t = self;
  return t->inner.ops->rx_flags ? t->inner.ops->rx_flags(t->inner.self) : 0;
}

static const t2s_device_ops tee_ops = {tee_recv, tee_send, tee_caps, tee_rx_flags, NULL, NULL};

int t2s_pcap_tee_init(t2s_pcap_tee *t, const t2s_device *inner, const t2s_clock *clk,
                      uint32_t snaplen, uint64_t wall_base_ns,
                      int (*write)(void *arg, const uint8_t *data, size_t len), void *arg) {
  memset(t, 0, sizeof(*t));
  t->inner = *inner;
  if (clk) {
    t->clk = *clk;
  }
  t->snaplen = snaplen ? snaplen : 65535;
  t->wall_base_ns = wall_base_ns;
  t->write = write;
  t->arg = arg;
  uint8_t gh[24];
  le32(gh, 0xa1b2c3d4); /* microsecond timestamps, written in the host's order: little */
  gh[4] = 2;            /* version 2.4 */
  gh[5] = 0;
  gh[6] = 4;
  gh[7] = 0;
  le32(gh + 8, 0);  /* thiszone */
  le32(gh + 12, 0); /* sigfigs */
  le32(gh + 16, t->snaplen);
  le32(gh + 20, 101); /* LINKTYPE_RAW */
  int rv = write(arg, gh, sizeof(gh));
  if (rv != 0) {
    t->error = rv;
  }
  return rv;
}

void t2s_pcap_tee_device(t2s_pcap_tee *t, t2s_device *out) {
  out->ops = &tee_ops;
  out->self = t;
}
