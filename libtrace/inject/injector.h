// Loads the allocator feed's library (feed_library.cpp) into a running
// process and starts its feed: one of its threads is stopped at a safe
// point (remote_call.h) and made to call the C library's dlopen, then the
// library's entry point, then close on the descriptor the tool took over.
// The process's threads run on meanwhile, and the stopped one goes on
// where it was. See docs/bpf.md, "attach".
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "remote_call.h"

namespace pagewaste::inject {

struct FeedRequest {
  pid_t pid = 0;
  std::string library;      // the feed library's absolute path
  std::string libc_path;    // the C library the process maps, and where
  uint64_t libc_bias = 0;
  // The C library's and the loader's code, where the process is not
  // stopped outside a system call (remote_call.h).
  std::vector<CodeRange> unsafe_code;
  uint64_t ring_bytes = 0;  // a power of two, at least a page
  uint64_t sample_bytes = 0;
};

// The tool's descriptor of the process's feed (the file to map,
// feed_reader.h), or -1 with *err saying why in a few words.
int InjectFeed(const FeedRequest& request, std::string* err);

}  // namespace pagewaste::inject
