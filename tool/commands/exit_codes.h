// The CLI's exit codes, documented in README.md. `run` otherwise exits with
// the program's own status (128+N when a signal N ended it).
#pragma once

namespace pagewaste::exit_code {

inline constexpr int kOk = 0;
inline constexpr int kLimitExceeded = 1;      // check: a limit; diff: a regression past its threshold
inline constexpr int kUsage = 2;              // bad command line
inline constexpr int kUnreadableTrace = 3;    // missing, empty, not a trace, newer version
inline constexpr int kIncompleteTrace = 4;    // report written, but the trace is truncated or corrupt
inline constexpr int kInternal = 125;         // pagewaste itself failed (no shim, cannot fork)
inline constexpr int kCannotExecute = 126;    // PROGRAM is not executable
inline constexpr int kNotFound = 127;         // PROGRAM not found

}  // namespace pagewaste::exit_code
