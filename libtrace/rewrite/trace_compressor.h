// Rewrites a closed trace with its chunks compressed (format.h kChunkZstd).
// `pagewaste run` does it once the program has exited, so that compression
// costs the program nothing: the shim writes plain chunks straight into the
// file (a record is safe the moment it is committed), and the file shrinks
// afterwards.
#pragma once

#include <cstdint>
#include <string>

namespace pagewaste {

struct CompressResult {
  bool compressed = false;  // false: left as it was (see why)
  std::string why;          // when not compressed: the reason
  uint64_t bytes_before = 0;
  uint64_t bytes_after = 0;
};

// Only a trace whose process closed it (a chunk with kChunkEnd) and whose
// chunks are all plain and whole is rewritten; anything else is left alone
// for the reader to report as it is. The new file replaces the old one by
// rename, so a reader never sees half of it. False with *err on an I/O error
// (the original is then untouched).
bool CompressTrace(const std::string& path, CompressResult* result, std::string* err);

}  // namespace pagewaste
