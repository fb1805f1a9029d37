// What the bpf backend's records carry, in the terms the producers share:
// a memory system call's record from the ring as the call and the stack
// the ptrace backend's recorder takes, and the C library and loader of a
// process, where attach's allocator feed is loaded and must not stop it.
#pragma once

#include <cstddef>

#include "bpf_events.h"
#include "format/usage_estimate.h"
#include "inject/injector.h"
#include "producer/memory_syscalls.h"
#include "ptrace/proc_maps.h"
#include "ptrace/process_recorder.h"

namespace pagewaste::bpf {

// A PW_EVENT_SYSCALL record of `size` bytes (at least its fixed part): the
// call, with the usage measured in the kernel where there is one, and its
// stack (its frames are the record's: it must outlive this).
struct RingSyscall {
  RingSyscall(const pw_syscall_event& e, size_t size);
  RingSyscall(const RingSyscall&) = delete;
  RingSyscall& operator=(const RingSyscall&) = delete;

  producer::MemorySyscall call;
  UsageEstimate usage;  // call.usage points here when it was measured
  ptrace::RecordedStack stack;
};

// The C library a process maps (the last one, by name), or null.
const ModuleInfo* LibcOf(const ptrace::ProcessImage& image);

// The feed's C library and the code it must not be injected in the middle
// of (the C library's and the loader's), from the process's image; false
// when it maps no C library.
bool AddLibraries(const ptrace::ProcessImage& image, inject::FeedRequest* request);

}  // namespace pagewaste::bpf
