// The pagewaste command line: parsing and dispatch to the commands. A
// library, so that tests call it without a process in between.
#pragma once

namespace pagewaste {

// Runs the CLI; returns the process exit code (exit_codes.h). Errors are
// printed as one line, "pagewaste: <message>", on stderr.
int RunCli(int argc, char** argv);

}  // namespace pagewaste
