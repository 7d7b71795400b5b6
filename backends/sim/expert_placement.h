#pragma once

#include <vector>

#include "workloads/model_spec.h"

namespace cb::sim {

/// Where the routed experts of one MoE layer sit in an expert-parallel group of `ep` ranks,
/// and the load that follows from the routing law (uniform, or --routing zipf:S).
///
/// Placement: each rank holds (experts + redundant) / ep expert slots. Redundant slots go
/// one at a time to the expert with the most load per replica (as EPLB does), and replicas
/// are packed onto ranks heaviest first, each onto the least loaded rank with a free slot.
/// With group-limited routing (DeepSeek-V3) where the scale-up domains divide the groups and
/// the redundant slots, placement is hierarchical, as EPLB's policy is then: each domain holds
/// whole groups and its share of the redundant slots, so a token reaches at most topk_group
/// groups' domains; its reach is then counted by running the model's router (SelectExperts)
/// on 4,096 sampled tokens.
///
/// Load of a step in which every rank routes T tokens: rank r receives N s_r of the N = ep T k
/// (token, expert) picks, s_r being its share. Picks are independent draws, so a rank's count
/// varies with variance about N s_r (1 - s_r); the slowest of ep ranks is taken at
/// max_r N s_r + z(ep) sigma_r, z(n) the expected maximum of n standard normals (Blom).
class ExpertPlacement {
 public:
  ExpertPlacement() = default;
  /// `domain`: ranks per scale-up domain (ranks are numbered domain by domain).
  ExpertPlacement(const ModelSpec& m, int ep, int redundant_experts, int domain);
  /// The same, made once per routing-relevant model shape and layout in a process (a layout
  /// search builds the same placements again and again; sampling the router takes ~30 ms).
  static ExpertPlacement Shared(const ModelSpec& m, int ep, int redundant_experts, int domain);

  struct RankLoad {
    double assignments = 0;       ///< (token, expert) rows on the slowest rank
    double mean_assignments = 0;  ///< ... on an average rank
    double slots = 0;             ///< expert slots per rank
    double distinct_slots = 0;    ///< slots of the slowest rank that get at least one row
  };
  /// The slowest rank when every rank of the group routes `tokens` tokens.
  RankLoad SlowestRank(double tokens) const;

  /// Per token a rank routes: other ranks it reaches (a token goes once to each rank that
  /// holds any of its experts), and other scale-up domains it reaches.
  double remote_ranks_per_token() const { return remote_ranks_; }
  double remote_domains_per_token() const { return remote_domains_; }
  /// Of its k picks, the share held by other ranks of its own domain, and by other domains.
  double in_domain_remote_pick_share() const { return in_domain_share_; }
  double out_of_domain_pick_share() const { return out_of_domain_share_; }
  int ep() const { return ep_; }
  /// Whole groups per scale-up domain (see above).
  bool hierarchical() const { return hierarchical_; }
  /// Expected maximum of n independent standard normal variables (Blom's approximation).
  static double ExpectedMaxNormal(int n);

 private:
  int ep_ = 1;
  double picks_per_token_ = 0;      ///< k (less when an expert is picked with certainty)
  std::vector<double> rank_share_;  ///< share of all picks per rank
  std::vector<std::vector<double>> slot_share_;  ///< per rank, per slot
  double remote_ranks_ = 0, remote_domains_ = 0;
  double in_domain_share_ = 0, out_of_domain_share_ = 0;
  bool hierarchical_ = false;
  std::vector<std::vector<int>> replica_ranks_;  ///< per expert, the ranks of its replicas

  void ReachByRouting(const ModelSpec& m, const std::vector<double>& share, int per_domain,
                      double* ranks_hit, double* domains_hit) const;
};

}  // namespace cb::sim
