// Creating the CLI's output files safely (output_file.h).
#include "output_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace pagewaste {
namespace {

bool IsStdout(const std::string& path) { return path.empty() || path == "-"; }

std::string DirectoryOf(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

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
  if (IsStdout(path)) {
    fwrite(text.data(), 1, text.size(), stdout);
    if (fflush(stdout) == 0) return true;
    *err = std::string("stdout: ") + strerror(errno);
    return false;
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
  const char* data = text.data();
  size_t left = text.size();
  while (left > 0) {
    ssize_t n = write(fd, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      *err = path + ": " + strerror(n < 0 ? errno : ENOSPC);
      close(fd);
      unlink(temp.c_str());
      return false;
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
  if (close(fd) != 0 || rename(temp.c_str(), path.c_str()) != 0) {
    *err = path + ": " + strerror(errno);
    unlink(temp.c_str());
    return false;
  }
  return true;
}

}  // namespace pagewaste
