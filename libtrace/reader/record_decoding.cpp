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

// ---- Events: every field set, so that the reused event holds no earlier
// record's values --------------------------------------------------------------

namespace {

void ReadAlloc(Cursor* c, DeltaState* d, AllocEvent* e, bool* dirty) {
  e->prefix = ReadPrefix(c, d);
  uint64_t kind = c->U();
  if (kind >= format::kAllocKinds) c->ok = false;
  e->kind = static_cast<format::AllocKind>(kind);
  e->address = ReadAddress(c, d);
  e->requested = c->U();
  e->usable = e->requested + static_cast<uint64_t>(c->S());
  e->alignment = c->U();
  e->mapped_bytes = c->U();
  e->flags = c->U32();
  ReadSyscalls(c, &e->syscalls, dirty);
}

void ReadAllocSmall(Cursor* c, DeltaState* d, AllocEvent* e, bool* dirty) {
  e->prefix = ReadPrefix(c, d);
  e->kind = format::AllocKind::kMalloc;
  e->address = ReadAddress(c, d);
  e->requested = c->U();
  e->usable = e->requested + static_cast<uint64_t>(c->S());
  e->alignment = 0;
  e->mapped_bytes = 0;
  e->flags = 0;
  if (*dirty) ClearSyscalls(&e->syscalls, dirty);
}

void ReadFreeSmall(Cursor* c, DeltaState* d, FreeEvent* e, bool* dirty) {
  e->prefix = {d->time, d->tid, 0};
  e->kind = format::FreeKind::kFree;
  e->address = ReadAddress(c, d);
  e->mapped_bytes = 0;
  e->flags = 0;
  if (*dirty) ClearSyscalls(&e->syscalls, dirty);
}

void ReadFree(Cursor* c, DeltaState* d, FreeEvent* e, bool* dirty) {
  e->prefix = ReadPrefix(c, d);
  uint64_t kind = c->U();
  if (kind > static_cast<uint64_t>(format::FreeKind::kRealloc)) c->ok = false;
  e->kind = static_cast<format::FreeKind>(kind);
  e->address = ReadAddress(c, d);
  e->mapped_bytes = c->U();
  e->flags = c->U32();
  ReadSyscalls(c, &e->syscalls, dirty);
}

void ReadMmap(Cursor* c, DeltaState* d, MmapEvent* e, bool* dirty) {
  e->prefix = ReadPrefix(c, d);
  e->address = ReadAddress(c, d);
  e->length = c->U();
  e->prot = c->U32();
  e->map_flags = c->U32();
  e->fd = static_cast<int32_t>(c->S());
  e->offset = c->U();
  e->flags = c->U32();
  ReadSyscalls(c, &e->syscalls, dirty);
}

void ReadMunmap(Cursor* c, DeltaState* d, MunmapEvent* e, bool* dirty) {
  e->prefix = ReadPrefix(c, d);
  e->address = ReadAddress(c, d);
  e->length = c->U();
  e->flags = c->U32();
  e->resident_pages = c->U();
  e->used_bytes = c->U();
  ReadSyscalls(c, &e->syscalls, dirty);
}

void ReadMremap(Cursor* c, DeltaState* d, MremapEvent* e, bool* dirty) {
  e->prefix = ReadPrefix(c, d);
  e->old_address = ReadAddress(c, d);
  e->old_length = c->U();
  e->new_length = c->U();
  e->mremap_flags = c->U32();
  e->new_address = e->old_address + static_cast<uint64_t>(c->S());
  e->flags = c->U32();
  ReadSyscalls(c, &e->syscalls, dirty);
}

void ReadBrk(Cursor* c, DeltaState* d, BrkEvent* e, bool* dirty) {
  e->prefix = ReadPrefix(c, d);
  uint64_t kind = c->U();
  if (kind > static_cast<uint64_t>(format::BrkKind::kSbrk)) c->ok = false;
  e->kind = static_cast<format::BrkKind>(kind);
  e->old_break = c->U();
  e->new_break = c->U();
  e->argument = c->S();
  e->flags = c->U32();
  ReadSyscalls(c, &e->syscalls, dirty);
}

void ReadMemoryCall(Cursor* c, DeltaState* d, MemoryCallEvent* e, bool* dirty) {
  e->prefix = ReadPrefix(c, d);
  uint64_t kind = c->U();
  if (kind >= static_cast<uint64_t>(format::kSyscallKinds)) c->ok = false;
  e->kind = static_cast<format::SyscallKind>(kind);
  e->address = ReadAddress(c, d);
  e->length = c->U();
  e->argument = c->U();
  e->flags = c->U32();
  ReadSyscalls(c, &e->syscalls, dirty);
}

void ReadEnd(Cursor* c, uint16_t version, EndEvent* e) {
  uint64_t reason = c->U();
  if (reason < 1 || reason > static_cast<uint64_t>(format::EndReason::kRawExit)) c->ok = false;
  e->reason = static_cast<format::EndReason>(reason);
  e->status = c->S();
  e->records = c->U();
  e->events = c->U();
  e->stack_nodes = c->U();
  e->chunks_lost = c->U();
  e->bytes_lost = c->U();
  // A fresh EndEvent: its counts are zero, but each is read whole.
  for (SyscallCounts* counts :
       {&e->shim_syscalls, &e->observed_syscalls, &e->before_start_syscalls}) {
    bool dirty = true;
    ReadSyscalls(c, counts, &dirty);
  }
  if (version >= 6) {
    e->started_ns = c->U();
    e->ended_ns = c->U();
  }
}

}  // namespace

