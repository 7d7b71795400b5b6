#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

/// One rank of a multi-rank run, as rank 0 saw it.
struct RankRecord {
  int rank = 0, tp_rank = 0, dp_rank = 0;
  std::string host;
  int64_t sequences = 0;  ///< sequences of its replica
  double prefill_s = 0;   ///< median over repetitions
  double decode_step_min_s = 0, decode_step_mean_s = 0, decode_step_max_s = 0;
  double comm_s = 0;      ///< median per repetition, inside collectives
  double comm_share = 0;  ///< comm_s / time inside the backend, median
};

/// Layout and per-rank figures of a run over several ranks (MPI).
struct ClusterRecord {
  int world_size = 1, tp = 1, dp = 1;
  int ep = 1;  ///< expert-parallel ranks (MoE --ep): the dp replicas each hold 1/ep of the experts
  int nodes = 1;         ///< distinct hosts
  std::string launcher;  ///< "mpi"
  double collective_timeout_s = 0;
  std::vector<RankRecord> ranks;
};

nlohmann::json ClusterRecordToJson(const ClusterRecord& c);
Status ClusterRecordFromJson(const nlohmann::json& j, const std::string& origin,
                             ClusterRecord* out);

}  // namespace cb
