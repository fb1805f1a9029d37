// Threads that map pages in a process and in the process it forks while
// they run: the parent's 3 threads each make 200 one-page mappings and
// unmap them; the child, forked as they start, runs 2 threads of 300 each.
// Counts: the parent 600 mmap at `thread_map` and 600 munmap at
// `thread_unmap`; the child 600 and 600 at the same lines.
#include <pthread.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void* map_pages(void* arg) {
  long count = (long)arg;
  for (long i = 0; i < count; ++i) {
    char* p = mmap(NULL, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: thread_map
    if (p == MAP_FAILED) return (void*)1;
    p[0] = 1;
    munmap(p, 2);  // SITE: thread_unmap
  }
  return NULL;
}

static int run_threads(int threads, long each) {
  pthread_t t[4];
  for (int i = 0; i < threads; ++i) pthread_create(&t[i], NULL, map_pages, (void*)each);
  int failed = 0;
  for (int i = 0; i < threads; ++i) {
    void* result;
    pthread_join(t[i], &result);
    failed |= result != NULL;
  }
  return failed;
}

int main(void) {
  pthread_t parent_threads[3];
  for (int i = 0; i < 3; ++i) pthread_create(&parent_threads[i], NULL, map_pages, (void*)200L);
  pid_t child = fork();
  if (child == 0) _exit(run_threads(2, 300));
  int failed = 0;
  for (int i = 0; i < 3; ++i) {
    void* result;
    pthread_join(parent_threads[i], &result);
    failed |= result != NULL;
  }
  int status;
  waitpid(child, &status, 0);
  if (failed || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  printf("threads ok\n");
  return 0;
}
