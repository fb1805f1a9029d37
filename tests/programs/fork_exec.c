// A parent allocates, forks a child that allocates, then replaces itself
// with exec_target. Three images, three traces. If the exec fails, it
// allocates 4 more times and exits with 3.
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void allocate(int n, size_t size) {
  for (int i = 0; i < n; ++i) free(malloc(size));  // SITE: allocate
}

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  allocate(11, 100);
  pid_t child = fork();
  if (child == 0) {
    allocate(22, 200);
    exit(0);
  }
  int status;
  waitpid(child, &status, 0);
  execl(argv[1], argv[1], (char*)NULL);
  allocate(4, 50);  // exec failed: tracing goes on in this image
  return 3;
}
