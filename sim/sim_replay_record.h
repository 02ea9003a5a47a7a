/*
 * sim_replay_record.h: tun2sock-sim --replay-record FILE (docs/recording.md).
 */
#ifndef T2S_SIM_REPLAY_RECORD_H
#define T2S_SIM_REPLAY_RECORD_H

/* Runs the mode with the whole command line. Returns the exit status: 0 identical, 1 a
 * difference, 2 a usage error or a file the replay refuses. */
int sim_replay_record_main(int argc, char **argv);

#endif
