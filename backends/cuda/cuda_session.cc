// CudaSession: lifecycle, Load and Run (cuda_session.h lists the other files).

#include "backends/cuda/cuda_session.h"

#include <algorithm>
#include <cstdlib>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/nccl_communicator.h"

namespace cb::cuda {

CudaSession::CudaSession(const SessionConfig& config, int device, int sm_count,
                         const CudaPaths& paths)
    : cfg_(config), device_(device), sms_(std::max(sm_count, 1)) {
  SetPaths(paths);
}

void CudaSession::SetPaths(const CudaPaths& paths) {
  paths_ = paths;
  graphs_enabled_ = paths_(Path::kGraphs);
  graph_note_ = graphs_enabled_ ? "" : "CUDA graphs disabled by CB_CUDA_DISABLE=graphs";
}

CudaSession::~CudaSession() {
  cudaSetDevice(device_);
  Release();
  nccl_.reset();
  for (PinnedSlot& slot : pinned_) {
    if (slot.done != nullptr) cudaEventDestroy(slot.done);
    if (slot.p != nullptr) cudaFreeHost(slot.p);
  }
  if (cublas_ != nullptr) cublasDestroy(cublas_);
  if (stream_ != nullptr) cudaStreamDestroy(stream_);
}

void CudaSession::Release() {
  if (stream_ != nullptr) cudaStreamSynchronize(stream_);
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  graphs_.clear();
  graph_failed_.clear();
  graph_seen_.clear();
  for (void* p : allocs_) cudaFree(p);
  allocs_.clear();
  allocated_ = 0;
  matrices_.clear();
  plans_.clear();
  for (auto& b : bufs_) b = DevBuf{};
  workspace_ = k_cache_ = v_cache_ = nullptr;
  rope_ = partial_ = gather_ = nullptr;
  meta_ = nullptr;
  attn_scratch_ = q_conv_ = nullptr;
  attn_scratch_bytes_ = 0;
  meta_sent_.clear();
  tokens_sent_.clear();
  loaded_ = false;
}

Status CudaSession::Init() {
  CB_CUDA(cudaSetDevice(device_));
  if (stream_ == nullptr) CB_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
  if (cublas_ == nullptr) {
    CB_CUBLAS(cublasCreate(&cublas_));
    CB_CUBLAS(cublasSetStream(cublas_, stream_));
  }
  return Status::Ok();
}

Status CudaSession::Alloc(void** p, uint64_t bytes, const std::string& what) {
  *p = nullptr;
  if (bytes == 0) return Status::Ok();
  const cudaError_t e = cudaMalloc(p, bytes);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free error state of a failed allocation
    return CudaStatus(e, ("cudaMalloc of " + FormatBytes(bytes) + " for " + what).c_str());
  }
  allocs_.push_back(*p);
  allocated_ += bytes;
  return Status::Ok();
}

