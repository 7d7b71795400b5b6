#pragma once

#include <cstdint>
#include <vector>

#include "backends/backend.h"
#include "harness/scenarios/batcher.h"

namespace cb {

/// How requests are issued in one pass.
struct PassConfig {
  int64_t slots = 1;  ///< running-batch sequence slots (KV-cache slots)
  int64_t max_prefill_tokens = 512;
  int64_t kv_pages = 0, kv_page_tokens = 16;
  /// Closed loop: this many requests in flight, the next issued (its arrival = now) when one
  /// completes; 1 is single-stream. 0: open loop at the requests' own arrival times.
  int64_t concurrency = 0;
  int64_t vocab = 0;  ///< sampled tokens must lie in [0, vocab)
};

struct PassResult {
  std::vector<RequestOutcome> outcomes;  ///< per request
  int64_t steps = 0;
  int64_t max_step_prefill_tokens = 0;
  double sum_running = 0;  ///< sequences per step, summed over steps
  int64_t kv_pages_total = 0, kv_pages_peak = 0;
  int64_t kv_pages_free_at_end = 0, slots_free_at_end = 0;
  double backend_s = 0;      ///< time inside Session::Run and Synchronize
  bool tokens_valid = true;  ///< false: a sampled token was out of range (NaN logits?)
};

/// Serves `requests` through `session` with continuous batching, the harness owning time:
/// time 0 is the clock at entry; when nothing can run and the next arrival lies ahead, the
/// clock waits (sleeps, or a modelled clock moves on). Closed loop overwrites the requests'
/// arrival times with when they were issued.
Status RunServingPass(Session& session, Clock& clock, const OpStream& stream, const PassConfig& cfg,
                      std::vector<ServingRequest>* requests, PassResult* out);

}  // namespace cb
