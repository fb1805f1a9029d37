// Figures as every message and output writes them: 348109 -> "348,109".
#pragma once

#include <cstdint>
#include <string>

namespace pagewaste {

inline std::string GroupDigits(uint64_t v) {
  std::string digits = std::to_string(v), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

}  // namespace pagewaste
