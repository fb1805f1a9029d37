// What run and attach do once the traced processes are gone: find the
// traces their session wrote, compress each and add its symbols (the
// program has exited, so this costs it nothing), and say a line of figures
// for each (for a suite's hundreds, the ones with the most waste and every
// one in trouble, then the sum).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "run_command.h"

namespace pagewaste {

// The traces of this session under the pattern's directory, oldest first.
std::vector<std::string> FindSessionTraces(const std::string& pattern, uint64_t session);

// Finishes traces as options say (compress, symbolize), on the machine's
// cores at once, and prints what it found on stderr, in order.
void FinishTraces(const std::vector<std::string>& traces, const RunOptions& options);

}  // namespace pagewaste
