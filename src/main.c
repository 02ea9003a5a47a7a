/* main.c: the tun2sock binary (placeholder until the binary issue lands). */
#include <stdio.h>

int main(void) {
  fprintf(stderr, "tun2sock: not implemented yet\n");
  return 1;
}
