/* fakedns_host.c: the --fake-dns table from the options and its state file (fakedns_host.h). */
#include "fakedns_host.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATE_FILE_MAX (64u << 20)

int t2s_fakedns_host_new(t2s_fakedns **ptable, const t2s_cli_opts *o, uint64_t seed) {
  t2s_fakedns_config cfg;
  t2s_fakedns_config_default(&cfg);
  cfg.pool4 = o->fake_dns_pool4.addr;
  cfg.pool4_prefix = o->fake_dns_pool4.prefixlen;
  cfg.pool6 = o->fake_dns_pool6.addr;
  cfg.pool6_prefix = o->fake_dns_pool6.prefixlen;
  cfg.size = o->fake_dns_size;
  cfg.seed = seed;
  for (size_t i = 0; i < o->nfake_dns_exclude && i < T2S_FAKEDNS_MAX_EXCLUDE; i++) {
    cfg.exclude[cfg.nexclude++] = o->fake_dns_exclude[i];
  }
  for (size_t i = 0; i < o->naddresses && cfg.navoid < T2S_FAKEDNS_MAX_AVOID; i++) {
    cfg.avoid[cfg.navoid++] = o->addresses[i].addr;
  }
  return t2s_fakedns_new(ptable, &cfg);
}

int t2s_fakedns_host_load(t2s_fakedns *t, const char *path, size_t *ploaded, size_t *pskipped) {
  *ploaded = *pskipped = 0;
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    return errno == ENOENT ? 0 : T2S_ERR_INVALID_ARGUMENT;
  }
  size_t cap = 1 << 16, len = 0;
  char *buf = malloc(cap);
  int rv = buf ? 0 : T2S_ERR_NOMEM;
  while (rv == 0) { /* bounded by STATE_FILE_MAX */
    if (len == cap) {
      if (cap >= STATE_FILE_MAX) {
        rv = T2S_ERR_LIMIT;
        break;
      }
      char *p = realloc(buf, cap * 2);
      if (p == NULL) {
        rv = T2S_ERR_NOMEM;
        break;
      }
      buf = p;
      cap *= 2;
    }
    size_t n = fread(buf + len, 1, cap - len, f);
    len += n;
    if (n == 0) {
      rv = ferror(f) ? T2S_ERR_INVALID_ARGUMENT : 0;
      break;
    }
  }
  fclose(f);
  if (rv == 0) {
    rv = t2s_fakedns_state_load(t, buf, len, ploaded, pskipped);
  }
  free(buf);
  return rv;
}

int t2s_fakedns_host_save(const t2s_fakedns *t, const char *path, int *perrno) {
  size_t len = t2s_fakedns_state_len(t);
  char *buf = malloc(len + 1);
  char tmp[4200];
  if (perrno) {
    *perrno = 0;
  }
  if (buf == NULL) {
    return T2S_ERR_NOMEM;
  }
  t2s_ssize n = t2s_fakedns_state_write(t, buf, len + 1);
  int rv = n < 0 ? (int)n : 0;
  if (rv == 0 &&
      snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp)) {
    rv = T2S_ERR_INVALID_ARGUMENT;
  }
  FILE *f = rv == 0 ? fopen(tmp, "wb") : NULL;
  if (rv == 0 && f == NULL) {
    rv = T2S_ERR_INVALID_ARGUMENT;
  }
  if (f != NULL) {
    bool ok = fwrite(buf, 1, (size_t)n, f) == (size_t)n;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
      if (perrno) {
        *perrno = errno;
      }
      unlink(tmp);
      rv = T2S_ERR_INVALID_ARGUMENT;
    }
  } else if (perrno && rv == T2S_ERR_INVALID_ARGUMENT) {
    *perrno = errno;
  }
  free(buf);
  return rv;
}

int t2s_fakedns_host_start(t2s_fakedns **ptable, const t2s_cli_opts *o, uint64_t seed) {
  *ptable = NULL;
  if (!o->fake_dns) {
    return 0;
  }
  t2s_fakedns *t;
  int rv = t2s_fakedns_host_new(&t, o, seed);
  if (rv != 0) {
    T2S_ERROR("--fake-dns: cannot create the table: %s", t2s_strerror(rv));
    return rv;
  }
  if (o->fake_dns_state[0]) {
    size_t loaded = 0, skipped = 0;
    rv = t2s_fakedns_host_load(t, o->fake_dns_state, &loaded, &skipped);
    if (rv != 0) {
      T2S_WARN("--fake-dns-state %s: not loaded (%s); starting empty", o->fake_dns_state,
               t2s_strerror(rv));
      t2s_fakedns_del(t);
      if ((rv = t2s_fakedns_host_new(&t, o, seed)) != 0) {
        return rv;
      }
    } else {
      T2S_INFO("--fake-dns-state %s: %zu names loaded, %zu lines skipped", o->fake_dns_state,
               loaded, skipped);
    }
  }
  char p4[64], p6[64];
  T2S_INFO("fake-dns on: pools %s/%u and %s/%u, %u names at most",
           t2s_addr_format(&o->fake_dns_pool4.addr, false, p4, sizeof(p4)),
           o->fake_dns_pool4.prefixlen,
           t2s_addr_format(&o->fake_dns_pool6.addr, false, p6, sizeof(p6)),
           o->fake_dns_pool6.prefixlen, o->fake_dns_size);
  *ptable = t;
  return 0;
}

void t2s_fakedns_host_stop(t2s_fakedns *t, const t2s_cli_opts *o) {
  if (t == NULL) {
    return;
  }
  if (o->fake_dns_state[0]) {
    int err = 0;
    int rv = t2s_fakedns_host_save(t, o->fake_dns_state, &err);
    if (rv != 0) {
      T2S_WARN("--fake-dns-state %s: not saved: %s", o->fake_dns_state,
               err ? strerror(err) : t2s_strerror(rv));
    } else {
      t2s_fakedns_stats st;
      t2s_fakedns_get_stats(t, &st);
      T2S_INFO("--fake-dns-state %s: %llu names saved", o->fake_dns_state,
               (unsigned long long)st.entries);
    }
  }
  t2s_fakedns_del(t);
}
