// CudaSession: the launch groups of a run range (fusion_plan.h), single ops, matmuls on the
// skinny kernel or cuBLAS, collectives.

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_session.h"
#include "backends/cuda/nccl_communicator.h"

namespace cb::cuda {
namespace {

cudaDataType_t CudaType(DType t) {
  switch (t) {
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF16:
      return CUDA_R_16F;
    default:
      return CUDA_R_32F;
  }
}

}  // namespace

Status CudaSession::Enqueue(const OpStream& s, OpRange range, bool for_graph) {
  FusionContext c;
  c.token_rows = step_.tokens;
  c.seq_rows = step_.seqs;
  c.dtype = cfg_.dtype;
  c.paths = paths_;
  c.sms = sms_;
  c.dims = dims_;
  c.dead_after = &dead_after_;
  for (const LaunchGroup& g : PlanLaunches(s, range, c)) {
    const Status st = EnqueueGroup(s, g, for_graph);
    if (!st.ok()) {
      const Op& op = s.ops[g.op];
      std::string name(OpKindName(op.kind));
      if (op.layer >= 0) name += " of layer " + std::to_string(op.layer);
      return Status(st.code(), "op " + std::to_string(g.op) + " (" + name + "): " + st.message());
    }
  }
  return Status::Ok();
}

Status CudaSession::EnqueueGroup(const OpStream& s, const LaunchGroup& g, bool for_graph) {
  switch (g.kind) {
    case GroupKind::kAddNorm: {  // x += proj, then h = norm(x), in one pass over x
      const Op& add = s.ops[g.first];
      const Op& norm = s.ops[g.first + 1];
      const DevBuf& out = B(norm.out);
      Count("add_rmsnorm");
      CB_CUDA(LaunchRmsNorm(B(add.out).f32(), B(add.in).f32(), out.p, out.dtype,
                            plans_[g.first + 1].gain[0], Rows(add.out), norm.n, eps_, stream_));
      return Status::Ok();
    }
    case GroupKind::kMatMul:
      return MatMul(s, g);
    case GroupKind::kRopeAttention:
      return Attention(s.ops[g.op], g.count == 3 ? &plans_[g.first] : nullptr, /*rope=*/true,
                       for_graph);
    case GroupKind::kOp:
      break;
  }
  const Op& op = s.ops[g.op];
  if (op.kind == OpKind::kAttention) return Attention(op, nullptr, /*rope=*/false, for_graph);
  return EnqueueOp(op, plans_[g.op]);
}

Status CudaSession::EnqueueOp(const Op& op, const OpPlan& plan) {
  const DevBuf& in = B(op.in);
  const DevBuf& out = B(op.out);
  switch (op.kind) {
    case OpKind::kEmbedding:
      CB_CUDA(LaunchEmbedding(in.i32(), step_.tokens, plan.embed, cfg_.dtype, op.n, out.f32(),
                              stream_));
      return Status::Ok();
    case OpKind::kRmsNorm:
      CB_CUDA(LaunchRmsNorm(in.f32(), nullptr, out.p, out.dtype, plan.gain[0], Rows(op.in), op.n,
                            eps_, stream_));
      return Status::Ok();
    case OpKind::kQkNorm:
      CB_CUDA(LaunchQkNorm(in.p, in.dtype, step_.tokens, in.width, dims_.heads, dims_.kv_heads,
                           dims_.head_dim, plan.gain[0], plan.gain[1], eps_, stream_));
      return Status::Ok();
    case OpKind::kRope:
      CB_CUDA(LaunchRope(in.p, in.dtype, step_.tokens, in.width, dims_.heads + dims_.kv_heads,
                         dims_.head_dim, meta_ + step_.pos, rope_, stream_));
      return Status::Ok();
    case OpKind::kSwiGlu:
      CB_CUDA(LaunchSwiGlu(in.p, in.dtype, out.p, out.dtype, step_.tokens, op.n, stream_));
      return Status::Ok();
    case OpKind::kResidualAdd:
      CB_CUDA(LaunchAdd(out.f32(), in.f32(), Rows(op.out) * op.n, stream_));
      return Status::Ok();
    case OpKind::kAllReduce:
    case OpKind::kAllGather:
      return Collective(op);
    case OpKind::kSelectLast:
      CB_CUDA(LaunchSelectLast(in.f32(), out.f32(), meta_ + step_.last, step_.seqs, op.n, stream_));
      return Status::Ok();
    case OpKind::kSampleGreedy:
      CB_CUDA(LaunchArgmax(in.f32(), out.i32(), step_.seqs, op.n, stream_));
      return Status::Ok();
    default:
      break;
  }
  return Status::Unsupported("the cuda backend does not run op '" +
                             std::string(OpKindName(op.kind)) + "' on its own");
}

Status CudaSession::MatMul(const OpStream& s, const LaunchGroup& g) {
  const Op& mm = s.ops[g.op];
  // With the residual add fused, the product goes into the add's output (fp32) with beta 1.
  const DevBuf& out = g.accumulate ? B(s.ops[g.op + 1].out) : B(mm.out);
  if (g.accumulate) Count("fused_residual");
  if (g.skinny) return SkinnyMatMul(s, g, out);
  if (g.prologue != Prologue::kNone) return Status::Internal("a prologue needs the skinny kernel");
  Count("matmul_cublas");
  const Matrix& m = matrices_[plans_[g.op].matrix];
  const DevBuf& in = B(mm.in);
  const float alpha = 1.0f, beta = g.accumulate ? 1.0f : 0.0f;
  // cuBLAS is column-major. Row-major W [n, k] is column-major W^T (k x n, ld k), row-major
  // in [rows, k] is in^T (k x rows, ld k) and row-major out [rows, n] is out^T (n x rows,
  // ld n: under tensor parallelism a rank's logits are packed at the front of the buffer).
  // out = in x W^T  <=>  out^T = W x in^T = op_T(W^T) x op_N(in^T).
  CB_CUBLAS(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m.n),
                         static_cast<int>(Rows(mm.in)), static_cast<int>(m.k), &alpha, m.w,
                         CudaType(cfg_.dtype), static_cast<int>(m.k), in.p, CudaType(in.dtype),
                         static_cast<int>(m.k), &beta, out.p, CudaType(out.dtype),
                         static_cast<int>(m.n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  return Status::Ok();
}

Status CudaSession::SkinnyMatMul(const OpStream& s, const LaunchGroup& g, const DevBuf& out) {
  const Op& mm = s.ops[g.op];
  const Matrix& m = matrices_[plans_[g.op].matrix];
  SkinnyArgs a;
  a.w = m.w;
  a.type = cfg_.dtype;
  a.rows = Rows(mm.in);
  a.n = m.n;
  a.k = m.k;
  a.prologue = g.prologue;
  const DevBuf& in = B(g.prologue == Prologue::kNone ? mm.in : s.ops[g.first].in);
  a.in = in.p;
  a.in_ld = in.width;
  a.in_type = in.dtype;
  if (g.prologue == Prologue::kRmsNorm) {
    a.gain = plans_[g.first].gain[0];
    a.eps = eps_;
    Count("fused_rmsnorm");
  } else if (g.prologue == Prologue::kSwiGlu) {
    Count("fused_swiglu");
  }
  a.out = out.p;
  a.out_ld = m.n;  // packed rows, as cuBLAS writes them
  a.out_type = out.dtype;
  a.accumulate = g.accumulate;
  const SkinnyPlan plan = PlanSkinny(a.rows, a.n, a.k, a.in_ld, a.type, a.prologue, sms_);
  if (!plan.ok) return Status::Internal("skinny matmul planned but not runnable: " + plan.why);
  Count("matmul_skinny");
  CB_CUDA(LaunchSkinnyGemm(a, plan, stream_));
  return Status::Ok();
}

Status CudaSession::Collective(const Op& op) {
  if (tp_size_ == 1) return Status::Ok();  // one rank: nothing to combine
  const DevBuf& b = B(op.out);
  const int64_t rows = Rows(op.out);
  if (op.kind == OpKind::kAllReduce) {
    const size_t count = static_cast<size_t>(rows * b.width);
#if defined(CLUSTERBENCH_HAVE_NCCL)
    if (nccl_ != nullptr) return nccl_->AllReduceSumDevice(b.f32(), count);
#endif
    host_stage_.resize(count);
    CB_CUDA(cudaMemcpyAsync(host_stage_.data(), b.p, count * sizeof(float), cudaMemcpyDeviceToHost,
                            stream_));
    CB_CUDA(cudaStreamSynchronize(stream_));
    CB_RETURN_IF_ERROR(cfg_.tp_comm->AllReduceSum(host_stage_.data(), count));
    CB_CUDA(cudaMemcpyAsync(b.p, host_stage_.data(), count * sizeof(float), cudaMemcpyHostToDevice,
                            stream_));
    return Status::Ok();
  }
  // kAllGather of the logits: each rank holds [rows, vocab / tp] at the front of the buffer.
  const int64_t local = dims_.vocab;
  const size_t count = static_cast<size_t>(rows * local);
#if defined(CLUSTERBENCH_HAVE_NCCL)
  if (nccl_ != nullptr) {
    CB_RETURN_IF_ERROR(nccl_->AllGatherDevice(b.f32(), count, gather_));
    CB_CUDA(LaunchGatherReorder(gather_, b.f32(), tp_size_, rows, local, stream_));
    return Status::Ok();
  }
#endif
  host_stage_.resize(count * (tp_size_ + 1));
  float* send = host_stage_.data() + count * tp_size_;
  CB_CUDA(cudaMemcpyAsync(send, b.p, count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CB_CUDA(cudaStreamSynchronize(stream_));
  CB_RETURN_IF_ERROR(cfg_.tp_comm->AllGather(send, count, host_stage_.data()));
  CB_CUDA(cudaMemcpyAsync(gather_, host_stage_.data(), count * tp_size_ * sizeof(float),
                          cudaMemcpyHostToDevice, stream_));
  CB_CUDA(LaunchGatherReorder(gather_, b.f32(), tp_size_, rows, local, stream_));
  return Status::Ok();
}

}  // namespace cb::cuda
