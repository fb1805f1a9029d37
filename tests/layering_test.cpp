// The layout as docs/design.md draws it: each folder of libtrace/ and tool/
// includes only from folders below it, and no source files include each
// other in a cycle. Read from the source tree.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

namespace pagewaste {
namespace {

namespace fs = std::filesystem;

// Lowest first; a folder may include from its own and from lower ranks.
const std::map<std::string, int> kRank = {
    {"libtrace/format", 0},  {"libtrace/support", 0}, {"libtrace/producer", 1},
    {"libtrace/elf", 1},     {"libtrace/reader", 2},  {"libtrace/rewrite", 3},
    {"libtrace/shim", 4},    {"libtrace/ptrace", 4},  {"libtrace/inject", 5},
    {"libtrace/bpf", 6},     {"tool/io", 7},          {"tool/model", 8},
    {"tool/symbols", 9},     {"tool/replay", 10},     {"tool/render", 11},
    {"tool/ci", 12},         {"tool/commands", 13},   {"tool", 14},
};

struct Source {
  std::string folder;                 // relative to the source tree
  std::vector<std::string> includes;  // resolved, relative to the source tree
};

// Every C and C++ source under libtrace/ and tool/, with the includes of
// ours it names (resolved as the build resolves them: its own folder first,
// then libtrace/ and tool/).
std::map<std::string, Source> ReadSources() {
  fs::path root = PAGEWASTE_SOURCE_DIR;
  std::regex include(R"re(^\s*#\s*include\s+"([^"]+)")re");
  std::map<std::string, Source> sources;
  for (const char* top : {"libtrace", "tool"}) {
    for (const auto& entry : fs::recursive_directory_iterator(root / top)) {
      std::string ext = entry.path().extension();
      if (!entry.is_regular_file() || (ext != ".h" && ext != ".cpp" && ext != ".c")) continue;
      std::string name = fs::relative(entry.path(), root).string();
      Source& s = sources[name];
      s.folder = fs::path(name).parent_path().string();
      std::ifstream in(entry.path());
      std::smatch m;
      for (std::string line; std::getline(in, line);) {
        if (!std::regex_search(line, m, include)) continue;
        for (const fs::path& base : {root / s.folder, root / "libtrace", root / "tool"}) {
          if (fs::exists(base / m[1].str())) {
            s.includes.push_back(fs::relative(base / m[1].str(), root).lexically_normal());
            break;
          }
        }
      }
    }
  }
  return sources;
}

TEST(Layering, EachFolderIncludesOnlyFromBelowIt) {
  std::map<std::string, Source> sources = ReadSources();
  ASSERT_GT(sources.size(), 100u);
  for (const auto& [name, source] : sources) {
    ASSERT_TRUE(kRank.count(source.folder)) << name << ": a folder the layering does not know";
    for (const std::string& included : source.includes) {
      std::string folder = fs::path(included).parent_path().string();
      if (folder == source.folder || !kRank.count(folder)) continue;  // generated, or its own
      EXPECT_LT(kRank.at(folder), kRank.at(source.folder)) << name << " includes " << included;
    }
  }
}

TEST(Layering, NoFilesIncludeEachOtherInACycle) {
  std::map<std::string, Source> sources = ReadSources();
  std::map<std::string, int> state;  // 1: on the path, 2: done
  std::vector<std::string> path;
  std::function<void(const std::string&)> visit = [&](const std::string& name) {
    state[name] = 1;
    path.push_back(name);
    auto it = sources.find(name);
    if (it != sources.end()) {
      for (const std::string& next : it->second.includes) {
        if (state[next] == 1) {
          std::string cycle;
          for (auto p = std::find(path.begin(), path.end(), next); p != path.end(); ++p)
            cycle += *p + " -> ";
          ADD_FAILURE() << "include cycle: " << cycle << next;
        } else if (state[next] == 0) {
          visit(next);
        }
      }
    }
    path.pop_back();
    state[name] = 2;
  };
  for (const auto& [name, source] : sources)
    if (state[name] == 0) visit(name);
}

}  // namespace
}  // namespace pagewaste
