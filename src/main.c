/* main.c: the tun2sock binary: options, proxy address, privileges, then the runner. The only
 * place where exit codes (T2S_EXIT_*, below) are made: everything it calls returns T2S_ERR_*. */
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "caps_linux.h"
#include "cli.h"
#include "config_file.h"
#include "log.h"
#include "os_error.h"
#include "proxy_resolve.h"
#include "runner.h"

/* Exit codes of the binary (docs/cli.md); nothing below main() knows them. */
enum {
  T2S_EXIT_OK = 0,
  T2S_EXIT_FAILURE = 1, /* runtime failure, missing privilege */
  T2S_EXIT_USAGE = 2,   /* a bad or missing option */
};

/* Reads the first line of path into out (without the line end). Returns 0, T2S_ERR_LIMIT
 * (longer than outlen - 1), or the T2S_ERR_* of the failed open with *perrno its errno. */
static int read_password_file(const char *path, char *out, size_t outlen, int *perrno) {
  FILE *f = fopen(path, "re");
  if (!f) {
    *perrno = errno;
    return t2s_err_from_errno(errno);
  }
  char line[T2S_PROXY_FIELD_MAX + 2];
  int rv = 0;
  if (!fgets(line, sizeof(line), f)) {
    line[0] = '\0';
  }
  size_t n = strcspn(line, "\r\n");
  if (n >= outlen || (n == strlen(line) && !feof(f) && n == sizeof(line) - 1)) {
    rv = T2S_ERR_LIMIT;
  } else {
    memcpy(out, line, n);
    out[n] = '\0';
  }
  explicit_bzero(line, sizeof(line));
  fclose(f);
  return rv;
}

/* Keeps only the capabilities the running loop still needs. */
/* The command line as one string for --record's header, arguments separated by spaces, with
 * the password of a URL (scheme://user:PASSWORD@host) replaced by "***". */
