// See feed_reader.h.
#include "feed_reader.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "format/clock.h"

namespace pagewaste::inject {

FeedReader::FeedReader(int fd) : fd_(fd) {
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || static_cast<uint64_t>(st.st_size) <= kFeedControlBytes)
    return;
  uint64_t ring_bytes = static_cast<uint64_t>(st.st_size) - kFeedControlBytes;
  if (ring_bytes & (ring_bytes - 1)) return;
  mapped_bytes_ = kFeedControlBytes + 2 * ring_bytes;
  void* base = mmap(nullptr, mapped_bytes_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (base == MAP_FAILED) return;
  auto* b = static_cast<uint8_t*>(base);
  if (mmap(b, kFeedControlBytes + ring_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd,
           0) == MAP_FAILED ||
      mmap(b + kFeedControlBytes + ring_bytes, ring_bytes, PROT_READ | PROT_WRITE,
           MAP_SHARED | MAP_FIXED, fd, static_cast<off_t>(kFeedControlBytes)) == MAP_FAILED) {
    munmap(base, mapped_bytes_);
    return;
  }
  auto* control = reinterpret_cast<FeedControl*>(b);
  if (control->magic != kFeedMagic || control->version != kFeedVersion ||
      control->ring_bytes != ring_bytes) {
    munmap(base, mapped_bytes_);
    return;
  }
  control_ = control;
  ring_ = b + kFeedControlBytes;
}

FeedReader::~FeedReader() {
  if (control_) {
    // The process keeps the file mapped (a hook may be writing still): its
    // ring's memory goes back, the control page (detached) stays.
    fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
              static_cast<off_t>(kFeedControlBytes), static_cast<off_t>(control_->ring_bytes));
    munmap(control_, mapped_bytes_);
  }
  if (fd_ >= 0) close(fd_);
}

uint64_t FeedReader::Read(uint64_t until_ns, const Handler& handler) {
  if (!control_) return 0;
  uint64_t now = MonotonicNs();
  __atomic_store_n(&control_->consumer_ns, now, __ATOMIC_RELAXED);
  uint64_t mask = control_->ring_bytes - 1;
  uint64_t tail = __atomic_load_n(&control_->tail, __ATOMIC_RELAXED);
  uint64_t read = 0;
  // head is read again only when the records below it are read (each read
  // of it is likely a transfer from the producers' core), and tail is
  // published every 64 records and at the end.
  uint64_t head = tail;
  for (;;) {
    if (tail == head) {
      __atomic_store_n(&control_->tail, tail, __ATOMIC_RELEASE);
      head = __atomic_load_n(&control_->head, __ATOMIC_ACQUIRE);
      if (tail == head) break;
    }
    auto* r = reinterpret_cast<FeedRecord*>(ring_ + (tail & mask));
    __builtin_prefetch(ring_ + ((tail + 256) & mask));
    uint32_t kind = __atomic_load_n(&r->record, __ATOMIC_ACQUIRE);
    uint32_t size = __atomic_load_n(&r->size, __ATOMIC_RELAXED);
    if (kind == kFeedUncommitted) {
      // Still being written, or never to be: its process died between
      // reserving and committing it.
      if (!stuck_since_ns_) stuck_since_ns_ = now;
      uint32_t tgid = __atomic_load_n(&r->tgid, __ATOMIC_RELAXED);
      bool gone = tgid && kill(static_cast<pid_t>(tgid), 0) != 0 && errno == ESRCH;
      if (!(gone && size >= kFeedFixedBytes && now - stuck_since_ns_ > 1000000000u)) break;
      ++passed_over_;
    } else {
      if (size < kFeedFixedBytes || size > sizeof(FeedRecord) || r->time_ns >= until_ns) break;
      if (kind != kFeedSkip) handler(*r);
      ++read;
    }
    stuck_since_ns_ = 0;
    memset(r, 0, size);
    tail += size;
    if ((read & 63) == 0) __atomic_store_n(&control_->tail, tail, __ATOMIC_RELEASE);
    if ((read & 4095) == 0)
      __atomic_store_n(&control_->consumer_ns, MonotonicNs(), __ATOMIC_RELAXED);
  }
  __atomic_store_n(&control_->tail, tail, __ATOMIC_RELEASE);
  return read;
}

uint64_t FeedReader::lost() const {
  return control_ ? __atomic_load_n(&control_->lost, __ATOMIC_RELAXED) + passed_over_ : 0;
}

void FeedReader::Detach() {
  if (!control_) return;
  uint32_t recording = 1;
  __atomic_compare_exchange_n(&control_->recording, &recording, 0, false, __ATOMIC_ACQ_REL,
                              __ATOMIC_RELAXED);
}

}  // namespace pagewaste::inject
