// Calls a function inside a running process, as a debugger's `call` does:
// one of its threads is stopped with ptrace at a point where it holds no
// lock of the C library, made to call the function on its own stack, and
// put back exactly as it was. The process's other threads run on
// meanwhile. x86-64 only.
//
// A safe point is, best, a system call that is not a memory or futex call
// (the thread blocked in it, or at its entry); a thread that makes none
// for 200 ms (a loop that only computes) is stopped every 10 ms until it
// is in code outside the C library and the loader.
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pagewaste::inject {

// Code a thread is not stopped in outside a system call: the C library's
// and the loader's, whose locks the function called may take.
struct CodeRange {
  uint64_t start = 0;
  uint64_t end = 0;
};

class RemoteThread {
 public:
  // Stops thread tid at a safe point (waiting at most about a second for
  // one); ok() says whether it did, and error() why not.
  RemoteThread(pid_t tid, std::vector<CodeRange> unsafe_code);
  // Puts the thread back as it was found and lets it go.
  ~RemoteThread();
  RemoteThread(const RemoteThread&) = delete;
  RemoteThread& operator=(const RemoteThread&) = delete;

  bool ok() const { return stopped_; }
  const std::string& error() const { return error_; }

  // Copies bytes onto the thread's stack, below where it was, for the next
  // calls to point at; returns their address there (0 on failure).
  uint64_t Push(const void* data, size_t size);
  uint64_t PushString(const std::string& s) { return Push(s.c_str(), s.size() + 1); }
  // Calls function(args...) in the thread and returns what it returned
  // (rax); false with error() if the thread did not come back from it.
  bool Call(uint64_t function, const std::vector<uint64_t>& args, uint64_t* result);
  // Reads a NUL-terminated string of the process's memory.
  std::string ReadString(uint64_t address, size_t max = 512);

 private:
  bool Resume(int signal);
  bool WaitStop(int* status, int timeout_ms);
  bool FindSafePoint();

  bool SafeOutsideSystemCall() const;

  pid_t tid_;
  std::vector<CodeRange> unsafe_code_;
  bool attached_ = false;
  bool stopped_ = false;
  // At a system call's entry (to be made again when put back), or
  // interrupted inside one (the kernel restarts it).
  bool at_syscall_entry_ = false;
  bool called_ = false;
  user_regs_struct saved_{};
  uint64_t stack_top_ = 0;  // below the thread's red zone and what Push put there
  int mem_fd_ = -1;
  std::string error_;
};

}  // namespace pagewaste::inject
