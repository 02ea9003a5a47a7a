/* sim_placeholder.c: keeps the simulator library non-empty. */
int t2s_sim_placeholder;
