/* test_corpus.c: the parser over real captures (raw-IP pcaps) and fuzzing seeds (one raw
 * packet per file). Nothing may crash; some packets must parse; a summary of drop reasons is
 * printed. Skips, visibly, when the corpora are not there. */
#include <dirent.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packet.h"
#include "test_util.h"

#ifndef T2S_CORPORA_DIR
#define T2S_CORPORA_DIR "corpora"
#endif

/* Link types of raw IP captures: LINKTYPE_RAW (101, which libpcap reports as DLT_RAW 12, or
 * 14 on OpenBSD), LINKTYPE_IPV4 (228), LINKTYPE_IPV6 (229). */
static bool is_raw_linktype(int dlt) {
  return dlt == 12 || dlt == 14 || dlt == 101 || dlt == 228 || dlt == 229;
}

typedef struct corpus_stats {
  unsigned files;
  unsigned skipped_files; /* unreadable or not raw IP */
  unsigned packets;
  unsigned drops[T2S_DROP_MAX];
} corpus_stats;

/* Parses one packet from a heap copy of exactly len bytes (ASan sees any overread). */
static void parse_one(corpus_stats *st, const uint8_t *data, size_t len, const char *what) {
  uint8_t *copy = malloc(len ? len : 1);
  CU_ASSERT_FATAL(copy != NULL);
  if (len) {
    memcpy(copy, data, len);
  }
  t2s_pkt p;
  t2s_drop_reason r = t2s_pkt_parse(copy, len, &p);
  if (r < T2S_DROP_NONE || r >= T2S_DROP_MAX) {
    fprintf(stderr, "bad drop reason %d for %s\n", (int)r, what);
    CU_FAIL("parser returned an out-of-range drop reason");
  } else {
    st->drops[r]++;
  }
  if (r == T2S_DROP_NONE) {
    /* The view stays inside the buffer. */
    CU_ASSERT(p.len <= len && p.l4off <= p.len);
    CU_ASSERT(p.payload >= copy && p.payload + p.payload_len <= copy + p.len);
  }
  st->packets++;
  free(copy);
}

static void print_stats(const char *title, const corpus_stats *st) {
  printf("\n  %s: %u files (%u skipped), %u packets\n", title, st->files, st->skipped_files,
         st->packets);
  for (int r = 0; r < T2S_DROP_MAX; r++) {
    if (st->drops[r]) {
      printf("    %-26s %7u\n", t2s_drop_name(r), st->drops[r]);
    }
  }
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The regular files in dir whose name ends in suffix (sorted, for a stable order). Returns the
 * count, or -1 when the directory cannot be opened. */
static int list_dir(const char *dir, const char *suffix, char ***pnames) {
  DIR *d = opendir(dir);
  if (d == NULL) {
    return -1;
  }
  size_t n = 0, cap = 64;
  char **names = malloc(cap * sizeof(*names));
  CU_ASSERT_FATAL(names != NULL);
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    size_t l = strlen(e->d_name), sl = strlen(suffix);
    if (e->d_name[0] == '.' || l < sl || strcmp(e->d_name + l - sl, suffix) != 0) {
      continue;
    }
    if (n == cap) {
      cap *= 2;
      names = realloc(names, cap * sizeof(*names));
      CU_ASSERT_FATAL(names != NULL);
    }
    names[n] = strdup(e->d_name);
    CU_ASSERT_FATAL(names[n] != NULL);
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof(*names), name_cmp);
  *pnames = names;
  return (int)n;
}

static void free_names(char **names, int n) {
  for (int i = 0; i < n; i++) {
    free(names[i]);
  }
  free(names);
}

/* Parses every packet of one pcap; per-file counts go into *file_st as well. */
static void parse_pcap(corpus_stats *st, corpus_stats *file_st, const char *path) {
  char err[PCAP_ERRBUF_SIZE];
  pcap_t *pc = pcap_open_offline(path, err);
  if (pc == NULL) {
    printf("  (cannot open %s: %s)\n", path, err);
    st->skipped_files++;
    return;
  }
  int dlt = pcap_datalink(pc);
  if (!is_raw_linktype(dlt)) {
    printf("  (skipping %s: link type %d is not raw IP)\n", path, dlt);
    st->skipped_files++;
    pcap_close(pc);
    return;
  }
  struct pcap_pkthdr *h;
  const u_char *data;
  int rc;
  while ((rc = pcap_next_ex(pc, &h, &data)) == 1) {
    parse_one(file_st, data, h->caplen, path);
  }
  pcap_close(pc);
  st->files++;
  st->packets += file_st->packets;
  for (int r = 0; r < T2S_DROP_MAX; r++) {
    st->drops[r] += file_st->drops[r];
  }
}

