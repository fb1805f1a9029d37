// Allocates 100,000 blocks (enough to fill several trace chunks), then is
// killed with SIGKILL, which no handler can catch: the trace must still
// report the whole chunks it holds, and say it is truncated.
#include <signal.h>
#include <stdlib.h>

int main(void) {
  static void* keep;
  for (int i = 0; i < 100000; ++i) keep = malloc(24);  // SITE: leak
  raise(SIGKILL);
  return 0;
}
