// One trace file being written, as both producers (the preload shim and the
// ptrace backend) write it: the sink, the chunk buffer and the writer over
// them, the stack table, and the program's private anonymous mappings still
// live (measured at the end). Allocation-free; the caller serializes access.
//
// A trace's life here: Open, WriteHeader, records (the stack table's nodes,
// events, memory system calls), then FinishData (last chunk out, the file's
// mapping dropped) and End. What comes between the two (a count of what the
// shutdown itself cost, an observer's mark) is the producer's.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/events.h"
#include "file_sink.h"
#include "live_mappings.h"
#include "memory_syscalls.h"
#include "record_writer.h"
#include "stack_table.h"

namespace pagewaste::producer {

class TraceFile {
 public:
  static constexpr size_t kChunkBytes = 256 << 10;

  constexpr TraceFile() = default;
  TraceFile(const TraceFile&) = delete;
  TraceFile& operator=(const TraceFile&) = delete;

  // Creates the file (FileSink::Open). The stack table is reserved apart
  // (stacks().Init()), once per process: a forked child keeps its parent's.
  bool Open(const char* pattern, const char* exe_name, uint32_t pid, uint64_t session_id,
            bool use_mapping) {
    return sink_.Open(pattern, exe_name, pid, session_id, use_mapping);
  }
  // The file header; start_realtime_ns is taken now. Call before any record.
  // A file that cannot take it (a full disk) is deleted: false, with errno.
  bool WriteHeader(HeaderInfo header);

  // A forked child's copy of its parent's trace: the parent's unwritten
  // records and its file are let go, untouched, and the child's stack table
  // nodes (its parent's) written again by WriteKnownStacks after the header.
  void LeaveParentsFile() {
    writer_.Reset();
    sink_.Abandon();
    stacks_.ForgetSyscalls();
  }
  void WriteKnownStacks() { stacks_.Replay(&writer_); }

  void Record(const EventPrefix& prefix, const MemorySyscall& call) {
    RecordMemorySyscall(&writer_, &live_, prefix, call);
  }
  // Each private anonymous mapping still there, with measure's figures.
  template <typename Measure>
  void RecordLiveMappingsAtExit(const EventPrefix& prefix, Measure measure) {
    producer::RecordLiveMappingsAtExit(&writer_, live_, prefix, measure);
  }

  // The last chunk to the file, and the file's mapping dropped (so that the
  // End record can count that munmap).
  void FinishData() {
    writer_.Flush();
    sink_.StopMapping();
  }
  void End(format::EndReason reason, int64_t status, const SyscallCounts& own_syscalls,
           const SyscallCounts& observed = {}, const SyscallCounts& before_start = {}) {
    writer_.End(reason, status, own_syscalls, observed, before_start);
    sink_.Close();
  }

  // The memory system calls the sink, the stack table's growth and the
  // live-mapping table made.
  SyscallCounts OwnSyscalls() const {
    SyscallCounts total = sink_.syscalls();
    SyscallCounts stacks = stacks_.syscalls();
    for (int i = 0; i < format::kSyscallKinds; ++i) total.count[i] += stacks.count[i];
    total.Add(format::SyscallKind::kMmap, live_.mmaps());
    return total;
  }

  RecordWriter& writer() { return writer_; }
  LiveMappings& live_mappings() { return live_; }
  StackTable& stacks() { return stacks_; }
  FileSink& sink() { return sink_; }
  const FileSink& sink() const { return sink_; }
  const char* path() const { return sink_.path(); }

 private:
  FileSink sink_;
  uint8_t buffer_[kChunkBytes] = {};
  RecordWriter writer_{buffer_, kChunkBytes, &sink_};
  StackTable stacks_;
  LiveMappings live_;
};

}  // namespace pagewaste::producer
