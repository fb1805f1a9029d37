// Maps a page, then waits for SIGTERM, which it survives: it maps 10 more
// pages after it and exits 5. Under `pagewaste run`, a SIGTERM sent to
// pagewaste reaches the program, ends recording there (the trace ends
// "detach" with the one mapping before it), and the program runs on.
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t terminated = 0;
static void on_term(int sig) { terminated = sig == SIGTERM; }

static void map_page(void) {
  char* p = mmap(0, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: mmap
  p[0] = 1;
}

int main(void) {
  signal(SIGTERM, on_term);
  map_page();
  for (int i = 0; i < 3000 && !terminated; ++i) usleep(10000);
  if (!terminated) return 9;
  for (int i = 0; i < 10; ++i) map_page();
  return 5;
}
