// A tree of 200 short processes, as a test suite makes: the root forks 20
// children one after another, and each child, once its own work is done,
// forks 9 grandchildren one after another. Process k (0 to 199: child c is
// 10c, its grandchildren 10c+1 to 10c+9) maps 1 + k % 4 pages of 100 bytes
// each, writes to them, and unmaps them before it forks or exits, so that
// no two processes hold pages at once. A child waits 10 ms before it forks:
// its pages and its children's are then apart on the shim's clock too,
// which ticks every few milliseconds; the grandchildren, one after another,
// run several to a tick, told apart only by their lifetimes. The root maps
// nothing.
//
// Summed over the 200: 500 mappings of 100 bytes, 500 mmap and 500 munmap,
// 500 x 3,996 = 1,998,000 bytes of page-rounding waste; the most one
// process holds is 4 pages, 16,384 bytes. Exits 0 when every process did.
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static int map_pages(int k) {
  void* pages[4];
  int n = 1 + k % 4;
  for (int i = 0; i < n; ++i) {
    pages[i] = mmap(NULL, 100, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: tree_page
    if (pages[i] == MAP_FAILED) return 0;
    memset(pages[i], k, 100);
  }
  for (int i = 0; i < n; ++i) munmap(pages[i], 100);
  return 1;
}

// Runs process(k) in a child and waits for it.
static int in_child(int (*process)(int), int k) {
  pid_t pid = fork();
  if (pid == 0) _exit(process(k) ? 0 : 1);
  int status;
  return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
         WEXITSTATUS(status) == 0;
}

static int grandchild(int k) { return map_pages(k); }

static int child(int k) {
  if (!map_pages(k)) return 0;
  usleep(10000);
  for (int g = 1; g <= 9; ++g)
    if (!in_child(grandchild, k + g)) return 0;
  return 1;
}

int main(void) {
  for (int c = 0; c < 20; ++c)
    if (!in_child(child, 10 * c)) return 1;
  return 0;
}
