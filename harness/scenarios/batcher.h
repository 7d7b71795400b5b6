#pragma once

#include <cstdint>
#include <deque>
#include <vector>

#include "harness/scenarios/kv_pages.h"
#include "workloads/step_io.h"

namespace cb {

/// One request of a serving scenario.
struct ServingRequest {
  double arrival_s = 0;  ///< scheduled arrival, seconds from the start of the pass
  int64_t prompt_len = 0, output_len = 0;
  std::vector<int32_t> prompt;
};

/// What happened to one request (times in seconds from the start of the pass).
struct RequestOutcome {
  double admitted_s = -1, first_token_s = -1, finish_s = -1;
  std::vector<int32_t> tokens;  ///< generated tokens
};

/// Continuous batching: requests that have arrived wait in FIFO order and join the running
/// batch when a sequence slot and KV pages for their whole context are free; each step every
/// running request past its prompt decodes one token, and prompts are prefilled in chunks
/// with at most `max_prefill_tokens` prompt tokens per step in all; a finished request leaves
/// and its slot and pages are reclaimed. The clock and the backend belong to the caller.
class ContinuousBatcher {
 public:
  ContinuousBatcher(const std::vector<ServingRequest>* requests, int64_t slots,
                    int64_t max_prefill_tokens, KvPageAllocator* kv);

  /// Request `index` has arrived.
  void Arrive(int64_t index);
  /// Admits waiting requests (FIFO, no overtaking) while a slot and pages are free.
  void Admit(double now_s, std::vector<RequestOutcome>* outcomes);
  /// The next step's inputs; false when nothing is running.
  bool BuildStep(StepIO* io);
  /// Takes the step's sampled tokens at time `now_s`; appends requests that finished.
  void Complete(const StepIO& io, double now_s, std::vector<RequestOutcome>* outcomes,
                std::vector<int64_t>* finished);

  int64_t running() const { return static_cast<int64_t>(running_.size()); }
  int64_t waiting() const { return static_cast<int64_t>(waiting_.size()); }
  int64_t free_slots() const { return static_cast<int64_t>(free_slots_.size()); }
  int64_t last_step_prefill_tokens() const { return last_prefill_; }

 private:
  struct Running {
    int64_t index = 0, slot = 0;
    int64_t prefilled = 0;  ///< prompt tokens already in the cache
    int64_t generated = 0;
    int32_t last_token = 0;
    int64_t step_tokens = 0;  ///< new tokens in the step being run
    std::vector<int64_t> pages;
  };
  const std::vector<ServingRequest>* reqs_;
  int64_t max_prefill_;
  KvPageAllocator* kv_;
  std::deque<int64_t> waiting_;
  std::vector<Running> running_;
  std::vector<int64_t> free_slots_;
  int64_t last_prefill_ = 0;
};

}  // namespace cb
