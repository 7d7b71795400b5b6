#pragma once

#include <string>
#include <vector>

#include "results/run_record.h"

namespace cb {

/// Renders runs for stdout: "table" (aligned text), "md" (markdown), "csv", "json" (an array
/// of result documents). One row per run, the headline metrics with units and provenance.
Status FormatRuns(const std::vector<RunRecord>& runs, const std::string& format, std::string* out);

}  // namespace cb
