// CheckCudaStream: whether the CUDA session can run an op stream (cuda_plan.h).

#include <initializer_list>
#include <string>

#include "backends/cuda/cuda_plan.h"
#include "backends/cuda/launch_plan.h"

namespace cb::cuda {
namespace {

class StreamChecker {
 public:
  StreamChecker(const OpStream& s, DType dtype, bool narrow)
      : s_(s), d_(s.dims), dt_(dtype), narrow_(narrow) {}

  Status Dims() const {
    if (d_.hidden <= 0 || d_.heads <= 0 || d_.kv_heads <= 0 || d_.head_dim <= 0 || d_.ffn <= 0 ||
        d_.vocab <= 0) {
      return Status::InvalidInput("the op stream has empty dimensions");
    }
    if (d_.head_dim % 2 != 0) {
      return Status::InvalidInput("rotary embedding needs an even head_dim, got " +
                                  std::to_string(d_.head_dim));
    }
    if (d_.head_dim > kAttnMaxHeadDim) {
      return Status::Unsupported("the cuda attention kernels support head_dim up to " +
                                 std::to_string(kAttnMaxHeadDim) + ", the model has " +
                                 std::to_string(d_.head_dim));
    }
    if (d_.heads % d_.kv_heads != 0) {
      return Status::InvalidInput("query heads (" + std::to_string(d_.heads) +
                                  ") must be a multiple of KV heads (" +
                                  std::to_string(d_.kv_heads) + ")");
    }
    return Status::Ok();
  }

  Status CheckOp(const Op& op) const {
    for (const std::string& w : op.weights) {
      if (s_.FindWeight(w) == nullptr) {
        return Status::InvalidInput(OpName(op) + " names weight '" + w +
                                    "' the stream does not declare");
      }
    }
    if (op.layer >= s_.layers) return Status::InvalidInput(OpName(op) + ": layer out of range");
    switch (op.kind) {
      case OpKind::kEmbedding:
        return Embedding(op);
      case OpKind::kRmsNorm:
        return RmsNorm(op);
      case OpKind::kMatMul:
        return MatMul(op);
      case OpKind::kQkNorm:
      case OpKind::kRope:
      case OpKind::kAttention:
        return Attention(op);
      case OpKind::kSwiGlu:
        CB_RETURN_IF_ERROR(Need(op, op.in, {Act(op.in)}));
        CB_RETURN_IF_ERROR(Need(op, op.out, {dt_}));
        CB_RETURN_IF_ERROR(Width(op, op.in, 2 * op.n));
        return Width(op, op.out, op.n);
      case OpKind::kResidualAdd:
      case OpKind::kSelectLast:
        return AddOrSelect(op);
      case OpKind::kSampleGreedy:
        CB_RETURN_IF_ERROR(Need(op, op.in, {DType::kF32}));
        CB_RETURN_IF_ERROR(Width(op, op.in, op.n));
        if (op.out != Buf::kNextTokens) {
          return Status::InvalidInput(OpName(op) + " must write next_tokens");
        }
        return Status::Ok();
      case OpKind::kAllReduce:
        return Need(op, op.out, {DType::kF32});
      case OpKind::kAllGather:
        if (op.out != Buf::kLogits) {
          return Status::Unsupported("the cuda backend gathers only the logits (" + OpName(op) +
                                     ")");
        }
        return Status::Ok();
      default:
        return Status::Unsupported("the cuda backend does not run op '" +
                                   std::string(OpKindName(op.kind)) +
                                   "' (only the dense decoder's ops; MoE and MLA are not "
                                   "implemented on CUDA)");
    }
  }

 private:
  /// The type the session holds `b` in: its kernels read QKV and gate/up in either type.
  DType Act(Buf b) const { return BufDType(b, dt_, narrow_); }

  /// `b` is an activation buffer held in one of `allowed`, or (ids) a token-id buffer.
  Status Need(const Op& op, Buf b, std::initializer_list<DType> allowed, bool ids = false) const {
    bool ok = b != Buf::kNone && BufIsIds(b) == ids;
    if (ok && !ids) {
      ok = false;
      for (DType t : allowed) ok = ok || Act(b) == t;
    }
    if (ok) return Status::Ok();
    return Status::Unsupported(
        "the cuda backend runs " + OpName(op) + " with '" + std::string(BufName(b)) + "' as " +
        (ids ? std::string("token ids") : std::string(DTypeName(*allowed.begin()))) +
        ", which it does not hold that way");
  }

