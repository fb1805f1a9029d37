// The frame pool (frames.h).
#include "frames.h"

#include <functional>
#include <mutex>
#include <unordered_set>

namespace pagewaste {
namespace {

struct FrameHash {
  size_t operator()(const Frame& f) const {
    std::hash<std::string> text;
    size_t h = text(f.function);
    auto mix = [&h](size_t v) { h = (h ^ v) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull; };
    mix(text(f.file));
    mix(text(f.module));
    mix(static_cast<size_t>(f.line));
    mix(f.module_offset);
    mix(f.address);
    mix(static_cast<size_t>(f.shown_from) << 2 | f.inlined << 1 | f.library);
    return h;
  }
};

struct FrameEqual {
  bool operator()(const Frame& a, const Frame& b) const {
    return a.address == b.address && a.line == b.line && a.module_offset == b.module_offset &&
           a.shown_from == b.shown_from && a.inlined == b.inlined && a.library == b.library &&
           a.name_hash == b.name_hash && a.function == b.function && a.file == b.file &&
           a.module == b.module;
  }
};

// Node-based: a pooled frame never moves.
struct FramePool {
  std::mutex mutex;
  std::unordered_set<Frame, FrameHash, FrameEqual> frames;
};

FramePool& Pool() {
  static FramePool* pool = new FramePool;  // never destroyed: stacks may outlive statics
  return *pool;
}

}  // namespace

const Frame* PooledFrame(const Frame& frame) {
  FramePool& pool = Pool();
  std::lock_guard<std::mutex> lock(pool.mutex);
  if (!frame.module.empty() && frame.address) {
    Frame without_address = frame;
    without_address.address = 0;
    return &*pool.frames.insert(std::move(without_address)).first;
  }
  return &*pool.frames.insert(frame).first;
}

Stack::Stack(const std::vector<Frame>& frames) {
  frames_.reserve(frames.size());
  for (const Frame& f : frames) frames_.push_back(PooledFrame(f));
}

}  // namespace pagewaste
