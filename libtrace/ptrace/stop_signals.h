// SIGINT and SIGTERM sent to pagewaste while it records end the recording,
// not the program: both tracers (ptrace, bpf) see the signal as a flag
// their loops test. A signal sent to pagewaste alone is passed on to the
// program it started (a terminal's reached it already through the process
// group), and SIGHUP, SIGUSR1 and SIGUSR2 are passed on as they come.
#pragma once

#include <sys/types.h>

#include <cstdint>

namespace pagewaste::ptrace {

// Installs the handlers. program: the process to pass signals on to (0:
// none, as under attach, where the process is not ours to signal). The
// handlers do not restart system calls: a waitpid returns EINTR.
void WatchStopSignals(pid_t program);

// The stop signal received (SIGINT or SIGTERM), or 0.
int StopSignalReceived();
// When it was received (CLOCK_MONOTONIC ns, taken before it was passed on):
// what a process did from then on is not in its trace.
uint64_t StopSignalTimeNs();

}  // namespace pagewaste::ptrace
