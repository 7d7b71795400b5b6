#pragma once

#include <string>
#include <vector>

#include "results/run_record.h"

namespace cb {

/// Renders runs for stdout: "table" (aligned text), "md" (markdown), "csv" (every metric, raw),
/// "json" (an array of result documents), "jsonl" (one result document per line). One row per
/// run, the headline metrics with units and provenance (a `how` column says whether the row's
/// performance figures were measured, modelled or extrapolated).
Status FormatRuns(const std::vector<RunRecord>& runs, const std::string& format, std::string* out);

}  // namespace cb