Status CudaSession::Load(const OpStream& stream, const WeightSource& weights) {
  CB_RETURN_IF_ERROR(Init());
  Release();
  CB_RETURN_IF_ERROR(CheckCudaStream(stream, cfg_.dtype, paths_(Path::kNarrow)));
  dims_ = stream.dims;
  layers_ = stream.layers;
  tp_size_ = stream.shard.tp_size;
  eps_ = static_cast<float>(stream.model.norm_eps);
  num_ops_ = stream.ops.size();
  tiling_ = MakeAttentionTiling(dims_.heads, dims_.kv_heads);
  decode_plan_ = PlanDecodeAttention(dims_.heads, dims_.kv_heads, dims_.head_dim, cfg_.dtype);
  flash_ok_ = paths_(Path::kFlashAttn) && FlashEligible(dims_.head_dim, cfg_.dtype, nullptr);
  gemm_attn_ = GemmAttnUsed(dims_, cfg_, paths_);
  dead_after_ = DeadAfter(stream);
  if (tp_size_ > 1 && (cfg_.tp_comm == nullptr || cfg_.tp_comm->size() != tp_size_)) {
    return Status::InvalidInput("a stream split " + std::to_string(tp_size_) +
                                " ways needs a tensor-parallel communicator of that size");
  }

  // Budget before allocating anything.
  size_t free_b = 0, total_b = 0;
  CB_CUDA(cudaMemGetInfo(&free_b, &total_b));
  const MemoryNeed need = PlanMemory(stream, cfg_, paths_);
  CB_RETURN_IF_ERROR(CheckMemoryBudget(stream.model.name, cfg_, need, free_b, total_b));

  if (tp_size_ > 1 && nccl_ == nullptr) {
#if defined(CLUSTERBENCH_HAVE_NCCL)
    const char* comm = std::getenv("CB_CUDA_COMM");
    if (comm == nullptr || std::string(comm) != "mpi") {
      CB_RETURN_IF_ERROR(NcclCommunicator::Create(cfg_.tp_comm, stream_, &nccl_));
    }
#endif
    if (nccl_ == nullptr && graphs_enabled_) {
      graphs_enabled_ = false;
      graph_note_ =
          "CUDA graphs off: tensor-parallel collectives are staged through host memory "
          "(no NCCL, or CB_CUDA_COMM=mpi), which a graph cannot capture";
    }
  }

  Status st = AllocateBuffers(stream);
  if (st.ok()) st = AllocateStepData();
  if (st.ok()) st = PlanWeights(stream, weights);
  if (!st.ok()) {
    Release();
    return st;
  }
  loaded_ = true;
  return Status::Ok();
}

Status CudaSession::Run(const OpStream& stream, OpRange range, StepIO& io) {
  if (!loaded_) return Status::InvalidInput("Run before Load");
  if (stream.ops.size() != num_ops_ || stream.layers != layers_) {
    return Status::InvalidInput("Run with a stream other than the loaded one");
  }
  if (range.begin > range.end || range.end > stream.ops.size()) {
    return Status::InvalidInput("op range [" + std::to_string(range.begin) + ", " +
                                std::to_string(range.end) + ") outside the stream of " +
                                std::to_string(stream.ops.size()) + " ops");
  }
  CB_CUDA(cudaSetDevice(device_));
  CB_RETURN_IF_ERROR(PrepareStep(io));
  CB_RETURN_IF_ERROR(CheckKvValid(stream, range, io));

  bool ran = false;
  if (graphs_enabled_ && step_.decode && range.end > range.begin) {
    CB_RETURN_IF_ERROR(RunGraph(stream, range, &ran));
  }
  if (!ran) {
    CB_RETURN_IF_ERROR(Enqueue(stream, range, /*for_graph=*/false));
    if (step_.decode) ++eager_decode_steps_;
  }

  bool sampled = false;
  for (size_t i = range.begin; i < range.end; ++i) {
    const Op& op = stream.ops[i];
    if (op.kind == OpKind::kAttention) {
      for (const SeqStep& q : io.seqs) kv_valid_[op.layer][q.slot] = q.past_len + q.new_tokens;
    }
    if (op.kind == OpKind::kSampleGreedy) {
      io.next_tokens.resize(step_.seqs);
      CB_CUDA(cudaMemcpyAsync(io.next_tokens.data(), B(op.out).p, step_.seqs * sizeof(int32_t),
                              cudaMemcpyDeviceToHost, stream_));
      if (io.want_logits) {
        io.logits.resize(static_cast<size_t>(step_.seqs * op.n));
        CB_CUDA(cudaMemcpyAsync(io.logits.data(), B(op.in).p, io.logits.size() * sizeof(float),
                                cudaMemcpyDeviceToHost, stream_));
      }
      sampled = true;
    }
  }
  if (sampled) CB_CUDA(cudaStreamSynchronize(stream_));
  return Status::Ok();
}

Status CudaSession::Synchronize() {
  if (stream_ == nullptr) return Status::Ok();
  CB_CUDA(cudaSetDevice(device_));
  CB_CUDA(cudaStreamSynchronize(stream_));
  return Status::Ok();
}

}  // namespace cb::cuda
