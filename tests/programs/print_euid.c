// Prints the effective uid it runs with: installed set-uid root by a test,
// it shows whether a run kept the program's privileges.
#include <stdio.h>
#include <unistd.h>

int main(void) {
  printf("euid=%d\n", (int)geteuid());
  return 0;
}
