#pragma once

/// The one place that derives what a run's outcome is called where it is published
/// (Prometheus `clusterbench_run_status{status}`, `clusterbench_run_valid`, the tables'
/// status column, the HTML report): the run's status, refined by its validity label.

#include <array>
#include <string>

#include "results/run_record.h"

namespace cb {

/// Every value RunStatusLabel() returns, in the order the status family lists them.
inline constexpr std::array<const char*, 6> kRunStatusLabels = {"ok",      "shortened", "unstable",
                                                                "invalid", "failed",    "skipped"};

/// "ok" for a run that may be published as valid (RunRecord::Publishable()); "shortened" or
/// "unstable" for an ok run that broke a validity rule (any other validity label counts as
/// unstable); otherwise the run's status ("invalid", "failed", "skipped"; an unknown status
/// counts as failed). RunStatusLabel(r) == "ok" exactly when r.Publishable().
std::string RunStatusLabel(const RunRecord& r);

}  // namespace cb
