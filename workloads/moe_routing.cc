#include "workloads/moe_routing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace cb {
namespace {

/// A group's score: the sum of its two best selection scores (one expert: its score).
template <typename T>
T GroupScore(const T* sel, int64_t size) {
  T best = sel[0], second = T(0);
  bool have_second = false;
  for (int64_t i = 1; i < size; ++i) {
    const T v = sel[i];
    if (v > best) {
      second = best;
      best = v;
      have_second = true;
    } else if (!have_second || v > second) {
      second = v;
      have_second = true;
    }
  }
  return best + (have_second ? second : T(0));
}

/// The tolerance of a group's score: the two largest tolerances of its experts.
double GroupTolerance(const double* tol, int64_t size) {
  double a = 0, b = 0;
  for (int64_t i = 0; i < size; ++i) {
    if (tol[i] > a) {
      b = a;
      a = tol[i];
    } else if (tol[i] > b) {
      b = tol[i];
    }
  }
  return a + b;
}

bool Contains(const int64_t* ids, int64_t k, int64_t id) {
  return std::find(ids, ids + k, id) != ids + k;
}

}  // namespace

bool FlipWithinMargin(const MoeSpec& moe, const double* sel, const double* tol, const int64_t* own,
                      const int64_t* chosen) {
  const int64_t k = moe.experts_per_token;
  const bool grouped = moe.num_groups > 1;
  const int64_t groups = grouped ? moe.num_groups : 1, size = moe.num_experts / groups;
  std::vector<double> score(groups), gtol(groups);
  std::vector<int64_t> order(groups);
  for (int64_t g = 0; g < groups; ++g) {
    score[g] = GroupScore(sel + g * size, size);
    gtol[g] = GroupTolerance(tol + g * size, size);
    order[g] = g;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return score[a] > score[b]; });
  const int64_t keep = grouped ? std::clamp<int64_t>(moe.topk_groups, 1, groups) : groups;
  const int64_t weakest = order[keep - 1];  // the reference's weakest eligible group
  auto chosen_group = [&](int64_t g) {
    for (int64_t j = 0; j < k; ++j) {
      if (chosen[j] / size == g) return true;
    }
    return false;
  };
  // Group g could rank below `keep` other groups within tolerance.
  auto excludable = [&](int64_t g) {
    int64_t above = 0;
    for (int64_t o = 0; o < groups; ++o) {
      above += o != g && score[o] + gtol[o] >= score[g] - gtol[g];
    }
    return above >= keep;
  };
  double lowest_chosen = INFINITY;
  for (int64_t j = 0; j < k; ++j) {
    const int64_t b = chosen[j], g = b / size;
    lowest_chosen = std::min(lowest_chosen, sel[b] + tol[b]);
    // An expert of a group the reference left out: the group must tie the weakest kept one.
    if (grouped && score[g] < score[weakest] &&
        score[g] + gtol[g] < score[weakest] - gtol[weakest]) {
      return false;
    }
  }
  for (int64_t j = 0; j < k; ++j) {
    const int64_t r = own[j];
    if (Contains(chosen, k, r) || sel[r] - tol[r] <= lowest_chosen) continue;
    // Left out although it outscores a chosen expert: only if its group may have been dropped.
    if (!grouped || chosen_group(r / size) || !excludable(r / size)) return false;
  }
  return true;
}

void RoutingTolerance(const MoeSpec& moe, const double* scores, const double* logit_dev,
                      double* tol) {
  constexpr double kSecondOrder = 1.25;
  const int64_t e = moe.num_experts;
  const double max_d = *std::max_element(logit_dev, logit_dev + e);
  for (int64_t i = 0; i < e; ++i) {
    const double d = logit_dev[i];
    tol[i] = kSecondOrder *
             (moe.scoring == "softmax" ? scores[i] * (d + max_d) : scores[i] * (1 - scores[i]) * d);
  }
}

