// Call stacks interned as a tree of (parent, return address) edges, each
// written once (stack_table.h).
#include "stack_table.h"

#include "raw_mmap.h"

namespace pagewaste::producer {
namespace {

constexpr uint32_t kMaxSlots = StackTable::kCapacity * 2;  // load factor <= 0.5
constexpr uint32_t kFirstSlots = 4096;                      // 16 KiB

uint32_t Hash(uint64_t parent, uintptr_t ip) {
  uint64_t h = (parent * 0x9E3779B97F4A7C15ull) ^ (ip * 0xC2B2AE3D27D4EB4Full);
  h ^= h >> 29;
  return static_cast<uint32_t>(h);
}

}  // namespace

bool StackTable::Init() {
  nodes_ = static_cast<Node*>(RawReserve(sizeof(Node) * (kCapacity + 1)));
  slots_ = static_cast<uint32_t*>(RawReserve(sizeof(uint32_t) * kFirstSlots));
  mask_ = kFirstSlots - 1;
  return nodes_ && slots_;
}

// Four times the slots (at most kMaxSlots), the nodes hashed into them
// again; false (the table stays as it is) where the memory cannot be had.
bool StackTable::Grow() {
  uint32_t slots = (mask_ + 1) * 4 < kMaxSlots ? (mask_ + 1) * 4 : kMaxSlots;
  auto* grown = static_cast<uint32_t*>(RawReserve(sizeof(uint32_t) * slots));
  syscalls_.Add(format::SyscallKind::kMmap);
  if (!grown) return false;
  for (uint32_t id = 1; id <= size_; ++id) {
    uint32_t slot = Hash(nodes_[id].parent, nodes_[id].ip) & (slots - 1);
    while (grown[slot]) slot = (slot + 1) & (slots - 1);
    grown[slot] = id;
  }
  RawMunmap(slots_, sizeof(uint32_t) * (mask_ + 1));
  syscalls_.Add(format::SyscallKind::kMunmap);
  slots_ = grown;
  mask_ = slots - 1;
  return true;
}

uint64_t StackTable::Intern(const uintptr_t* ips, int depth, RecordWriter* writer,
                            uint64_t parent, uint64_t* ids) {
  for (int i = depth - 1; i >= 0; --i) {
    uintptr_t ip = ips[i];
    uint32_t hash = Hash(parent, ip);
    Edge& recent = recent_[hash & (kRecent - 1)];
    if (recent.ip == ip && recent.parent == parent && recent.id) {
      parent = recent.id;
      if (ids) ids[i] = parent;
      continue;
    }
    uint32_t slot = hash & mask_;
    uint32_t id;
    while ((id = slots_[slot]) != 0) {
      if (nodes_[id].parent == parent && nodes_[id].ip == ip) break;
      slot = (slot + 1) & mask_;
    }
    if (id == 0) {
      // Half full: four times the slots, and the free slot found again
      // there.
      if (size_ + 1 > (mask_ + 1) / 2 && mask_ + 1 < kMaxSlots && Grow()) {
        slot = hash & mask_;
        while (slots_[slot]) slot = (slot + 1) & mask_;
      }
      // Full: every node used, or the slots three quarters full where they
      // could not grow.
      if (size_ == kCapacity || size_ + 1 > (mask_ + 1) / 4 * 3) {
        if (ids)
          for (int k = i; k >= 0; --k) ids[k] = parent;
        return parent;
      }
      id = ++size_;
      nodes_[id] = {parent, ip};
      slots_[slot] = id;
      writer->StackNodeAt(id, parent, ip);
    }
    recent = {ip, static_cast<uint32_t>(parent), id};
    parent = id;
    if (ids) ids[i] = id;
  }
  return parent;
}

void StackTable::Replay(RecordWriter* writer) const {
  for (uint32_t id = 1; id <= size_; ++id)
    writer->StackNodeAt(id, nodes_[id].parent, nodes_[id].ip);
}

}  // namespace pagewaste::producer
