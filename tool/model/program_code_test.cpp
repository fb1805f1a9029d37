// The rules that tell the program's frames from the libraries' and the
// labels that tell sites apart, on frames written here; and how the
// processes tables tell images apart.
#include "combined_report.h"
#include "program_code.h"

#include <gtest/gtest.h>

#include <set>

namespace pagewaste {
namespace {

Frame F(std::string function, std::string file, int line, std::string module = "/home/u/app") {
  Frame f;
  f.function = std::move(function);
  f.file = std::move(file);
  f.line = line;
  f.module = std::move(module);
  return f;
}

constexpr const char* kZig = "/opt/zig-0.11/lib/std/";

TEST(CodeOrigin, ToolchainsSystemLibrariesAndTheShimAreLibraries) {
  CodeOrigin origin(CodeRules{"/home/u/app", {}, {}});
  EXPECT_TRUE(origin.IsLibrary(F("os.linux.mmap", std::string(kZig) + "os/linux.zig", 410)));
  EXPECT_FALSE(origin.IsLibrary(F("page_alloc.main", "/home/u/app/page_alloc.zig", 11)));
  EXPECT_FALSE(origin.IsLibrary(F("main", "page_alloc.zig", 11)));
  EXPECT_TRUE(origin.IsLibrary(F("malloc", "./malloc/malloc.c", 3287,
                                 "/usr/lib/x86_64-linux-gnu/libc.so.6")));
  EXPECT_TRUE(origin.IsLibrary(F("_dl_map_object", "", 0, "/lib64/ld-linux-x86-64.so.2")));
  EXPECT_TRUE(origin.IsLibrary(F("OnAlloc", "", 0, "/home/u/build/libpagewaste_preload.so")));
  EXPECT_TRUE(origin.IsLibrary(F("std::__new_allocator<int>::allocate",
                                 "/usr/include/c++/12/bits/new_allocator.h", 137)));
  EXPECT_TRUE(origin.IsLibrary(F("core::alloc", "/rustc/abc123/library/core/src/alloc.rs", 9)));
  // An executable is the program, wherever it is installed; its own shared
  // library outside the system's directories too.
  EXPECT_FALSE(origin.IsLibrary(F("new_arena", "Objects/obmalloc.c", 1900, "/usr/bin/python3.11")));
  EXPECT_FALSE(origin.IsLibrary(F("chunk", "", 0, "/usr/lib/chromium/chromium")));
  EXPECT_FALSE(origin.IsLibrary(F("pool_get", "src/pool.c", 40, "/home/u/app/libpool.so")));
  // A project's own lib/std/ in C, or its own runtime package, is its own.
  EXPECT_FALSE(origin.IsLibrary(F("vec_push", "/home/u/app/lib/std/vec.c", 3)));
  CodeOrigin learned(CodeRules{});
  learned.Learn({F("proj.Exec", "/home/u/proj/src/runtime/exec.go", 3)});
  EXPECT_FALSE(learned.IsLibrary(F("proj.Run", "/home/u/proj/src/run.go", 3)));
  // An address in no module is nobody's line.
  EXPECT_TRUE(origin.IsLibrary(F("", "", 0, "")));
}

TEST(CodeOrigin, GorootIsLearnedFromTheRuntimesFiles) {
  Frame runtime = F("runtime.mallocgc", "/usr/lib/go-1.19/src/runtime/malloc.go", 1000);
  Frame bytes = F("bytes.(*Buffer).grow", "/usr/lib/go-1.19/src/bytes/buffer.go", 147);
  Frame mine = F("main.fill", "/home/u/app/fill.go", 8);
  CodeOrigin before(CodeRules{});
  EXPECT_FALSE(before.IsLibrary(bytes));  // nothing says it is Go's until the runtime is seen
  CodeOrigin origin(CodeRules{});
  origin.Learn({runtime, mine});
  EXPECT_TRUE(origin.IsLibrary(runtime));
  EXPECT_TRUE(origin.IsLibrary(bytes));
  EXPECT_FALSE(origin.IsLibrary(mine));
  EXPECT_EQ(origin.ShortPath(bytes.file), "bytes/buffer.go");
  EXPECT_TRUE(origin.IsLibrary(F("y.Z", "/home/u/go/pkg/mod/github.com/x/y@v1.2.3/z.go", 5)));
  EXPECT_EQ(origin.ShortPath("/home/u/go/pkg/mod/github.com/x/y@v1.2.3/z.go"),
            "github.com/x/y@v1.2.3/z.go");
}

TEST(CodeOrigin, TheUsersPatternsAndTheSourceRootDecideFirst) {
  Frame arena = F("_PyObject_ArenaMmap", "Objects/obmalloc.c", 1900, "/usr/bin/python3.11");
  Frame installed = F("pool_get", "/home/u/app/src/pool.c", 40, "/usr/lib/libpool.so.1");
  Frame vendored = F("json_parse", "/home/u/app/vendor/json/parse.c", 10);
  CodeOrigin plain(CodeRules{"/home/u/app", {}, {}});
  EXPECT_FALSE(plain.IsLibrary(installed));  // its source is under the root
  EXPECT_FALSE(plain.IsLibrary(vendored));
  CodeOrigin rules(CodeRules{"/home/u/app", {"*/vendor/json/*"}, {"*obmalloc.c", "*/vendor/*"}});
  EXPECT_TRUE(rules.IsLibrary(arena));
  EXPECT_FALSE(rules.IsLibrary(vendored));  // own-code wins over library-code
  CodeOrigin other_root(CodeRules{"/srv", {}, {}});
  EXPECT_TRUE(other_root.IsLibrary(installed));
  // The source root never makes a toolchain's file the program's.
  CodeOrigin zig_inside(CodeRules{"/opt", {}, {}});
  EXPECT_TRUE(zig_inside.IsLibrary(F("os.mmap", std::string(kZig) + "os.zig", 4376)));
}

TEST(CodeOrigin, ShortPathsAreRelativeToTheRootOrTheLibrarysOwn) {
  CodeOrigin origin(CodeRules{"/home/u/app/", {}, {}});
  EXPECT_EQ(origin.ShortPath("/home/u/app/src/objs.c"), "src/objs.c");
  EXPECT_EQ(origin.ShortPath("/home/u/application/x.c"), "/home/u/application/x.c");
  EXPECT_EQ(origin.ShortPath(std::string(kZig) + "os/linux.zig"), "std/os/linux.zig");
  EXPECT_EQ(origin.ShortPath("/usr/lib/zig/std/heap.zig"), "std/heap.zig");
  EXPECT_EQ(origin.ShortPath("/usr/lib/gcc/x86_64-linux-gnu/12/crtbegin.c"),
            "/usr/lib/gcc/x86_64-linux-gnu/12/crtbegin.c");
  EXPECT_EQ(origin.ShortPath("./malloc/malloc.c"), "malloc/malloc.c");
  // "/" as the root would make every path the program's: it means none.
  CodeOrigin slash(CodeRules{"/", {}, {}});
  EXPECT_FALSE(slash.IsLibrary(F("x", "/home/u/x.c", 1)));
  EXPECT_TRUE(slash.IsLibrary(F("std::vector", "/usr/include/c++/12/bits/stl_vector.h", 1)));
  EXPECT_EQ(slash.ShortPath("/home/u/x.c"), "/home/u/x.c");
}

// The frames of a stack, innermost first, classified.
Stack Classified(std::vector<Frame> frames) {
  CodeOrigin origin(CodeRules{"/home/u/app", {}, {}});
  origin.Learn(frames);
  origin.Classify(&frames);
  return Stack(frames);
}

const Frame kMmap = F("mmap64", "../sysdeps/unix/sysv/linux/mmap64.c", 58,
                      "/usr/lib/x86_64-linux-gnu/libc.so.6");
const Frame kStart = F("__libc_start_call_main", "../sysdeps/nptl/libc_start_call_main.h", 58,
                       "/usr/lib/x86_64-linux-gnu/libc.so.6");

TEST(LocationIndex, IsTheFirstOwnFrameWithASourceFile) {
  Stack s = Classified({kMmap, F("page_alloc", "/home/u/app/objs.c", 6),
                                F("main", "/home/u/app/objs.c", 20), kStart});
  EXPECT_EQ(LocationIndex(s), 1u);
  EXPECT_EQ(FrameText(s[1]), "page_alloc (objs.c:6)");
  EXPECT_EQ(OwnFrames(s), (std::vector<bool>{false, true, true, false}));
  // A static program's C library has no lines: its frames are not the site.
  Stack static_c = Classified({F("__mmap", "", 0), F("page_alloc", "/home/u/app/objs.c", 6)});
  EXPECT_EQ(LocationIndex(static_c), 1u);
  // Built without debug information: the first frame not a library's.
  Stack bare = Classified({kMmap, F("page_alloc", "", 0), F("main", "", 0)});
  EXPECT_EQ(LocationIndex(bare), 1u);
  EXPECT_EQ(FrameText(bare[1]), "page_alloc (app+0x0)");
  Frame unknown = F("", "", 0, "/usr/bin/python3.11");
  unknown.module_offset = 0x510a2b;
  EXPECT_EQ(FrameText(unknown), "?? (python3.11+0x510a2b)");
  // Only libraries (the loader's own mappings): the innermost with a file.
  Stack loader = Classified({F("", "", 0, "/lib64/ld-linux-x86-64.so.2"), kMmap});
  EXPECT_EQ(LocationIndex(loader), 1u);
  EXPECT_EQ(LocationIndex({}), SIZE_MAX);
}

std::vector<std::string> Labels(const std::vector<Stack>& stacks) {
  std::vector<const Stack*> pointers;
  for (const auto& s : stacks) pointers.push_back(&s);
  return SiteLabels(pointers);
}

TEST(SiteLabels, NameTheCallersWhereSitesPart) {
  Frame page_alloc = F("page_alloc", "/home/u/app/objs.c", 6);
  Frame main_frame = F("main", "/home/u/app/objs.c", 30);
  auto via = [&](Frame caller) { return Classified({kMmap, page_alloc, caller, main_frame, kStart}); };
  Stack obj = via(F("make_obj", "/home/u/app/objs.c", 12));
  Stack tag = via(F("make_tag", "/home/u/app/objs.c", 21));
  EXPECT_EQ(Labels({obj, tag}), (std::vector<std::string>{"page_alloc ← make_obj (objs.c:12)",
                                                          "page_alloc ← make_tag (objs.c:21)"}));
  // Alone, or with a site elsewhere, the location is the label.
  Stack other = Classified({kMmap, F("grow", "/home/u/app/pool.c", 9), main_frame});
  EXPECT_EQ(Labels({obj, other}),
            (std::vector<std::string>{"page_alloc (objs.c:6)", "grow (pool.c:9)"}));
  // The same frames: the same label.
  EXPECT_EQ(Labels({obj, obj}), (std::vector<std::string>{"page_alloc (objs.c:6)",
                                                          "page_alloc (objs.c:6)"}));
  // Parting two callers out: the frames between are elided.
  Frame make = F("make", "/home/u/app/objs.c", 15);
  Stack a = Classified({kMmap, page_alloc, make, F("run_a", "/home/u/app/t.c", 40), kStart});
  Stack b = Classified({kMmap, page_alloc, make, F("run_b", "/home/u/app/t.c", 50), kStart});
  EXPECT_EQ(Labels({a, b}), (std::vector<std::string>{"page_alloc ← … ← run_a (t.c:40)",
                                                      "page_alloc ← … ← run_b (t.c:50)"}));
  // Parting only inside the location: the first frame inward that differs.
  Frame line = F("main", "/home/u/app/m.c", 5);
  Stack mapped = Classified({kMmap, F("sysmalloc", "./malloc/malloc.c", 2500,
                                              "/usr/lib/x86_64-linux-gnu/libc.so.6"),
                                     line, kStart});
  Stack grown = Classified({F("__brk", "../sysdeps/unix/sysv/linux/brk.c", 36,
                                      "/usr/lib/x86_64-linux-gnu/libc.so.6"),
                                    F("sysmalloc", "./malloc/malloc.c", 2600,
                                      "/usr/lib/x86_64-linux-gnu/libc.so.6"),
                                    line, kStart});
  EXPECT_EQ(Labels({mapped, grown}),
            (std::vector<std::string>{"main (m.c:5) via sysmalloc (malloc/malloc.c:2500)",
                                      "main (m.c:5) via sysmalloc (malloc/malloc.c:2600)"}));
  EXPECT_EQ(Labels({{}, {}}),
            (std::vector<std::string>{"(no stack recorded)", "(no stack recorded)"}));
}

TEST(SiteLabels, AreUniqueAmongManySitesOfOneLine) {
  // 300 callers of one allocator: each label names its caller.
  Frame page_alloc = F("page_alloc", "/home/u/app/objs.c", 6);
  std::vector<Stack> stacks;
  for (int i = 0; i < 300; ++i)
    stacks.push_back(Classified({kMmap, page_alloc, F("caller", "/home/u/app/c.c", 100 + i), kStart}));
  std::vector<std::string> labels = Labels(stacks);
  std::set<std::string> distinct(labels.begin(), labels.end());
  EXPECT_EQ(distinct.size(), 300u);
  EXPECT_EQ(labels[7], "page_alloc ← caller (c.c:107)");
}

// A fork and an exec in one run: the processes tables tell the images
// apart, though two share a pid and the first two a name.
TEST(ProcessImageNote, TellsAForkFromAnExec) {
  auto image = [](uint32_t pid, uint32_t ppid, const char* exe, uint64_t start, bool exec) {
    Report r;
    r.process.header.process.pid = pid;
    r.process.header.process.ppid = ppid;
    r.process.header.process.start_monotonic_ns = start;
    r.process.header.exe = exe;
    EndEvent end;
    end.reason = exec ? format::EndReason::kExec : format::EndReason::kExit;
    r.process.end = end;
    return r;
  };
  std::vector<Report> run = {image(100, 1, "/usr/bin/zig", 10, true),
                             image(101, 100, "/usr/bin/zig", 20, false),
                             image(100, 1, "/usr/bin/zig", 30, false)};
  EXPECT_EQ(ProcessImageNote(run[0], run), " (until its exec)");
  EXPECT_EQ(ProcessImageNote(run[1], run), " (child of 100)");
  EXPECT_EQ(ProcessImageNote(run[2], run), " (exec'd in place of zig)");
  EXPECT_EQ(ProcessImageNote(run[1], {run[1]}), "");
}

}  // namespace
}  // namespace pagewaste
