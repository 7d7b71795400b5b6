#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/core/status.h"
#include "workloads/model_spec.h"

namespace cb {

/// The router's selection for one token given its scores: the function every backend
/// implements (the reference in double, the cpu backend in float). `scores` are the
/// softmax or sigmoid scores of the experts, `bias` the score-correction bias added for
/// selection only (nullptr: none). Group-limited routing (n_group > 0): a group's score is
/// the sum of its two best selection scores (DeepSeek-V3), the topk_group best groups are
/// eligible. Experts are picked by selection score, ties to the lower index; the result is
/// sorted by expert id. Weights are the chosen experts' scores, renormalised to sum 1 when
/// norm_topk, then multiplied by routed_scaling.
template <typename T>
void SelectExperts(const MoeSpec& moe, const T* scores, const float* bias, int64_t* ids, T* weights,
                   std::vector<T>& scratch, std::vector<char>& eligible);

/// Verification's rule for a routing decision where a backend chose other experts than the
/// reference (docs/moe-and-mla.md): acceptable only if it is a near-tie that the deviation
/// `tol` of each expert's selection score could flip. `sel` are the reference's selection
/// scores of one token (score + bias); `own` and `chosen` the reference's and the backend's k
/// expert ids. True when every expert the reference picked and the backend did not could score
/// below every expert the backend picked (sel - tol against sel + tol) or, under group-limited
/// routing, sits in a group the backend may have dropped (a group within tolerance of the
/// cut), and every group the backend reached that the reference did not ties the reference's
/// weakest kept group within tolerance (group scores and tolerances summed over the group's
/// two best experts).
bool FlipWithinMargin(const MoeSpec& moe, const double* sel, const double* tol, const int64_t* own,
                      const int64_t* chosen);

/// How far each expert's selection score moves when its gate logit moves by up to `logit_dev`
/// (per expert), to first order with a 25% allowance for the second: softmax
/// s_e (d_e + max_j d_j), sigmoid s_e (1 - s_e) d_e. The score-correction bias does not move.
void RoutingTolerance(const MoeSpec& moe, const double* scores, const double* logit_dev,
                      double* tol);
/// Without the backend's logits: the deviation rounding alone can cause, kRoutingRoundings x u
/// x sum_c |h_c g_ec| (u the dtype's unit roundoff), for logit_dev above.
inline constexpr double kRoutingRoundings = 4;

/// Records of a step's routing into `load` ([layers][experts]) for `layer`.
void CountExpertLoad(const float* route, int64_t tokens, int64_t top_k, int64_t experts, int layer,
                     int layers, std::vector<int32_t>* load);

/// "uniform" -> 0, "zipf:S" (S > 0) -> S: the expert-load skew of --routing / the suite's
/// `routing`. kInvalidInput naming the allowed values; zipf on a dense model is an error.
Status ParseRouting(const std::string& text, const ModelSpec& model, double* zipf_s);
/// The inverse of ParseRouting: "" for a dense model or uniform routing, else "zipf:S".
std::string RoutingName(const ModelSpec& model);

/// Load imbalance of one step's routing, from StepIO::expert_load ([layers][experts]): for each
/// MoE layer (rows with any load) max / mean of the tokens per group of `group` consecutive
/// experts (1: per expert; local_experts: per rank holding them), averaged over the layers.
/// 1 is perfectly even; 0 when there is no routing data.
double ExpertLoadImbalance(const std::vector<int32_t>& load, int64_t experts, int64_t group = 1);

}  // namespace cb
