#pragma once

#include <string>

#include "results/run_record.h"

namespace cb {

/// Returns the ceilings for this host: read from `<results_dir>/ceilings/<host>.json` when
/// present and `remeasure` is false, else measured with the micro-suite and cached there.
/// Progress goes to stderr.
Status LoadOrMeasureCeilings(const std::string& results_dir, bool remeasure, Ceilings* out);

/// Measures the ceilings now (matmul peak per supported dtype, memory read bandwidth) with
/// the micro-suite's ceiling set: the large square matmuls per dtype and mem/read, each
/// repeated 6 times for >= 0.1 s: about 10 s on a quiet 2-core Zen 5, 20-30 s when other
/// processes share the cores.
///
/// Statistic: each figure is the best repetition (max over repetitions; the matmul ceiling
/// of a dtype is then the max over its shapes). A ceiling is a "best achievable" figure, and
/// what disturbs a repetition (other processes on the cores, a preempted OpenMP thread, page
/// reclaim) only ever makes it slower; on a shared host the median reports the neighbours'
/// load rather than the hardware, while a repetition of >= 0.1 s has no timer noise that
/// could make its best exceed what the hardware did. `clusterbench micro` shows medians.
Status MeasureCeilings(Ceilings* out);

/// One line per figure, for the console: "matmul fp32  0.416 TFLOP/s" ... and the source.
std::string FormatCeilings(const Ceilings& c);

}  // namespace cb
