// Closes every descriptor above stderr (the trace's among them), then fills
// the low ones with /dev/null, allocating before and after.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

static void allocate_before(void) {
  for (int i = 0; i < 100; ++i) free(malloc(32));  // SITE: before
}

static void allocate_after(void) {
  for (int i = 0; i < 100; ++i) free(malloc(32));  // SITE: after
}

int main(void) {
  allocate_before();
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  for (int fd = 3; fd < (int)rl.rlim_cur && fd < 65536; ++fd) close(fd);
  int null_fd = open("/dev/null", O_WRONLY);
  for (int fd = 3; fd < 1024; ++fd) dup2(null_fd, fd);
  allocate_after();
  return 0;
}
