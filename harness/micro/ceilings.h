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
/// repeated 8 times for >= 0.1 s (about 15 s on a quiet 2-core host, bounded by ~30 s).
///
/// Statistic: each figure is the best repetition (max over repetitions; the matmul ceiling
/// of a dtype is then the max over its shapes). A ceiling is a "best achievable" figure,
/// and everything that disturbs a repetition of >= 0.1 s of steady kernel work (other
/// processes, a preempted OpenMP thread, page reclaim) only ever makes it slower, so the
/// median of a shared host reports the neighbours' load rather than the hardware, while
/// the best repetition of thousands of kernel calls carries no timer noise worth the name.
/// The per-benchmark medians remain in `clusterbench micro`'s output.
Status MeasureCeilings(Ceilings* out);

/// One line per figure, for the console: "matmul fp32  0.416 TFLOP/s" ... and the source.
std::string FormatCeilings(const Ceilings& c);

}  // namespace cb
