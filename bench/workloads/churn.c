// Allocation churn: 2 million malloc/free pairs of 16 to 1040 bytes through
// two call levels (the harness's reference workload). argv[1] scales the count.
#include <stdlib.h>

static void* __attribute__((noinline)) make(size_t size) { return malloc(size); }

static void __attribute__((noinline)) churn(long pairs) {
  for (long i = 0; i < pairs; ++i) {
    char* p = make(16 + (size_t)(i * 7919 % 1025));
    p[0] = (char)i;
    free(p);
  }
}

int main(int argc, char** argv) {
  churn(argc > 1 ? atol(argv[1]) : 2000000);
  return 0;
}
