// A fast call-stack walk for x86-64: the unwind rule of each return address
// (where the caller's frame starts, where the return address and the saved
// frame pointer lie) is read once from the module's .eh_frame, through its
// .eh_frame_hdr search table, and cached; after that a frame costs a cache
// look-up and two loads. It works whether or not the code keeps a frame
// pointer, as libunwind does, at a fraction of unw_backtrace's cost (which
// rebuilds a cursor and walks its own caches for every stack).
//
// It covers the rules compilers emit at call sites: the CFA as the stack or
// frame pointer plus an offset, the return address and the frame pointer
// saved at offsets from it. Anything else (a CFA given by a DWARF
// expression, as in signal trampolines and realigned frames; code without
// unwind information) makes FastBacktrace give up, and the caller falls back
// to libunwind for that stack.
//
// The rule cache is a fixed table reserved with mmap: no allocation, no
// lock; threads that race to fill the same slot compute the same rule.
#pragma once

#include <cstdint>

namespace pagewaste::shim {

// Reserves the rule cache (one mmap). False if it cannot.
bool InitFastUnwind();

// Walks the stack of the calling thread from the first frame whose return
// address is outside [skip_start, skip_end) (the shim's own frames, which
// keep frame pointers). Writes up to max return addresses outside that
// range, innermost first; returns how many, or -1 if the walk met a frame
// it cannot unwind.
int FastBacktrace(uintptr_t* ips, int max, uintptr_t skip_start, uintptr_t skip_end);

// Code was unloaded (dlclose): cached rules for its addresses may be stale.
void ForgetUnwindRules();

}  // namespace pagewaste::shim
