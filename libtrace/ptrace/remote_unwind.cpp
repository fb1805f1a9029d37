// Call stacks of a stopped thread of another process, with libunwind's ptrace
// support (remote_unwind.h).
#include "remote_unwind.h"

#include <libunwind-ptrace.h>
#include <sys/uio.h>

namespace pagewaste::ptrace {
namespace {

bool ReadWord(pid_t pid, uint64_t address, uint64_t* value) {
  struct iovec local = {value, sizeof *value};
  struct iovec remote = {reinterpret_cast<void*>(address), sizeof *value};
  return process_vm_readv(pid, &local, 1, &remote, 1, 0) == static_cast<ssize_t>(sizeof *value);
}

// The stack above rsp, read with one system call: a shallow stack's frames
// are all in it, and each word outside it is read on its own.
class StackWindow {
 public:
  StackWindow(pid_t pid, uint64_t rsp) : pid_(pid), start_(rsp) {
    struct iovec local = {words_, sizeof words_};
    struct iovec remote = {reinterpret_cast<void*>(rsp), sizeof words_};
    // A partial read stops at the first page that cannot be read: the end
    // of the stack.
    ssize_t n = rsp % 8 ? -1 : process_vm_readv(pid, &local, 1, &remote, 1, 0);
    end_ = n > 0 ? rsp + static_cast<uint64_t>(n) / 8 * 8 : rsp;
  }
  bool Read(uint64_t address, uint64_t* value) const {
    if (address >= start_ && address < end_ && address % 8 == 0) {
      *value = words_[(address - start_) / 8];
      return true;
    }
    return ReadWord(pid_, address, value);
  }

 private:
  pid_t pid_;
  uint64_t start_, end_;
  uint64_t words_[512];  // 4 KiB
};

// How far above rsp a frame may be: a saved rbp beyond it (or below rsp) is
// not a frame but whatever code built without frame pointers keeps in rbp,
// and reading it would cost a system call that fails.
constexpr uint64_t kMaxStackSpan = 64 << 20;

// The words of a stack that a frame-pointer walk read at a system call's
// exit, as a BPF program sent them: the word at rsp, and each frame's saved
// rbp and return address along the chain from rbp.
class RecordedWords {
 public:
  explicit RecordedWords(const RecordedStack& stack) : stack_(stack) {}
  bool Read(uint64_t address, uint64_t* value) const {
    if (stack_.top_read && address == stack_.sp) {
      *value = stack_.top;
      return true;
    }
    uint64_t frame = stack_.bp;
    for (int i = 0; i < stack_.frame_count; ++i) {
      if (address == frame) {
        *value = stack_.frames[i].saved_bp;
        return true;
      }
      if (address == frame + 8) {
        *value = stack_.frames[i].return_address;
        return true;
      }
      frame = stack_.frames[i].saved_bp;
    }
    return false;
  }

 private:
  const RecordedStack& stack_;
};

// The frame-pointer walk. Frame 0 is rip. A system call wrapper usually
// sets up no frame, so the word at rsp is its return address when it points
// into code; after that, each frame's saved rbp links to its caller's, with
// the return address just above it.
template <typename Stack>
int UnwindFramePointers(const Stack& stack, uint64_t rip, uint64_t rsp, uint64_t rbp,
                        uintptr_t* ips, int max_depth, bool stack_switch,
                        const std::function<bool(uint64_t)>& is_code) {
  int depth = 0;
  ips[depth++] = rip;
  uint64_t top = 0;
  if (depth < max_depth && stack.Read(rsp, &top) && is_code(top)) ips[depth++] = top;
  uint64_t frame = rbp;
  uint64_t base = rsp;  // the bottom of the stack the walk is on
  bool switched = false;
  while (depth < max_depth && frame % 8 == 0 && frame >= base && frame - base < kMaxStackSpan) {
    uint64_t saved = 0;
    uint64_t ret = 0;
    if (!stack.Read(frame, &saved) || !stack.Read(frame + 8, &ret) || !is_code(ret)) break;
    if (ret != ips[depth - 1]) ips[depth++] = ret;
    if (saved <= frame || saved - frame >= kMaxStackSpan) {
      // Stacks grow down: the caller's frame is above, unless the caller
      // ran on another stack. Go's runtime calls the code that maps memory
      // on the thread's own stack (systemstack) with the goroutine's frame
      // pointer kept, so its frames go on in the goroutine's stack: in a Go
      // program one such switch is followed, if the frame there returns
      // into code. Elsewhere a saved rbp below the frame is what code
      // without frame pointers kept in it (static glibc's start: a pointer
      // into its data), and reading there would cost two system calls a
      // stack.
      if (!stack_switch || switched || saved == 0 || saved % 8) break;
      switched = true;
      base = saved;
    }
    frame = saved;
  }
  return depth;
}

}  // namespace

RemoteUnwinder::RemoteUnwinder(bool frame_pointers, bool stack_switch)
    : frame_pointers_(frame_pointers),
      stack_switch_(stack_switch),
      address_space_(frame_pointers ? nullptr : unw_create_addr_space(&_UPT_accessors, 0)) {}

RemoteUnwinder::~RemoteUnwinder() {
  if (address_space_) unw_destroy_addr_space(static_cast<unw_addr_space_t>(address_space_));
}

void RemoteUnwinder::Flush() {
  if (address_space_) unw_flush_cache(static_cast<unw_addr_space_t>(address_space_), 0, 0);
}

int RemoteUnwinder::UnwindWithLibunwind(pid_t tid, uintptr_t* ips, int max_depth) {
  if (!address_space_) return 0;
  void* upt = _UPT_create(tid);
  if (!upt) return 0;
  unw_cursor_t cursor;
  int depth = 0;
  if (unw_init_remote(&cursor, static_cast<unw_addr_space_t>(address_space_), upt) == 0) {
    do {
      unw_word_t ip = 0;
      if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
      ips[depth++] = ip;
    } while (depth < max_depth && unw_step(&cursor) > 0);
  }
  _UPT_destroy(upt);
  return depth;
}

int RemoteUnwinder::Unwind(pid_t tid, const user_regs_struct& regs, uintptr_t* ips,
                           int max_depth, const std::function<bool(uint64_t)>& is_code) {
  if (!frame_pointers_) {
    int depth = UnwindWithLibunwind(tid, ips, max_depth);
    if (depth > 1) return depth;
  }
  return UnwindFramePointers(StackWindow(tid, regs.rsp), regs.rip, regs.rsp, regs.rbp, ips,
                             max_depth, stack_switch_, is_code);
}

int RemoteUnwinder::UnwindRecorded(const RecordedStack& stack, uintptr_t* ips, int max_depth,
                                   const std::function<bool(uint64_t)>& is_code) {
  return UnwindFramePointers(RecordedWords(stack), stack.ip, stack.sp, stack.bp, ips, max_depth,
                             stack_switch_, is_code);
}

}  // namespace pagewaste::ptrace
