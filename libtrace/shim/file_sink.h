// The shim's trace file: naming, opening, and surviving a program that
// closes or dup2()s over file descriptors it does not own.
//
// The descriptor is moved above the range programs normally use and marked
// close-on-exec. Before every write the sink checks that the descriptor
// still refers to the file it opened (device and inode); if the program
// closed it or put something else there, the sink reopens its file by path
// and appends, so no foreign file is ever written to. Allocation-free.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

#include "record_writer.h"

namespace pagewaste::shim {

class FileSink : public ChunkSink {
 public:
  // Expands %p (pid), %e (executable's base name) and %% in pattern and
  // creates the file. A file left by an earlier session under that name is
  // replaced; one of this session (a forked child without %p, or an exec'd
  // image with the same name and pid) is kept, and ".N" is added before the
  // extension instead. Returns false if no file could be created.
  bool Open(const char* pattern, const char* exe_name, uint32_t pid,
            uint64_t session_id);
  bool WriteChunk(const uint8_t* data, size_t size) override;
  // Writes raw bytes (the file header) with the same checks.
  bool WriteRaw(const uint8_t* data, size_t size);
  // Current end of file, and cutting back to it: lets an exec that failed
  // take back the End record written just before it.
  off_t Size();
  void TruncateTo(off_t size);
  void Close();
  const char* path() const { return path_; }

 private:
  bool EnsureFd();
  bool CreateExclusive(const char* path, uint64_t session_id);

  int fd_ = -1;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  char path_[4096] = {};
};

}  // namespace pagewaste::shim
