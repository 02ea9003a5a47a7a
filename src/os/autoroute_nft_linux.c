/* autoroute_nft_linux.c: the nftables table of --exclude-cgroup (see autoroute_internal.h). */
#include "autoroute_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---------------- nftables (--exclude-cgroup) ---------------- */

/* Runs nft -f - with script on stdin. Returns its exit status, or -errno. */
static int run_nft(const char *script, bool quiet) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) != 0) {
    return -errno;
  }
  pid_t pid = fork();
  if (pid < 0) {
    int err = -errno;
    close(pfd[0]);
    close(pfd[1]);
    return err;
  }
  if (pid == 0) {
    dup2(pfd[0], 0);
    if (quiet) {
      int dn = open("/dev/null", O_WRONLY | O_CLOEXEC);
      if (dn >= 0) {
        dup2(dn, 2);
      }
    }
    execl(AR_NFT, "nft", "-f", "-", (char *)NULL);
    _exit(127);
  }
  close(pfd[0]);
  size_t len = strlen(script);
  size_t off = 0;
  while (off < len) {
    ssize_t n = write(pfd[1], script + off, len - off);
    if (n <= 0) {
      break;
    }
    off += (size_t)n;
  }
  close(pfd[1]);
  int st = 0;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static bool have_nft(void) {
  return access(AR_NFT, X_OK) == 0;
}

/* Removes our nftables table if it exists ("add" then "delete" never fails on absence). */
void t2s_ar_nft_cleanup(uint32_t table) {
  if (!have_nft()) {
    return;
  }
  char script[256];
  snprintf(script, sizeof(script),
           "add table inet t2s_autoroute_%u\ndelete table inet t2s_autoroute_%u\n", table, table);
  run_nft(script, true);
}

/* Finds the cgroup v2 mount point. */
static int cgroup2_mount(char *out, size_t outlen) {
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) {
    return -errno;
  }
  char line[4096];
  int rv = -ENOENT;
  for (int i = 0; i < 100000 && fgets(line, sizeof(line), f); i++) {
    /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS... - FSTYPE SOURCE SUPER */
    char *sep = strstr(line, " - ");
    if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0) {
      continue;
    }
    char mp[1024];
    if (sscanf(line, "%*s %*s %*s %*s %1023s", mp) == 1) {
      snprintf(out, outlen, "%s", mp);
      rv = 0;
      break;
    }
  }
  fclose(f);
  return rv;
}

/* Turns a cgroup v2 path into what nft wants: a path relative to /sys/fs/cgroup and the level
 * (depth below the v2 root). */
static int cgroup_for_nft(const char *path, char *rel, size_t rellen, unsigned *level, char *why,
                          size_t whylen) {
  char mp[1024];
  if (cgroup2_mount(mp, sizeof(mp)) != 0) {
    snprintf(why, whylen, "--exclude-cgroup %s: no cgroup v2 hierarchy is mounted", path);
    return -ENOENT;
  }
  size_t mplen = strlen(mp);
  const char *sub;
  if (path[0] == '/') {
    if (strncmp(path, mp, mplen) != 0 || (path[mplen] != '/' && path[mplen] != '\0')) {
      snprintf(why, whylen, "--exclude-cgroup %s: not under the cgroup v2 mount %s", path, mp);
      return -EINVAL;
    }
    sub = path + mplen;
  } else {
    sub = path;
  }
  while (*sub == '/') {
    sub++;
  }
  char full[2048];
  snprintf(full, sizeof(full), "%s/%s", mp, sub);
  struct stat st;
  if (stat(full, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(why, whylen, "--exclude-cgroup %s: %s is not a cgroup directory", path, full);
    return -ENOENT;
  }
  static const char base[] = "/sys/fs/cgroup";
  if (strncmp(mp, base, sizeof(base) - 1) != 0 ||
      (mp[sizeof(base) - 1] != '/' && mp[sizeof(base) - 1] != '\0')) {
    snprintf(why, whylen,
             "--exclude-cgroup %s: nft resolves cgroup paths below /sys/fs/cgroup, and the "
             "cgroup v2 mount is %s",
             path, mp);
    return -EINVAL;
  }
  const char *mprel = mp + sizeof(base) - 1;
  while (*mprel == '/') {
    mprel++;
  }
  snprintf(rel, rellen, "%s%s%s", mprel, *mprel && *sub ? "/" : "", sub);
  /* The level: components of sub ("" is the root, level 0). */
  unsigned lv = 0;
  bool in = false;
  for (const char *p = sub; *p; p++) {
    if (*p != '/' && !in) {
      lv++;
    }
    in = *p != '/';
  }
  *level = lv;
  if (strchr(rel, '"')) {
    snprintf(why, whylen, "--exclude-cgroup %s: a quote in the path", path);
    return -EINVAL;
  }
  return 0;
}

int t2s_ar_nft_install(const t2s_autoroute *ar, char *why, size_t whylen) {
  if (!have_nft()) {
    snprintf(why, whylen, "--exclude-cgroup needs nftables (%s not found)", AR_NFT);
    return -ENOENT;
  }
  /* output (route): the mark makes the kernel route the packet again, now by rule P+0 to the
   * main table; the connection gets the mark too (ct mark). postrouting (nat): the socket chose its
   * source address by the first route, through the TUN; masquerade gives it the address of the
   * interface it really leaves by. */
  char sel[AR_MAX_LIST][2200];
  for (size_t i = 0; i < ar->cfg.ncgroups; i++) {
    char rel[2048];
    unsigned level = 0;
    int rv = cgroup_for_nft(ar->cfg.cgroups[i], rel, sizeof(rel), &level, why, whylen);
    if (rv < 0) {
      return rv;
    }
    snprintf(sel[i], sizeof(sel[i]), "socket cgroupv2 level %u \"%s\"", level, rel);
  }
  char script[32768];
  size_t off = 0;
  off += (size_t)snprintf(script + off, sizeof(script) - off,
                          "table inet t2s_autoroute_%u {\n"
                          "  chain output {\n"
                          "    type route hook output priority mangle; policy accept;\n",
                          ar->cfg.table);
  for (size_t i = 0; i < ar->cfg.ncgroups && off < sizeof(script); i++) {
    off += (size_t)snprintf(script + off, sizeof(script) - off,
                            "    %s meta mark set 0x%x ct mark set 0x%x\n", sel[i], ar->cfg.fwmark,
                            ar->cfg.fwmark);
  }
  if (off < sizeof(script)) {
    off += (size_t)snprintf(script + off, sizeof(script) - off,
                            "  }\n"
                            "  chain postrouting {\n"
                            "    type nat hook postrouting priority srcnat; policy accept;\n");
  }
  if (off < sizeof(script)) {
    /* socket is not allowed here: the connection's mark, set in output, says who it is. */
    off += (size_t)snprintf(script + off, sizeof(script) - off,
                            "    ct mark 0x%x oifname != \"lo\" masquerade\n", ar->cfg.fwmark);
  }
  if (off >= sizeof(script) - 16) {
    snprintf(why, whylen, "--exclude-cgroup: too many or too long paths");
    return -E2BIG;
  }
  snprintf(script + off, sizeof(script) - off, "  }\n}\n");
  int st = run_nft(script, false);
  if (st != 0) {
    snprintf(why, whylen, "--exclude-cgroup: nft refused the rule set (exit %d; see above)", st);
    return -EINVAL;
  }
  return 0;
}
