#pragma once

// What every runner (offline, serving, endpoint) does around its measured window: progress
// lines and the energy meter.

#include <string>

#include "harness/runner.h"

namespace cb {

/// A progress line of the run (PlanProgress: rewritten in place on a terminal); nothing when
/// opts.quiet or `what` is empty. `fraction` of the run done, or < 0 if unknown.
void Progress(const RunnerOptions& opts, const std::string& what, double fraction = -1);

/// The energy meter around a measured window: StartEnergy right before it (kUnsupported
/// without a meter), RecordEnergy right after it with what StartEnergy returned: the reading
/// goes to rec->energy, or the progress line says why there is none. Returns whether a
/// reading was recorded.
Status StartEnergy(const RunnerOptions& opts);
bool RecordEnergy(const RunnerOptions& opts, const Status& started, RunRecord* rec);

}  // namespace cb
