#include "workloads/op_cost.h"

namespace cb {

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
