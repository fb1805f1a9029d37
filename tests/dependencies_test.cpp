// One list of dependencies: the Debian packages the Makefile installs are
// the ones the README lists, group by group, and every package CMake names
// when something is missing is one of them. Read from the source tree.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace pagewaste {
namespace {

std::string SourceFile(const std::string& name) {
  std::ifstream in(std::string(PAGEWASTE_SOURCE_DIR) + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::set<std::string> Words(const std::string& text) {
  std::set<std::string> words;
  std::istringstream in(text);
  for (std::string w; in >> w;) words.insert(w);
  return words;
}

// The Makefile's `NAME = ...` with its continued lines.
std::set<std::string> MakefileList(const std::string& name) {
  std::string makefile = SourceFile("Makefile");
  std::smatch m;
  std::regex assignment("(^|\\n)" + name + " = ((?:[^\\n]*\\\\\\n)*[^\\n]*)");
  if (!std::regex_search(makefile, m, assignment)) return {};
  std::string value = m[2];
  for (size_t at; (at = value.find('\\')) != std::string::npos;) value[at] = ' ';
  return Words(value);
}

// The README's "- GROUP: `packages`" line.
std::set<std::string> ReadmeList(const std::string& group) {
  std::string readme = SourceFile("README.md");
  std::string prefix = "\n- " + group + ": `";
  size_t at = readme.find(prefix);
  if (at == std::string::npos) return {};
  size_t start = at + prefix.size();
  return Words(readme.substr(start, readme.find('`', start) - start));
}

TEST(Dependencies, TheReadmeListsTheMakefilesPackages) {
  std::set<std::string> build = MakefileList("PACKAGES");
  ASSERT_TRUE(build.count("cmake") && build.count("make")) << "no PACKAGES in the Makefile";
  EXPECT_EQ(ReadmeList("to build"), build);
  EXPECT_EQ(ReadmeList("to test, also"), MakefileList("TEST_PACKAGES"));
  EXPECT_EQ(ReadmeList("to fuzz (`make fuzz`), also"), MakefileList("FUZZ_PACKAGES"));
}

TEST(Dependencies, EveryPackageCMakeAsksForIsInstalledByTheMakefile) {
  std::set<std::string> installed = MakefileList("PACKAGES");
  for (const char* list : {"TEST_PACKAGES", "FUZZ_PACKAGES"})
    for (const std::string& p : MakefileList(list)) installed.insert(p);
  std::set<std::string> asked;
  for (const char* file :
       {"CMakeLists.txt", "libtrace/CMakeLists.txt", "tool/CMakeLists.txt", "tests/CMakeLists.txt"}) {
    std::string text = SourceFile(file);
    std::regex patterns[] = {
        std::regex(R"re(pagewaste_require_pkg\(\w+ [\w-]+ ([\w.+-]+)\))re"),
        std::regex(R"re(pagewaste_require_package\(\w+ "?([\w.+ -]+?)"?\))re"),
        std::regex(R"re(apt-get install ([\w.+ -]+?)[)"])re"),
    };
    for (const std::regex& pattern : patterns)
      for (std::sregex_iterator it(text.begin(), text.end(), pattern), end; it != end; ++it)
        for (const std::string& p : Words((*it)[1])) asked.insert(p);
  }
  ASSERT_GT(asked.size(), 10u);
  for (const std::string& p : asked) EXPECT_TRUE(installed.count(p)) << p << " (named by CMake)";
}

}  // namespace
}  // namespace pagewaste
