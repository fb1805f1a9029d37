// Call stacks of a stopped thread of another process: libunwind's ptrace
// support (DWARF CFI from the process's own files, so code without frame
// pointers unwinds too), or a frame-pointer walk over process_vm_readv for
// non-PIE executables, where libunwind 1.6 finds no CFI and guesses with the
// frame pointer, skipping the caller of a system call wrapper (Go, Zig's
// default static builds, -static C).
#pragma once

#include <sys/types.h>
#include <sys/user.h>

#include <cstdint>
#include <functional>

namespace pagewaste::ptrace {

// A stack as a BPF program reads it at a system call (the bpf backend): the
// registers, the word at rsp, and the frame-pointer chain from rbp.
struct RecordedStack {
  struct Frame {
    uint64_t saved_bp;
    uint64_t return_address;
  };
  uint64_t ip = 0, sp = 0, bp = 0;
  bool top_read = false;
  uint64_t top = 0;  // the word at sp, when top_read
  const Frame* frames = nullptr;
  int frame_count = 0;
};

class RemoteUnwinder {
 public:
  // frame_pointers: walk frame pointers instead of libunwind's CFI;
  // stack_switch: that walk follows one switch of stacks (Go's systemstack).
  RemoteUnwinder(bool frame_pointers, bool stack_switch);
  ~RemoteUnwinder();
  RemoteUnwinder(const RemoteUnwinder&) = delete;
  RemoteUnwinder& operator=(const RemoteUnwinder&) = delete;

  // Fills ips with the stack of stopped thread tid (whose registers are
  // regs), innermost first; returns the depth. is_code tells an address in
  // an executable mapping.
  int Unwind(pid_t tid, const user_regs_struct& regs, uintptr_t* ips, int max_depth,
             const std::function<bool(uint64_t)>& is_code);
  // The same walk over a stack a BPF program recorded: the frame-pointer
  // walk (libunwind's needs the whole stack).
  int UnwindRecorded(const RecordedStack& stack, uintptr_t* ips, int max_depth,
                     const std::function<bool(uint64_t)>& is_code);
  // Forgets cached unwind information (after exec or new code mapped).
  void Flush();

 private:
  int UnwindWithLibunwind(pid_t tid, uintptr_t* ips, int max_depth);
  bool frame_pointers_;
  bool stack_switch_;
  void* address_space_;
};

}  // namespace pagewaste::ptrace
