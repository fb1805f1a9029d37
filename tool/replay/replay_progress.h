// "pagewaste: replaying PATH: N%" on stderr while a large trace replays,
// redrawn at each new percent of the file read (someone is watching).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace pagewaste {

class ReplayProgress {
 public:
  // Shows it for a file of `total` bytes; never shown otherwise.
  void Show(const std::string& path, uint64_t total) {
    path_ = path;
    total_ = total;
  }
  // After each chunk: bytes of the file read so far.
  void At(uint64_t offset) {
    if (!total_) return;
    int percent = static_cast<int>(offset * 100 / total_);
    if (percent == percent_) return;
    percent_ = percent;
    fmt::print(stderr, "\rpagewaste: replaying {}: {}%", path_, percent);
    if (percent >= 100) fmt::print(stderr, "\n");
  }

 private:
  std::string path_;
  uint64_t total_ = 0;  // 0: not shown
  int percent_ = -1;
};

}  // namespace pagewaste
