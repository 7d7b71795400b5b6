// The contract of a stream the cpu session runs: its dimensions, buffers, widths and weights.
#include <string>

#include "backends/cpu/cpu_session.h"

namespace cb::cpu {
namespace {

/// Checks of one op against the stream, with the session's buffer dtypes.
class OpCheck {
 public:
  OpCheck(const OpStream& s, const Op& op, DType session)
      : s_(s), d_(s.dims), op_(op), dtype_(session) {}

  Status Dense() const;
  Status MoeMla() const;

 private:
  DType BufDType(Buf b) const { return SessionBufDType(b, dtype_); }
  Status Fail(const std::string& what) const { return Status::InvalidInput(OpName(op_) + what); }
  Status NeedF32(Buf b) const {
    if (BufDType(b) != DType::kF32 || b == Buf::kTokens || b == Buf::kNextTokens) {
      return Status::Unsupported("the cpu backend runs " + OpName(op_) + " on fp32 buffers, not '" +
                                 std::string(BufName(b)) + "'");
    }
    return Status::Ok();
  }
  Status NeedWidth(Buf b, int64_t w) const {
    if (BufferWidth(d_, b) == w) return Status::Ok();
    return Fail(": buffer '" + std::string(BufName(b)) + "' is " +
                std::to_string(BufferWidth(d_, b)) + " wide, the op needs " + std::to_string(w));
  }
  Status Norm() const;
  Status RowWise() const;

