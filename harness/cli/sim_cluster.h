#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/devices/catalog.h"
#include "backends/sim/sim_device.h"
#include "harness/parallel.h"
#include "results/run_record.h"
#include "workloads/workload_spec.h"

namespace cb {

/// What `run` does for the simulated backend: --system/--devices virtual clusters (one TP group
/// simulated analytically, multiplied by dp replicas), the catalog entry each run is priced by,
/// verification where the sim can compute, and MFU/MBU against the simulated device's peaks.
struct SimClusterOptions {
  std::string system;              ///< catalog system (id or short name); empty: none
  int devices = 0;                 ///< virtual devices; 0: the system's count, else 1
  int tp = 0, dp = 0;              ///< 0: chosen (tp: the smallest that fits the device's memory)
  bool batch_per_replica = false;  ///< the workloads' batch is each replica's, not the system's
  bool single_process = false;     ///< no launcher: --tp/--dp of sim runs are virtual devices
};

class SimCluster {
 public:
  /// Rewrites the plan's sim workloads (backend sim:DEVICE of the system, catalog entry for the
  /// cost model, verification off where the sim cannot compute it) and chooses tp x dp.
  /// `active()` afterwards when the plan needs virtual devices.
  Status Prepare(const SimClusterOptions& o, const std::string& catalog_dir,
                 std::vector<WorkloadSpec>* plan);
  bool active() const { return active_; }
  const ParallelContext& context() const { return ctx_; }
  /// Gives a simulated device its layout and links; other devices are left alone.
  void Configure(Device& device) const;
  /// MFU/MBU ceilings of a simulated device: its modelled peaks.
  static Ceilings CeilingsOf(const DeviceProps& props);
  /// After a run: why verification did not run, where the sim turned it off.
  void Annotate(size_t workload, RunRecord* rec) const;
  /// After the cost model: a virtual cluster's cost counts every one of its devices.
  void FinishCost(RunRecord* rec) const;
  const sim::Topology& topology() const { return topo_; }

 private:
  bool active_ = false;
  int tp_ = 1, dp_ = 1;
  sim::Topology topo_;
  bool have_topo_ = false;
  std::vector<std::string> verify_notes_;
  std::unique_ptr<SingleRankCommunicator> world_;
  std::unique_ptr<sim::VirtualGroup> group_;
  ParallelContext ctx_;
};

/// Smallest power-of-two tp (<= limit) that divides the model's heads, KV heads, FFN and vocab
/// and whose per-device memory (weights and KV cache / tp + activations) fits in `mem_bytes`
/// (90% of it) with `replica_batch(tp)` sequences per replica; 0 when none does.
int ChooseTensorParallel(const WorkloadSpec& w, double mem_bytes, int limit,
                         const std::function<int64_t(int)>& replica_batch);

}  // namespace cb
