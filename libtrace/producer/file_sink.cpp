// A trace file as the producers write it: naming, opening, and committing whole
// chunks to it (file_sink.h).
#include "file_sink.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "format/format.h"
#include "format/little_endian.h"
#include "raw_mmap.h"

namespace pagewaste::producer {
namespace {

// Appends s to out (capacity cap, NUL-terminated); false if it does not fit.
bool Append(char* out, size_t cap, size_t* len, const char* s, size_t n) {
  if (*len + n + 1 > cap) return false;
  memcpy(out + *len, s, n);
  *len += n;
  out[*len] = 0;
  return true;
}

bool AppendNumber(char* out, size_t cap, size_t* len, uint64_t v) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  char forward[24];
  for (int i = 0; i < n; ++i) forward[i] = digits[n - 1 - i];
  return Append(out, cap, len, forward, static_cast<size_t>(n));
}

bool Expand(const char* pattern, const char* exe_name, uint32_t pid, char* out,
            size_t cap) {
  size_t len = 0;
  out[0] = 0;
  for (const char* p = pattern; *p; ++p) {
    bool ok;
    if (p[0] == '%' && p[1] == 'p') {
      ok = AppendNumber(out, cap, &len, pid);
      ++p;
    } else if (p[0] == '%' && p[1] == 'e') {
      ok = Append(out, cap, &len, exe_name, strlen(exe_name));
      ++p;
    } else if (p[0] == '%' && p[1] == '%') {
      ok = Append(out, cap, &len, "%", 1);
      ++p;
    } else {
      ok = Append(out, cap, &len, p, 1);
    }
    if (!ok) return false;
  }
  return len > 0;
}

// base.trace -> base.N.trace; base -> base.N (the extension is what follows
// the last dot of the last path component).
bool WithSuffix(const char* path, unsigned n, char* out, size_t cap) {
  const char* slash = strrchr(path, '/');
  const char* dot = strrchr(slash ? slash : path, '.');
  if (dot == path || (slash && dot == slash + 1)) dot = nullptr;
  size_t stem = dot ? static_cast<size_t>(dot - path) : strlen(path);
  size_t len = 0;
  out[0] = 0;
  return Append(out, cap, &len, path, stem) && Append(out, cap, &len, ".", 1) &&
         AppendNumber(out, cap, &len, n) &&
         (!dot || Append(out, cap, &len, dot, strlen(dot)));
}

int MoveHigh(int fd) {
  // Programs that close "all other descriptors" usually walk up from 3;
  // keeping ours high keeps it out of the way of low-numbered dup2 targets.
  struct rlimit rl;
  int floor = 512;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
      rl.rlim_cur < 1024)
    floor = static_cast<int>(rl.rlim_cur / 2);
  int high = fcntl(fd, F_DUPFD_CLOEXEC, floor);
  if (high < 0) return fd;
  close(fd);
  return high;
}

bool WriteAll(int fd, const uint8_t* data, size_t size, uint64_t offset) {
  while (size) {
    ssize_t n = pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    offset += static_cast<uint64_t>(n);
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Windows are mapped a few chunks at a time.
constexpr size_t kWindowSlack = 1 << 20;

// Reads the session id of an existing trace; false if it is not (yet) a
// whole trace header.
bool ReadSession(const char* path, uint64_t* session) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);  // a symlink is not a stale trace
  if (fd < 0) return false;
  uint8_t header[format::kFixedHeaderSize];
  ssize_t n = read(fd, header, sizeof header);
  close(fd);
  if (n != static_cast<ssize_t>(sizeof header) ||
      memcmp(header, format::kMagic, sizeof format::kMagic) != 0)
    return false;
  *session = GetLE(header + 24, 8);
  return true;
}

// Whether the `pagewaste run` whose session this is may still be running:
// a process with its pid exists (a pid reused since counts too, and only
// costs the new trace a suffix).
bool SessionAlive(uint64_t session) {
  uint32_t pid = format::SessionPid(session);
  if (pid == 0 || pid > 0x3fffffff) return false;  // above any pid_max
  return kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM;
}

}  // namespace

bool FileSink::CreateExclusive(const char* path, uint64_t session_id) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      fd_ = MoveHigh(fd);
      return true;
    }
    if (errno != EEXIST) return false;
    uint64_t existing;
    // A whole header of another session: a file from an earlier run, to
    // replace, unless that run is still going (writing it, or finishing it
    // after its program's exit), which the session's pid tells.
    if (!ReadSession(path, &existing) || existing == session_id || SessionAlive(existing))
      return false;
    unlink(path);
  }
  return false;
}

bool FileSink::Open(const char* pattern, const char* exe_name, uint32_t pid,
                    uint64_t session_id, bool use_mapping) {
  char expanded[sizeof path_];
  if (!Expand(pattern, exe_name, pid, expanded, sizeof expanded)) {
    errno = ENAMETOOLONG;
    return false;
  }
  // The path tried, for the caller's message should this fail.
  memcpy(path_, expanded, strlen(expanded) + 1);
  bool ok = CreateExclusive(expanded, session_id);
  if (!ok) {
    // Something is at the path (another trace, a planted link): the next
    // free name. Any other failure (no directory, no space) is the same
    // for every name.
    int first_errno = errno;
    bool taken = first_errno == EEXIST || first_errno == ELOOP;
    for (unsigned n = 1; n < 1000 && !ok && taken; ++n) {
      if (!WithSuffix(expanded, n, path_, sizeof path_)) break;
      ok = CreateExclusive(path_, session_id);
    }
    if (!ok) {
      memcpy(path_, expanded, strlen(expanded) + 1);
      errno = first_errno;
      return false;
    }
  }
  struct stat st;
  if (fstat(fd_, &st) != 0) return false;
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  end_ = 0;
  use_mapping_ = use_mapping;
  syscalls_ = SyscallCounts();
  return true;
}