  Status Width(const Op& op, Buf b, int64_t w) const {
    if (BufferWidth(d_, b) == w) return Status::Ok();
    return Status::InvalidInput(OpName(op) + ": buffer '" + std::string(BufName(b)) + "' is " +
                                std::to_string(BufferWidth(d_, b)) + " wide, the op needs " +
                                std::to_string(w));
  }

  Status Embedding(const Op& op) const {
    CB_RETURN_IF_ERROR(Need(op, op.in, {}, true));
    CB_RETURN_IF_ERROR(Need(op, op.out, {DType::kF32}));
    if (op.weights.size() != 1 || s_.FindWeight(op.weights[0])->cols != op.n) {
      return Status::InvalidInput(OpName(op) + " needs one table of width n");
    }
    return Width(op, op.out, op.n);
  }

  Status RmsNorm(const Op& op) const {
    CB_RETURN_IF_ERROR(Need(op, op.in, {DType::kF32}));
    if (op.out == Buf::kNone || BufIsIds(op.out)) {
      return Status::Unsupported(OpName(op) + " must write an activation buffer");
    }
    if (op.weights.size() != 1 || s_.FindWeight(op.weights[0])->Elements() != op.n) {
      return Status::InvalidInput(OpName(op) + " needs one gain of width n");
    }
    CB_RETURN_IF_ERROR(Width(op, op.in, op.n));
    CB_RETURN_IF_ERROR(Width(op, op.out, op.n));
    if (BufferRows(op.in) != BufferRows(op.out)) {
      return Status::InvalidInput(OpName(op) + " maps token rows onto sequence rows");
    }
    return Status::Ok();
  }

  Status MatMul(const Op& op) const {
    CB_RETURN_IF_ERROR(Need(op, op.in, {dt_}));
    CB_RETURN_IF_ERROR(Need(op, op.out, {DType::kF32, dt_}));
    CB_RETURN_IF_ERROR(Width(op, op.in, op.k));
    if (BufferWidth(d_, op.out) < op.n || BufferRows(op.in) != BufferRows(op.out)) {
      return Status::InvalidInput(OpName(op) + ": output buffer does not fit");
    }
    return Status::Ok();
  }

  Status Attention(const Op& op) const {
    if (op.kind == OpKind::kQkNorm) {
      if (op.weights.size() != 2) return Status::InvalidInput(OpName(op) + " needs two gains");
      for (const auto& w : op.weights) {
        if (s_.FindWeight(w)->Elements() != d_.head_dim) {
          return Status::InvalidInput(OpName(op) + ": gain width differs from head_dim");
        }
      }
    }
    CB_RETURN_IF_ERROR(Need(op, op.in, {Act(op.in)}));
    if (Act(op.in) != DType::kF32 && Act(op.in) != dt_) {
      return Status::Unsupported(OpName(op) + " reads QKV in an unsupported type");
    }
    CB_RETURN_IF_ERROR(Width(op, op.in, d_.QkvWidth()));
    if (op.kind != OpKind::kAttention) return Status::Ok();
    if (op.layer < 0) return Status::InvalidInput(OpName(op) + " needs a layer");
    CB_RETURN_IF_ERROR(Need(op, op.out, {dt_}));
    return Width(op, op.out, d_.heads * d_.head_dim);
  }

  Status AddOrSelect(const Op& op) const {
    CB_RETURN_IF_ERROR(Need(op, op.in, {DType::kF32}));
    CB_RETURN_IF_ERROR(Need(op, op.out, {DType::kF32}));
    CB_RETURN_IF_ERROR(Width(op, op.in, op.n));
    CB_RETURN_IF_ERROR(Width(op, op.out, op.n));
    if (op.kind == OpKind::kSelectLast &&
        (BufferRows(op.in) != Rows::kTokenRows || BufferRows(op.out) != Rows::kSequenceRows)) {
      return Status::InvalidInput(OpName(op) + " maps token rows onto sequence rows");
    }
    if (op.kind == OpKind::kResidualAdd && BufferRows(op.in) != BufferRows(op.out)) {
      return Status::InvalidInput(OpName(op) + " adds rows of different kinds");
    }
    return Status::Ok();
  }

  const OpStream& s_;
  const LocalDims& d_;
  DType dt_;
  bool narrow_;
};

}  // namespace

Status CheckCudaStream(const OpStream& stream, DType dtype, bool narrow) {
  const StreamChecker check(stream, dtype, narrow);
  CB_RETURN_IF_ERROR(check.Dims());
  for (const Op& op : stream.ops) CB_RETURN_IF_ERROR(check.CheckOp(op));
  return Status::Ok();
}

}  // namespace cb::cuda
