// A library the dlopen test loads at run time: its call site must symbolize
// from the module map written after dlopen.
#include <stdlib.h>

void plugin_allocate(int n) {
  for (int i = 0; i < n; ++i) free(malloc(48));  // SITE: plugin
}