/* Expectations for captures whose point is one particular defect: the file must yield at
 * least one packet with that drop reason. */
static const struct {
  const char *file;
  t2s_drop_reason reason;
} expected[] = {
    {"tcpdump__ipv4_invalid_hdr_length.raw.pcap", T2S_DROP_IPV4_BAD_IHL},
    {"tcpdump__ipv4_invalid_total_length.raw.pcap", T2S_DROP_IPV4_BAD_TOTAL_LEN},
    {"tcpdump__ipv6_jumbogram_1.raw.pcap", T2S_DROP_IPV6_JUMBOGRAM},
    {"tcpdump__ipv6_no_next_header.raw.pcap", T2S_DROP_UNSUPPORTED_PROTO},
    {"suricata__exception-policy-defrag-01_ipv4frags.raw.pcap", T2S_DROP_FRAGMENT},
    {"suricata__defrag_bug-6887-defrag-ipv6-tcp_frag-ip-tcp.raw.pcap", T2S_DROP_FRAGMENT},
    {"tcpdump__LINKTYPE_RAW_ipv4.raw.pcap", T2S_DROP_NONE},
    {"tcpdump__LINKTYPE_RAW_ipv6.raw.pcap", T2S_DROP_NONE},
    {"tcpdump__icmpv6.raw.pcap", T2S_DROP_BAD_DST_ADDR}, /* neighbour discovery to ff02:: */
    {"tcpdump__bigtcp-ipv6-hbh.raw.pcap", T2S_DROP_IPV6_JUMBOGRAM},
    {"tcpdump__ipv6-routing-header.raw.pcap", T2S_DROP_IPV6_BAD_EXT_HEADER}, /* segleft > 0 */
    /* Captured on the sending host with checksum offload: tcpdump flags them too. */
    {"tcpdump__quic_handshake.raw.pcap", T2S_DROP_UDP_BAD_CHECKSUM},
    {"tcpdump__accecn_handshake.raw.pcap", T2S_DROP_TCP_BAD_CHECKSUM},
    {"suricata__tcp-empty-sack_tcp-opt.raw.pcap", T2S_DROP_NONE},
};

static void test_corpus_pcaps(void) {
  const char *dir = T2S_CORPORA_DIR "/pcaps/rawip";
  char **names;
  int n = list_dir(dir, ".pcap", &names);
  if (n < 0) {
    printf("\n  SKIP: corpus not found at %s\n", dir);
    return;
  }
  corpus_stats st = {0};
  for (int i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    corpus_stats file_st = {0};
    parse_pcap(&st, &file_st, path);
    for (size_t e = 0; e < T2S_ARRAY_LEN(expected); e++) {
      if (strcmp(names[i], expected[e].file) == 0 && file_st.drops[expected[e].reason] == 0) {
        printf("\n  %s: expected at least one packet with drop reason %s\n", names[i],
               t2s_drop_name(expected[e].reason));
        CU_FAIL("a capture did not show the defect it was made for");
      }
    }
  }
  free_names(names, n);
  print_stats("pcaps/rawip", &st);
  CU_ASSERT(st.files > 0);
  CU_ASSERT(st.drops[T2S_DROP_NONE] > 0);
}

static void test_corpus_fuzz_seeds(void) {
  const char *dir = T2S_CORPORA_DIR "/fuzz-seeds/tcpdump-ip";
  char **names;
  int n = list_dir(dir, "", &names);
  if (n < 0) {
    printf("\n  SKIP: corpus not found at %s\n", dir);
    return;
  }
  corpus_stats st = {0};
  size_t cap = 65536;
  uint8_t *buf = malloc(cap);
  CU_ASSERT_FATAL(buf != NULL);
  for (int i = 0; i < n; i++) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
      st.skipped_files++;
      continue;
    }
    size_t len = 0, got;
    while ((got = fread(buf + len, 1, cap - len, f)) > 0) {
      len += got;
      if (len == cap) {
        cap *= 2;
        buf = realloc(buf, cap);
        CU_ASSERT_FATAL(buf != NULL);
      }
    }
    fclose(f);
    st.files++;
    parse_one(&st, buf, len, path);
  }
  free(buf);
  free_names(names, n);
  print_stats("fuzz-seeds/tcpdump-ip", &st);
  CU_ASSERT(st.files > 0);
  CU_ASSERT(st.drops[T2S_DROP_NONE] > 0);
}

int t2s_test_register_corpus(void) {
  CU_pSuite s = CU_add_suite("corpus", NULL, NULL);
  if (s == NULL || !CU_add_test(s, "parse raw-IP pcaps", test_corpus_pcaps) ||
      !CU_add_test(s, "parse tcpdump fuzz seeds", test_corpus_fuzz_seeds)) {
    return -1;
  }
  return 0;
}
