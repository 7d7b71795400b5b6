#include "workloads/layer_plan.h"

#include <algorithm>

namespace cb {

bool LayerPlan::Partial() const {
  int64_t model = 0;
  for (const LayerKind& k : kinds) model += k.model_layers;
  return static_cast<int64_t>(layers.size()) < model;
}

double LayerPlan::Scale(int i) const {
  const LayerKind& k = kinds[kind_of[i]];
  return static_cast<double>(k.model_layers) / static_cast<double>(k.run.size());
}

std::string LayerPlan::Describe() const {
  std::string s;
  for (size_t i = 0; i < layers.size(); ++i) {
    s += (i ? ", " : "") + std::to_string(layers[i]) + " (" + kinds[kind_of[i]].name + ")";
  }
  return s;
}

std::string LayerKindName(const ModelSpec& m, int64_t layer) {
  return std::string(m.mla.enabled() ? "mla" : "gqa") + (m.IsMoeLayer(layer) ? "/moe" : "/dense");
}

Status PlanLayers(const ModelSpec& m, int requested, LayerPlan* out) {
  const int total = static_cast<int>(m.num_layers);
  if (requested < 0 || requested > total) {
    return Status::InvalidInput("--layers must be between 1 and " + std::to_string(total) +
                                " for " + m.name + ", got " + std::to_string(requested));
  }
  const int n = requested == 0 ? total : requested;
  LayerPlan plan;
  std::vector<std::vector<int>> members;  // model layers of each kind
  for (int l = 0; l < total; ++l) {
    const std::string name = LayerKindName(m, l);
    auto it = std::find_if(plan.kinds.begin(), plan.kinds.end(),
                           [&](const LayerKind& k) { return k.name == name; });
    if (it == plan.kinds.end()) {
      plan.kinds.push_back({name, 0, {}});
      members.emplace_back();
      it = plan.kinds.end() - 1;
    }
    ++it->model_layers;
    members[it - plan.kinds.begin()].push_back(l);
  }
  const int kinds = static_cast<int>(plan.kinds.size());
  if (n < kinds) {
    std::string list;
    for (const LayerKind& k : plan.kinds) {
      list += (list.empty() ? "" : ", ") + std::to_string(k.model_layers) + " " + k.name;
    }
    return Status::InvalidInput("--layers " + std::to_string(n) + " cannot represent " + m.name +
                                ": it has " + std::to_string(kinds) + " kinds of layers (" + list +
                                "); give --layers " + std::to_string(kinds) + " or more");
  }
  // One layer of each kind, then one at a time to the kind furthest below its share of n.
  std::vector<int> count(kinds, 1);
  for (int placed = kinds; placed < n; ++placed) {
    int best = -1;
    double best_gap = 0;
    for (int k = 0; k < kinds; ++k) {
      if (count[k] >= plan.kinds[k].model_layers) continue;
      const double gap = static_cast<double>(n) * plan.kinds[k].model_layers / total - count[k];
      if (best < 0 || gap > best_gap) best = k, best_gap = gap;
    }
    ++count[best];
  }
  for (int k = 0; k < kinds; ++k) {
    plan.kinds[k].run.assign(members[k].begin(), members[k].begin() + count[k]);
    plan.layers.insert(plan.layers.end(), plan.kinds[k].run.begin(), plan.kinds[k].run.end());
  }
  std::sort(plan.layers.begin(), plan.layers.end());
  for (int l : plan.layers) {
    const std::string name = LayerKindName(m, l);
    for (int k = 0; k < kinds; ++k) {
      if (plan.kinds[k].name == name) plan.kind_of.push_back(k);
    }
  }
  *out = std::move(plan);
  return Status::Ok();
}

}  // namespace cb
