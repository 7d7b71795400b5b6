#pragma once

#include <string>
#include <vector>

#include "harness/core/status.h"
#include "results/run_files.h"

namespace cb {

/// Renders every run of a results directory for `clusterbench report`: "md" and "csv" are the
/// tables of FormatRuns (one row per run, oldest first); "html" is RenderReportHtml's page.
/// `source` names the directory in the page. kInvalidInput naming the allowed formats otherwise.
Status RenderReport(const std::vector<LoadedRun>& runs, const std::string& format,
                    const std::string& source, std::string* out);

}  // namespace cb
