// Renderers of the report model. Each reads a Report and writes one format;
// adding a format adds one file here.
#pragma once

#include <string>
#include <vector>

#include "report_model.h"

namespace pagewaste {

struct RenderOptions {
  size_t frames = 8;  // frames shown per call site in text
  size_t top = 0;     // call sites shown per list; 0: all (JSON: the rest in other_sites)
};

std::string RenderText(const std::vector<Report>& reports, const RenderOptions& options);
std::string RenderJson(const std::vector<Report>& reports, const RenderOptions& options);

}  // namespace pagewaste
