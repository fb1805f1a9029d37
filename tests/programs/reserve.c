// Reserves 1 GiB of address space with PROT_NONE, as V8 and Go do, makes
// 1 MiB of it accessible with mprotect and writes every byte of it, then
// gives 64 KiB of that back with madvise. Ends with both still mapped.
#include <string.h>
#include <sys/mman.h>

int main(void) {
  size_t reserved = 1ul << 30, used = 1ul << 20;
  char* base = mmap(NULL, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);  // SITE: reserve
  if (base == MAP_FAILED) return 1;
  char* used_part = base + (16ul << 20);
  if (mprotect(used_part, used, PROT_READ | PROT_WRITE) != 0) return 2;  // SITE: commit
  memset(used_part, 0x5a, used);
  if (madvise(used_part, 64 << 10, MADV_DONTNEED) != 0) return 3;  // SITE: advise
  return 0;
}
