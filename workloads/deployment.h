#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/core/dtype.h"
#include "harness/core/status.h"
#include "workloads/model_spec.h"

namespace cb {

/// What a pool of devices serves: both phases, or one side of a disaggregated deployment.
enum class PoolRole { kMixed, kPrefill, kDecode };
std::string PoolRoleName(PoolRole r);

/// How one pool lays the model out. Its devices form dp() = devices / tp attention groups
/// (data-parallel attention: each group holds the KV cache of its own sequences only) of tp
/// tensor-parallel ranks (attention heads, dense FFNs and the LM head split tp ways). With
/// ep > 1 (MoE models only, tp 1) the routed experts are sharded over groups of ep devices
/// and tokens are dispatched to them and combined back with all-to-alls; dense layers, shared
/// experts and the LM head stay data parallel.
struct PoolLayout {
  PoolRole role = PoolRole::kMixed;
  int devices = 1;
  int tp = 1;
  int ep = 1;
  int dp() const { return tp > 0 ? devices / tp : 0; }
  /// "ep32 x 32", "tp8 x 16" (layout x devices), with the role for split pools.
  std::string Describe() const;
};

/// The layout of a workload as the user gave it (suite fields and flags of the same names;
/// 0 or empty: not given). Resolved into a Deployment by ResolveDeployment.
struct DeploymentSpec {
  std::string system;            ///< catalog system id or short name; empty: none
  int devices = 0;               ///< devices; 0: the system's count, else 1
  int tp = 0, ep = 0, dp = 0;    ///< the mixed pool's layout; 0: chosen
  std::string disaggregate;      ///< "prefill=N[:tpA][:epB],decode=M[...]"; empty: one pool
  int redundant_experts = 0;     ///< extra expert replicas per MoE layer (EPLB), for EP
  int mtp = 0;                   ///< multi-token prediction draft tokens per decode step
  double mtp_acceptance = 0.85;  ///< acceptance rate of each draft token
  bool overlap = false;          ///< two-micro-batch overlap of communication with compute
  /// True when any layout field other than the defaults was given.
  bool Given() const;
};

/// A resolved layout: one mixed pool, or a prefill and a decode pool.
struct Deployment {
  std::vector<PoolLayout> pools;
  int redundant_experts = 0;
  int mtp = 0;
  double mtp_acceptance = 0.85;
  bool overlap = false;

  bool Disaggregated() const { return pools.size() == 2; }
  const PoolLayout& Prefill() const { return pools.front(); }
  const PoolLayout& Decode() const { return pools.back(); }
  int TotalDevices() const;
  /// Expected tokens each sequence gains per decode step: 1 + a + a^2 + ... + a^mtp.
  double TokensPerDecodeStep() const;
  std::string Describe() const;
};

/// Parses "prefill=32:ep32,decode=320:ep320" (items tpN, epN; devices / tp = dp). Errors name
/// `where` (e.g. "command line: --disaggregate") and the allowed form.
Status ParsePools(const std::string& text, const std::string& where, std::vector<PoolLayout>* out);

/// Checks a pool's layout against the model: tp divides devices and the model's heads,
/// KV heads, FFN widths and vocabulary; ep > 1 only for MoE models, with tp 1, dividing the
/// pool's devices, and (experts + redundant) divisible by ep. Errors name `where`, the field
/// and the allowed values.
Status ValidatePool(const ModelSpec& m, const PoolLayout& p, int redundant_experts,
                    const std::string& where);

/// Expert slots each EP rank holds: (experts + redundant) / ep (all experts without EP).
int64_t ExpertSlotsPerRank(const ModelSpec& m, int ep, int redundant_experts);

/// Bytes one rank of a pool holds.
struct RankMemory {
  double weights = 0;      ///< its shard: TP-split attention/dense/LM head, its expert slots
  double kv_cache = 0;     ///< its own sequences (MLA's latent is not split by TP)
  double activations = 0;  ///< one step of at most `step_tokens` tokens
  double Total() const { return weights + kv_cache + activations; }
};

/// Memory of one rank of `pool` serving `seqs` sequences of up to `context` tokens in steps of
/// at most `step_tokens` tokens, with weights in `weights` and the KV cache in `kv`.
RankMemory RankMemoryOf(const ModelSpec& m, const PoolLayout& pool, int redundant_experts,
                        DType weights, DType kv, int64_t seqs, int64_t context,
                        int64_t step_tokens);

/// Weight bytes of one rank's shard (`RankMemoryOf(...).weights`).
double RankWeightBytes(const ModelSpec& m, const PoolLayout& pool, int redundant_experts,
                       DType weights);

/// KV-cache bytes per token of context on one rank of `pool` (all layers).
double RankKvBytesPerToken(const ModelSpec& m, const PoolLayout& pool, DType kv);

}  // namespace cb