static void join_cmdline(int argc, char **argv, char *out, size_t outlen) {
  size_t n = 0;
  out[0] = '\0';
  for (int i = 0; i < argc && n + 1 < outlen; i++) {
    const char *a = argv[i];
    const char *scheme = strstr(a, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *colon = at ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    int w = colon ? snprintf(out + n, outlen - n, "%s%.*s***%s", i ? " " : "", (int)(colon + 1 - a),
                             a, at)
                  : snprintf(out + n, outlen - n, "%s%s", i ? " " : "", a);
    if (w < 0 || (size_t)w >= outlen - n) {
      break; /* truncated: what fits stays */
    }
    n += (size_t)w;
  }
}

static void drop_capabilities(const t2s_runner *r) {
  uint64_t keep = 0;
  if (t2s_runner_needs_net_admin(r)) {
    keep |= 1ull << CAP_NET_ADMIN;
  }
  /* SO_BINDTODEVICE on a fresh socket needs CAP_NET_RAW only before Linux 5.7. */
  if (t2s_kernel_older_than(5, 7)) {
    keep |= 1ull << CAP_NET_RAW;
  }
  int err = 0;
  if (t2s_caps_restrict(keep, &err) != 0) {
    T2S_WARN("cannot drop capabilities: %s", strerror(err));
  } else {
    T2S_DEBUG("capabilities after setup:%s%s", (keep >> CAP_NET_ADMIN) & 1 ? " CAP_NET_ADMIN" : "",
              (keep >> CAP_NET_RAW) & 1 ? " CAP_NET_RAW" : "");
  }
}

/* The first proxy's password: --proxy-password-file, then TUN2SOCK_PROXY_PASSWORD (when the
 * URL names a user), then the URL's; the URL's copy in *opts is wiped. Returns 0, or -1 with
 * the reason in why. */
static int first_password(t2s_cli_opts *opts, char *password, size_t passlen, char *why,
                          size_t whylen) {
  snprintf(password, passlen, "%s", opts->proxy.has_pass ? opts->proxy.pass : "");
  explicit_bzero(opts->proxy.pass, sizeof(opts->proxy.pass));
  if (opts->password_file[0]) {
    if (!opts->proxy.has_user) {
      snprintf(why, whylen,
               "--proxy-password-file needs a user name in --proxy (socks5://USER@HOST:PORT)");
      return -1;
    }
    int err = 0;
    int rv = read_password_file(opts->password_file, password, passlen, &err);
    if (rv != 0) {
      snprintf(why, whylen, "--proxy-password-file '%s': %s", opts->password_file,
               rv == T2S_ERR_LIMIT ? "password longer than 255 bytes" : strerror(err));
      return -1;
    }
  } else if (getenv("TUN2SOCK_PROXY_PASSWORD") && opts->proxy.has_user) {
    const char *env = getenv("TUN2SOCK_PROXY_PASSWORD");
    if (strlen(env) >= passlen) {
      snprintf(why, whylen, "TUN2SOCK_PROXY_PASSWORD: longer than 255 bytes");
      return -1;
    }
    snprintf(password, passlen, "%s", env);
  }
  return 0;
}

typedef struct reload_args {
  int argc;
  char **argv;
} reload_args;

/* The runner's reload (SIGHUP with --config): the command line and the file read again, as at
 * start (the file first, the command line on top), and the first proxy's password. */
static int reload_config(void *arg, t2s_cli_opts *opts, char *password, size_t passlen, char *why,
                         size_t whylen) {
  const reload_args *a = arg;
  char *msg = NULL;
  size_t msglen = 0;
  FILE *err = open_memstream(&msg, &msglen);
  FILE *out = fopen("/dev/null", "we");
  t2s_cli_result res = T2S_CLI_BAD;
  if (err && out) {
    res = t2s_cli_parse_with(a->argc, a->argv, opts, t2s_config_file_load, NULL, out, err);
  }
  if (err) {
    fclose(err);
  }
  if (out) {
    fclose(out);
  }
  int rv = 0;
  if (res != T2S_CLI_RUN) {
    /* The first line of the message, without "tun2sock: " (the log has its own prefix). */
    const char *m = msg && *msg ? msg : "cannot read the options";
    m += strncmp(m, "tun2sock: ", 10) == 0 ? 10 : 0;
    snprintf(why, whylen, "%.*s", (int)strcspn(m, "\n"), m);
    rv = -1;
  } else {
    rv = first_password(opts, password, passlen, why, whylen);
  }
  free(msg);
  return rv;
}

int main(int argc, char **argv) {
  t2s_cli_opts opts;
  switch (t2s_cli_parse_with(argc, argv, &opts, t2s_config_file_load, NULL, stdout, stderr)) {
  case T2S_CLI_EXIT:
    return T2S_EXIT_OK;
  case T2S_CLI_BAD:
    return T2S_EXIT_USAGE;
  case T2S_CLI_RUN:
    break;
  }
  t2s_log_set_level(opts.log_level);

  /* The password: --proxy-password-file, then TUN2SOCK_PROXY_PASSWORD, then the URL. */
  char password[T2S_PROXY_FIELD_MAX];
  char why[4200];
  if (first_password(&opts, password, sizeof(password), why, sizeof(why)) != 0) {
    fprintf(stderr, "tun2sock: %s\n", why);
    return T2S_EXIT_USAGE;
  }

  char cmdline[2048];
  join_cmdline(argc, argv, cmdline, sizeof(cmdline));
  t2s_runner_config cfg = {
      .opts = &opts,
      .cmdline = cmdline,
      .username = opts.proxy.has_user ? opts.proxy.user : NULL,
      .password = password,
      .handle_signals = true,
      .owns_fd = true,
      /* With --config, SIGHUP reads the file again (docs/config.md); without, it stops. */
      .reload = opts.config_path[0] ? reload_config : NULL,
      .reload_arg = &(reload_args){argc, argv},
  };
  /* A name that does not resolve now is not fatal: family 0, UNRESOLVED (docs/proxies.md). */
  t2s_proxy_resolve_at_start(opts.proxy.host, opts.proxy.port, &cfg.proxy);
  t2s_runner *r = NULL;
  int rv = t2s_runner_new(&r, &cfg);
  explicit_bzero(password, sizeof(password));
  if (rv != 0) {
    return rv == T2S_ERR_INVALID_ARGUMENT ? T2S_EXIT_USAGE : T2S_EXIT_FAILURE;
  }
  drop_capabilities(r);
  rv = t2s_runner_run(r);
  t2s_runner_del(r);
  return rv == 0 ? T2S_EXIT_OK : T2S_EXIT_FAILURE;
}
