#pragma once

#include <memory>
#include <vector>

#include "backends/sim/expert_placement.h"
#include "backends/sim/perf_model.h"
#include "backends/sim/topology.h"
#include "workloads/deployment.h"
#include "workloads/op_cost.h"
#include "workloads/op_stream.h"

namespace cb::sim {

/// Which all-to-all kernels a step's expert dispatch and combine use.
enum class AllToAllKind { kThroughput, kLowLatency };

/// How one pool runs a model.
struct StepModelConfig {
  PoolLayout pool;
  int redundant_experts = 0;
  bool overlap = false;  ///< two micro-batches: one's communication behind the other's compute
  int mtp = 0;           ///< draft tokens per decode step (the MTP module runs mtp times)
  DType dtype = DType::kBF16;
  DType kv_dtype = DType::kBF16;
  int layers = 0;  ///< decoder layers in the stream (0: all of the model's)
};

/// One step of the slowest rank of a pool.
struct StepCost {
  double seconds = 0;          ///< from the step's start to its end on the device clock
  double busy_seconds = 0;     ///< utilisation-weighted compute time (for the power model)
  double compute_seconds = 0;  ///< summed over the compute stream
  double comm_seconds = 0;     ///< summed over the communication stream
  OpCost work;                 ///< what this rank computes and reads
  OpCost mean_work;            ///< ... an average rank (the experts' mean load under EP)
  double received_bytes = 0;   ///< expert rows dispatched to this rank
};

/// The time of one rank's step from first principles: every op of the rank's shard of the
/// stream on the device's roofline with its efficiencies (perf_model.h); tensor-parallel
/// collectives on the topology's links; under expert parallelism the routed experts run on
/// the slowest rank's load (ExpertPlacement) between a dispatch and a combine all-to-all
/// costed on the pool's links at the kernels' achieved rates. Compute and communication are
/// queued on two streams of a SimRuntime; with `overlap` the step is split into two
/// micro-batches whose work interleaves, so communication of one hides behind the other's
/// compute. Every rank of the pool is taken to run a step of the same size (data-parallel
/// attention with balanced sequences); the costs of ops that do not depend on the context
/// are computed once per step shape and reused.
class StepModel {
 public:
  /// kInvalidInput when the layout does not fit the model (see ValidatePool).
  static Status Create(const DeviceModel& device, const Topology& topology, const ModelSpec& model,
                       const StepModelConfig& config, std::unique_ptr<StepModel>* out);

  /// The step in which this rank processes `rank` (its own sequences' tokens), over ops
  /// [begin, end) of the stream; `mtp_drafts` adds the MTP module's draft passes (decode).
  StepCost Step(const StepSummary& rank, AllToAllKind kind, size_t begin, size_t end,
                bool mtp_drafts = false) const;
  StepCost Step(const StepSummary& rank, AllToAllKind kind, bool mtp_drafts = false) const {
    return Step(rank, kind, 0, stream_.ops.size(), mtp_drafts);
  }

  const OpStream& stream() const { return stream_; }
  const StepModelConfig& config() const { return cfg_; }
  const DeviceModel& device() const { return device_; }
  const Topology& topology() const { return topo_; }
  const ExpertPlacement& placement() const { return placement_; }

 private:
  struct Item {
    bool comm = false;
    double seconds[2] = {0, 0};  ///< per micro-batch
    double busy[2] = {0, 0};
  };
  struct OpEval {  ///< cached costs of an op whose cost does not depend on the context
    double tokens = -1, seqs = -1;
    int micro = 0;
    bool shared = false;  ///< costed on the compute left beside throughput all-to-alls
    OpCost work;
    double seconds = 0, busy = 0;
  };

  StepModel(const DeviceModel& d, const Topology& t, const StepModelConfig& c)
      : device_(d), topo_(t), cfg_(c) {}
  /// The op's costs: `shared` when overlapped throughput all-to-alls take a share of the
  /// device's compute (their kernels' SMs) for the whole step.
  struct Pass {
    const StepSummary& full;
    const StepSummary& micro;
    int micros;
    AllToAllKind kind;
    bool shared;
    /// The slowest expert rank of the step and of a micro-batch (the same in every MoE layer).
    ExpertPlacement::RankLoad whole_load, micro_load;
  };
  Pass MakePass(const StepSummary& full, const StepSummary& micro, int micros, AllToAllKind kind,
                bool shared) const;
  void AddOp(size_t index, const Pass& pass, std::vector<Item>* items, StepCost* cost) const;
  void AddExperts(const Pass& pass, std::vector<Item>* items, StepCost* cost) const;
  const DeviceModel& Device(bool shared) const { return shared ? shared_device_ : device_; }
  double AllToAllSeconds(double tokens, double element_bytes, double imbalance,
                         AllToAllKind kind) const;
  double Collective(const Op& op, const StepSummary& s) const;
  DType ComputeDType(OpKind k) const;
  StepCost Schedule(const std::vector<Item>& items, int micros, StepCost cost) const;

  DeviceModel device_;
  DeviceModel shared_device_;  ///< device_ less the throughput all-to-all's compute share
  Topology topo_;
  StepModelConfig cfg_;
  OpStream stream_;
  ExpertPlacement placement_;
  bool has_comm_ = false;
  mutable std::vector<OpEval> cache_;
};

}  // namespace cb::sim
