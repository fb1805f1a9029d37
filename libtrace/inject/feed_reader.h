// The tool's side of the allocator feed (feed_layout.h): maps the feed
// file of a process the library was injected into, reads its records in
// the order they were reserved, and detaches.
#pragma once

#include <cstdint>
#include <functional>

#include "feed_layout.h"

namespace pagewaste::inject {

class FeedReader {
 public:
  // Takes the descriptor InjectFeed returned; ok() says whether it mapped.
  explicit FeedReader(int fd);
  ~FeedReader();
  FeedReader(const FeedReader&) = delete;
  FeedReader& operator=(const FeedReader&) = delete;
  bool ok() const { return control_ != nullptr; }

  // Where the process marks its threads inside allocator calls (its
  // address there), and that table's size.
  uint64_t thread_marks() const { return control_->thread_marks; }
  uint64_t thread_marks_bytes() const { return control_->thread_marks_bytes; }
  // Call sites the library pointed at its hooks, and those its table had
  // no room for (calls through them are not seen).
  uint32_t redirected_call_sites() const { return control_->patched_slots; }
  uint32_t unredirected_call_sites() const { return control_->unpatched_slots; }

  using Handler = std::function<void(const FeedRecord& record)>;
  // Hands over, in order, the committed records stamped before until_ns
  // (every committed one for ~0); returns how many. A record reserved by a
  // process that died before committing it is passed over, and counted
  // lost, once it has waited a second.
  uint64_t Read(uint64_t until_ns, const Handler& handler);
  // Records the process dropped for want of room, and those passed over.
  uint64_t lost() const;

  // Stops the process's hooks (they put its call sites back); records
  // committed before can still be read. The ring's memory goes back when
  // the reader goes.
  void Detach();

 private:
  FeedControl* control_ = nullptr;
  uint8_t* ring_ = nullptr;
  uint64_t mapped_bytes_ = 0;
  int fd_;
  uint64_t stuck_since_ns_ = 0;  // when the record at the tail was first seen uncommitted
  uint64_t passed_over_ = 0;
};

}  // namespace pagewaste::inject
