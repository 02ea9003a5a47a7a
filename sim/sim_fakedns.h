/*
 * sim_fakedns.h: the simulator's side of --fake-dns (docs/scenarios.md, "Fake-IP DNS"): the
 * fake-IP table the engine answers from (created for the run, seeded from the run's seed), and
 * the client hosts' name lookups: a client whose destination is a name first sends an A (or
 * AAAA) query over UDP to a resolver address through the device link, as a stub resolver
 * would, and connects to the address answered.
 *
 * A lookup goes from the client host's address (198.18.0.2 / fd00:18::2, or the client's
 * `from`), port 40000 + its index, query ID 0x5300 + its index; it is sent again after 1 s, at
 * most 3 times in all. Events: `client_lookup` (name, resolver), `client_resolved` (name,
 * addr), `client_lookup_failed` (why).
 */
#ifndef T2S_SIM_FAKEDNS_H
#define T2S_SIM_FAKEDNS_H

#include "fakedns.h"
#include "packet.h"
#include "sim_client.h"
#include "sim_world.h"

/* Creates the table from *cfg (its hash key drawn from the run's seed; its blocks are not
 * counted in the engine's heap) and points the engine's configuration at it. Call before
 * sim_world_start. Returns 0, T2S_ERR_INVALID_ARGUMENT (a bad configuration) or
 * T2S_ERR_NOMEM. */
int sim_fakedns_install(sim_world *w, const t2s_fakedns_config *cfg);

/*
 * The client of *spec looks name up now: family T2S_AF_INET (A) or T2S_AF_INET6 (AAAA), at
 * resolver (with its port). When the answer comes, the client starts (sim_clients_start) with
 * the address answered and spec->remote's port. spec->text is copied. Returns 0 or
 * T2S_ERR_NOMEM.
 */
int sim_fakedns_lookup(sim_world *w, const sim_client_spec *spec, const char *name, uint8_t family,
                       const t2s_addr *resolver, t2s_tstamp now);

/* A UDP datagram toward a client host that no client took: the answer of a lookup, maybe. */
void sim_fakedns_client_input(sim_world *w, const t2s_pkt *p, t2s_tstamp now);

/* The address the lookup of client `client` got (false: none, or not answered). */
bool sim_fakedns_resolved(const sim_world *w, const char *client, t2s_addr *out);

/* The table's counters; false when the run has no fake-IP table. */
bool sim_fakedns_stats(const sim_world *w, t2s_fakedns_stats *st);

/* Frees the lookups and the table (after the engine, which unpins its flows). */
void sim_fakedns_free(sim_world *w);

#endif
