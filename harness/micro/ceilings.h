#pragma once

#include <string>

#include "results/run_record.h"

namespace cb {

/// Returns the ceilings for this host: read from `<results_dir>/ceilings/<host>.json` when
/// present and `remeasure` is false, else measured with the micro-suite and cached there.
/// Progress goes to stderr.
Status LoadOrMeasureCeilings(const std::string& results_dir, bool remeasure, Ceilings* out);

/// Measures the ceilings now (matmul peak per supported dtype, memory read bandwidth).
Status MeasureCeilings(Ceilings* out);

}  // namespace cb
