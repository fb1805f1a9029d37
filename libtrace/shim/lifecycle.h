// Starting and ending the trace, whatever way the process goes (see
// lifecycle.cpp): the entries the hooks for exec, exit and main call.
#pragma once

#include "format/format.h"

namespace pagewaste::shim {

// On the first hooked call or our constructor, whichever comes first: reads
// the environment and the process's identity, and starts the trace.
void Initialize();

// exec*: the trace is ended first (unless this is a vfork child, whose
// memory is its parent's); if the exec fails, tracing resumes.
void BeforeExec();
void AfterFailedExec();
// exit(status) and a return from main: the status the End record gets.
void SetExitStatus(int status);
// _exit and _Exit: the End record now, there are no destructors after.
void OnUnderscoreExit(int status);

}  // namespace pagewaste::shim
