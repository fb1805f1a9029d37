// The files the CLI writes for the user (reports, check's and diff's
// outputs), created as the traces are: never through a symbolic link,
// never over one of the command's own inputs, and an existing file
// replaced only by the atomic rename of a new private file (0600) made
// beside it, so that a reader never sees half a report and a link planted
// at the path by another user is neither followed nor kept.
#pragma once

#include <string>
#include <vector>

namespace pagewaste {

// Whether path may be written: "" and "-" (stdout) always; otherwise not a
// symbolic link, not anything but a regular file where something is
// there, and not the same file as any of inputs. False with *err, one
// line naming the path.
bool CheckOutputPath(const std::string& path, const std::vector<std::string>& inputs,
                     std::string* err);

// Writes text to path ("" or "-": stdout) as above; false with *err.
bool WriteOutputFile(const std::string& path, const std::string& text, std::string* err);

}  // namespace pagewaste
