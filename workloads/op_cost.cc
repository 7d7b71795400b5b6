#include "workloads/op_cost.h"

#include <algorithm>
#include <cmath>

#include "workloads/quant.h"

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

StepSummary SummarizeStep(const StepIO& io) {
  StepSummary s;
  for (const SeqStep& q : io.seqs) {
    AddSequence(static_cast<double>(q.new_tokens), static_cast<double>(q.past_len), &s);
  }
  return s;
}

void AddSequence(double new_tokens, double past, StepSummary* s) {
  const double n = new_tokens;
  s->tokens += n;
  s->seqs += 1;
  // Token j of the step attends to past + j + 1 positions.
  s->attended += n * past + n * (n + 1) / 2.0;
  s->cached += past + n;
}

OpCost CostOfOp(const OpStream& stream, const Op& op, const StepIO& io, DType dtype) {
  return CostOfOp(stream, op, SummarizeStep(io), dtype, DefaultKvDType(dtype));
}

OpCost CostOfOp(const OpStream& stream, const Op& op, const StepSummary& step, DType dtype,
                DType kv_dtype) {
  const double tokens = step.tokens;
  const double seqs = step.seqs;
  const double rows = BufferRows(op.out) == Rows::kSequenceRows ? seqs : tokens;
  const double dt = static_cast<double>(DTypeBytes(dtype));
  const double kvb = static_cast<double>(DTypeBytes(kv_dtype));
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
      // Per attended position QK^T and PV, 2 flops per multiply-add each.
      // K and V of every cached position, an 8-bit cache's scales included (KvHeadBytes).
      const double kv_row = static_cast<double>(d.kv_heads * KvHeadBytes(kv_dtype, d.head_dim));
      c.flops = 4.0 * d.heads * d.head_dim * step.attended;
      c.kv_bytes = 2.0 * kv_row * step.cached;
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
      // Counted in the cheaper of MLA's two forms, as kernels choose: absorbed (decode: per
      // new token the query goes into the latent space and the output back out, then per
      // attended position latent and RoPE dot products and a latent weighted sum) or expanded
      // (long prefills: the cached latents are up-projected to keys and values once, then
      // ordinary attention with qk_nope + qk_rope and v_head dims per head).
      const double cache_w = static_cast<double>(d.kv_lora + d.qk_rope);
      const double up = 2.0 * d.heads * d.kv_lora * (d.qk_nope + d.head_dim);
      const double absorbed = up * tokens + 2.0 * d.heads * step.attended * (cache_w + d.kv_lora);
      const double expanded =
          up * step.cached + 2.0 * d.heads * step.attended * (d.QkHeadDim() + d.head_dim);
      c.flops = std::min(absorbed, expanded);
      c.kv_bytes = cache_w * kvb * step.cached;  // the compressed cache
      c.weight_bytes = static_cast<double>(op.k) * d.heads * (d.qk_nope + d.head_dim) * dt;
      c.bytes = c.kv_bytes + c.weight_bytes +
                tokens * (d.heads * (d.QkHeadDim() + d.head_dim) + cache_w) * 4.0;
      break;
    }
  }
  return c;
}

OpCost CostOfOps(const OpStream& stream, size_t begin, size_t end, const StepIO& io, DType dtype) {
  return CostOfOps(stream, begin, end, io, dtype, DefaultKvDType(dtype));
}

OpCost CostOfOps(const OpStream& stream, size_t begin, size_t end, const StepIO& io, DType dtype,
                 DType kv_dtype) {
  const StepSummary step = SummarizeStep(io);
  OpCost total;
  for (size_t i = begin; i < end && i < stream.ops.size(); ++i) {
    total += CostOfOp(stream, stream.ops[i], step, dtype, kv_dtype);
  }
  return total;
}

}  // namespace cb
