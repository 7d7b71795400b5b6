#pragma once

#include <functional>
#include <string>

#include "backends/backend.h"
#include "harness/micro/ceiling_probe.h"
#include "harness/offline_work.h"
#include "harness/parallel.h"
#include "results/run_record.h"
#include "workloads/op_cost.h"
#include "workloads/workload_spec.h"

namespace cb {

struct RunnerOptions {
  /// Per device: the cached micro-suite ceilings (a GPU's: measured in this process), the
  /// reference and fallback of MFU/MBU (zeros and no probe: those metrics are absent).
  Ceilings ceilings;
  std::string progress_prefix;  ///< e.g. "[2/5]" in progress lines on stderr
  bool quiet = false;           ///< no progress lines
  /// Read from the start of the first measured repetition to the end of the last; the reading
  /// goes to record->energy (harness/cost/energy_cost.h turns it into metrics). May be null.
  EnergyMeter* energy = nullptr;
  /// This rank's place in a multi-rank job; nullptr for a single process.
  const ParallelContext* parallel = nullptr;
  /// Serving on a simulated pool (harness/deployment/sim_serving.h): the pass serves one of
  /// `serving_replicas` attention groups of a pool of `serving_devices` devices, each able
  /// to hold `kv_pool_tokens` tokens of KV cache (0: from EstimateMemory).
  int64_t serving_replicas = 1;
  int serving_devices = 1;
  int64_t kv_pool_tokens = 0;
  /// Samples this device's ceilings right before the first measured repetition and right after
  /// the last, unless the workload turns probes off (harness/ceiling_check.h); MFU and MBU then
  /// divide by the samples. nullptr: they divide by `ceilings`.
  CeilingProbe* ceiling_probe = nullptr;
};

/// Bytes a workload needs on the device: weights, KV cache, activations, and what the reference
/// backend holds while verifying (its small weights; it regenerates the others as it goes).
struct MemoryEstimate {
  uint64_t weights = 0, kv_cache = 0, activations = 0, verification = 0;
  uint64_t Peak() const { return weights + kv_cache + activations + verification; }
};
MemoryEstimate EstimateMemory(const WorkloadSpec& w);
/// Bytes one device of a `tp`-way tensor-parallel group needs: its share of the weights and
/// KV cache, the activations, and verification.
uint64_t PerDevicePeak(const MemoryEstimate& m, int tp);

/// Runs one workload in the offline scenario: B prompts of P tokens prefilled together, then
/// G decode steps; `warmup` unmeasured repetitions, then `repetitions` measured ones.
/// Returns non-OK only for bad input (kInvalidInput/kResourceExhausted: nothing is recorded)
/// or cancellation; a failing or invalid benchmark returns OK with record->status set.
Status RunOffline(const WorkloadSpec& w, Device& device, const RunnerOptions& opts,
                  RunRecord* record);

/// Fills the run's identity: id, host, commit, tool version, start time.
void StampRun(RunRecord* record);
std::string NowIso8601();

}  // namespace cb
