// What the bpf backend's records carry (ring_records.h).
#include "ring_records.h"

#include <cstring>
#include <string>

namespace pagewaste::bpf {

RingSyscall::RingSyscall(const pw_syscall_event& e, size_t size) {
  size_t fixed = sizeof e - sizeof e.frames;
  call.nr = e.nr;
  memcpy(call.args, e.args, sizeof call.args);
  call.result = e.result;
  call.ns = e.kernel_ns;
  if (e.flags & PW_USAGE_MEASURED) {
    usage.resident_pages = e.resident_pages;
    usage.used_bytes = e.used_bytes;
    call.usage = &usage;
  }
  stack.ip = e.ip;
  stack.sp = e.sp;
  stack.bp = e.bp;
  stack.top_read = (e.flags & PW_TOP_READ) != 0;
  stack.top = e.top;
  stack.frames = reinterpret_cast<const ptrace::RecordedStack::Frame*>(e.frames);
  size_t frames = (size - fixed) / sizeof e.frames[0];
  stack.frame_count = static_cast<int>(frames < e.frame_count ? frames : e.frame_count);
}

const ModuleInfo* LibcOf(const ptrace::ProcessImage& image) {
  const ModuleInfo* libc = nullptr;
  for (const ModuleInfo& m : image.modules) {
    std::string name = m.path.substr(m.path.rfind('/') + 1);
    if (name.rfind("libc.so", 0) == 0 || name.rfind("libc-", 0) == 0) libc = &m;
  }
  return libc;
}

bool AddLibraries(const ptrace::ProcessImage& image, inject::FeedRequest* request) {
  const ModuleInfo* libc = LibcOf(image);
  if (!libc) return false;
  request->libc_path = libc->path;
  request->libc_bias = libc->load_bias;
  for (const ModuleInfo& m : image.modules) {
    std::string name = m.path.substr(m.path.rfind('/') + 1);
    if (&m != libc && name.rfind("ld-", 0) != 0) continue;
    for (const ModuleSegment& segment : m.segments)
      request->unsafe_code.push_back({segment.start, segment.start + segment.length});
  }
  return true;
}

}  // namespace pagewaste::bpf