  const OpStream& s_;
  const LocalDims& d_;
  const Op& op_;
  DType dtype_;
};

Status OpCheck::Norm() const {
  if (op_.kind == OpKind::kRmsNorm) {
    if (op_.weights.size() != 1 || s_.FindWeight(op_.weights[0])->Elements() != op_.n) {
      return Fail(" needs one gain of width n");
    }
    CB_RETURN_IF_ERROR(NeedWidth(op_.in, op_.n));
    CB_RETURN_IF_ERROR(NeedWidth(op_.out, op_.n));
    if (BufferRows(op_.in) != BufferRows(op_.out)) {
      return Fail(" maps token rows onto sequence rows");
    }
    return Status::Ok();
  }
  if (op_.weights.size() != 2) return Fail(" needs two gains");
  for (const auto& w : op_.weights) {
    if (s_.FindWeight(w)->Elements() != d_.head_dim) {
      return Fail(": gain width differs from head_dim");
    }
  }
  CB_RETURN_IF_ERROR(NeedF32(op_.in));
  return NeedWidth(op_.in, d_.QkvWidth());
}

Status OpCheck::RowWise() const {
  CB_RETURN_IF_ERROR(NeedF32(op_.in));
  CB_RETURN_IF_ERROR(NeedF32(op_.out));
  CB_RETURN_IF_ERROR(NeedWidth(op_.in, op_.n));
  CB_RETURN_IF_ERROR(NeedWidth(op_.out, op_.n));
  if (op_.kind == OpKind::kSelectLast &&
      (BufferRows(op_.in) != Rows::kTokenRows || BufferRows(op_.out) != Rows::kSequenceRows)) {
    return Fail(" maps token rows onto sequence rows");
  }
  return Status::Ok();
}

Status OpCheck::Dense() const {
  switch (op_.kind) {
    case OpKind::kEmbedding:
      if (op_.in != Buf::kTokens || op_.weights.size() != 1) {
        return Fail(" must read token ids with one table");
      }
      if (s_.FindWeight(op_.weights[0])->cols != op_.n) return Fail(": table width differs from n");
      return NeedWidth(op_.out, op_.n);
    case OpKind::kRmsNorm:
    case OpKind::kQkNorm:
      return Norm();
    case OpKind::kMatMul:
      CB_RETURN_IF_ERROR(NeedF32(op_.out));
      CB_RETURN_IF_ERROR(NeedWidth(op_.in, op_.k));
      if (BufferWidth(d_, op_.out) < op_.n || BufferRows(op_.in) != BufferRows(op_.out)) {
        return Fail(": output buffer does not fit");
      }
      return Status::Ok();
    case OpKind::kRope:
    case OpKind::kAttention:
      CB_RETURN_IF_ERROR(NeedF32(op_.in));
      CB_RETURN_IF_ERROR(NeedWidth(op_.in, d_.QkvWidth()));
      if (op_.kind != OpKind::kAttention) return Status::Ok();
      if (op_.layer < 0) return Fail(" needs a layer");
      return NeedWidth(op_.out, d_.heads * d_.head_dim);
    case OpKind::kSwiGlu:
      CB_RETURN_IF_ERROR(NeedF32(op_.in));
      CB_RETURN_IF_ERROR(NeedWidth(op_.in, 2 * op_.n));
      return NeedWidth(op_.out, op_.n);
    case OpKind::kResidualAdd:
    case OpKind::kSelectLast:
      return RowWise();
    case OpKind::kSampleGreedy:
      CB_RETURN_IF_ERROR(NeedF32(op_.in));
      CB_RETURN_IF_ERROR(NeedWidth(op_.in, op_.n));
      if (op_.out != Buf::kNextTokens) return Fail(" must write next_tokens");
      return Status::Ok();
    case OpKind::kAllReduce:
    case OpKind::kAllGather:
      return Status::Ok();
    default:
      return MoeMla();
  }
}

Status OpCheck::MoeMla() const {
  switch (op_.kind) {
    case OpKind::kRouter:
      if (op_.in != Buf::kH || op_.out != Buf::kRoute || op_.n != d_.experts ||
          op_.k != d_.hidden || op_.weights.empty() || op_.weights.size() > 2) {
        return Fail(" must map h to route with a gate [experts, hidden] and an optional bias");
      }
      return Status::Ok();
    case OpKind::kMoeExperts:
      if (op_.in != Buf::kH || op_.weights.size() != 2 || d_.local_experts <= 0) {
        return Fail(" must read h with gate_up and down weights");
      }
      CB_RETURN_IF_ERROR(NeedF32(op_.out));
      return NeedWidth(op_.out, d_.hidden);
    case OpKind::kMlaKvNorm:
    case OpKind::kMlaRope:
    case OpKind::kMlaAttention:
      if (!d_.Mla()) return Fail(" in a stream without MLA");
      if (op_.kind == OpKind::kMlaAttention && (op_.layer < 0 || op_.weights.size() != 1)) {
        return Fail(" needs a layer and the kv_b weight");
      }
      if (op_.kind == OpKind::kMlaKvNorm && op_.n != d_.kv_lora) {
        return Fail(" normalises kv_lora columns");
      }
      return Status::Ok();
    default:
      return Status::Internal("unknown op kind");
  }
}

}  // namespace

Status CpuSession::CheckStream(const OpStream& s) const {
  const LocalDims& d = s.dims;
  if (d.hidden <= 0 || d.heads <= 0 || (d.kv_heads <= 0 && !d.Mla()) || d.head_dim <= 0 ||
      d.ffn <= 0 || d.vocab <= 0) {
    return Status::InvalidInput("the op stream has empty dimensions");
  }
  if (d.Mla() ? d.qk_rope % 2 != 0 : d.head_dim % 2 != 0) {
    return Status::InvalidInput("rotary embedding needs an even head_dim, got " +
                                std::to_string(d.Mla() ? d.qk_rope : d.head_dim));
  }
  if (!d.Mla() && d.heads % d.kv_heads != 0) {
    return Status::InvalidInput("query heads (" + std::to_string(d.heads) +
                                ") must be a multiple of KV heads (" + std::to_string(d.kv_heads) +
                                ")");
  }
  for (const Op& op : s.ops) {
    for (const std::string& w : op.weights) {
      if (s.FindWeight(w) == nullptr) {
        return Status::InvalidInput(OpName(op) + " names weight '" + w +
                                    "' the stream does not declare");
      }
    }
    if (op.layer >= s.layers) return Status::InvalidInput(OpName(op) + ": layer out of range");
    CB_RETURN_IF_ERROR(OpCheck(s, op, cfg_.dtype).Dense());
  }
  return Status::Ok();
}

Status CpuSession::CheckQuantizedStream(const OpStream& s) const {
  const std::string what = "the cpu backend runs " + std::string(DTypeName(cfg_.dtype)) +
                           (cfg_.dtype == DType::kFP8 ? " (weight-only)" : "");
  if (s.shard.tp_size > 1 || s.shard.ep_size > 1) {
    return Status::Unsupported(what +
                               " on one rank only (--tp/--ep with 8-bit weights are not built: "
                               "shards would quantise activations over their own slice)");
  }
  if (cfg_.dtype == DType::kFP8 && !cfg_.weight_only) {
    return Status::Unsupported("the cpu backend runs fp8 weight-only (x86 has no fp8 arithmetic)");
  }
  return Status::Ok();
}

}  // namespace cb::cpu
