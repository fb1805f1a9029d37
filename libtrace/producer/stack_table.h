// Interns call stacks as a tree of (parent, instruction pointer) edges, the
// way heaptrack does: each edge is written to the trace once, as a StackNode
// record, and an event refers to its innermost node. Two stacks that share
// their outer frames share those nodes, so a new stack usually costs one or
// two records.
//
// Storage is reserved with mmap (never malloc) and touched lazily: the nodes
// once, the hash slots small at first and four times larger each time they
// are half full, so that a short process touches a page or two of them
// rather than one page per edge of a table sized for a million. When the
// table is full, a stack keeps only its outer frames that are already
// interned (a million distinct edges is far beyond what real programs
// reach).
#pragma once

#include <cstddef>
#include <cstdint>

#include "record_writer.h"

namespace pagewaste::producer {

class StackTable {
 public:
  static constexpr uint32_t kCapacity = 1u << 20;  // nodes

  // Reserves the table's memory: two mmap system calls.
  static constexpr uint32_t kInitMmaps = 2;
  bool Init();
  // Returns the id of the stack ips[0] (innermost) .. ips[depth-1]
  // (outermost), writing any new nodes through writer. Caller holds the
  // writer lock.
  uint64_t Intern(const uintptr_t* ips, int depth, RecordWriter* writer) {
    return Intern(ips, depth, writer, 0, nullptr);
  }
  // The same for ips[0..depth) under the node `parent` (the stack's outer
  // frames, already interned). ids, if given, receives the node of each
  // frame: ids[i] is the id of the stack ips[i..depth) under parent.
  uint64_t Intern(const uintptr_t* ips, int depth, RecordWriter* writer, uint64_t parent,
                  uint64_t* ids);
  // Writes every node again, in id order (a forked child's new trace).
  void Replay(RecordWriter* writer) const;
  // The memory system calls the slots' growth made since Init or the last
  // ForgetSyscalls (a forked child's trace starts its count anew).
  SyscallCounts syscalls() const { return syscalls_; }
  void ForgetSyscalls() { syscalls_ = {}; }

 private:
  struct Node {
    uint64_t parent;
    uintptr_t ip;
  };
  // Recently used edges, direct-mapped, in front of the open-addressed
  // table: its slots and nodes lie spread over megabytes, and each look-up
  // there is two cache misses. 16 B per entry, 128 KiB in all.
  struct Edge {
    uintptr_t ip;
    uint32_t parent;
    uint32_t id;
  };
  static constexpr uint32_t kRecent = 8192;
  Edge recent_[kRecent] = {};
  bool Grow();

  Node* nodes_ = nullptr;      // by id; nodes_[0] unused
  uint32_t* slots_ = nullptr;  // open addressing: node ids, 0 = empty
  uint32_t mask_ = 0;          // slots - 1
  uint32_t size_ = 0;          // nodes in use
  SyscallCounts syscalls_;
};

}  // namespace pagewaste::producer