bool FileSink::EnsureFd() {
  struct stat st;
  if (fd_ >= 0 && fstat(fd_, &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_)
    return true;
  // Closed or replaced by the program: never close what is there now, it is
  // theirs. Reopen our file by path.
  fd_ = -1;
  int fd = open(path_, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  fd = MoveHigh(fd);
  if (fstat(fd, &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_) {
    close(fd);
    return false;
  }
  fd_ = fd;
  return true;
}

namespace {

// A mapping of [start, start + size): from the page below start, whole
// pages.
struct PageSpan {
  uint64_t start;
  size_t length;
};
PageSpan PagesOf(uint64_t start, size_t size) {
  auto page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint64_t first = start & ~(page - 1);
  uint64_t end = (start + size + page - 1) & ~(page - 1);
  return {first, static_cast<size_t>(end - first)};
}

}  // namespace

bool FileSink::MapWindow(uint64_t start, size_t capacity) {
  PageSpan span = PagesOf(start, capacity + kWindowSlack);
  uint8_t* window = MapRange(span.start, span.length);
  if (!window) return false;
  window_ = window;
  window_start_ = span.start;
  window_size_ = span.length;
  return true;
}

uint8_t* FileSink::MapRange(uint64_t start, size_t size) {
  PageSpan span = PagesOf(start, size);
  if (!EnsureFd()) return nullptr;
  // Reserved on disk first: a write fault on a hole the disk cannot fill
  // would be a SIGBUS in the program.
  if (fallocate(fd_, 0, static_cast<off_t>(span.start), static_cast<off_t>(span.length)) != 0) {
    if (errno == EOPNOTSUPP || errno == ENOSYS) use_mapping_ = false;
    return nullptr;
  }
  void* addr = RawMmap(nullptr, span.length, PROT_READ | PROT_WRITE, MAP_SHARED,
                       fd_, static_cast<off_t>(span.start));
  syscalls_.Add(format::SyscallKind::kMmap);
  if (!addr) {
    use_mapping_ = false;
    return nullptr;
  }
  return static_cast<uint8_t*>(addr) + (start - span.start);
}

uint8_t* FileSink::MapChunk(size_t capacity) {
  if (!use_mapping_) return nullptr;
  uint8_t* chunk = MapRange(end_, capacity);
  if (chunk) end_ += capacity;
  return chunk;
}

void FileSink::UnmapChunk(uint8_t* chunk, size_t capacity) {
  PageSpan span = PagesOf(reinterpret_cast<uintptr_t>(chunk), capacity);
  RawMunmap(reinterpret_cast<void*>(span.start), span.length);
  syscalls_.Add(format::SyscallKind::kMunmap);
}

void FileSink::Unmap() {
  if (window_) {
    RawMunmap(window_, window_size_);
    syscalls_.Add(format::SyscallKind::kMunmap);
  }
  window_ = nullptr;
  window_size_ = 0;
}

uint8_t* FileSink::NextChunk(size_t capacity) {
  if (!use_mapping_) return nullptr;
  bool inside = window_ && end_ >= window_start_ &&
                end_ + capacity <= window_start_ + window_size_;
  if (!inside) {
    Unmap();
    if (!MapWindow(end_, capacity)) return nullptr;
  }
  return window_ + (end_ - window_start_);
}

bool FileSink::FinishChunk(const uint8_t* data, size_t size) {
  if (window_ && data == window_ + (end_ - window_start_)) {
    end_ += size;  // already in the file
    return true;
  }
  return WriteRaw(data, size);
}

bool FileSink::WriteRaw(const uint8_t* data, size_t size) {
  if (!EnsureFd() || !WriteAll(fd_, data, size, end_)) return false;
  end_ += size;
  return true;
}

void FileSink::TruncateTo(uint64_t size) {
  if (size >= end_) return;
  if (window_ && size >= window_start_ && end_ <= window_start_ + window_size_) {
    // Zero what is taken back rather than cutting the file under our own
    // mapping (a store beyond the end of a file is a SIGBUS).
    memset(window_ + (size - window_start_), 0, end_ - size);
  } else if (EnsureFd()) {
    Unmap();
    ftruncate(fd_, static_cast<off_t>(size));
  }
  end_ = size;
}

void FileSink::StopMapping() {
  Unmap();
  use_mapping_ = false;
}

void FileSink::Close() {
  Unmap();
  if (fd_ >= 0 && EnsureFd()) {
    ftruncate(fd_, static_cast<off_t>(end_));  // drop the preallocated tail
    close(fd_);
  }
  fd_ = -1;
}

void FileSink::Remove() {
  Unmap();
  struct stat st;
  // By path, so only while the path still names our file.
  if (lstat(path_, &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) unlink(path_);
  if (fd_ >= 0 && EnsureFd()) close(fd_);
  fd_ = -1;
}

void FileSink::Abandon() {
  Unmap();
  if (fd_ >= 0 && EnsureFd()) close(fd_);
  fd_ = -1;
}

}  // namespace pagewaste::producer
