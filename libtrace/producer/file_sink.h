// A trace file as the producers write it (the shim inside the program, the
// ptrace backend beside it): naming, opening, keeping every committed record
// even when the process dies without warning, and surviving a program that
// closes or dup2()s over file descriptors it does not own.
//
// Chunks are written in place in a shared mapping of the file: the writer
// encodes straight into the page cache, so a process killed by SIGKILL, or
// by a signal whose handler the program replaced, leaves every committed
// record in the file. The file is extended a window at a time with
// fallocate(), so that a full disk is an error here rather than a SIGBUS in
// the program; where the file system cannot do that, the sink falls back to
// write(2) of whole chunks (so does PAGEWASTE_SINK=write). When the trace is
// closed, the file is cut to its exact length.
//
// The descriptor is moved above the range programs normally use and marked
// close-on-exec. Before each use the sink checks that the descriptor still
// refers to the file it opened (device and inode); if the program closed it
// or put something else there, the sink reopens its file by path, so no
// foreign file is ever touched. Allocation-free.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "record_writer.h"

namespace pagewaste::producer {

class FileSink : public ChunkSink {
 public:
  // Expands %p (pid), %e (executable's base name) and %% in pattern and
  // creates the file. A file left by an earlier session under that name is
  // replaced; one of this session (a forked child without %p, or an exec'd
  // image with the same name and pid) is kept, and ".N" is added before the
  // extension instead. Returns false if no file could be created.
  bool Open(const char* pattern, const char* exe_name, uint32_t pid,
            uint64_t session_id, bool use_mapping);
  uint8_t* NextChunk(size_t capacity) override;
  bool FinishChunk(const uint8_t* data, size_t size) override;
  // Writes raw bytes (the file header) at the end of the data.
  bool WriteRaw(const uint8_t* data, size_t size);

  // Chunks several writers fill at once (thread chunks, format.h): the
  // next `capacity` bytes of the file, mapped on their own so that writers
  // finish theirs in any order, or null when the sink does not map (the
  // caller then fills a buffer and appends it with WriteRaw when done).
  // UnmapChunk lets go of one. Callers serialize.
  uint8_t* MapChunk(size_t capacity);
  void UnmapChunk(uint8_t* chunk, size_t capacity);
  // Bytes of trace data so far, and cutting back to an earlier size: lets
  // an exec that failed take back the End record written just before it.
  uint64_t Size() const { return end_; }
  void TruncateTo(uint64_t size);
  // Unmaps the current window and writes with pwrite from then on: before
  // the End record, so that the record can count the munmap.
  void StopMapping();
  // Cuts the file to its data and closes it.
  void Close();
  // The memory system calls the sink has made since Open.
  const SyscallCounts& syscalls() const { return syscalls_; }
  // Closes and deletes the file: one that could not take its header.
  void Remove();
  // Lets go of a file that is not ours to close: a forked child's copy of
  // its parent's mapping and descriptor. The file is left untouched.
  void Abandon();
  // The file's path; after a failed Open, the path it could not create.
  const char* path() const { return path_; }

 private:
  bool EnsureFd();
  bool CreateExclusive(const char* path, uint64_t session_id);
  bool MapWindow(uint64_t start, size_t capacity);
  // [start, start + size) of the file, reserved on disk and mapped shared;
  // null if it cannot be.
  uint8_t* MapRange(uint64_t start, size_t size);
  void Unmap();

  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  uint64_t end_ = 0;  // bytes of trace data in the file
  bool use_mapping_ = false;
  uint8_t* window_ = nullptr;  // shared mapping of [window_start_, +window_size_)
  uint64_t window_start_ = 0;
  size_t window_size_ = 0;
  SyscallCounts syscalls_;
  char path_[4096] = {};
};

}  // namespace pagewaste::producer
