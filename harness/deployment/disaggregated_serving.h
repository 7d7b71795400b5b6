#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "backends/sim/step_model.h"
#include "harness/scenarios/batcher.h"

namespace cb {

/// One pool of a disaggregated deployment as the serving simulation drives it: `groups`
/// attention groups that step together (an expert-parallel pool's all-to-alls join every
/// rank, so a pool step lasts as long as its slowest group's; groups of a pool without expert
/// parallelism are held together the same way, which is pessimistic for them), each with its
/// own queue, sequence slots and KV cache.
struct ServingPool {
  const sim::StepModel* model = nullptr;
  int groups = 1;
  int64_t slots = 1;          ///< sequences a group holds at once
  int64_t kv_tokens = 0;      ///< KV cache tokens a group holds
  int64_t prefill_chunk = 0;  ///< prefill pool: prompt tokens a group prefills per step
};

struct DisaggregatedServingConfig {
  ServingPool prefill, decode;
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
  int64_t max_step_prefill_tokens = 0;  ///< one group's, prefill pool
  int64_t kv_peak_tokens = 0;           ///< one group's largest KV cache in use
};

struct DisaggregatedServingResult {
  std::vector<RequestOutcome> outcomes;  ///< admitted (prefill), first token, finish
  ServingPoolStats prefill, decode;
  double end_s = 0;  ///< when the last request finished
};

/// Serves `requests` on a prefill pool and a decode pool on modelled clocks: requests are
/// spread round-robin over the prefill pool's groups, queue there (FIFO, admitted while a
/// slot and KV for the prompt are free) and are prefilled in chunks (SGLang-style chunked
/// prefill, `prefill_chunk` tokens per group per step); the step that finishes a prompt samples
/// its first token, and its KV cache then moves to a decode group (round-robin) in
/// `transfer_s`; the first token counts from its arrival there, as in the offline model. A
/// decode group admits arrived caches FIFO while a slot and KV for the whole context are free,
/// and every step each running sequence verifies 1 + mtp tokens and keeps 1 + the drafts
/// accepted in a row. Each pool steps when it has work, on its own clock; the pool whose next
/// step starts earlier runs first, so a cache or a closed-loop arrival that lands while the
/// other pool is mid-step waits for that step to end. kInvalidInput when a request cannot fit
/// one group's KV cache; kCancelled on Ctrl-C.
Status SimulateDisaggregatedServing(const DisaggregatedServingConfig& cfg,
                                    std::vector<ServingRequest>* requests,
                                    DisaggregatedServingResult* out);

}  // namespace cb
