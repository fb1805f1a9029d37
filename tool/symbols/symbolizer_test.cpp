// Names as the symbolizer gives them, from memory.
#include "symbolizer.h"

#include <gtest/gtest.h>

namespace pagewaste {
namespace {

// Only a _Z name is a C++ mangled name: a C function named like a type
// encoding keeps its name.
TEST(Demangle, OnlyMangledNames) {
  EXPECT_EQ(Demangle("_Z3fooi"), "foo(int)");
  EXPECT_EQ(Demangle("_ZN9pagewaste4MainEv"), "pagewaste::Main()");
  for (const char* c_name : {"i", "f", "w", "Pc", "d", "v", "main", "malloc"})
    EXPECT_EQ(Demangle(c_name), c_name);
  EXPECT_EQ(Demangle("_Znot a name"), "_Znot a name");
}

}  // namespace
}  // namespace pagewaste
