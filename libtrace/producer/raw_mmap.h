// mmap and munmap as raw system calls, for the shim's own memory: calling
// mmap by name would reach our own wrapper (hooks.cpp) and record the
// shim's memory as the program's. Allocation-free; errno is left alone.
#pragma once

#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstddef>

namespace pagewaste::producer {

// The mapping, or nullptr with *error (if given) set to the errno value.
inline void* RawMmap(void* addr, size_t length, int prot, int flags, int fd, off_t offset,
                     int* error = nullptr) {
  long r = syscall(SYS_mmap, addr, length, prot, flags, fd, offset);
  if (r < 0 && r > -4096) {
    if (error) *error = static_cast<int>(-r);
    return nullptr;
  }
  return reinterpret_cast<void*>(r);
}

inline int RawMunmap(void* addr, size_t length) {
  return static_cast<int>(syscall(SYS_munmap, addr, length));
}

// Anonymous read-write memory reserved without committing swap.
inline void* RawReserve(size_t length) {
  return RawMmap(nullptr, length, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
}

}  // namespace pagewaste::producer
