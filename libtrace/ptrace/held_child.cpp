// See held_child.h.
#include "held_child.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace pagewaste::ptrace {

HeldChild::~HeldChild() {
  if (go_ >= 0) close(go_);
  if (status_ >= 0) close(status_);
}

bool HeldChild::Fork(const std::vector<std::string>& command,
                     const std::vector<std::pair<std::string, std::string>>& environment,
                     const std::function<bool()>& before_exec, std::string* err) {
  int go_pipe[2] = {-1, -1}, status_pipe[2] = {-1, -1};
  auto fail = [&](const char* what) {
    *err = std::string(what) + ": " + strerror(errno);
    for (int fd : {go_pipe[0], go_pipe[1], status_pipe[0], status_pipe[1]})
      if (fd >= 0) close(fd);
    return false;
  };
  if (pipe2(go_pipe, O_CLOEXEC) != 0 || pipe2(status_pipe, O_CLOEXEC) != 0) return fail("pipe");
  std::vector<char*> argv;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_ = fork();
  if (pid_ < 0) return fail("fork");
  if (pid_ == 0) {
    close(go_pipe[1]);
    close(status_pipe[0]);
    for (const auto& [name, value] : environment) setenv(name.c_str(), value.c_str(), 1);
    char go = 0;
    while (read(go_pipe[0], &go, 1) < 0 && errno == EINTR) {
    }
    int code = -1;
    if (go != 0 && (!before_exec || before_exec())) {
      execvp(argv[0], argv.data());
      code = errno;
    }
    ssize_t ignored = write(status_pipe[1], &code, sizeof code);
    (void)ignored;
    _exit(127);
  }
  close(go_pipe[0]);
  close(status_pipe[1]);
  go_ = go_pipe[1];
  status_ = status_pipe[0];
  return true;
}

void HeldChild::Release(char go) {
  ssize_t ignored = write(go_, &go, 1);
  (void)ignored;
  close(go_);
  go_ = -1;
}

bool HeldChild::ExecFailed(int* error) {
  ssize_t got;
  do {
    got = read(status_, error, sizeof *error);
  } while (got < 0 && errno == EINTR);
  close(status_);
  status_ = -1;
  return got == sizeof *error;
}

}  // namespace pagewaste::ptrace
