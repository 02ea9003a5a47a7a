/*
 * config_file.h: the --config file (docs/config.md): YAML read with libyaml, one key per
 * command-line option (the long option's name: `mtu: 1500`, `log-level: debug`), lists for
 * the options that repeat, `true`/`false` for the flags, and the proxies as a list of URLs or
 * of maps with their credentials ({url, username, password}). Every value goes through the
 * command line's own check (t2s_cli_apply), so the two cannot disagree on what is valid.
 *
 * Errors name the file, the line and the key: "tun2sock: /etc/tun2sock.yaml:7: mtu: '10':
 * must be a number in 576..65535". Unknown keys, a key given twice, a list where one value
 * is expected and a map where a value is expected are errors too.
 *
 * This is the only file that links libyaml; the core and the embedding library do not.
 */
#ifndef T2S_CONFIG_FILE_H
#define T2S_CONFIG_FILE_H

#include <stdio.h>

#include "cli.h"

/* A t2s_cli_loader (cli.h): reads path into *o (on top of what o holds; usually the
 * defaults) and records each key's line in *origin. arg is unused (NULL). Returns 0, or -1
 * after printing one message to err. */
int t2s_config_file_load(void *arg, const char *path, t2s_cli_opts *o, t2s_cli_origin *origin,
                         FILE *err);

/* The same on a buffer; path only names it in messages. */
int t2s_config_parse(const char *path, const char *data, size_t len, t2s_cli_opts *o,
                     t2s_cli_origin *origin, FILE *err);

#endif
