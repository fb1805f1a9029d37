// The symbol store from memory: frames saved and loaded back, and every
// file it must pass over (another build's, damaged, a link, a directory
// others may enter).
#include "symbol_store.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace pagewaste {
namespace {

namespace fs = std::filesystem;

class StoreDir {
 public:
  StoreDir() {
    char name[] = "/tmp/pagewaste-store-XXXXXX";
    path_ = mkdtemp(name);
  }
  ~StoreDir() { fs::remove_all(path_); }
  std::string path() const { return path_; }
  std::string store() const { return path_ + "/store"; }

 private:
  std::string path_;
};

const SymbolModule kModule{"/usr/lib/libexample.so", "0123456789abcdef0123456789abcdef01234567"};

ModuleFrames TwoAddresses() {
  ModuleFrames frames;
  frames[0x1234] = {{"inner", "inner.c", 12, kModule.path, 0x1234, true},
                    {"outer", "outer.c", 34, kModule.path, 0x1234, false}};
  frames[0x5678] = {{"", "", 0, kModule.path, 0x5678, false}};
  return frames;
}

std::string Contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void Check(const ModuleFrames& got, const ModuleFrames& want) {
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [offset, frames] : want) {
    ASSERT_EQ(got.count(offset), 1u) << offset;
    const std::vector<SymbolFrame>& g = got.at(offset);
    ASSERT_EQ(g.size(), frames.size());
    for (size_t i = 0; i < frames.size(); ++i) {
      EXPECT_EQ(g[i].function, frames[i].function);
      EXPECT_EQ(g[i].file, frames[i].file);
      EXPECT_EQ(g[i].line, frames[i].line);
      EXPECT_EQ(g[i].module, frames[i].module);
      EXPECT_EQ(g[i].module_offset, frames[i].module_offset);
      EXPECT_EQ(g[i].inlined, frames[i].inlined);
    }
  }
}

TEST(SymbolStore, GivesBackWhatWasSavedInAPrivateFileNamedByTheBuildId) {
  StoreDir dir;
  auto store = SymbolStore::Open(dir.store(), "build-1");
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Load(kModule).empty());
  ASSERT_TRUE(store->Save(kModule, TwoAddresses()));
  Check(store->Load(kModule), TwoAddresses());
  struct stat st;
  ASSERT_EQ(stat(dir.store().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(lstat((dir.store() + "/" + kModule.build_id).c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // Nothing else is left beside it.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.store()), fs::directory_iterator()), 1);
}

TEST(SymbolStore, TheSameLibraryAtAnotherPathGetsItsFramesUnderThatPath) {
  StoreDir dir;
  auto store = SymbolStore::Open(dir.store(), "build-1");
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Save(kModule, TwoAddresses()));
  SymbolModule elsewhere{"/lib/libexample.so", kModule.build_id};
  ModuleFrames want = TwoAddresses();
  for (auto& [offset, frames] : want)
    for (SymbolFrame& f : frames) f.module = elsewhere.path;
  Check(store->Load(elsewhere), want);
  EXPECT_TRUE(store->Load({kModule.path, "ffff"}).empty());
}

TEST(SymbolStore, AFileMadeByAnotherBuildIsNotUsed) {
  StoreDir dir;
  ASSERT_TRUE(SymbolStore::Open(dir.store(), "build-1")->Save(kModule, TwoAddresses()));
  EXPECT_TRUE(SymbolStore::Open(dir.store(), "build-2")->Load(kModule).empty());
  EXPECT_EQ(SymbolStore::Open(dir.store(), "build-1")->Load(kModule).size(), 2u);
}

TEST(SymbolStore, ADamagedFileGivesNoFrameThatWasNotSaved) {
  StoreDir dir;
  auto store = SymbolStore::Open(dir.store(), "build-1");
  ASSERT_TRUE(store->Save(kModule, TwoAddresses()));
  std::string file = dir.store() + "/" + kModule.build_id;
  std::string whole = Contents(file);
  // Cut short at every length: nothing, or some of the addresses as saved
  // (a cut between two records), never a wrong frame.
  ModuleFrames saved = TwoAddresses();
  for (size_t size = 0; size < whole.size(); ++size) {
    { std::ofstream(file, std::ios::binary | std::ios::trunc).write(whole.data(), size); }
    ModuleFrames got = store->Load(kModule);
    EXPECT_LT(got.size(), saved.size()) << size;
    for (auto& [offset, frames] : got) {
      ModuleFrames one{{offset, frames}};
      Check(one, {{offset, saved.at(offset)}});
    }
  }
  // A record type no one writes: nothing.
  { std::ofstream(file, std::ios::binary | std::ios::trunc) << whole << '\xff'; }
  EXPECT_TRUE(store->Load(kModule).empty());
  // Another file's bytes under this name: nothing.
  { std::ofstream(file, std::ios::binary | std::ios::trunc) << "not a store file at all"; }
  EXPECT_TRUE(store->Load(kModule).empty());
}

TEST(SymbolStore, ALinkAtTheFilesNameIsNeitherReadNorWrittenThrough) {
  StoreDir dir;
  auto store = SymbolStore::Open(dir.store(), "build-1");
  ASSERT_NE(store, nullptr);
  std::string target = dir.path() + "/target";
  { std::ofstream(target) << "someone else's file"; }
  std::string link = dir.store() + "/" + kModule.build_id;
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  EXPECT_TRUE(store->Load(kModule).empty());
  ASSERT_TRUE(store->Save(kModule, TwoAddresses()));
  EXPECT_EQ(Contents(target), "someone else's file");
  EXPECT_FALSE(fs::is_symlink(link));
  EXPECT_EQ(store->Load(kModule).size(), 2u);
}

TEST(SymbolStore, IsNotKeptInADirectoryOthersMayEnterOrALink) {
  StoreDir dir;
  ASSERT_EQ(mkdir(dir.store().c_str(), 0755), 0);
  EXPECT_EQ(SymbolStore::Open(dir.store(), "build-1"), nullptr);
  std::string real = dir.path() + "/real";
  ASSERT_EQ(mkdir(real.c_str(), 0700), 0);
  std::string link = dir.path() + "/link";
  ASSERT_EQ(symlink(real.c_str(), link.c_str()), 0);
  EXPECT_EQ(SymbolStore::Open(link, "build-1"), nullptr);
  EXPECT_NE(SymbolStore::Open(real, "build-1"), nullptr);
}

TEST(SymbolStore, TheEnvironmentNamesItOrTurnsItOff) {
  StoreDir dir;
  setenv("PAGEWASTE_SYMBOL_CACHE", "off", 1);
  EXPECT_EQ(SymbolStore::FromEnvironment(), nullptr);
  setenv("PAGEWASTE_SYMBOL_CACHE", dir.store().c_str(), 1);
  auto named = SymbolStore::FromEnvironment();
  EXPECT_NE(named, nullptr);
  EXPECT_TRUE(fs::is_directory(dir.store()));
  // Unset, under $XDG_CACHE_HOME.
  unsetenv("PAGEWASTE_SYMBOL_CACHE");
  setenv("XDG_CACHE_HOME", dir.path().c_str(), 1);
  EXPECT_NE(SymbolStore::FromEnvironment(), nullptr);
  EXPECT_TRUE(fs::is_directory(dir.path() + "/pagewaste/symbols"));
  unsetenv("XDG_CACHE_HOME");
}

}  // namespace
}  // namespace pagewaste
