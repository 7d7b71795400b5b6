#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/comm/communicator.h"
#include "harness/micro/ceiling_probe.h"
#include "results/run_record.h"

namespace cb {

class World;

/// Where this rank sits in a tensor x data parallel job. World rank r is tensor-parallel rank
/// r % tp of data-parallel replica r / tp, so a replica's ranks are neighbours (one node).
struct ParallelContext {
  int tp = 1, dp = 1;
  int world_rank = 0, world_size = 1;
  int tp_rank = 0, dp_rank = 0;
  std::string host;
  std::string launcher = "none";
  double collective_timeout_s = 0;
  Communicator* world = nullptr;     ///< all ranks
  Communicator* tp_group = nullptr;  ///< the ranks of this replica
  /// Expert parallelism (--ep N, tp 1, dp N): every rank is a replica for attention and
  /// holds 1/N of the experts; ep_group is the whole world.
  int ep = 1, ep_rank = 0;
  Communicator* ep_group = nullptr;
  /// Simulated backend: tp x dp virtual devices in this one process. One TP group is
  /// simulated (this process is its rank 0 of replica 0, the replica with the most sequences)
  /// and the runner reports it for every device of every replica.
  bool virtual_cluster = false;
};

/// Owns the communicators of a context for a (tp, dp) split of `world`.
class ParallelGroups {
 public:
  /// kInvalidInput (on every rank, same message) when tp * dp differs from the world size.
  /// ep > 1 needs tp 1 and dp == ep (experts sharded over the data-parallel ranks).
  Status Init(int tp, int dp, World& world, double collective_timeout_s, int ep = 1);
  const ParallelContext& context() const { return ctx_; }

 private:
  ParallelContext ctx_;
  std::unique_ptr<Communicator> single_;
  std::unique_ptr<Communicator> tp_group_;
};

/// Sequences of replica `dp_rank` when `batch` sequences are shared by `dp` replicas (the
/// first batch % dp replicas take one more), and the global index of its first sequence.
int64_t LocalBatch(int64_t batch, int dp, int dp_rank);
int64_t FirstSequence(int64_t batch, int dp, int dp_rank);

/// What one rank measured, gathered on rank 0 to build the cluster's figures.
struct RankTimings {
  int rank = 0, tp_rank = 0, dp_rank = 0;
  std::string host;
  int64_t sequences = 0;
  std::vector<double> prefill_s;  ///< per measured repetition
  std::vector<double> decode_s;   ///< per repetition: all decode steps
  std::vector<std::vector<double>> decode_step_s;
  std::vector<double> comm_s;     ///< per repetition: inside collectives
  std::vector<double> backend_s;  ///< per repetition: inside backend calls
  std::vector<double> window_s;   ///< per repetition: the whole measured window
  std::string energy_source;      ///< empty when this rank had no reading
  double energy_joules = 0;
  WindowProbes probes;  ///< the ceilings this rank sampled beside its window (ceiling_check.h)
};

/// The job's energy from every rank's reading: NVML readings (one GPU per rank) are summed;
/// host-wide readings (RAPL package counters, the CPU power model) count once per host, from
/// the host's lowest rank. `method` says which rule applied. Returns false without readings.
bool ClusterEnergy(const std::vector<RankTimings>& ranks, double* joules, std::string* method);

/// Gathers every rank's timings at world rank 0 (`all` is filled there only).
Status GatherTimings(const ParallelContext& ctx, const RankTimings& mine,
                     std::vector<RankTimings>* all);

/// Agrees across the world on whether every rank succeeded so far: returns the first
/// failure message of any rank (empty if none). Collective.
Status AgreeOnFailure(const ParallelContext& ctx, const std::string& my_failure,
                      std::string* any_failure);

}  // namespace cb
