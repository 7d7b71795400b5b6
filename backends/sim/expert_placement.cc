#include "backends/sim/expert_placement.h"

#include <algorithm>
#include <cmath>
#include <queue>

#include "workloads/op_cost.h"

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

  // Replicas: each redundant slot to the expert with the most load per replica.
  std::vector<int> copies(share.size(), 1);
  using Entry = std::pair<double, int64_t>;  // load per replica, expert
  std::priority_queue<Entry> heaviest;
  for (int64_t e = 0; e < experts; ++e) heaviest.push({pick[e], e});
  for (int r = 0; r < redundant; ++r) {
    const auto [load, e] = heaviest.top();
    heaviest.pop();
    ++copies[e];
    heaviest.push({pick[e] / copies[e], e});
  }
  // Pack replicas heaviest first onto the least loaded rank with a free slot.
  std::vector<Entry> replicas;
  for (int64_t e = 0; e < experts; ++e) {
    for (int c = 0; c < copies[e]; ++c) replicas.push_back({pick[e] / copies[e], e});
  }
  std::sort(replicas.begin(), replicas.end(), std::greater<>());
  const size_t slots = (replicas.size() + ep_ - 1) / ep_;
  std::vector<double> load(ep_, 0);
  slot_share_.assign(ep_, {});
  // Ranks with a free slot, least loaded first (ties: lowest rank).
  using Rank = std::pair<double, int>;
  std::priority_queue<Rank, std::vector<Rank>, std::greater<>> open;
  for (int r = 0; r < ep_; ++r) open.push({0.0, r});
  for (const auto& [l, e] : replicas) {
    const int best = open.top().second;
    open.pop();
    load[best] += l;
    slot_share_[best].push_back(l / picks_per_token_);
    if (slot_share_[best].size() < slots) open.push({load[best], best});
  }
  rank_share_.resize(ep_);
  for (int r = 0; r < ep_; ++r) rank_share_[r] = load[r] / picks_per_token_;

  // Reach of one token: ranks (and domains) holding at least one of its picks.
  const int per_domain = std::clamp(domain, 1, ep_);
  const int domains = (ep_ + per_domain - 1) / per_domain;
  std::vector<double> domain_share(domains, 0);
  double ranks_hit = 0;
  for (int r = 0; r < ep_; ++r) {
    ranks_hit += 1 - std::pow(1 - rank_share_[r], picks_per_token_);
    domain_share[r / per_domain] += rank_share_[r];
  }
  double domains_hit = 0;
  for (double s : domain_share) domains_hit += 1 - std::pow(1 - std::min(1.0, s), picks_per_token_);
  remote_ranks_ = ranks_hit * (ep_ - 1) / ep_;
  remote_domains_ = domains > 1 ? domains_hit * (domains - 1) / domains : 0;
  // An average rank's picks: 1/ep stay home, (per_domain - 1)/ep stay in its domain.
  in_domain_share_ = static_cast<double>(per_domain - 1) / ep_;
  out_of_domain_share_ = static_cast<double>(ep_ - per_domain) / ep_;
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
