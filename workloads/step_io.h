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
  /// out for MoE models: (token, expert) pairs routed to each expert by the router of each
  /// layer run, [stream layers][experts] (rows of dense layers stay 0). Each router op
  /// overwrites its layer's row; the vector keeps its size across steps.
  std::vector<int32_t> expert_load;
  /// Route replay, for comparing backends whose arithmetic differs (bf16): a backend run with
  /// record_routes copies each router's kRoute rows into routes[layer] and its gate logits
  /// [tokens, experts] into route_logits[layer]; a reference run given replay_routes uses
  /// those experts instead of its own top-k (its combine weights are still its own scores of
  /// them), measures how far the backend's logits are from its own, and counts the tokens whose
  /// own choice differed and, of those, the ones that deviation cannot explain
  /// (FlipWithinMargin): a near-tie flipped by rounding passes, a broken router does not.
  bool record_routes = false;
  std::vector<std::vector<float>> routes, route_logits;
  const std::vector<std::vector<float>>* replay_routes = nullptr;
  const std::vector<std::vector<float>>* replay_logits = nullptr;
  int64_t route_decisions = 0;      ///< out: (token, layer) routing decisions of a replayed step
  int64_t route_mismatches = 0;     ///< out: ... where the reference's own choice differed
  int64_t route_beyond_margin = 0;  ///< out: ... and the difference is beyond rounding
  /// out: the largest |backend - reference| gate logit of a token over its largest |logit|.
  double route_logit_error = 0;

  int64_t TotalTokens() const {
    int64_t t = 0;
    for (const auto& s : seqs) t += s.new_tokens;
    return t;
  }
};

}  // namespace cb
