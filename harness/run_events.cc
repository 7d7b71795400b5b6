#include "harness/run_events.h"

#include <utility>

#include "harness/progress.h"

namespace cb {

void Progress(const RunnerOptions& opts, const std::string& what, double fraction) {
  if (!opts.quiet && !what.empty()) {
    PlanProgress::Get().Step(opts.progress_prefix, what, fraction);
  }
}

Status StartEnergy(const RunnerOptions& opts) {
  if (opts.energy == nullptr) return Status::Unsupported("no energy meter");
  return opts.energy->Start();
}

bool RecordEnergy(const RunnerOptions& opts, const Status& started, RunRecord* rec) {
  if (opts.energy == nullptr) return false;
  EnergyRecord energy;
  Status s = started;
  if (s.ok()) s = opts.energy->StopReading(&energy.reading);
  if (!s.ok()) {
    Progress(opts, "energy not measured: " + s.message());
    return false;
  }
  rec->energy = std::move(energy);
  return true;
}

Status FailRun(RunRecord* rec, const std::string& what, const Status& s) {
  rec->status = "failed";
  rec->status_message = what + ": " + s.message();
  return s.code() == StatusCode::kCancelled ? s : Status::Ok();
}

Status SkipOrFailRun(RunRecord* rec, const std::string& what, const Status& s) {
  const Status out = FailRun(rec, what, s);
  if (s.code() == StatusCode::kUnsupported) rec->status = "skipped";
  return out;
}

}  // namespace cb
