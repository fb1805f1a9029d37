// Sizes as the command line and budgets write them (byte_sizes.h).
#include "byte_sizes.h"

#include <cctype>
#include <charconv>

#include "format/page_cost.h"

namespace pagewaste {

bool ParseByteCount(const std::string& text, uint64_t* bytes) {
  size_t digits = 0;
  while (digits < text.size() && isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return false;
  uint64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + digits, value);
  if (error != std::errc() || end != text.data() + digits) return false;  // too large
  std::string unit = text.substr(digits);
  int shift = 0;
  if (unit == "K" || unit == "KiB" || unit == "k") shift = 10;
  else if (unit == "M" || unit == "MiB") shift = 20;
  else if (unit == "G" || unit == "GiB") shift = 30;
  else if (!unit.empty() && unit != "B") return false;
  if (value > (UINT64_MAX >> shift)) return false;
  *bytes = value << shift;
  return true;
}

bool ParsePageSize(const std::string& text, uint64_t* bytes) {
  return ParseByteCount(text, bytes) && IsPowerOfTwo(*bytes) && *bytes >= kMinPageSize &&
         *bytes <= kMaxPageSize;
}

}  // namespace pagewaste
