/* sim_main.c: tun2sock-sim (placeholder until the simulator lands). */
#include <stdio.h>

int main(void) {
  fprintf(stderr, "tun2sock-sim: not implemented yet\n");
  return 1;
}
