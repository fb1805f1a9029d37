// Output files and scratch spools, from memory and a temporary directory.
#include "output_file.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace pagewaste {
namespace {

namespace fs = std::filesystem;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// 3 MiB in pieces of 1,000 bytes, each piece's bytes telling it apart.
std::string Pieces(TextSink* out) {
  std::string all;
  for (int i = 0; i < 3 * 1024 * 1024 / 1000; ++i) {
    std::string piece(1000, static_cast<char>('a' + i % 26));
    out->Write(piece);
    all += piece;
  }
  return all;
}

TEST(Spool, GivesBackWhatWasWrittenInOrder) {
  Spool spool;
  EXPECT_TRUE(spool.empty());
  std::string all = Pieces(&spool);
  StringSink copy;
  spool.CopyTo(&copy);
  EXPECT_EQ(copy.text(), all);
  // Read from the start as a stream, twice.
  for (int round = 0; round < 2; ++round) {
    FILE* in = spool.Reopen();
    ASSERT_NE(in, nullptr);
    std::string read(all.size() + 1, '\0');
    EXPECT_EQ(fread(read.data(), 1, read.size(), in), all.size());
    read.resize(all.size());
    EXPECT_EQ(read, all);
    fclose(in);
  }
}

// In a child process: a spool whose scratch file may grow to 1 MiB only (a
// full disk, as the spool sees it) is written 3 MiB. Exits 0 if it still
// gives back every byte, from memory.
void FillAScratchFileOfOneMebibyte() {
  signal(SIGXFSZ, SIG_IGN);
  struct rlimit limit = {1 << 20, 1 << 20};
  setrlimit(RLIMIT_FSIZE, &limit);
  Spool spool;
  std::string all = Pieces(&spool);
  StringSink copy;
  std::string err;
  bool whole = spool.CopyTo(&copy) && copy.text() == all && spool.ok(&err) &&
               spool.Reopen() == nullptr && spool.memory() == all;
  _exit(whole ? 0 : 1);
}

TEST(Spool, AScratchFileThatFillsUpFallsBackToMemoryWithNothingLost) {
  EXPECT_EXIT(FillAScratchFileOfOneMebibyte(), ::testing::ExitedWithCode(0), "");
}

// The descriptors open now.
std::set<int> OpenDescriptors() {
  std::set<int> fds;
  for (const auto& entry : fs::directory_iterator("/proc/self/fd"))
    fds.insert(std::stoi(entry.path().filename().string()));
  // Less the iterator's own, closed by now.
  std::set<int> open;
  for (int fd : fds)
    if (fcntl(fd, F_GETFD) != -1) open.insert(fd);
  return open;
}

TEST(Spool, AScratchFileThatCannotBeReadBackIsAnErrorNotAShortCopy) {
  std::set<int> before = OpenDescriptors();
  Spool spool;
  std::set<int> after = OpenDescriptors();
  int scratch = -1;
  for (int fd : after)
    if (!before.count(fd) && fs::read_symlink("/proc/self/fd/" + std::to_string(fd))
                                     .string()
                                     .find("(deleted)") != std::string::npos)
      scratch = fd;
  ASSERT_GE(scratch, 0);
  Pieces(&spool);
  // The scratch file's descriptor now reads nothing back (write-only).
  int write_only = open("/dev/null", O_WRONLY | O_CLOEXEC);
  ASSERT_GE(write_only, 0);
  ASSERT_EQ(dup2(write_only, scratch), scratch);
  close(write_only);
  StringSink copy;
  EXPECT_FALSE(spool.CopyTo(&copy));
  std::string err;
  EXPECT_FALSE(spool.ok(&err));
  EXPECT_NE(err.find("could not be read back (Bad file descriptor): the report is not complete"),
            std::string::npos)
      << err;
}

TEST(OutputFile, AppearsWholeOnCommitAndPrivate) {
  fs::path dir = fs::temp_directory_path() / ("pagewaste_output_test." + std::to_string(getpid()));
  fs::create_directories(dir);
  std::string path = (dir / "report.json").string();
  std::string err;
  {
    OutputFile out;
    ASSERT_TRUE(out.Open(path, &err)) << err;
    out.Write("half");
    EXPECT_FALSE(fs::exists(path));  // a reader never sees half a report
  }
  EXPECT_TRUE(fs::is_empty(dir));  // never committed: nothing left behind
  OutputFile out;
  ASSERT_TRUE(out.Open(path, &err)) << err;
  std::string all = Pieces(&out);
  ASSERT_TRUE(out.Commit(&err)) << err;
  EXPECT_EQ(Read(path), all);
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Not through a link planted at the path.
  fs::remove(path);
  fs::create_symlink(dir / "elsewhere", path);
  OutputFile linked;
  EXPECT_FALSE(linked.Open(path, &err));
  EXPECT_NE(err.find("a symbolic link"), std::string::npos) << err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pagewaste