template <typename T>
void SelectExperts(const MoeSpec& moe, const T* scores, const float* bias, int64_t* ids, T* weights,
                   std::vector<T>& sel, std::vector<char>& eligible) {
  const int64_t e = moe.num_experts, k = moe.experts_per_token;
  sel.resize(e);
  eligible.assign(e, 1);
  for (int64_t i = 0; i < e; ++i) sel[i] = scores[i] + (bias ? static_cast<T>(bias[i]) : T(0));
  if (moe.num_groups > 1) {
    const int64_t groups = moe.num_groups, size = e / groups;
    std::vector<T> group_score(groups);
    for (int64_t g = 0; g < groups; ++g) group_score[g] = GroupScore(sel.data() + g * size, size);
    std::vector<char> group_ok(groups, 0);
    for (int64_t pick = 0; pick < moe.topk_groups; ++pick) {
      int64_t best = -1;
      for (int64_t g = 0; g < groups; ++g) {
        if (!group_ok[g] && (best < 0 || group_score[g] > group_score[best])) best = g;
      }
      group_ok[best] = 1;
    }
    for (int64_t i = 0; i < e; ++i) eligible[i] = group_ok[i / size];
  }
  for (int64_t pick = 0; pick < k; ++pick) {
    int64_t best = -1;
    for (int64_t i = 0; i < e; ++i) {
      if (eligible[i] == 1 && (best < 0 || sel[i] > sel[best])) best = i;
    }
    eligible[best] = 2;  // chosen
    ids[pick] = best;
  }
  std::sort(ids, ids + k);
  T sum = 0;
  for (int64_t j = 0; j < k; ++j) sum += weights[j] = scores[ids[j]];
  for (int64_t j = 0; j < k; ++j) {
    if (moe.norm_topk) weights[j] /= sum + static_cast<T>(1e-20);
    weights[j] *= static_cast<T>(moe.routed_scaling);
  }
}

template void SelectExperts<float>(const MoeSpec&, const float*, const float*, int64_t*, float*,
                                   std::vector<float>&, std::vector<char>&);
template void SelectExperts<double>(const MoeSpec&, const double*, const float*, int64_t*, double*,
                                    std::vector<double>&, std::vector<char>&);

void CountExpertLoad(const float* route, int64_t tokens, int64_t top_k, int64_t experts, int layer,
                     int layers, std::vector<int32_t>* load) {
  const size_t need = static_cast<size_t>(layers) * experts;
  if (load->size() != need) load->assign(need, 0);
  int32_t* row = load->data() + static_cast<size_t>(layer) * experts;
  std::fill(row, row + experts, 0);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t j = 0; j < top_k; ++j) ++row[static_cast<int64_t>(route[t * 2 * top_k + j])];
  }
}

Status ParseRouting(const std::string& text, const ModelSpec& model, double* zipf_s) {
  const std::string allowed = "; allowed values: uniform, zipf:S with S > 0 (e.g. zipf:1.0)";
  if (text == "uniform") {
    *zipf_s = 0;
    return Status::Ok();
  }
  if (text.rfind("zipf:", 0) != 0)
    return Status::InvalidInput("unknown routing '" + text + "'" + allowed);
  double s = 0;
  size_t used = 0;
  try {
    s = std::stod(text.substr(5), &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() - 5 || !(s > 0) || !std::isfinite(s)) {
    return Status::InvalidInput("bad zipf exponent in '" + text + "'" + allowed);
  }
  if (!model.moe.enabled()) {
    return Status::InvalidInput("'" + text + "' skews expert load, but " + model.name +
                                " has no experts (use uniform)");
  }
  *zipf_s = s;
  return Status::Ok();
}

double ExpertLoadImbalance(const std::vector<int32_t>& load, int64_t experts, int64_t group) {
  if (experts <= 0 || group <= 0 || experts % group != 0) return 0;
  const int64_t layers = static_cast<int64_t>(load.size()) / experts, groups = experts / group;
  double sum = 0;
  int counted = 0;
  for (int64_t l = 0; l < layers; ++l) {
    double total = 0, max = 0;
    for (int64_t g = 0; g < groups; ++g) {
      double n = 0;
      for (int64_t e = g * group; e < (g + 1) * group; ++e) n += load[l * experts + e];
      total += n;
      max = std::max(max, n);
    }
    if (total <= 0) continue;  // a dense layer
    sum += max / (total / groups);
    ++counted;
  }
  return counted > 0 ? sum / counted : 0;
}

std::string RoutingName(const ModelSpec& model) {
  if (!model.moe.enabled() || !(model.routing_zipf_s > 0)) return "";
  char text[32];
  std::snprintf(text, sizeof(text), "zipf:%g", model.routing_zipf_s);
  return text;
}

}  // namespace cb
