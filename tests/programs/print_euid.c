// Prints the effective uid it runs with: installed set-uid root by a test,
// it shows whether a run kept the program's privileges. With the argument
// "shim" it also says whether pagewaste's shim is mapped into it.
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char** argv) {
  printf("euid=%d\n", (int)geteuid());
  if (argc > 1 && strcmp(argv[1], "shim") == 0) {
    FILE* maps = fopen("/proc/self/maps", "r");
    char line[4096];
    int found = 0;
    while (maps && fgets(line, sizeof line, maps)) found |= strstr(line, "pagewaste") != NULL;
    if (maps) fclose(maps);
    printf("%s\n", found ? "shim loaded" : "no shim");
  }
  return 0;
}
