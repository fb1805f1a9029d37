// Ends the way argv[1] says, after 5 allocations that are never freed:
// "return N", "exit N", "_exit N" or "abort". The trace must hold the 5
// allocations and say how the process ended.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void* kept[5];

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  for (int i = 0; i < 5; ++i) kept[i] = malloc(64);  // SITE: kept
  int status = argc > 2 ? atoi(argv[2]) : 0;
  if (strcmp(argv[1], "exit") == 0) exit(status);
  if (strcmp(argv[1], "_exit") == 0) _exit(status);
  if (strcmp(argv[1], "abort") == 0) abort();
  return status;
}
