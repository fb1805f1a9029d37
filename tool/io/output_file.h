// The files the CLI writes for the user (reports, check's and diff's
// outputs), created as the traces are: never through a symbolic link,
// never over one of the command's own inputs, and an existing file
// replaced only by the atomic rename of a new private file (0600) made
// beside it, so that a reader never sees half a report and a link planted
// at the path by another user is neither followed nor kept.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace pagewaste {

// Whether path may be written: "" and "-" (stdout) always; otherwise not a
// symbolic link, not anything but a regular file where something is
// there, and not the same file as any of inputs. False with *err, one
// line naming the path.
bool CheckOutputPath(const std::string& path, const std::vector<std::string>& inputs,
                     std::string* err);

// All of text to fd, however many writes it takes; false with errno set (0
// for a write that made no progress).
bool WriteAll(int fd, std::string_view text);

// Writes text to path ("" or "-": stdout) as above; false with *err.
bool WriteOutputFile(const std::string& path, const std::string& text, std::string* err);

// Where an output goes as it is written, piece by piece.
class TextSink {
 public:
  virtual ~TextSink() = default;
  virtual void Write(std::string_view text) = 0;
};

// An output held in memory (tests, and documents read back).
class StringSink : public TextSink {
 public:
  void Write(std::string_view text) override { text_ += text; }
  std::string& text() { return text_; }

 private:
  std::string text_;
};

// An output file written as it is made: a new private file beside path,
// renamed over it by Commit once whole (stdout for "" and "-"), and
// removed if never committed.
class OutputFile : public TextSink {
 public:
  OutputFile() = default;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() override;

  // False with *err, one line naming the path.
  bool Open(const std::string& path, std::string* err);
  // A failed write is kept and said by Commit.
  void Write(std::string_view text) override;
  bool Commit(std::string* err);

 private:
  std::string path_;
  std::string temp_;  // empty for stdout
  int fd_ = -1;
  int error_ = 0;  // the first write's errno
};

// A private scratch file that no path names (O_TMPFILE under $TMPDIR or
// /tmp; in memory where none can be made): what a writer holds until its
// output's turn comes, instead of in memory.
class Spool : public TextSink {
 public:
  Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;
  ~Spool() override;

  void Write(std::string_view text) override;
  // Everything written, in order, to out; false (error() says why) if the
  // scratch file could not be read back, or had already lost text.
  bool CopyTo(TextSink* out);
  bool empty() const { return size_ == 0; }
  // Whether everything written is still held; false with *err if not.
  bool ok(std::string* err) const;
  std::string error() const;
  // Everything written, read from the start: a stream the caller closes,
  // or null with the text in memory().
  FILE* Reopen();
  const std::string& memory() const { return memory_; }

 private:
  int fd_ = -1;
  uint64_t size_ = 0;
  std::string memory_;  // when no file could be made, or one failed
  int error_ = 0;       // errno of the failure that lost text; 0: none
};

}  // namespace pagewaste
