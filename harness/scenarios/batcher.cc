#include "harness/scenarios/batcher.h"

#include <algorithm>

namespace cb {

ContinuousBatcher::ContinuousBatcher(const std::vector<ServingRequest>* requests, int64_t slots,
                                     int64_t max_prefill_tokens, KvPageAllocator* kv)
    : reqs_(requests), max_prefill_(std::max<int64_t>(1, max_prefill_tokens)), kv_(kv) {
  for (int64_t s = slots - 1; s >= 0; --s) free_slots_.push_back(s);
}

void ContinuousBatcher::Arrive(int64_t index) { waiting_.push_back(index); }

void ContinuousBatcher::Admit(double now_s, std::vector<RequestOutcome>* outcomes) {
  while (!waiting_.empty() && !free_slots_.empty()) {
    const ServingRequest& r = (*reqs_)[static_cast<size_t>(waiting_.front())];
    Running run;
    if (!kv_->Allocate(r.prompt_len + r.output_len, &run.pages)) break;
    run.index = waiting_.front();
    run.slot = free_slots_.back();
    free_slots_.pop_back();
    waiting_.pop_front();
    (*outcomes)[static_cast<size_t>(run.index)].admitted_s = now_s;
    running_.push_back(std::move(run));
  }
}

bool ContinuousBatcher::BuildStep(StepIO* io) {
  *io = StepIO{};
  last_prefill_ = 0;
  int64_t budget = max_prefill_;
  for (Running& run : running_) {
    const ServingRequest& r = (*reqs_)[static_cast<size_t>(run.index)];
    run.step_tokens = 0;
    if (run.prefilled < r.prompt_len) {
      // Prefill a chunk of the prompt within what is left of this step's budget.
      const int64_t chunk = std::min(budget, r.prompt_len - run.prefilled);
      if (chunk <= 0) continue;
      budget -= chunk;
      last_prefill_ += chunk;
      run.step_tokens = chunk;
      io->seqs.push_back({run.slot, run.prefilled, chunk});
      io->tokens.insert(io->tokens.end(), r.prompt.begin() + run.prefilled,
                        r.prompt.begin() + run.prefilled + chunk);
    } else {
      // Decode: feed back the last sampled token.
      run.step_tokens = 1;
      io->seqs.push_back({run.slot, r.prompt_len + run.generated - 1, 1});
      io->tokens.push_back(run.last_token);
    }
  }
  return !io->seqs.empty();
}

void ContinuousBatcher::Complete(const StepIO& io, double now_s,
                                 std::vector<RequestOutcome>* outcomes,
                                 std::vector<int64_t>* finished) {
  size_t k = 0;  // io.seqs are in running_ order, skipping requests that sat this step out
  std::vector<Running> still;
  for (Running& run : running_) {
    if (run.step_tokens == 0) {
      still.push_back(std::move(run));
      continue;
    }
    const ServingRequest& r = (*reqs_)[static_cast<size_t>(run.index)];
    RequestOutcome& out = (*outcomes)[static_cast<size_t>(run.index)];
    const int32_t token = io.next_tokens[k++];
    bool produced = false;
    if (run.prefilled < r.prompt_len) {
      run.prefilled += run.step_tokens;
      if (run.prefilled == r.prompt_len) {  // the last chunk samples the first output token
        produced = true;
        out.first_token_s = now_s;
      }
    } else {
      produced = true;
    }
    if (produced) {
      ++run.generated;
      run.last_token = token;
      out.tokens.push_back(token);
    }
    if (run.generated >= r.output_len) {
      out.finish_s = now_s;
      kv_->Free(&run.pages);
      free_slots_.push_back(run.slot);
      finished->push_back(run.index);
    } else {
      still.push_back(std::move(run));
    }
  }
  running_ = std::move(still);
}

}  // namespace cb
