// Sizes as the command line and budgets write them: "4096", "64K", "2M",
// "1G" (K = 1024; B, KiB, MiB and GiB also taken), and page sizes.
#pragma once

#include <cstdint>
#include <string>

namespace pagewaste {

// False for anything else, and for a size no uint64_t holds.
bool ParseByteCount(const std::string& text, uint64_t* bytes);

// The same, and false unless a page size a machine could have: a power of
// two from 4 KiB to 1 GiB (x86-64's largest huge page).
inline constexpr uint64_t kMinPageSize = 4 << 10;
inline constexpr uint64_t kMaxPageSize = 1 << 30;
bool ParsePageSize(const std::string& text, uint64_t* bytes);

}  // namespace pagewaste
