#include "stack_table.h"

#include "raw_mmap.h"

namespace pagewaste::producer {
namespace {

constexpr uint32_t kSlots = StackTable::kCapacity * 2;  // load factor <= 0.5

uint32_t Hash(uint64_t parent, uintptr_t ip) {
  uint64_t h = (parent * 0x9E3779B97F4A7C15ull) ^ (ip * 0xC2B2AE3D27D4EB4Full);
  h ^= h >> 29;
  return static_cast<uint32_t>(h) & (kSlots - 1);
}

}  // namespace

bool StackTable::Init() {
  nodes_ = static_cast<Node*>(RawReserve(sizeof(Node) * (kCapacity + 1)));
  slots_ = static_cast<uint32_t*>(RawReserve(sizeof(uint32_t) * kSlots));
  return nodes_ && slots_;
}

uint64_t StackTable::Intern(const uintptr_t* ips, int depth, RecordWriter* writer,
                            uint64_t parent, uint64_t* ids) {
  for (int i = depth - 1; i >= 0; --i) {
    uintptr_t ip = ips[i];
    uint32_t slot = Hash(parent, ip);
    Edge& recent = recent_[slot & (kRecent - 1)];
    if (recent.ip == ip && recent.parent == parent && recent.id) {
      parent = recent.id;
      if (ids) ids[i] = parent;
      continue;
    }
    uint32_t id;
    while ((id = slots_[slot]) != 0) {
      if (nodes_[id].parent == parent && nodes_[id].ip == ip) break;
      slot = (slot + 1) & (kSlots - 1);
    }
    if (id == 0) {
      if (size_ == kCapacity) {
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
