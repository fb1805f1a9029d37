// Installs its own seccomp filter, as sandboxed programs do: madvise fails
// with EPERM, everything else is allowed. Then 1,000 mallocs and 10
// two-byte mappings. What it prints and its exit status must be the same
// with and without pagewaste, and the counts exact.
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
  struct sock_filter filter[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof filter / sizeof filter[0], filter};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
      syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
    perror("seccomp");
    return 1;
  }
  for (int i = 0; i < 1000; ++i) free(malloc(32));  // SITE: malloc
  char* pages[10];
  for (int i = 0; i < 10; ++i)
    pages[i] = mmap(NULL, 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: mmap
  int rc = madvise(pages[0], 4096, MADV_DONTNEED);  // SITE: madvise
  printf("madvise: %d %s\n", rc, rc ? (errno == EPERM ? "EPERM" : "other") : "ok");
  return 0;
}
