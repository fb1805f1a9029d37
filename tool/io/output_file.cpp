// Creating the CLI's output files safely (output_file.h).
#include "output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include <fmt/format.h>

namespace pagewaste {
namespace {

bool IsStdout(const std::string& path) { return path.empty() || path == "-"; }

std::string DirectoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

bool WriteAll(int fd, std::string_view text) {
  while (!text.empty()) {
    ssize_t n = write(fd, text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = 0;
      return false;
    }
    text.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool CheckOutputPath(const std::string& path, const std::vector<std::string>& inputs,
                     std::string* err) {
  if (IsStdout(path)) return true;
  struct stat out;
  if (lstat(path.c_str(), &out) != 0) {
    if (errno != ENOENT) {
      *err = path + ": " + strerror(errno);
      return false;
    }
    // Made anew: nothing there to follow or replace, if it can be made.
    std::string dir = DirectoryOf(path);
    if (access(dir.c_str(), W_OK | X_OK) != 0) {
      *err = path + ": cannot create a file in " + dir + ": " + strerror(errno);
      return false;
    }
    return true;
  }
  if (S_ISLNK(out.st_mode)) {
    *err = path + ": a symbolic link; pagewaste does not write through links (remove it, or "
                  "give another path, or - for stdout)";
    return false;
  }
  if (!S_ISREG(out.st_mode)) {
    *err = path + ": not a regular file; give a file's path, or - for stdout";
    return false;
  }
  for (const std::string& input : inputs) {
    struct stat in;
    if (stat(input.c_str(), &in) == 0 && in.st_dev == out.st_dev && in.st_ino == out.st_ino) {
      *err = path + ": is " + (input == path ? "an input" : "the input " + input) +
             " of this command; give another output path";
      return false;
    }
  }
  return true;
}

bool WriteOutputFile(const std::string& path, const std::string& text, std::string* err) {
  OutputFile out;
  if (!out.Open(path, err)) return false;
  out.Write(text);
  return out.Commit(err);
}

OutputFile::~OutputFile() {
  if (temp_.empty()) return;
  close(fd_);
  unlink(temp_.c_str());
}

bool OutputFile::Open(const std::string& path, std::string* err) {
  path_ = path;
  if (IsStdout(path)) {
    fd_ = STDOUT_FILENO;
    return true;
  }
  if (!CheckOutputPath(path, {}, err)) return false;
  // A new private file beside the target (mkstemp: O_EXCL, 0600), renamed
  // over it once whole: rename replaces a link planted meanwhile instead of
  // following it.
  std::string name = path.substr(path.rfind('/') + 1);
  std::string temp = DirectoryOf(path) + "/." + name + ".XXXXXX";
  int fd = mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) {
    *err = path + ": cannot create a file in " + DirectoryOf(path) + ": " + strerror(errno);
    return false;
  }
  fd_ = fd;
  temp_ = temp;
  return true;
}

void OutputFile::Write(std::string_view text) {
  if (error_) return;
  if (fd_ == STDOUT_FILENO) fflush(stdout);  // after anything printed before
  if (!WriteAll(fd_, text)) error_ = errno ? errno : ENOSPC;
}

bool OutputFile::Commit(std::string* err) {
  std::string name = temp_.empty() ? "stdout" : path_;
  if (temp_.empty()) {
    if (!error_) return true;
    *err = name + ": " + strerror(error_);
    return false;
  }
  if (close(std::exchange(fd_, -1)) != 0 && !error_) error_ = errno;
  if (!error_ && rename(temp_.c_str(), path_.c_str()) != 0) error_ = errno;
  if (error_) unlink(temp_.c_str());
  temp_.clear();
  if (!error_) return true;
  *err = name + ": " + strerror(error_);
  return false;
}

Spool::Spool() {
  const char* dir = getenv("TMPDIR");
  fd_ = open(dir && *dir ? dir : "/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd_ < 0 && dir && *dir) fd_ = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

Spool::~Spool() {
  if (fd_ >= 0) close(fd_);
}

void Spool::Write(std::string_view text) {
  size_ += text.size();
  if (fd_ >= 0 && WriteAll(fd_, text)) return;
  if (fd_ >= 0) {
    // The scratch file failed (a full disk): what it held comes back to memory.
    size_ -= text.size();
    StringSink held;
    bool read_back = CopyTo(&held);
    close(fd_);
    fd_ = -1;
    memory_ = std::move(held.text());
    size_ = memory_.size() + text.size();
    if (!read_back && !error_) error_ = EIO;
  }
  memory_ += text;
}

bool Spool::ok(std::string* err) const {
  if (!error_) return true;
  *err = error();
  return false;
}

std::string Spool::error() const {
  return fmt::format("the report's scratch file could not be read back ({}): the report is "
                     "not complete",
                     strerror(error_ ? error_ : EIO));
}

FILE* Spool::Reopen() {
  if (fd_ < 0) return nullptr;
  // Opened anew, not dup'ed: a descriptor of its own keeps its own offset,
  // and reading does not move where the next Write goes.
  int fd = open(fmt::format("/proc/self/fd/{}", fd_).c_str(), O_RDONLY | O_CLOEXEC);
  FILE* in = fd >= 0 ? fdopen(fd, "r") : nullptr;
  if (!in) {
    if (fd >= 0) close(fd);
    // Back to memory: the caller reads memory(), after ok().
    StringSink held;
    CopyTo(&held);  // sets error_ if it could not
    memory_ = std::move(held.text());
    close(fd_);
    fd_ = -1;
    return nullptr;
  }
  rewind(in);
  return in;
}

bool Spool::CopyTo(TextSink* out) {
  if (fd_ < 0) {
    out->Write(memory_);
    return !error_;
  }
  std::string buffer(1 << 20, '\0');
  for (uint64_t at = 0; at < size_;) {
    // No further than what was written whole: a write that failed part way
    // may have left some of its text in the file.
    size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), size_ - at));
    ssize_t n = pread(fd_, buffer.data(), want, static_cast<off_t>(at));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;  // shorter than what was written to it
      error_ = errno;
      return false;
    }
    out->Write(std::string_view(buffer.data(), static_cast<size_t>(n)));
    at += static_cast<uint64_t>(n);
  }
  return !error_;
}

}  // namespace pagewaste
