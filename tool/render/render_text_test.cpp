// The text report's colour, from memory: spans the renderer marks as what
// they are (headings, waste, warnings), and the same words without it.
#include "render.h"

#include <gtest/gtest.h>

#include <regex>

#include "memory_trace.h"

namespace pagewaste {
namespace {

constexpr uint64_t kBase = 0x7f0000000000;

// Colour marks spans (headings, waste, warnings) and nothing else: without
// its escapes, the coloured report is the plain one, character for
// character.
TEST(TextColour, MarksHeadingsWasteAndWarningsAndChangesNoWord) {
  memory_trace::TraceBuilder t;
  for (uint64_t i = 0; i < 1000; ++i) t.Mmap(kBase + i * 4096, 2);
  for (uint64_t i = 0; i < 5; ++i) t.Malloc(0x10000 + i * 128, 100);
  std::vector<Report> reports = {t.Replay()};
  reports[0].process.status = TraceStatus::kTruncated;
  reports[0].process.status_message = "the data stops at byte 4,096";
  RenderOptions plain_options, colour_options;
  colour_options.colour = true;
  std::string plain = RenderText(reports, plain_options);
  std::string colour = RenderText(reports, colour_options);
  EXPECT_EQ(plain.find('\x1b'), std::string::npos);
  EXPECT_EQ(std::regex_replace(colour, std::regex("\x1b\\[[0-9;]*m"), ""), plain);
  EXPECT_NE(colour.find("\x1b[1mSummary\x1b[0m\n"), std::string::npos);
  EXPECT_NE(colour.find("\x1b[1mTop call sites by page-rounding waste\x1b[0m\n"),
            std::string::npos);
  EXPECT_NE(colour.find("#1   \x1b[31m4,094,000 B (3.9 MiB) waste\x1b[0m, "), std::string::npos)
      << colour;
  EXPECT_NE(colour.find("  page-rounding waste  \x1b[31m4,094,000 B (3.9 MiB)\x1b[0m  99.95%"),
            std::string::npos);
  EXPECT_NE(colour.find("  \x1b[33mWARNING\x1b[0m   the trace is truncated: the data stops at "
                        "byte 4,096; figures cover what it holds\n"),
            std::string::npos)
      << colour;
  // A site that wastes nothing has its figure marked too: the list ranks by it.
  EXPECT_NE(colour.find("#2   \x1b[31m0 B waste\x1b[0m, "), std::string::npos);
}

}  // namespace
}  // namespace pagewaste
