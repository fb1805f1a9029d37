// A child forked to run a command once its parent is ready (the ptrace and
// bpf backends' tracers; `run` of a program it may not trace, once its
// signals are passed on): it sets its environment, waits on a pipe until
// released, runs a last step of its own (the seccomp filter), and execs the
// command; an exec that fails, or a last step that does, reports back. The
// one way pagewaste starts a program.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace pagewaste::ptrace {

class HeldChild {
 public:
  HeldChild() = default;
  ~HeldChild();
  HeldChild(const HeldChild&) = delete;
  HeldChild& operator=(const HeldChild&) = delete;

  // Forks it; false with *err. before_exec runs in the child, released,
  // before the exec; false fails the start.
  bool Fork(const std::vector<std::string>& command,
            const std::vector<std::pair<std::string, std::string>>& environment,
            const std::function<bool()>& before_exec, std::string* err);
  pid_t pid() const { return pid_; }

  // Lets it go on to the exec (go != 0), or to exit 127 without one.
  void Release(char go);
  // After Release: blocks until the exec happened (false) or did not
  // (true, *error: its errno, or -1 when before_exec failed or it was not
  // let go).
  bool ExecFailed(int* error);

 private:
  pid_t pid_ = 0;
  int go_ = -1;      // the write end the child waits on
  int status_ = -1;  // the read end its failure comes back on
};

}  // namespace pagewaste::ptrace
