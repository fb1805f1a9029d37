// `pagewaste dump`: every record of a trace, one per line (dump_command.h).
#include "dump_command.h"

#include <fmt/format.h>

#include "exit_codes.h"
#include "reader/trace_reader.h"

namespace pagewaste {
namespace {

std::string Syscalls(const SyscallCounts& s) {
  std::string out;
  for (int i = 0; i < format::kSyscallKinds; ++i)
    if (s.count[i]) out += fmt::format(" {}={}", format::kSyscallNames[i], s.count[i]);
  return out.empty() ? "" : fmt::format(" syscalls:{} ns={}", out, s.ns);
}

std::string Prefix(const char* name, const EventPrefix& p) {
  return fmt::format("{} t={} tid={} stack={}", name, p.time_ns, p.tid, p.stack);
}

class Dumper : public RecordVisitor {
 public:
  explicit Dumper(FILE* out) : out_(out) {}
  ~Dumper() { Flush(); }
  void OnModuleMap(uint64_t generation) override {
    Line(fmt::format("module_map generation={}", generation));
  }
  void OnModule(const ModuleInfo& m) override {
    std::string segs;
    for (const auto& s : m.segments) segs += fmt::format(" {:#x}+{:#x}", s.start, s.length);
    Line(fmt::format("module bias={:#x} path={} build_id={} segments:{}", m.load_bias, m.path,
                     m.build_id, segs));
  }
  void OnStackNode(uint64_t id, uint64_t parent, uint64_t ip) override {
    Line(fmt::format("stack_node id={} parent={} ip={:#x}", id, parent, ip));
  }
  void OnAlloc(const AllocEvent& e) override {
    Line(fmt::format("{} kind={} addr={:#x} requested={} usable={} align={} mapped={} flags={}{}",
                     Prefix("alloc", e.prefix),
                     format::kAllocKindNames[static_cast<int>(e.kind)], e.address, e.requested,
                     e.usable, e.alignment, e.mapped_bytes, e.flags, Syscalls(e.syscalls)));
  }
  void OnFree(const FreeEvent& e) override {
    Line(fmt::format("{} kind={} addr={:#x} mapped={} flags={}{}", Prefix("free", e.prefix),
                     e.kind == format::FreeKind::kFree ? "free" : "realloc", e.address,
                     e.mapped_bytes, e.flags, Syscalls(e.syscalls)));
  }
  void OnMmap(const MmapEvent& e) override {
    Line(fmt::format("{} addr={:#x} length={} prot={:#x} map_flags={:#x} fd={} offset={} flags={}{}",
                     Prefix("mmap", e.prefix), e.address, e.length, e.prot, e.map_flags, e.fd,
                     e.offset, e.flags, Syscalls(e.syscalls)));
  }
  void OnMunmap(const MunmapEvent& e) override {
    Line(fmt::format("{} addr={:#x} length={} flags={}{}", Prefix("munmap", e.prefix), e.address,
                     e.length, e.flags, Syscalls(e.syscalls)));
  }
  void OnMremap(const MremapEvent& e) override {
    Line(fmt::format("{} old={:#x} old_length={} new_length={} mremap_flags={:#x} new={:#x} flags={}{}",
                     Prefix("mremap", e.prefix), e.old_address, e.old_length, e.new_length,
                     e.mremap_flags, e.new_address, e.flags, Syscalls(e.syscalls)));
  }
  void OnBrk(const BrkEvent& e) override {
    Line(fmt::format("{} kind={} old={:#x} new={:#x} argument={} flags={}{}", Prefix("brk", e.prefix),
                     e.kind == format::BrkKind::kBrk ? "brk" : "sbrk", e.old_break, e.new_break,
                     e.argument, e.flags, Syscalls(e.syscalls)));
  }
  void OnMemoryCall(const MemoryCallEvent& e) override {
    Line(fmt::format("{} kind={} addr={:#x} length={} argument={:#x} flags={}{}",
                     Prefix("memory_call", e.prefix), format::kSyscallNames[static_cast<int>(e.kind)],
                     e.address, e.length, e.argument, e.flags, Syscalls(e.syscalls)));
  }
  void OnEnd(const EndEvent& e) override {
    Line(fmt::format("end reason={} status={} records={} events={} stack_nodes={} chunks_lost={} bytes_lost={} shim{} observed{} started_ns={} ended_ns={}",
                     static_cast<int>(e.reason), e.status, e.records, e.events, e.stack_nodes,
                     e.chunks_lost, e.bytes_lost, Syscalls(e.shim_syscalls),
                     Syscalls(e.observed_syscalls), e.started_ns, e.ended_ns));
  }
  void OnSymbolModule(const SymbolModule& m) override {
    Line(fmt::format("symbol_module path={} build_id={}", m.path, m.build_id));
  }
  void OnSymbolizedAddress(const SymbolizedAddress& a) override {
    std::string frames;
    for (const SymbolFrame& f : a.frames)
      frames += fmt::format(" [{}{} {}:{} {}+0x{:x}]", f.inlined ? "inlined " : "",
                            f.function.empty() ? "??" : f.function, f.file, f.line, f.module,
                            f.module_offset);
    Line(fmt::format("symbol addr=0x{:x}{}", a.address, frames));
  }

 public:
  // Streamed in pieces of about 64 KiB: a dump is many times its trace's
  // size (2 million events from a 2.8 KB churn trace), and none of it is
  // held.
  void Line(const std::string& s) {
    pending_ += s;
    pending_ += '\n';
    if (pending_.size() >= (64 << 10)) Flush();
  }
  void Flush() {
    fwrite(pending_.data(), 1, pending_.size(), out_);
    pending_.clear();
  }

 private:
  FILE* out_;
  std::string pending_;
};

}  // namespace

int DumpTrace(const std::string& path, FILE* out, std::string* err) {
  auto source = OpenFileSource(path, err);
  if (!source) return exit_code::kUnreadableTrace;
  return DumpSource(std::move(source), path, out, err);
}

int DumpSource(std::unique_ptr<ByteSource> source, const std::string& path, FILE* out,
               std::string* err) {
  TraceReader reader(std::move(source));
  TraceHeader h;
  if (!reader.ReadHeader(&h, err)) {
    *err = path + ": " + *err;
    return exit_code::kUnreadableTrace;
  }
  Dumper dumper(out);
  dumper.Line(fmt::format(
      "header version={} page_size={} pid={} ppid={} session={:016x} backend={} exe={}",
      h.version, h.process.page_size, h.process.pid, h.process.ppid, h.process.session_id,
      static_cast<int>(h.process.backend), h.exe));
  for (const auto& a : h.argv) dumper.Line(fmt::format("argv {}", a));
  ReadResult result = reader.ReadRecords(&dumper);
  dumper.Flush();
  fflush(out);
  if (result.status != TraceStatus::kComplete) {
    *err = fmt::format("{}: trace is {}: {}", path, TraceStatusName(result.status), result.message);
    return exit_code::kIncompleteTrace;
  }
  return exit_code::kOk;
}

}  // namespace pagewaste
