#pragma once

// What every runner (offline, serving, endpoint) does around its measured window: progress
// lines, the energy meter, and how a failure is recorded.

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

/// Records the failure of `what` in the run; only a cancellation stops the plan (returned).
/// Once a run has started measuring, an unsupported operation is a failure like any other.
Status FailRun(RunRecord* rec, const std::string& what, const Status& s);
/// The same before anything is measured (opening a session, loading, verifying): a
/// combination the backend says it cannot run (a KV dtype, a quantised MoE model) is skipped.
Status SkipOrFailRun(RunRecord* rec, const std::string& what, const Status& s);

}  // namespace cb
