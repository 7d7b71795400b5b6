#include "backends/sim/expert_placement.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <queue>
#include <tuple>

#include "workloads/moe_routing.h"
#include "workloads/op_cost.h"
#include "workloads/weights.h"

namespace cb::sim {
namespace {

/// Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9).
double NormalQuantile(double p) {
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,  -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01, -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  const double lo = 0.02425;
  if (p < lo) {
    const double q = std::sqrt(-2 * std::log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - lo) return -NormalQuantile(1 - p);
  const double q = p - 0.5, r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
         (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}

}  // namespace

double ExpertPlacement::ExpectedMaxNormal(int n) {
  if (n <= 1) return 0;
  return NormalQuantile((n - 0.375) / (n + 0.25));
}

namespace {

/// Replicas per expert: each redundant slot to the expert (of `experts`) with the most load
/// per replica, as EPLB does.
void AddReplicas(const std::vector<double>& pick, const std::vector<int64_t>& experts,
                 int redundant, std::vector<int>* copies) {
  using Entry = std::pair<double, int64_t>;  // load per replica, expert
  std::priority_queue<Entry> heaviest;
  for (int64_t e : experts) heaviest.push({pick[e] / (*copies)[e], e});
  for (int r = 0; r < redundant; ++r) {
    const auto [load, e] = heaviest.top();
    heaviest.pop();
    ++(*copies)[e];
    heaviest.push({pick[e] / (*copies)[e], e});
  }
}

/// Routing with group-limited top-k (DeepSeek-V3: the best topk_group of n_group groups are
/// eligible) narrows a token's reach only where groups sit whole on domains.
bool GroupLimited(const ModelSpec& m) {
  return m.moe.num_groups > 1 && m.moe.topk_groups < m.moe.num_groups &&
         m.moe.num_experts % m.moe.num_groups == 0;
}

}  // namespace

ExpertPlacement::ExpertPlacement(const ModelSpec& m, int ep, int redundant, int domain)
    : ep_(std::max(1, ep)) {
  const std::vector<double> share = ExpectedExpertShares(m);
  const int64_t experts = static_cast<int64_t>(share.size());
  const double k = static_cast<double>(m.moe.experts_per_token);
  // Per token, expert e is picked with probability min(1, k p_e).
  std::vector<double> pick(share.size());
  for (size_t e = 0; e < share.size(); ++e) pick[e] = std::min(1.0, k * share[e]);
  for (double q : pick) picks_per_token_ += q;
  if (experts == 0 || picks_per_token_ <= 0) return;

  const int per_domain = std::clamp(domain, 1, ep_);
  const int domains = (ep_ + per_domain - 1) / per_domain;
  // Hierarchical placement (EPLB's policy where the domains divide the groups): each domain
  // holds whole groups and its share of the redundant slots, so group-limited routing bounds
  // the domains a token reaches. Else one global placement.
  const int64_t groups = m.moe.num_groups;
  hierarchical_ = GroupLimited(m) && domains > 1 && ep_ % per_domain == 0 &&
                  groups % domains == 0 && redundant % domains == 0;
  const int parts = hierarchical_ ? domains : 1;
  const int ranks_per_part = ep_ / parts;
  const int64_t experts_per_part = experts / parts;
  const size_t slots = static_cast<size_t>((experts + redundant + ep_ - 1) / ep_);
  std::vector<int> copies(share.size(), 1);
  std::vector<double> load(ep_, 0);
  slot_share_.assign(ep_, {});
  replica_ranks_.assign(share.size(), {});
  for (int part = 0; part < parts; ++part) {
    std::vector<int64_t> mine;
    for (int64_t e = part * experts_per_part; e < (part + 1) * experts_per_part; ++e) {
      mine.push_back(e);
    }
    AddReplicas(pick, mine, redundant / parts, &copies);
    // Pack replicas heaviest first onto the part's least loaded rank with a free slot.
    using Entry = std::pair<double, int64_t>;
    std::vector<Entry> replicas;
    for (int64_t e : mine) {
      for (int c = 0; c < copies[e]; ++c) replicas.push_back({pick[e] / copies[e], e});
    }
    std::sort(replicas.begin(), replicas.end(), std::greater<>());
    using Rank = std::pair<double, int>;  // ties: lowest rank
    std::priority_queue<Rank, std::vector<Rank>, std::greater<>> open;
    for (int r = part * ranks_per_part; r < (part + 1) * ranks_per_part; ++r) open.push({0.0, r});
    for (const auto& [l, e] : replicas) {
      const int best = open.top().second;
      open.pop();
      load[best] += l;
      slot_share_[best].push_back(l / picks_per_token_);
      replica_ranks_[e].push_back(best);
      if (slot_share_[best].size() < slots) open.push({load[best], best});
    }
  }
  rank_share_.resize(ep_);
  for (int r = 0; r < ep_; ++r) rank_share_[r] = load[r] / picks_per_token_;

  double ranks_hit = 0, domains_hit = 0;
  if (hierarchical_) {
    ReachByRouting(m, share, per_domain, &ranks_hit, &domains_hit);
  } else {
    // Reach of one token: ranks (and domains) holding at least one of its picks.
    std::vector<double> domain_share(domains, 0);
    for (int r = 0; r < ep_; ++r) {
      ranks_hit += 1 - std::pow(1 - rank_share_[r], picks_per_token_);
      domain_share[r / per_domain] += rank_share_[r];
    }
    for (double s : domain_share) {
      domains_hit += 1 - std::pow(1 - std::min(1.0, s), picks_per_token_);
    }
  }
  remote_ranks_ = ranks_hit * (ep_ - 1) / ep_;
  remote_domains_ = domains > 1 ? domains_hit * (domains - 1) / domains : 0;
  // An average rank's picks: 1/ep stay home, (per_domain - 1)/ep stay in its domain.
  in_domain_share_ = static_cast<double>(per_domain - 1) / ep_;
  out_of_domain_share_ = static_cast<double>(ep_ - per_domain) / ep_;
}

void ExpertPlacement::ReachByRouting(const ModelSpec& m, const std::vector<double>& share,
                                     int per_domain, double* ranks_hit, double* domains_hit) const {
  // The model's own router (SelectExperts: groups by the sum of their top two scores, then
  // top-k among the eligible) on scores log(share) + Gumbel noise, which picks experts in
  // proportion to their shares; each pick goes to one of its expert's replicas in turn.
  constexpr int kTokens = 4096;
  const int64_t e = static_cast<int64_t>(share.size()), k = m.moe.experts_per_token;
  std::vector<double> scores(e), weights(k), sel;
  std::vector<int64_t> ids(k);
  std::vector<char> eligible;
  std::vector<int> next(e, 0);
  uint64_t state = 0x853c49e6748fea9bULL;
  auto uniform = [&state] {  // SplitMix64 -> (0, 1)
    return (static_cast<double>(Mix64(state += 0x9e3779b97f4a7c15ULL) >> 11) + 0.5) * 0x1p-53;
  };
  std::vector<char> rank_seen(ep_), domain_seen(ep_ / per_domain + 1);
  int64_t ranks = 0, domains = 0;
  for (int t = 0; t < kTokens; ++t) {
    for (int64_t i = 0; i < e; ++i) scores[i] = std::log(share[i]) - std::log(-std::log(uniform()));
    SelectExperts<double>(m.moe, scores.data(), nullptr, ids.data(), weights.data(), sel, eligible);
    std::fill(rank_seen.begin(), rank_seen.end(), 0);
    std::fill(domain_seen.begin(), domain_seen.end(), 0);
    for (int64_t id : ids) {
      const std::vector<int>& at = replica_ranks_[id];
      const int r = at[next[id]++ % at.size()];
      ranks += !rank_seen[r];
      domains += !domain_seen[r / per_domain];
      rank_seen[r] = domain_seen[r / per_domain] = 1;
    }
  }
  *ranks_hit = static_cast<double>(ranks) / kTokens;
  *domains_hit = static_cast<double>(domains) / kTokens;
}

ExpertPlacement ExpertPlacement::Shared(const ModelSpec& m, int ep, int redundant, int domain) {
  // Everything the constructor reads of the model: the routing law and the router's shape.
  const MoeSpec& e = m.moe;
  const auto key = std::make_tuple(e.num_experts, e.experts_per_token, e.num_groups, e.topk_groups,
                                   m.routing_zipf_s, ep, redundant, domain);
  static std::mutex mu;
  static std::map<decltype(key), ExpertPlacement> made;
  // A search makes a few dozen distinct placements; a process that keeps making new ones
  // (a long-lived caller, fuzzing) starts over rather than growing without bound.
  constexpr size_t kMaxKept = 512;
  std::lock_guard<std::mutex> lock(mu);
  auto it = made.find(key);
  if (it == made.end()) {
    if (made.size() >= kMaxKept) made.clear();
    it = made.emplace(key, ExpertPlacement(m, ep, redundant, domain)).first;
  }
  return it->second;
}

ExpertPlacement::RankLoad ExpertPlacement::SlowestRank(double tokens) const {
  RankLoad out;
  if (rank_share_.empty()) return out;
  const double picks = tokens * ep_ * picks_per_token_;
  const double z = ExpectedMaxNormal(ep_);
  int slowest = 0;
  double worst = -1;
  for (int r = 0; r < ep_; ++r) {
    const double mean = picks * rank_share_[r];
    const double sigma = std::sqrt(std::max(0.0, mean * (1 - rank_share_[r])));
    const double l = mean + z * sigma;
    if (l > worst) {
      worst = l;
      slowest = r;
    }
  }
  out.assignments =
      std::min(worst, tokens * ep_ * static_cast<double>(slot_share_[slowest].size()));
  out.mean_assignments = picks / ep_;
  out.slots = static_cast<double>(slot_share_[slowest].size());
  for (double s : slot_share_[slowest]) out.distinct_slots += 1 - std::exp(-picks * s);
  return out;
}

}  // namespace cb::sim