// ---- Records ---------------------------------------------------------------------

bool TraceReader::DecodeRecord(Cursor* cursor, DeltaState* delta, RecordVisitor* v,
                               ReadResult* result) {
  Cursor& c = *cursor;
  DeltaState& d = *delta;
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
  auto& e = events_;
  switch (type) {
    case RecordType::kAlloc:
      ReadAlloc(&c, &d, &e.alloc.event, &e.alloc.dirty);
      if (c.ok) v->OnAlloc(e.alloc.event);
      break;
    case RecordType::kAllocSmall:
      ReadAllocSmall(&c, &d, &e.alloc.event, &e.alloc.dirty);
      if (c.ok) v->OnAlloc(e.alloc.event);
      break;
    case RecordType::kFreeSmall:
      ReadFreeSmall(&c, &d, &e.free.event, &e.free.dirty);
      if (c.ok) v->OnFree(e.free.event);
      break;
    case RecordType::kFree:
      ReadFree(&c, &d, &e.free.event, &e.free.dirty);
      if (c.ok) v->OnFree(e.free.event);
      break;
    case RecordType::kMmap:
      ReadMmap(&c, &d, &e.mmap.event, &e.mmap.dirty);
      if (c.ok) v->OnMmap(e.mmap.event);
      break;
    case RecordType::kMunmap:
      ReadMunmap(&c, &d, &e.munmap.event, &e.munmap.dirty);
      if (c.ok) v->OnMunmap(e.munmap.event);
      break;
    case RecordType::kMremap:
      ReadMremap(&c, &d, &e.mremap.event, &e.mremap.dirty);
      if (c.ok) v->OnMremap(e.mremap.event);
      break;
    case RecordType::kBrk:
      ReadBrk(&c, &d, &e.brk.event, &e.brk.dirty);
      if (c.ok) v->OnBrk(e.brk.event);
      break;
    case RecordType::kMemoryCall:
      ReadMemoryCall(&c, &d, &e.memory_call.event, &e.memory_call.dirty);
      if (c.ok) v->OnMemoryCall(e.memory_call.event);
      break;
    default:
      is_event = false;
      if (!DecodeStructure(type, &c, &d, v, result)) {
        if (result->message.empty())
          result->message = "unknown record type " + std::to_string(*record_start);
        return false;
      }
  }
  if (!c.ok) {
    result->message = "undecodable record of type " + std::to_string(*record_start);
    return false;
  }
  ++result->records;
  if (is_event) ++result->events;
  return true;
}

bool TraceReader::DecodeStructure(RecordType type, Cursor* cursor, DeltaState* d,
                                  RecordVisitor* v, ReadResult* result) {
  Cursor& c = *cursor;
  switch (type) {
    case RecordType::kModuleMap:
      module_generation_ = c.U();
      if (c.ok) v->OnModuleMap(module_generation_);
      return true;
    case RecordType::kModule:
      return DecodeModule(&c, v, result);
    case RecordType::kStackNode: {
      uint64_t parent = c.U();
      uint64_t ip = c.U();
      // Its id is its place among the trace's nodes.
      return !c.ok || StackNodeAt(next_stack_id_, parent, ip, v, result);
    }
    case RecordType::kStackNodeAt: {
      uint64_t id = c.U();
      uint64_t parent = c.U();
      uint64_t ip = c.U();
      return !c.ok || StackNodeAt(id, parent, ip, v, result);
    }
    case RecordType::kTime:
      d->time += c.U();
      return true;
    case RecordType::kThread:
      d->tid = c.U32();
      return true;
    case RecordType::kStacksCut:
      if (version_ < 5) c.ok = false;
      result->stacks_cut += c.U();
      return true;
    case RecordType::kLost:
      if (version_ < 5) c.ok = false;
      result->events_dropped += c.U();
      return true;
    case RecordType::kEnd: {
      EndEvent e;
      ReadEnd(&c, version_, &e);
      if (c.ok) {
        result->has_end = true;
        result->end = e;
        v->OnEnd(e);
      }
      return true;
    }
    default:
      return false;  // an unknown type
  }
}

bool TraceReader::DecodeModule(Cursor* cursor, RecordVisitor* v, ReadResult* result) {
  Cursor& c = *cursor;
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
  if (!c.ok) return true;  // said by the caller
  // Snapshots repeat their modules; distinct ones are few.
  if (modules_.insert(m.path + '@' + std::to_string(m.load_bias)).second &&
      modules_.size() > format::kMaxModules) {
    result->message = "more than " + std::to_string(format::kMaxModules) +
                      " distinct modules (file and load address)";
    return false;
  }
  v->OnModule(m);
  return true;
}

}  // namespace pagewaste
