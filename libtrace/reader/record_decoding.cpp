// Records, one at a time: every field read back as record_writer.cpp
// wrote it (format.h is the reference for both), checked, and delivered to
// the visitor; events skipped over for a visitor that wants none.
#include <string>

#include "trace_reader.h"
#include "trace_reader_internal.h"

namespace pagewaste {

using namespace trace_reader_internal;

bool TraceReader::DecodeChunk(const uint8_t* begin, const uint8_t* end, RecordVisitor* v,
                              ReadResult* result) {
  Cursor c{begin, end};
  DeltaState d;
  d.address_bases = version_ >= 4;
  while (c.p < end) {
    if (*c.p == static_cast<uint8_t>(RecordType::kStackNodeAt)) {
      result->message =
          "a thread chunk's record (type " + std::to_string(*c.p) + ") in a plain chunk";
      return false;
    }
    if (!DecodeRecord(&c, &d, v, result)) return false;
  }
  return true;
}

bool TraceReader::StackNodeAt(uint64_t id, uint64_t parent, uint64_t ip, RecordVisitor* v,
                              ReadResult* result) {
  // An id seen before, placed or waiting, is refused: the same id twice.
  if (id == 0 || id > format::kMaxStackNodeId || parent >= id ||
      (id <= stack_depth_.size() && stack_depth_[id - 1])) {
    result->message = "a stack node with a bad id";
    return false;
  }
  if (parent && (parent > stack_depth_.size() || !stack_depth_[parent - 1] ||
                 stack_depth_[parent - 1] == kWaitingForParent)) {
    // Its parent comes later (in another thread's chunk).
    if (orphans_.size() >= format::kMaxWaitingStackNodes) {
      result->message = "more than " + std::to_string(format::kMaxWaitingStackNodes) +
                        " stack nodes waiting for their parents";
      return false;
    }
    if (stack_depth_.size() < id) stack_depth_.resize(id, 0);
    stack_depth_[id - 1] = kWaitingForParent;
    orphans_.emplace(parent, std::make_pair(id, ip));
    return true;
  }
  // The node, and any that waited for it.
  std::vector<std::pair<uint64_t, std::pair<uint64_t, uint64_t>>> ready = {{parent, {id, ip}}};
  while (!ready.empty()) {
    auto [p, node] = ready.back();
    ready.pop_back();
    auto [n, n_ip] = node;
    uint16_t depth = p ? static_cast<uint16_t>(stack_depth_[p - 1] + 1) : 1;
    if (depth > format::kMaxStackDepth) {
      result->message = "a stack deeper than " + std::to_string(format::kMaxStackDepth) +
                        " frames, the format's limit";
      return false;
    }
    if (stack_depth_.size() < n) stack_depth_.resize(n, 0);
    stack_depth_[n - 1] = depth;
    if (n >= next_stack_id_) next_stack_id_ = n + 1;
    v->OnStackNode(n, p, n_ip);
    auto [first, last] = orphans_.equal_range(n);
    for (auto it = first; it != last; ++it) ready.push_back({n, it->second});
    orphans_.erase(first, last);
  }
  return true;
}

bool TraceReader::DecodeRecord(Cursor* cursor, DeltaState* delta, RecordVisitor* v,
                               ReadResult* result) {
  Cursor& c = *cursor;
  DeltaState& d = *delta;
  {  // one record
    if (result->has_end) {
      result->message = "data after the end record";
      return false;
    }
    const uint8_t* record_start = c.p;
    auto type = static_cast<RecordType>(*c.p++);
    if (!wants_events_ && SkipEvent(type, &c)) {
      if (!c.ok) {
        result->message = "undecodable record of type " + std::to_string(*record_start);
        return false;
      }
      ++result->records;
      ++result->events;
      return true;
    }
    bool is_event = true;
    switch (type) {
      case RecordType::kModuleMap:
        is_event = false;
        module_generation_ = c.U();
        if (c.ok) v->OnModuleMap(module_generation_);
        break;
      case RecordType::kModule: {
        is_event = false;
        ModuleInfo m;
        m.generation = module_generation_;
        m.load_bias = c.U();
        uint64_t count = c.U();
        if (count > kMaxModuleSegments) c.ok = false;
        for (uint64_t i = 0; i < count && c.ok; ++i) {
          ModuleSegment s;
          s.start = c.U();
          s.length = c.U();
          m.segments.push_back(s);
        }
        m.path = c.Str();
        if (version_ >= 3) m.build_id = c.Str();
        if (!c.ok) break;
        // Snapshots repeat their modules; distinct ones are few.
        if (modules_.insert(m.path + '@' + std::to_string(m.load_bias)).second &&
            modules_.size() > format::kMaxModules) {
          result->message = "more than " + std::to_string(format::kMaxModules) +
                            " distinct modules (file and load address)";
          return false;
        }
        v->OnModule(m);
        break;
      }
      case RecordType::kStackNode: {
        is_event = false;
        uint64_t parent = c.U();
        uint64_t ip = c.U();
        if (!c.ok) break;
        // Its id is its place among the trace's nodes.
        if (!StackNodeAt(next_stack_id_, parent, ip, v, result)) return false;
        break;
      }
      case RecordType::kStackNodeAt: {
        is_event = false;
        uint64_t id = c.U();
        uint64_t parent = c.U();
        uint64_t ip = c.U();
        if (!c.ok) break;
        if (!StackNodeAt(id, parent, ip, v, result)) return false;
        break;
      }
      case RecordType::kTime:
        is_event = false;
        d.time += c.U();
        break;
      case RecordType::kThread:
        is_event = false;
        d.tid = c.U32();
        break;
      case RecordType::kAlloc: {
        auto& [e, dirty] = events_.alloc;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        uint64_t kind = c.U();
        if (kind >= format::kAllocKinds) c.ok = false;
        e.kind = static_cast<format::AllocKind>(kind);
        e.address = ReadAddress(&c, &d);
        e.requested = c.U();
        e.usable = e.requested + static_cast<uint64_t>(c.S());
        e.alignment = c.U();
        e.mapped_bytes = c.U();
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnAlloc(e);
        break;
      }
      case RecordType::kAllocSmall: {
        auto& [e, dirty] = events_.alloc;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        e.kind = format::AllocKind::kMalloc;
        e.address = ReadAddress(&c, &d);
        e.requested = c.U();
        e.usable = e.requested + static_cast<uint64_t>(c.S());
        e.alignment = 0;
        e.mapped_bytes = 0;
        e.flags = 0;
        if (dirty) ClearSyscalls(&e.syscalls, &dirty);
        if (c.ok) v->OnAlloc(e);
        break;
      }
      case RecordType::kFreeSmall: {
        auto& [e, dirty] = events_.free;  // every field of e is set below
        e.prefix = {d.time, d.tid, 0};
        e.kind = format::FreeKind::kFree;
        e.address = ReadAddress(&c, &d);
        e.mapped_bytes = 0;
        e.flags = 0;
        if (dirty) ClearSyscalls(&e.syscalls, &dirty);
        if (c.ok) v->OnFree(e);
        break;
      }
      case RecordType::kFree: {
        auto& [e, dirty] = events_.free;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        uint64_t kind = c.U();
        if (kind > static_cast<uint64_t>(format::FreeKind::kRealloc)) c.ok = false;
        e.kind = static_cast<format::FreeKind>(kind);
        e.address = ReadAddress(&c, &d);
        e.mapped_bytes = c.U();
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnFree(e);
        break;
      }
      case RecordType::kMmap: {
        auto& [e, dirty] = events_.mmap;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        e.address = ReadAddress(&c, &d);
        e.length = c.U();
        e.prot = c.U32();
        e.map_flags = c.U32();
        e.fd = static_cast<int32_t>(c.S());
        e.offset = c.U();
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnMmap(e);
        break;
      }
      case RecordType::kMunmap: {
        auto& [e, dirty] = events_.munmap;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        e.address = ReadAddress(&c, &d);
        e.length = c.U();
        e.flags = c.U32();
        e.resident_pages = c.U();
        e.used_bytes = c.U();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnMunmap(e);
        break;
      }
      case RecordType::kMremap: {
        auto& [e, dirty] = events_.mremap;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        e.old_address = ReadAddress(&c, &d);
        e.old_length = c.U();
        e.new_length = c.U();
        e.mremap_flags = c.U32();
        e.new_address = e.old_address + static_cast<uint64_t>(c.S());
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnMremap(e);
        break;
      }
      case RecordType::kBrk: {
        auto& [e, dirty] = events_.brk;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        uint64_t kind = c.U();
        if (kind > static_cast<uint64_t>(format::BrkKind::kSbrk)) c.ok = false;
        e.kind = static_cast<format::BrkKind>(kind);
        e.old_break = c.U();
        e.new_break = c.U();
        e.argument = c.S();
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnBrk(e);
        break;
      }
      case RecordType::kMemoryCall: {
        auto& [e, dirty] = events_.memory_call;  // every field of e is set below
        e.prefix = ReadPrefix(&c, &d);
        uint64_t kind = c.U();
        if (kind >= static_cast<uint64_t>(format::kSyscallKinds)) c.ok = false;
        e.kind = static_cast<format::SyscallKind>(kind);
        e.address = ReadAddress(&c, &d);
        e.length = c.U();
        e.argument = c.U();
        e.flags = c.U32();
        ReadSyscalls(&c, &e.syscalls, &dirty);
        if (c.ok) v->OnMemoryCall(e);
        break;
      }
      case RecordType::kStacksCut:
        is_event = false;
        if (version_ < 5) c.ok = false;
        result->stacks_cut += c.U();
        break;
      case RecordType::kLost:
        is_event = false;
        if (version_ < 5) c.ok = false;
        result->events_dropped += c.U();
        break;
      case RecordType::kEnd: {
        is_event = false;
        EndEvent e;
        uint64_t reason = c.U();
        if (reason < 1 || reason > static_cast<uint64_t>(format::EndReason::kRawExit)) c.ok = false;
        e.reason = static_cast<format::EndReason>(reason);
        e.status = c.S();
        e.records = c.U();
        e.events = c.U();
        e.stack_nodes = c.U();
        e.chunks_lost = c.U();
        e.bytes_lost = c.U();
        // A fresh EndEvent: its counts are zero, but each is read whole.
        for (SyscallCounts* counts :
             {&e.shim_syscalls, &e.observed_syscalls, &e.before_start_syscalls}) {
          bool dirty = true;
          ReadSyscalls(&c, counts, &dirty);
        }
        if (version_ >= 6) {
          e.started_ns = c.U();
          e.ended_ns = c.U();
        }
        if (c.ok) {
          result->has_end = true;
          result->end = e;
          v->OnEnd(e);
        }
        break;
      }
      default:
        result->message = "unknown record type " + std::to_string(*record_start);
        return false;
    }
    if (!c.ok) {
      result->message = "undecodable record of type " + std::to_string(*record_start);
      return false;
    }
    ++result->records;
    if (is_event) ++result->events;
  }
  return true;
}

}  // namespace pagewaste
