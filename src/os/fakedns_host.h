/*
 * fakedns_host.h: the binary's side of --fake-dns (docs/fake-dns.md): the table built from the
 * command line, and the --fake-dns-state file read at start and written at exit (the file I/O
 * the sans-I/O core leaves to its host).
 */
#ifndef T2S_FAKEDNS_HOST_H
#define T2S_FAKEDNS_HOST_H

#include "cli.h"
#include "fakedns.h"

/* Creates the table from the options: pools, exclusions, size; the TUN's own --address es are
 * never given out. seed keys its hashes. Returns 0, T2S_ERR_INVALID_ARGUMENT or
 * T2S_ERR_NOMEM. */
int t2s_fakedns_host_new(t2s_fakedns **ptable, const t2s_cli_opts *opts, uint64_t seed);

/* Loads the state file at path into the (empty) table. A missing file is no error (nothing
 * loaded). Returns 0, or the T2S_ERR_* of a read error (T2S_ERR_MALFORMED: not a state file,
 * T2S_ERR_LIMIT: over 64 MiB); *ploaded and *pskipped as t2s_fakedns_state_load. */
int t2s_fakedns_host_load(t2s_fakedns *t, const char *path, size_t *ploaded, size_t *pskipped);

/* Writes the state to path atomically (a temporary file beside it, then rename). Returns 0 or
 * the T2S_ERR_* of the failure (*perrno, may be NULL, receives the errno). */
int t2s_fakedns_host_save(const t2s_fakedns *t, const char *path, int *perrno);

/* What the runner calls: creates the table from the options and loads --fake-dns-state when
 * given (a state that cannot be read is logged and ignored: the table starts empty). Returns
 * 0 (*ptable NULL when --fake-dns is off) or the error of t2s_fakedns_host_new. */
int t2s_fakedns_host_start(t2s_fakedns **ptable, const t2s_cli_opts *opts, uint64_t seed);
/* Writes --fake-dns-state when given (a failure is logged) and frees the table (NULL: nothing).
 * Call after the engine that borrowed it is deleted. */
void t2s_fakedns_host_stop(t2s_fakedns *t, const t2s_cli_opts *opts);

#endif
