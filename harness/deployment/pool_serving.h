#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "backends/sim/step_model.h"
#include "harness/scenarios/batcher.h"
#include "workloads/deployment.h"

namespace cb {

/// One pool of a simulated deployment as the serving simulation drives it: `groups` attention
/// groups that step together (an expert-parallel pool's all-to-alls join every rank, so a pool
/// step lasts as long as its slowest group's; groups of a pool without expert parallelism are
/// held together the same way, which is pessimistic for them), each with its own queue,
/// sequence slots and KV cache.
struct ServingPool {
  PoolRole role = PoolRole::kMixed;
  const sim::StepModel* model = nullptr;
  int groups = 1;
  int64_t slots = 1;          ///< sequences a group holds at once
  int64_t kv_tokens = 0;      ///< KV cache tokens a group holds
  int64_t prefill_chunk = 0;  ///< prompt tokens a group prefills per step (prefill, mixed)
};

struct PoolServingConfig {
  /// One mixed pool, or a prefill pool and a decode pool (in that order).
  std::vector<ServingPool> pools;
  /// Seconds to move a prompt's KV cache from its prefill group to its decode group.
  std::function<double(int64_t prompt_len)> transfer_s;
  /// Closed loop: requests in flight (the next one issued when one finishes); 0: open loop at
  /// the requests' own arrival times.
  int64_t concurrency = 0;
  int mtp = 0;                ///< draft tokens verified per decode step
  double mtp_acceptance = 0;  ///< chance each draft is accepted (after every earlier one was)
  uint64_t seed = 0;          ///< draws of accepted drafts
  /// Called now and then with the share of requests finished (null: none).
  std::function<void(double)> progress;
};

/// What one pool did over the pass.
struct ServingPoolStats {
  int64_t steps = 0;
  double busy_seconds = 0;              ///< utilisation-weighted, per rank (mean over its groups)
  double compute_seconds = 0;           ///< per rank, as busy
  double comm_seconds = 0;              ///< per rank, as busy
  double exposed_comm_seconds = 0;      ///< step time beyond the slowest group's compute
  double sum_running = 0;               ///< sequences per group per step, summed over steps
  int64_t max_step_prefill_tokens = 0;  ///< one group's
  int64_t kv_peak_tokens = 0;           ///< one group's largest KV cache in use
};

struct PoolServingResult {
  std::vector<RequestOutcome> outcomes;  ///< admitted, first token, finish
  std::vector<ServingPoolStats> pools;   ///< as PoolServingConfig::pools
  double end_s = 0;                      ///< when the last request finished
};

/// Serves `requests` on a simulated deployment on modelled clocks. Requests are spread
/// round-robin over the (first) pool's groups and queue there (FIFO, admitted while a slot and
/// KV are free: the prompt's in a prefill pool, the whole context's otherwise); prompts are
/// prefilled in chunks (SGLang-style chunked prefill, `prefill_chunk` tokens per group per
/// step, in a mixed pool beside the decoding sequences); the step that finishes a prompt
/// samples its first token. In a mixed pool the sequence then decodes where it is; from a
/// prefill pool its KV cache moves to a decode group (round-robin) in `transfer_s`, and the
/// first token counts from its arrival there, as in the offline model; a decode group admits
/// arrived caches FIFO. Every decode step each sequence verifies 1 + mtp tokens and keeps 1 +
/// the drafts accepted in a row. A step with prompt tokens uses the throughput all-to-all
/// kernels, a decode-only step the low-latency ones. Each pool steps when it has work, on its
/// own clock; the pool whose next step starts earlier runs first, so a cache or a closed-loop
/// arrival that lands while the other pool is mid-step waits for that step to end.
/// kInvalidInput when a request cannot fit one group's KV cache; kCancelled on Ctrl-C.
Status SimulatePoolServing(const PoolServingConfig& cfg, std::vector<ServingRequest>* requests,
                           PoolServingResult* out);

}  // namespace cb
