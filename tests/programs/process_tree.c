// A process tree that exercises every way a tracer can lose a process or
// leave one stopped: fork, then threads in both processes; a group stop
// (SIGSTOP) with a signal sent while the process is stopped, then SIGCONT;
// vfork and exec; exec from a thread other than the main one.
//
// Each thread makes 50 two-byte mappings at the "pair" site, so every
// process's count there is exact: the parent 2 threads (100), the forked
// child 3 threads (150). The children exec argv[1] (exec_target) when given.
// Exits 0 when every child ended as planned, 1 otherwise.
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void* map_pairs(void* arg) {
  for (int i = 0; i < 50; ++i) {
    void* p = mmap(NULL, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: pair
    munmap(p, 2);  // SITE: unpair
  }
  return arg;
}

static void run_threads(int n) {
  pthread_t threads[8];
  for (int i = 0; i < n; ++i) pthread_create(&threads[i], NULL, map_pairs, NULL);
  for (int i = 0; i < n; ++i) pthread_join(threads[i], NULL);
}

static volatile sig_atomic_t got_usr1 = 0;
static void on_usr1(int sig) { got_usr1 = sig == SIGUSR1; }

static const char* target;

static void* exec_from_thread(void* arg) {
  execl(target, target, (char*)NULL);
  _exit(126);
  return arg;
}

static int wait_for(pid_t pid, int expected) {
  int status;
  if (waitpid(pid, &status, 0) != pid) return 0;
  return WIFEXITED(status) && WEXITSTATUS(status) == expected;
}

int main(int argc, char** argv) {
  target = argc > 1 ? argv[1] : NULL;
  signal(SIGUSR1, on_usr1);
  pid_t stopper = fork();
  if (stopper == 0) {
    run_threads(3);
    raise(SIGSTOP);  // the parent sends SIGUSR1, then SIGCONT
    _exit(got_usr1 ? 7 : 8);
  }
  run_threads(2);
  int status;
  int ok = waitpid(stopper, &status, WUNTRACED) == stopper && WIFSTOPPED(status);
  kill(stopper, SIGUSR1);  // arrives while the child is stopped
  usleep(10000);
  kill(stopper, SIGCONT);
  ok = ok && wait_for(stopper, 7);

  if (target) {
    pid_t vforked = vfork();
    if (vforked == 0) {
      execl(target, target, (char*)NULL);
      _exit(126);
    }
    ok = ok && wait_for(vforked, 0);

    pid_t threaded = fork();
    if (threaded == 0) {
      pthread_t thread;
      pthread_create(&thread, NULL, exec_from_thread, NULL);
      pthread_join(thread, NULL);  // the exec ends this thread with the rest
      _exit(125);
    }
    ok = ok && wait_for(threaded, 0);
  }
  printf("%s\n", ok ? "tree ok" : "tree FAILED");
  return ok ? 0 : 1;
}
