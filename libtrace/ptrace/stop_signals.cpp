// See stop_signals.h.
#include "stop_signals.h"

#include <signal.h>
#include <time.h>

#include <initializer_list>

namespace pagewaste::ptrace {
namespace {

pid_t g_program = 0;
volatile sig_atomic_t g_stop_signal = 0;
volatile uint64_t g_stop_ns = 0;

void OnStopSignal(int sig, siginfo_t* info, void*) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);  // async-signal-safe
  if (!g_stop_ns)
    g_stop_ns = static_cast<uint64_t>(now.tv_sec) * 1000000000 + static_cast<uint64_t>(now.tv_nsec);
  if (g_program > 0 && (info->si_code == SI_USER || info->si_code == SI_QUEUE))
    kill(g_program, sig);
  g_stop_signal = sig;
}

void Forward(int sig) {
  if (g_program > 0) kill(g_program, sig);
}

}  // namespace

void WatchStopSignals(pid_t program) {
  g_program = program;
  struct sigaction stop = {};
  stop.sa_sigaction = OnStopSignal;
  stop.sa_flags = SA_SIGINFO;  // no SA_RESTART
  sigemptyset(&stop.sa_mask);
  sigaction(SIGINT, &stop, nullptr);
  sigaction(SIGTERM, &stop, nullptr);
  if (program <= 0) return;
  signal(SIGQUIT, SIG_IGN);
  for (int sig : {SIGHUP, SIGUSR1, SIGUSR2}) signal(sig, Forward);
}

int StopSignalReceived() { return g_stop_signal; }

uint64_t StopSignalTimeNs() { return g_stop_ns; }

}  // namespace pagewaste::ptrace
