// The memory a workload needs on a device (harness/runner.h), checked before anything loads.
#include <algorithm>
#include <limits>

#include "backends/reference/reference_backend.h"
#include "harness/runner.h"
#include "workloads/layer_plan.h"
#include "workloads/quant.h"

namespace cb {
namespace {

/// Bytes as an unsigned count, saturating where the double exceeds what one fits (an
/// impossible workload then fails the memory check instead of wrapping to a small need).
uint64_t SaturatingBytes(double bytes) {
  constexpr double kMax = 1.8e19;
  if (!(bytes > 0)) return 0;
  return bytes >= kMax ? std::numeric_limits<uint64_t>::max() : static_cast<uint64_t>(bytes);
}

/// Bytes of one token's KV cache over every layer of the model, in the workload's KV dtype (an
/// 8-bit cache's scales included, KvHeadBytes); MLA models cache their latent.
double KvBytesPerToken(const WorkloadSpec& w) {
  const ModelSpec& m = w.model;
  const DType kv = w.KvDType();
  if (m.mla.enabled()) {
    return static_cast<double>(m.KvBytesPerToken(1)) * static_cast<double>(DTypeBytes(kv));
  }
  const int64_t hd = m.head_dim > 0 ? m.head_dim : m.hidden_size / m.num_heads;
  return 2.0 * static_cast<double>(m.num_layers) * static_cast<double>(m.num_kv_heads) *
         static_cast<double>(KvHeadBytes(kv, hd));
}

}  // namespace

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
  e.weights = SaturatingBytes(params * dt);
  e.kv_cache =
      SaturatingBytes(KvBytesPerToken(w) * layers / m.num_layers * static_cast<double>(w.batch) *
                      static_cast<double>(w.prompt_len + w.gen_len));
  const double tokens = static_cast<double>(w.batch) * w.prompt_len;
  const double per_token =
      4.0 *
      (4.0 * m.hidden_size + (2.0 * m.num_heads + 2.0 * m.num_kv_heads) * hd + 3.0 * m.ffn_size);
  e.activations = SaturatingBytes(tokens * per_token + 2.0 * w.batch * m.vocab_size * 4.0);
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
  const double n = static_cast<double>(std::max(1, tp));
  return SaturatingBytes((static_cast<double>(m.weights) + static_cast<double>(m.kv_cache)) / n +
                         static_cast<double>(m.activations) + static_cast<double>(m.verification));
}

}  // namespace cb
