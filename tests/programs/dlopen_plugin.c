// Loads plugin.so with dlopen, allocates through it 77 times, unloads it.
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  void* handle = dlopen(argv[1], RTLD_NOW);
  if (!handle) {
    fprintf(stderr, "%s\n", dlerror());
    return 1;
  }
  void (*allocate)(int) = (void (*)(int))dlsym(handle, "plugin_allocate");
  allocate(77);
  dlclose(handle);
  return 0;
}
