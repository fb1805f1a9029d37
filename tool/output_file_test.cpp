// Output files and scratch spools, from memory and a temporary directory.
#include "output_file.h"

#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
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
