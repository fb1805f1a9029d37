// C functions whose names read as C++ type encodings (Pc: char*, f: float,
// i: int): the reports must show them as themselves. One mapping of 8
// bytes, made by Pc, called by f, called by i. No stdio.
#include <sys/mman.h>

__attribute__((noinline)) void* Pc(unsigned long n) {
  return mmap(0, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);  // SITE: Pc
}

__attribute__((noinline)) void* f(unsigned long n) { return Pc(n); }  // SITE: f

__attribute__((noinline)) void* i(void) { return f(8); }  // SITE: i

int main(void) { return i() == MAP_FAILED; }
