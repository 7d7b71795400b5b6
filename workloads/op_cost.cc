#include "workloads/op_cost.h"

#include <algorithm>
#include <cmath>

namespace cb {

std::vector<double> ExpectedExpertShares(const ModelSpec& m) {
  const int64_t e = m.moe.num_experts;
  std::vector<double> p(static_cast<size_t>(std::max<int64_t>(e, 0)), 0.0);
  if (e == 0) return p;
  double sum = 0;
  for (int64_t i = 0; i < e; ++i) sum += p[i] = std::exp(RoutingSkewBias(m.routing_zipf_s, i));
  for (double& v : p) v /= sum;
  return p;
}

MoeStepLoad ExpectedMoeLoad(const OpStream& s, double tokens) {
  MoeStepLoad load;
  const LocalDims& d = s.dims;
  if (d.experts == 0) return load;
  const std::vector<double> p = ExpectedExpertShares(s.model);
  for (int64_t i = d.expert_begin; i < d.expert_begin + d.local_experts; ++i) {
    // A token picks k distinct experts: expert i with probability min(1, k p_i).
    const double pick = std::min(1.0, static_cast<double>(d.top_k) * p[i]);
    load.assignments += tokens * pick;
    load.distinct_experts += 1.0 - std::pow(1.0 - pick, tokens);
  }
  return load;
}

OpCost CostOfOp(const OpStream& stream, const Op& op, const StepIO& io, DType dtype) {
  const double tokens = static_cast<double>(io.TotalTokens());
  const double seqs = static_cast<double>(io.seqs.size());
  const double rows = BufferRows(op.out) == Rows::kSequenceRows ? seqs : tokens;
  const double dt = static_cast<double>(DTypeBytes(dtype));
  const LocalDims& d = stream.dims;
  OpCost c;
  switch (op.kind) {
    case OpKind::kMatMul:
      c.flops = 2.0 * rows * op.n * op.k;
      c.weight_bytes = static_cast<double>(op.n) * op.k * dt;
      c.bytes = c.weight_bytes + rows * op.k * dt + rows * op.n * 4.0;
      break;
    case OpKind::kEmbedding:
      c.bytes = 2.0 * tokens * d.hidden * 4.0;
      break;
    case OpKind::kRmsNorm:
    case OpKind::kQkNorm:
      c.flops = 4.0 * rows * (op.kind == OpKind::kRmsNorm ? op.n : (d.heads + d.kv_heads) * op.n);
      c.bytes = 2.0 * rows * (op.kind == OpKind::kRmsNorm ? op.n : d.QkvWidth()) * 4.0;
      break;
    case OpKind::kRope:
      c.flops = 6.0 * tokens * (d.heads + d.kv_heads) * d.head_dim / 2.0;
      c.bytes = 2.0 * tokens * (d.heads + d.kv_heads) * d.head_dim * dt;
      break;
    case OpKind::kAttention: {
      const double kv_width = static_cast<double>(d.kv_heads * d.head_dim);
      for (const SeqStep& s : io.seqs) {
        // Token j of the step attends to past_len + j + 1 positions: QK^T and PV, 2 flops each.
        const double n = static_cast<double>(s.new_tokens);
        const double attended = n * s.past_len + n * (n + 1) / 2.0;
        c.flops += 4.0 * d.heads * d.head_dim * attended;
        c.kv_bytes += 2.0 * kv_width * dt * (s.past_len + s.new_tokens);
      }
      c.bytes = c.kv_bytes + tokens * (d.heads * d.head_dim) * dt * 2.0;
      break;
    }
    case OpKind::kSwiGlu:
      c.flops = 5.0 * tokens * d.ffn;
      c.bytes = 3.0 * tokens * d.ffn * dt;
      break;
    case OpKind::kResidualAdd:
      c.flops = tokens * d.hidden;
      c.bytes = 3.0 * tokens * d.hidden * 4.0;
      break;
    case OpKind::kAllReduce:
      c.bytes = 2.0 * tokens * d.hidden * 4.0;
      break;
    case OpKind::kSelectLast:
      c.bytes = 2.0 * seqs * d.hidden * 4.0;
      break;
    case OpKind::kAllGather:
    case OpKind::kSampleGreedy:
      c.bytes = seqs * d.vocab_full * 4.0;
      break;
    case OpKind::kRouter:
      // Gate matmul, then scoring, selection and normalisation: ~10 flops per score.
      c.flops = 2.0 * tokens * op.n * op.k + 10.0 * tokens * op.n;
      c.weight_bytes = static_cast<double>(op.n) * op.k * dt;
      c.bytes = c.weight_bytes + tokens * op.k * dt + tokens * 2.0 * d.top_k * 4.0;
      break;
    case OpKind::kMoeExperts: {
      // Active work only: the (token, expert) pairs routed to this rank's experts, and the
      // weights of the distinct experts they touch (expected values under the routing law).
      const MoeStepLoad load = ExpectedMoeLoad(stream, tokens);
      const double per_expert = 3.0 * d.hidden * d.expert_ffn;
      c.flops = load.assignments * (2.0 * per_expert + 5.0 * d.expert_ffn + 2.0 * d.hidden);
      c.weight_bytes = load.distinct_experts * per_expert * dt;
      // Rows gathered per expert and scattered back, plus the fp32 output.
      c.bytes = c.weight_bytes + 2.0 * load.assignments * d.hidden * dt + tokens * d.hidden * 4.0;
      break;
    }
    case OpKind::kMlaKvNorm:
      c.flops = 4.0 * tokens * op.n;
      c.bytes = 2.0 * tokens * op.n * 4.0;
      break;
    case OpKind::kMlaRope:
      c.flops = 6.0 * tokens * (d.heads + 1) * d.qk_rope / 2.0;
      c.bytes = 2.0 * tokens * (d.heads + 1) * d.qk_rope * 4.0;
      break;
    case OpKind::kMlaAttention: {
      // Counted in the absorbed form (what decode kernels run): per new token the query is
      // taken into the latent space and the output back out (2 x heads x kv_lora x (nope + v)),
      // and per attended position the latent and RoPE dot products and the latent weighted sum.
      const double cache_w = static_cast<double>(d.kv_lora + d.qk_rope);
      for (const SeqStep& sq : io.seqs) {
        const double n = static_cast<double>(sq.new_tokens);
        const double attended = n * sq.past_len + n * (n + 1) / 2.0;
        c.flops += 2.0 * n * d.heads * d.kv_lora * (d.qk_nope + d.head_dim);
        c.flops += 2.0 * d.heads * attended * (cache_w + d.kv_lora);
        c.kv_bytes += cache_w * dt * (sq.past_len + sq.new_tokens);  // compressed cache
      }
      c.weight_bytes = static_cast<double>(op.k) * d.heads * (d.qk_nope + d.head_dim) * dt;
      c.bytes = c.kv_bytes + c.weight_bytes +
                tokens * (d.heads * (d.QkHeadDim() + d.head_dim) + cache_w) * 4.0;
      break;
    }
  }
  return c;
}

OpCost CostOfOps(const OpStream& stream, size_t begin, size_t end, const StepIO& io, DType dtype) {
  OpCost total;
  for (size_t i = begin; i < end && i < stream.ops.size(); ++i) {
    total += CostOfOp(stream, stream.ops[i], io, dtype);
  }
  return total;
}

}  // namespace cb
