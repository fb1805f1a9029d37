// The frames of call sites. A frame is what one return address (or one
// function inlined at it) names; each distinct frame is held once for the
// whole command in the frame pool, and a stack is a list of pointers to
// frames there: a Python program's thousands of sites, sixty frames deep,
// name a few thousand frames, and a suite of a hundred such processes names
// the same ones again.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

namespace pagewaste {

struct Frame {
  uint64_t address = 0;
  std::string function;  // demangled; empty when unknown
  std::string file;      // empty when unknown
  int line = 0;
  // Set by CodeOrigin (program_code.h): where in file the path a report
  // shows begins (relative to the source root, std/os/linux.zig, ...): it
  // is always the end of the path, so an offset holds it.
  uint32_t shown_from = 0;
  std::string module;    // path of the module, or empty
  uint64_t module_offset = 0;
  bool inlined = false;  // inlined into the next frame
  // Set by CodeOrigin: a library's frame on the way to the system call,
  // not the program's own code; and a hash of what names the frame
  // (function, file, line; module offset where the function is unknown),
  // which site labels compare frames by before they compare the names.
  bool library = false;
  uint32_t name_hash = 0;

  std::string_view shown_file() const {
    return std::string_view(file).substr(std::min<size_t>(shown_from, file.size()));
  }
};

// The pool's copy of frame, added if it is not there: frames equal in every
// field share one copy, which lives until the command ends. A frame in a
// known module is pooled without its address, which only a frame outside
// every module is named by. Safe from several threads.
const Frame* PooledFrame(const Frame& frame);

// Frames innermost first, read as a vector of frames is.
class Stack {
  using Pointers = std::vector<const Frame*>;

 public:
  class const_iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = Frame;
    using difference_type = std::ptrdiff_t;
    using pointer = const Frame*;
    using reference = const Frame&;

    const_iterator() = default;
    explicit const_iterator(Pointers::const_iterator it) : it_(it) {}
    reference operator*() const { return **it_; }
    pointer operator->() const { return *it_; }
    reference operator[](difference_type n) const { return *it_[n]; }
    const_iterator& operator++() { ++it_; return *this; }
    const_iterator operator++(int) { return const_iterator(it_++); }
    const_iterator& operator--() { --it_; return *this; }
    const_iterator operator--(int) { return const_iterator(it_--); }
    const_iterator& operator+=(difference_type n) { it_ += n; return *this; }
    const_iterator& operator-=(difference_type n) { it_ -= n; return *this; }
    const_iterator operator+(difference_type n) const { return const_iterator(it_ + n); }
    const_iterator operator-(difference_type n) const { return const_iterator(it_ - n); }
    difference_type operator-(const const_iterator& o) const { return it_ - o.it_; }
    bool operator==(const const_iterator& o) const { return it_ == o.it_; }
    bool operator!=(const const_iterator& o) const { return it_ != o.it_; }
    bool operator<(const const_iterator& o) const { return it_ < o.it_; }
    bool operator>(const const_iterator& o) const { return it_ > o.it_; }
    bool operator<=(const const_iterator& o) const { return it_ <= o.it_; }
    bool operator>=(const const_iterator& o) const { return it_ >= o.it_; }

   private:
    Pointers::const_iterator it_;
  };
  using const_reverse_iterator = std::reverse_iterator<const_iterator>;

  Stack() = default;
  // Pools each frame.
  Stack(const std::vector<Frame>& frames);  // NOLINT(google-explicit-constructor): a stack is its frames
  Stack(std::initializer_list<Frame> frames) : Stack(std::vector<Frame>(frames)) {}

  void push_back(const Frame& frame) { frames_.push_back(PooledFrame(frame)); }
  void push_back(const Frame* pooled) { frames_.push_back(pooled); }
  void append(const std::vector<const Frame*>& pooled) {
    frames_.insert(frames_.end(), pooled.begin(), pooled.end());
  }

  size_t size() const { return frames_.size(); }
  bool empty() const { return frames_.empty(); }
  const Frame& operator[](size_t i) const { return *frames_[i]; }
  const Frame& front() const { return *frames_.front(); }
  const Frame& back() const { return *frames_.back(); }
  const_iterator begin() const { return const_iterator(frames_.begin()); }
  const_iterator end() const { return const_iterator(frames_.end()); }
  const_reverse_iterator rbegin() const { return const_reverse_iterator(end()); }
  const_reverse_iterator rend() const { return const_reverse_iterator(begin()); }
  // Frames equal in every field are one pooled frame.
  bool operator==(const Stack& other) const { return frames_ == other.frames_; }

 private:
  Pointers frames_;
};

}  // namespace pagewaste
