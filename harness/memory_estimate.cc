// The memory a workload needs on a device (harness/runner.h), checked before anything loads.
#include <algorithm>

#include "backends/reference/reference_backend.h"
#include "harness/runner.h"
#include "workloads/layer_plan.h"

namespace cb {

MemoryEstimate EstimateMemory(const WorkloadSpec& w) {
  const ModelSpec& m = w.model;
  LayerPlan plan;
  if (!PlanLayers(m, w.LayersRun(), &plan).ok()) {  // bad input, refused by the plan's checks
    plan.layers.resize(w.LayersRun());
    for (int l = 0; l < w.LayersRun(); ++l) plan.layers[l] = l;
  }
  const int layers = plan.size();
  const double dt = static_cast<double>(DTypeBytes(w.dtype));
  const double hd = m.head_dim > 0 ? m.head_dim : m.hidden_size / m.num_heads;
  const double outer =
      static_cast<double>(m.vocab_size) * m.hidden_size * (m.tie_embeddings ? 1 : 2);
  MemoryEstimate e;
  double params = outer + m.hidden_size;
  for (int l : plan.layers) params += static_cast<double>(m.LayerParams(l));
  e.weights = static_cast<uint64_t>(params * dt);
  e.kv_cache = static_cast<uint64_t>(static_cast<double>(m.KvBytesPerToken(1)) * dt * layers /
                                     m.num_layers * w.batch * (w.prompt_len + w.gen_len));
  const double tokens = static_cast<double>(w.batch) * w.prompt_len;
  const double per_token =
      4.0 *
      (4.0 * m.hidden_size + (2.0 * m.num_heads + 2.0 * m.num_kv_heads) * hd + 3.0 * m.ffn_size);
  e.activations = static_cast<uint64_t>(tokens * per_token + 2.0 * w.batch * m.vocab_size * 4.0);
  if (w.verify) {
    // The reference holds only small weights (ReferenceOptions::hold_limit) and regenerates
    // the rest row by row; its activations and cache for the few verified tokens are small.
    OpStream stream;
    if (BuildDenseDecoderStream(m, ShardSpec{}, w.LayersRun(), &stream).ok()) {
      const int64_t limit = ReferenceOptions{}.hold_limit;
      for (const WeightDesc& d : stream.weights) {
        if (d.Elements() <= limit) e.verification += static_cast<uint64_t>(d.Elements()) * 4;
      }
    }
    e.verification += uint64_t{64} << 20;
  }
  return e;
}

uint64_t PerDevicePeak(const MemoryEstimate& m, int tp) {
  const uint64_t n = static_cast<uint64_t>(std::max(1, tp));
  return (m.weights + m.kv_cache) / n + m.activations + m.verification;
}

}  // namespace cb
