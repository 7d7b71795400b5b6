#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

/// One pool of a simulated deployment as it ran: layout, what a rank held and did.
struct PoolRecord {
  std::string role;  ///< "mixed", "prefill", "decode"
  int devices = 1, tp = 1, dp = 1, ep = 1;
  int64_t sequences_per_rank = 0;                                     ///< the slowest rank's
  double weight_bytes = 0, kv_cache_bytes = 0, activation_bytes = 0;  ///< per rank
  double memory_bytes = 0;                                            ///< the device's capacity
  double busy_ratio = 0;             ///< utilisation-weighted busy time / phase time (power model)
  double communication_seconds = 0;  ///< on the communication stream, the whole phase
  double exposed_communication_seconds = 0;  ///< phase time beyond its compute stream
};

/// How the simulator laid the model out and which figures it used (schema 1.2).
struct DeploymentRecord {
  std::string model_version;  ///< e.g. "clusterbench-sim/2.0"
  std::string system;         ///< catalog system id, empty for devices
  std::string device;         ///< catalog device id
  std::string topology;       ///< e.g. "huawei-cloudmatrix-384"
  std::vector<PoolRecord> pools;
  int redundant_experts = 0;
  int mtp = 0;
  double mtp_acceptance = 0;
  double tokens_per_decode_step = 1;
  bool overlap = false;
  std::string kv_dtype;
  int64_t prefill_chunk_tokens = 0;
  double kv_transfer_seconds = 0;              ///< per sequence, prefill pool to decode pool
  std::map<std::string, std::string> sources;  ///< figure -> where it comes from
  std::vector<std::string> notes;
};

nlohmann::json DeploymentRecordToJson(const DeploymentRecord& d);
Status DeploymentRecordFromJson(const nlohmann::json& j, const std::string& origin,
                                DeploymentRecord* out);

}  // namespace cb
