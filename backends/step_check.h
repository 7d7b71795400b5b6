#pragma once

#include <cstdint>
#include <string>

#include "backends/backend.h"

namespace cb {

/// Checks one step against the session it runs in: sequence count, distinct KV slots in range,
/// positions within max_context, new tokens within max_step_tokens, and (when given) one token
/// id per new position inside the vocabulary. Sets `*total` to the step's new tokens.
inline Status CheckStep(const StepIO& io, const SessionConfig& cfg, int64_t vocab, int64_t* total) {
  if (io.seqs.empty()) return Status::InvalidInput("a step needs at least one sequence");
  if (static_cast<int64_t>(io.seqs.size()) > cfg.max_sequences) {
    return Status::InvalidInput("step has " + std::to_string(io.seqs.size()) +
                                " sequences, the session was opened for " +
                                std::to_string(cfg.max_sequences));
  }
  *total = 0;
  for (size_t i = 0; i < io.seqs.size(); ++i) {
    const SeqStep& s = io.seqs[i];
    if (s.slot < 0 || s.slot >= cfg.max_sequences) {
      return Status::InvalidInput("KV slot " + std::to_string(s.slot) + " outside [0, " +
                                  std::to_string(cfg.max_sequences) + ")");
    }
    for (size_t j = 0; j < i; ++j) {
      if (io.seqs[j].slot == s.slot) {
        return Status::InvalidInput("KV slot " + std::to_string(s.slot) + " used twice");
      }
    }
    if (s.past_len < 0 || s.new_tokens < 1) {
      return Status::InvalidInput("each sequence needs past_len >= 0 and new_tokens >= 1");
    }
    if (s.past_len + s.new_tokens > cfg.max_context) {
      return Status::Exhausted("sequence reaches " + std::to_string(s.past_len + s.new_tokens) +
                               " tokens, the session was opened for max_context " +
                               std::to_string(cfg.max_context));
    }
    *total += s.new_tokens;
  }
  if (*total > cfg.max_step_tokens) {
    return Status::Exhausted("step brings " + std::to_string(*total) +
                             " tokens, the session was opened for max_step_tokens " +
                             std::to_string(cfg.max_step_tokens));
  }
  if (io.tokens.empty()) return Status::Ok();
  if (static_cast<int64_t>(io.tokens.size()) != *total) {
    return Status::InvalidInput("StepIO has " + std::to_string(io.tokens.size()) + " tokens for " +
                                std::to_string(*total) + " new positions");
  }
  for (int32_t t : io.tokens) {
    if (t < 0 || t >= vocab) {
      return Status::InvalidInput("token id " + std::to_string(t) + " outside the vocabulary");
    }
  }
  return Status::Ok();
}

}  // namespace cb
