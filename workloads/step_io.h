#pragma once

#include <cstdint>
#include <vector>

namespace cb {

/// One sequence's part of a step: which KV-cache slot it owns, how many of its tokens are
/// already cached, and how many new tokens it brings now (prompt length for prefill, 1 for
/// decode).
struct SeqStep {
  int64_t slot = 0;
  int64_t past_len = 0;
  int64_t new_tokens = 0;
};

/// Inputs and outputs of one forward step. New tokens are laid out sequence after sequence.
struct StepIO {
  std::vector<SeqStep> seqs;
  std::vector<int32_t> tokens;       ///< sum of new_tokens ids
  std::vector<int32_t> next_tokens;  ///< out: one greedy token per sequence
  bool want_logits = false;          ///< copy the last-position logits out (verification)
  std::vector<float> logits;         ///< out when want_logits: [seqs, vocab] fp32

  int64_t TotalTokens() const {
    int64_t t = 0;
    for (const auto& s : seqs) t += s.new_tokens;
    return t;
  }
};

}  // namespace cb
