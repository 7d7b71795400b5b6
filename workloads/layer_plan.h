#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "harness/core/status.h"
#include "workloads/model_spec.h"

namespace cb {

/// Decoder layers of one kind: the same attention (GQA or MLA) and the same FFN (dense or MoE),
/// so the same shapes and the same work. A run of some of them stands for all of them.
struct LayerKind {
  std::string name;          ///< "gqa/dense", "gqa/moe", "mla/dense", "mla/moe"
  int64_t model_layers = 0;  ///< layers of this kind in the model
  std::vector<int> run;      ///< model indices of this kind's layers that run, ascending
};

/// Which decoder layers a stream runs and how each stands for the model (`--layers N`).
/// Every kind the model has runs at least once; the other layers go to the kinds in
/// proportion to their counts (largest remainder), each kind running its first layers.
/// DeepSeek-V3 (3 dense, 58 MoE layers) with N = 2 runs layers 0 and 3.
struct LayerPlan {
  std::vector<int> layers;       ///< model index of each stream layer, ascending
  std::vector<int> kind_of;      ///< index into `kinds` of each stream layer
  std::vector<LayerKind> kinds;  ///< in the order they first appear in the model

  int size() const { return static_cast<int>(layers.size()); }
  /// True when fewer layers run than the model has.
  bool Partial() const;
  /// Model layers stream layer `i` stands for: its kind's count / the kind's layers run.
  /// Step times and work are extrapolated as the sum over stream layers of value x Scale(i).
  double Scale(int i) const;
  /// "0 (mla/dense), 3 (mla/moe)": the layers run and their kinds.
  std::string Describe() const;
};

/// The kind of model layer `layer`.
std::string LayerKindName(const ModelSpec& m, int64_t layer);

/// Plans `requested` layers of `m` (0 or the model's count: all of them). kInvalidInput when
/// `requested` is outside [1, num_layers] or smaller than the number of kinds the model has.
Status PlanLayers(const ModelSpec& m, int requested, LayerPlan* out);

}  // namespace cb
