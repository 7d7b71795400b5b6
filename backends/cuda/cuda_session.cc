#include "backends/cuda/cuda_session.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "backends/cuda/cuda_check.h"
#if defined(CLUSTERBENCH_HAVE_NCCL)
#include "backends/cuda/nccl_communicator.h"
#include "backends/step_check.h"
#endif

namespace cb::cuda {
namespace {

constexpr int kBufCount = static_cast<int>(Buf::kNextTokens) + 1;

std::string OpName(const Op& op) {
  std::string s(OpKindName(op.kind));
  if (op.layer >= 0) s += " of layer " + std::to_string(op.layer);
  return s;
}

cudaDataType_t CudaType(DType t) {
  switch (t) {
    case DType::kBF16:
      return CUDA_R_16BF;
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kF32:
      break;
  }
  return CUDA_R_32F;
}

/// Restores the device current on the calling thread to the session's.
#define CB_CUDA_DEVICE() CB_CUDA(cudaSetDevice(device_))

}  // namespace

CudaSession::CudaSession(const SessionConfig& config, int device, int sm_count)
    : cfg_(config), device_(device), sms_(std::max(sm_count, 1)) {
  if (const char* g = std::getenv("CB_CUDA_GRAPHS"); g != nullptr && std::string(g) == "0") {
    graphs_enabled_ = false;
    graph_note_ = "CUDA graphs disabled by CB_CUDA_GRAPHS=0";
  }
}

CudaSession::~CudaSession() {
  cudaSetDevice(device_);
  Release();
  nccl_.reset();
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
  loaded_ = false;
}

Status CudaSession::Init() {
  CB_CUDA_DEVICE();
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

// ---------------------------------------------------------------------------------------------
// Load

Status CudaSession::CheckStream(const OpStream& s) const {
  const LocalDims& d = s.dims;
  if (d.hidden <= 0 || d.heads <= 0 || d.kv_heads <= 0 || d.head_dim <= 0 || d.ffn <= 0 ||
      d.vocab <= 0) {
    return Status::InvalidInput("the op stream has empty dimensions");
  }
  if (d.head_dim % 2 != 0) {
    return Status::InvalidInput("rotary embedding needs an even head_dim, got " +
                                std::to_string(d.head_dim));
  }
  if (d.head_dim > kAttnMaxHeadDim) {
    return Status::Unsupported("the cuda attention kernel supports head_dim up to " +
                               std::to_string(kAttnMaxHeadDim) + ", the model has " +
                               std::to_string(d.head_dim));
  }
  if (d.heads % d.kv_heads != 0) {
    return Status::InvalidInput("query heads (" + std::to_string(d.heads) +
                                ") must be a multiple of KV heads (" + std::to_string(d.kv_heads) +
                                ")");
  }
  const DType dt = cfg_.dtype;
  auto need = [&](const Op& op, Buf b, DType t, bool ids = false) -> Status {
    if (b == Buf::kNone || BufIsIds(b) != ids || (!ids && BufDType(b, dt) != t)) {
      return Status::Unsupported("the cuda backend runs " + OpName(op) + " with '" +
                                 std::string(BufName(b)) + "' as " +
                                 (ids ? std::string("token ids") : std::string(DTypeName(t))) +
                                 ", which it does not hold that way");
    }
    return Status::Ok();
  };
  auto width = [&](const Op& op, Buf b, int64_t w) -> Status {
    if (BufferWidth(d, b) != w) {
      return Status::InvalidInput(OpName(op) + ": buffer '" + std::string(BufName(b)) + "' is " +
                                  std::to_string(BufferWidth(d, b)) + " wide, the op needs " +
                                  std::to_string(w));
    }
    return Status::Ok();
  };
  for (const Op& op : s.ops) {
    for (const std::string& w : op.weights) {
      if (s.FindWeight(w) == nullptr) {
        return Status::InvalidInput(OpName(op) + " names weight '" + w +
                                    "' the stream does not declare");
      }
    }
    if (op.layer >= s.layers) return Status::InvalidInput(OpName(op) + ": layer out of range");
    switch (op.kind) {
      case OpKind::kEmbedding:
        CB_RETURN_IF_ERROR(need(op, op.in, DType::kF32, true));
        CB_RETURN_IF_ERROR(need(op, op.out, DType::kF32));
        if (op.weights.size() != 1 || s.FindWeight(op.weights[0])->cols != op.n) {
          return Status::InvalidInput(OpName(op) + " needs one table of width n");
        }
        CB_RETURN_IF_ERROR(width(op, op.out, op.n));
        break;
      case OpKind::kRmsNorm:
        CB_RETURN_IF_ERROR(need(op, op.in, DType::kF32));
        if (op.out == Buf::kNone || BufIsIds(op.out)) {
          return Status::Unsupported(OpName(op) + " must write an activation buffer");
        }
        if (op.weights.size() != 1 || s.FindWeight(op.weights[0])->Elements() != op.n) {
          return Status::InvalidInput(OpName(op) + " needs one gain of width n");
        }
        CB_RETURN_IF_ERROR(width(op, op.in, op.n));
        CB_RETURN_IF_ERROR(width(op, op.out, op.n));
        if (BufferRows(op.in) != BufferRows(op.out)) {
          return Status::InvalidInput(OpName(op) + " maps token rows onto sequence rows");
        }
        break;
      case OpKind::kMatMul:
        CB_RETURN_IF_ERROR(need(op, op.in, dt));
        CB_RETURN_IF_ERROR(need(op, op.out, DType::kF32));
        CB_RETURN_IF_ERROR(width(op, op.in, op.k));
        if (BufferWidth(d, op.out) < op.n || BufferRows(op.in) != BufferRows(op.out)) {
          return Status::InvalidInput(OpName(op) + ": output buffer does not fit");
        }
        break;
      case OpKind::kQkNorm:
        if (op.weights.size() != 2) return Status::InvalidInput(OpName(op) + " needs two gains");
        for (const auto& w : op.weights) {
          if (s.FindWeight(w)->Elements() != d.head_dim) {
            return Status::InvalidInput(OpName(op) + ": gain width differs from head_dim");
          }
        }
        [[fallthrough]];
      case OpKind::kRope:
      case OpKind::kAttention:
        CB_RETURN_IF_ERROR(need(op, op.in, DType::kF32));
        CB_RETURN_IF_ERROR(width(op, op.in, d.QkvWidth()));
        if (op.kind == OpKind::kAttention) {
          if (op.layer < 0) return Status::InvalidInput(OpName(op) + " needs a layer");
          CB_RETURN_IF_ERROR(need(op, op.out, dt));
          CB_RETURN_IF_ERROR(width(op, op.out, d.heads * d.head_dim));
        }
        break;
      case OpKind::kSwiGlu:
        CB_RETURN_IF_ERROR(need(op, op.in, DType::kF32));
        CB_RETURN_IF_ERROR(need(op, op.out, dt));
        CB_RETURN_IF_ERROR(width(op, op.in, 2 * op.n));
        CB_RETURN_IF_ERROR(width(op, op.out, op.n));
        break;
      case OpKind::kResidualAdd:
      case OpKind::kSelectLast:
        CB_RETURN_IF_ERROR(need(op, op.in, DType::kF32));
        CB_RETURN_IF_ERROR(need(op, op.out, DType::kF32));
        CB_RETURN_IF_ERROR(width(op, op.in, op.n));
        CB_RETURN_IF_ERROR(width(op, op.out, op.n));
        if (op.kind == OpKind::kSelectLast &&
            (BufferRows(op.in) != Rows::kTokenRows || BufferRows(op.out) != Rows::kSequenceRows)) {
          return Status::InvalidInput(OpName(op) + " maps token rows onto sequence rows");
        }
        if (op.kind == OpKind::kResidualAdd && BufferRows(op.in) != BufferRows(op.out)) {
          return Status::InvalidInput(OpName(op) + " adds rows of different kinds");
        }
        break;
      case OpKind::kSampleGreedy:
        CB_RETURN_IF_ERROR(need(op, op.in, DType::kF32));
        CB_RETURN_IF_ERROR(width(op, op.in, op.n));
        if (op.out != Buf::kNextTokens) {
          return Status::InvalidInput(OpName(op) + " must write next_tokens");
        }
        break;
      case OpKind::kAllReduce:
        CB_RETURN_IF_ERROR(need(op, op.out, DType::kF32));
        break;
      case OpKind::kAllGather:
        if (op.out != Buf::kLogits) {
          return Status::Unsupported("the cuda backend gathers only the logits (" + OpName(op) +
                                     ")");
        }
        break;
      default:
        return Status::Unsupported("the cuda backend does not run op '" +
                                   std::string(OpKindName(op.kind)) +
                                   "' (only the dense decoder's ops; MoE and MLA are not "
                                   "implemented on CUDA)");
    }
  }
  return Status::Ok();
}

Status CudaSession::UploadRows(const WeightDesc& d, const WeightSource& weights, void* dst,
                               float* staging) {
  if (d.cols > static_cast<int64_t>(kStagingFloats)) {
    return Status::Unsupported("weight '" + d.name + "' has rows wider than the upload buffer");
  }
  const int64_t block = std::max<int64_t>(1, static_cast<int64_t>(kStagingFloats) / d.cols);
  const size_t elem = DTypeBytes(cfg_.dtype);
  std::vector<float> host(static_cast<size_t>(std::min(block, d.rows) * d.cols));
  for (int64_t r0 = 0; r0 < d.rows; r0 += block) {
    const int64_t rows = std::min(block, d.rows - r0);
    weights.FillRows(d, r0, rows, host.data());
    // Pageable source: the copy returns once the data is staged, so `host` may be refilled;
    // the conversion runs on the same stream after the copy, before the next copy.
    CB_CUDA(cudaMemcpyAsync(staging, host.data(), rows * d.cols * sizeof(float),
                            cudaMemcpyHostToDevice, stream_));
    CB_CUDA(LaunchConvertF32(staging, static_cast<char*>(dst) + r0 * d.cols * elem, cfg_.dtype,
                             rows * d.cols, stream_));
  }
  return Status::Ok();
}

Status CudaSession::PlanWeights(const OpStream& s, const WeightSource& weights) {
  void* staging_p = nullptr;
  CB_CUDA(cudaMalloc(&staging_p, kStagingFloats * sizeof(float)));
  float* staging = static_cast<float*>(staging_p);
  auto done = [&](Status st) {
    cudaStreamSynchronize(stream_);
    cudaFree(staging);
    return st;
  };
  const size_t elem = DTypeBytes(cfg_.dtype);
  plans_.assign(s.ops.size(), OpPlan{});
  std::map<std::string, int> by_group;
  for (size_t i = 0; i < s.ops.size(); ++i) {
    const Op& op = s.ops[i];
    if (op.kind != OpKind::kMatMul) continue;
    const std::string key = MatmulGroupKey(op);
    auto it = by_group.find(key);
    if (it == by_group.end()) {
      int64_t n = 0;
      for (const auto& w : op.weights) {
        const WeightDesc* d = s.FindWeight(w);
        if (d->cols != op.k) {
          return done(Status::InvalidInput(OpName(op) + ": weight '" + w + "' has " +
                                           std::to_string(d->cols) + " columns, k is " +
                                           std::to_string(op.k)));
        }
        n += d->rows;
      }
      if (n != op.n) {
        return done(Status::InvalidInput(OpName(op) + ": weights have " + std::to_string(n) +
                                         " rows, the op says n = " + std::to_string(op.n)));
      }
      Matrix m{nullptr, n, op.k};
      Status st = Alloc(&m.w, static_cast<uint64_t>(n * op.k) * elem, "weights " + key);
      if (!st.ok()) return done(st);
      int64_t row = 0;
      for (const auto& w : op.weights) {
        const WeightDesc* d = s.FindWeight(w);
        st = UploadRows(*d, weights, static_cast<char*>(m.w) + row * op.k * elem, staging);
        if (!st.ok()) return done(st);
        row += d->rows;
      }
      it = by_group.emplace(key, static_cast<int>(matrices_.size())).first;
      matrices_.push_back(m);
    }
    plans_[i].matrix = it->second;
  }
  std::map<std::string, float*> gains;
  for (size_t i = 0; i < s.ops.size(); ++i) {
    const Op& op = s.ops[i];
    if (op.kind == OpKind::kEmbedding) {
      const int64_t tied = TiedMatmulOf(s, op);
      if (tied >= 0) {
        plans_[i].embed = matrices_[plans_[tied].matrix].w;  // rows of the LM head
      } else {
        const WeightDesc& d = *s.FindWeight(op.weights[0]);
        void* table = nullptr;
        Status st = Alloc(&table, static_cast<uint64_t>(d.Elements()) * elem, d.name);
        if (st.ok()) st = UploadRows(d, weights, table, staging);
        if (!st.ok()) return done(st);
        plans_[i].embed = table;
      }
    }
    if (op.kind == OpKind::kRmsNorm || op.kind == OpKind::kQkNorm) {
      for (size_t w = 0; w < op.weights.size() && w < 2; ++w) {
        auto it = gains.find(op.weights[w]);
        if (it == gains.end()) {
          const WeightDesc& d = *s.FindWeight(op.weights[w]);
          std::vector<float> g(static_cast<size_t>(d.Elements()));
          weights.FillRows(d, 0, d.rows, g.data());
          for (float& v : g) v = RoundToDType(cfg_.dtype, v);
          void* p = nullptr;
          Status st = Alloc(&p, g.size() * sizeof(float), d.name);
          if (!st.ok()) return done(st);
          const cudaError_t e = cudaMemcpyAsync(p, g.data(), g.size() * sizeof(float),
                                                cudaMemcpyHostToDevice, stream_);
          if (e != cudaSuccess) return done(CudaStatus(e, "cudaMemcpy of a norm gain"));
          it = gains.emplace(op.weights[w], static_cast<float*>(p)).first;
        }
        plans_[i].gain[w] = it->second;
      }
    }
  }
  const cudaError_t e = cudaStreamSynchronize(stream_);
  return done(CudaStatus(e, "cudaStreamSynchronize after the weight upload"));
}

Status CudaSession::AllocateBuffers(const OpStream& s) {
  for (int b = 1; b < kBufCount; ++b) {
    const Buf buf = static_cast<Buf>(b);
    DevBuf& a = bufs_[b];
    a.ids = BufIsIds(buf);
    a.dtype = BufDType(buf, cfg_.dtype);
    a.width = BufferWidth(dims_, buf);
    a.rows = BufferRows(buf) == Rows::kTokenRows ? cfg_.max_step_tokens : cfg_.max_sequences;
    const size_t elem = a.ids ? sizeof(int32_t) : DTypeBytes(a.dtype);
    CB_RETURN_IF_ERROR(
        Alloc(&a.p, static_cast<uint64_t>(a.rows * a.width) * elem, std::string(BufName(buf))));
    CB_CUDA(cudaMemsetAsync(a.p, 0, static_cast<size_t>(a.rows * a.width) * elem, stream_));
  }
  const size_t elem = DTypeBytes(cfg_.dtype);
  head_stride_ = cfg_.max_context * dims_.head_dim;
  slot_stride_ = dims_.kv_heads * head_stride_;
  layer_stride_ = cfg_.max_sequences * slot_stride_;
  const uint64_t kv_bytes = static_cast<uint64_t>(std::max(layers_, 1) * layer_stride_) * elem;
  CB_RETURN_IF_ERROR(Alloc(&k_cache_, kv_bytes, "the K cache"));
  CB_RETURN_IF_ERROR(Alloc(&v_cache_, kv_bytes, "the V cache"));
  kv_valid_.assign(std::max(layers_, 1), std::vector<int64_t>(cfg_.max_sequences, 0));

  void* p = nullptr;
  const uint64_t partial_bytes = static_cast<uint64_t>(kAttnMaxSplits) * SplitRows(cfg_) *
                                 dims_.heads * (dims_.head_dim + 2) * sizeof(float);
  CB_RETURN_IF_ERROR(Alloc(&p, partial_bytes, "split-K attention partials"));
  partial_ = static_cast<float*>(p);

  const int64_t hd = dims_.head_dim, half = hd / 2;
  std::vector<float> rope(static_cast<size_t>(cfg_.max_context * hd));
  for (int64_t pos = 0; pos < cfg_.max_context; ++pos) {
    float* row = rope.data() + pos * hd;
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(pos) * std::pow(s.model.rope_theta, -2.0 * i / hd);
      row[i] = static_cast<float>(std::cos(angle));
      row[half + i] = static_cast<float>(std::sin(angle));
    }
  }
  CB_RETURN_IF_ERROR(Alloc(&p, rope.size() * sizeof(float), "the rotary table"));
  rope_ = static_cast<float*>(p);
  // On the session's stream (a non-blocking stream does not wait for the legacy stream); from
  // pageable memory the call returns once `rope` is staged.
  CB_CUDA(cudaMemcpyAsync(rope_, rope.data(), rope.size() * sizeof(float), cudaMemcpyHostToDevice,
                          stream_));

  const int64_t T = cfg_.max_step_tokens;
  off_pos_ = 0;
  off_slot_ = T;
  off_last_ = 2 * T;
  off_tiles_ = 2 * T + cfg_.max_sequences;
  meta_host_.assign(static_cast<size_t>(off_tiles_ + 4 * T), 0);
  CB_RETURN_IF_ERROR(Alloc(&p, meta_host_.size() * sizeof(int32_t), "step metadata"));
  meta_ = static_cast<int32_t*>(p);

  if (tp_size_ > 1) {
    CB_RETURN_IF_ERROR(
        Alloc(&p, static_cast<uint64_t>(cfg_.max_sequences) * dims_.vocab_full * sizeof(float),
              "the allgather buffer"));
    gather_ = static_cast<float*>(p);
  }
  attn_scratch_bytes_ = GemmAttnScratchBytes(dims_, cfg_);
  CB_RETURN_IF_ERROR(Alloc(&attn_scratch_, attn_scratch_bytes_, "the attention score scratch"));
  CB_RETURN_IF_ERROR(Alloc(&q_conv_, GemmAttnQueryBytes(dims_, cfg_), "the attention queries"));
  CB_RETURN_IF_ERROR(Alloc(&workspace_, kCublasWorkspaceBytes, "the cuBLAS workspace"));
  CB_CUBLAS(cublasSetWorkspace(cublas_, workspace_, kCublasWorkspaceBytes));
  return Status::Ok();
}

Status CudaSession::Load(const OpStream& stream, const WeightSource& weights) {
  CB_RETURN_IF_ERROR(Init());
  Release();
  CB_RETURN_IF_ERROR(CheckStream(stream));
  dims_ = stream.dims;
  layers_ = stream.layers;
  tp_size_ = stream.shard.tp_size;
  eps_ = static_cast<float>(stream.model.norm_eps);
  num_ops_ = stream.ops.size();
  tiling_ = MakeAttentionTiling(dims_.heads, dims_.kv_heads);
  if (tp_size_ > 1 && (cfg_.tp_comm == nullptr || cfg_.tp_comm->size() != tp_size_)) {
    return Status::InvalidInput("a stream split " + std::to_string(tp_size_) +
                                " ways needs a tensor-parallel communicator of that size");
  }

  // Budget before allocating anything.
  size_t free_b = 0, total_b = 0;
  CB_CUDA(cudaMemGetInfo(&free_b, &total_b));
  const MemoryNeed need = PlanMemory(stream, cfg_);
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
  if (st.ok()) st = PlanWeights(stream, weights);
  if (!st.ok()) {
    Release();
    return st;
  }
  loaded_ = true;
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Run

Status CudaSession::PrepareStep(const StepIO& io) {
  int64_t total = 0;
  CB_RETURN_IF_ERROR(CheckStep(io, cfg_, dims_.vocab_full, &total));
  tokens_ = total;
  seqs_ = static_cast<int64_t>(io.seqs.size());
  num_tiles_ = 0;
  max_len_ = 0;
  int32_t* m = meta_host_.data();
  int64_t row = 0;
  step_seqs_ = io.seqs;
  step_row0_.clear();
  for (int64_t si = 0; si < seqs_; ++si) {
    const SeqStep& s = io.seqs[si];
    step_row0_.push_back(row);
    for (int64_t r0 = 0; r0 < s.new_tokens; r0 += tiling_.rows_per_tile, ++num_tiles_) {
      int32_t* t = m + off_tiles_ + 4 * num_tiles_;
      t[0] = static_cast<int32_t>(row + r0);
      t[1] = static_cast<int32_t>(std::min<int64_t>(tiling_.rows_per_tile, s.new_tokens - r0));
      t[2] = static_cast<int32_t>(s.slot);
      t[3] = static_cast<int32_t>(s.past_len + r0);
    }
    for (int64_t j = 0; j < s.new_tokens; ++j, ++row) {
      m[off_pos_ + row] = static_cast<int32_t>(s.past_len + j);
      m[off_slot_ + row] = static_cast<int32_t>(s.slot);
    }
    m[off_last_ + si] = static_cast<int32_t>(row - 1);
    max_len_ = std::max(max_len_, s.past_len + s.new_tokens);
  }
  // Pageable host memory: the copy has read meta_host_ when it returns.
  CB_CUDA(cudaMemcpyAsync(meta_, meta_host_.data(), meta_host_.size() * sizeof(int32_t),
                          cudaMemcpyHostToDevice, stream_));
  if (!io.tokens.empty()) {
    CB_CUDA(cudaMemcpyAsync(B(Buf::kTokens).p, io.tokens.data(), io.tokens.size() * sizeof(int32_t),
                            cudaMemcpyHostToDevice, stream_));
  }
  return Status::Ok();
}

Status CudaSession::CheckKvValid(const OpStream& s, OpRange range, const StepIO& io) const {
  for (size_t i = range.begin; i < range.end; ++i) {
    const Op& op = s.ops[i];
    if (op.kind != OpKind::kAttention) continue;
    for (const SeqStep& q : io.seqs) {
      const int64_t valid = kv_valid_[op.layer][q.slot];
      if (valid < q.past_len) {
        return Status::InvalidInput("op " + std::to_string(i) + " (" + OpName(op) + "): slot " +
                                    std::to_string(q.slot) + " holds " + std::to_string(valid) +
                                    " cached positions, the step says past_len " +
                                    std::to_string(q.past_len));
      }
    }
  }
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

Status CudaSession::EnqueueOp(const Op& op, const OpPlan& plan, bool for_graph) {
  const DevBuf& in = B(op.in);
  const DevBuf& out = B(op.out);
  switch (op.kind) {
    case OpKind::kEmbedding:
      CB_CUDA(LaunchEmbedding(in.i32(), tokens_, plan.embed, cfg_.dtype, op.n, out.f32(), stream_));
      return Status::Ok();
    case OpKind::kRmsNorm:
      CB_CUDA(LaunchRmsNorm(in.f32(), nullptr, out.p, out.dtype, plan.gain[0], Rows(op.in), op.n,
                            eps_, stream_));
      return Status::Ok();
    case OpKind::kMatMul: {
      const Matrix& m = matrices_[plan.matrix];
      const float alpha = 1.0f, beta = 0.0f;
      const int64_t rows = Rows(op.in);
      // cuBLAS is column-major. Row-major W [n, k] is column-major W^T (k x n, ld k), row-major
      // in [rows, k] is in^T (k x rows, ld k) and row-major out [rows, n] is out^T (n x rows,
      // ld n). out = in x W^T  <=>  out^T = W x in^T = op_T(W^T) x op_N(in^T).
      CB_CUBLAS(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(m.n),
                             static_cast<int>(rows), static_cast<int>(m.k), &alpha, m.w,
                             CudaType(cfg_.dtype), static_cast<int>(m.k), in.p, CudaType(in.dtype),
                             static_cast<int>(m.k), &beta, out.p, CUDA_R_32F, static_cast<int>(m.n),
                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      return Status::Ok();
    }
    case OpKind::kQkNorm:
      CB_CUDA(LaunchQkNorm(in.f32(), tokens_, in.width, dims_.heads, dims_.kv_heads, dims_.head_dim,
                           plan.gain[0], plan.gain[1], eps_, stream_));
      return Status::Ok();
    case OpKind::kRope:
      CB_CUDA(LaunchRope(in.f32(), tokens_, in.width, dims_.heads + dims_.kv_heads, dims_.head_dim,
                         meta_ + off_pos_, rope_, stream_));
      return Status::Ok();
    case OpKind::kAttention: {
      const size_t elem = DTypeBytes(cfg_.dtype);
      char* kc = static_cast<char*>(k_cache_) + op.layer * layer_stride_ * elem;
      char* vc = static_cast<char*>(v_cache_) + op.layer * layer_stride_ * elem;
      CB_CUDA(LaunchKvAppend(in.f32(), tokens_, in.width, dims_.heads, dims_.kv_heads,
                             dims_.head_dim, meta_ + off_slot_, meta_ + off_pos_, kc, vc,
                             cfg_.dtype, slot_stride_, head_stride_, stream_));
      if (!for_graph && UseGemmAttention()) return GemmAttention(kc, vc, out.p);
      AttentionArgs a;
      a.qkv = in.f32();
      a.qkv_width = in.width;
      a.k_cache = kc;
      a.v_cache = vc;
      a.slot_stride = slot_stride_;
      a.head_stride = head_stride_;
      a.tiles = meta_ + off_tiles_;
      a.num_tiles = static_cast<int>(num_tiles_);
      a.heads = static_cast<int>(dims_.heads);
      a.kv_heads = static_cast<int>(dims_.kv_heads);
      a.head_dim = static_cast<int>(dims_.head_dim);
      a.tiling = tiling_;
      // A graph is replayed at longer contexts than it was captured at: size it for the most.
      const int64_t blocks = num_tiles_ * dims_.kv_heads * tiling_.head_chunks;
      a.splits =
          ChooseAttentionSplits(blocks, for_graph ? cfg_.max_context : max_len_, tokens_, sms_);
      a.out = out.p;
      a.partial = partial_;
      a.partial_rows = SplitRows(cfg_);
      a.rows = tokens_;
      a.scale = 1.0f / std::sqrt(static_cast<float>(dims_.head_dim));
      a.dtype = cfg_.dtype;
      CB_CUDA(LaunchAttention(a, stream_));
      return Status::Ok();
    }
    case OpKind::kSwiGlu:
      CB_CUDA(LaunchSwiGlu(in.f32(), out.p, out.dtype, tokens_, op.n, stream_));
      return Status::Ok();
    case OpKind::kResidualAdd:
      CB_CUDA(LaunchAdd(out.f32(), in.f32(), Rows(op.out) * op.n, stream_));
      return Status::Ok();
    case OpKind::kAllReduce:
    case OpKind::kAllGather:
      return Collective(op);
    case OpKind::kSelectLast:
      CB_CUDA(LaunchSelectLast(in.f32(), out.f32(), meta_ + off_last_, seqs_, op.n, stream_));
      return Status::Ok();
    case OpKind::kSampleGreedy:
      CB_CUDA(LaunchArgmax(in.f32(), out.i32(), seqs_, op.n, stream_));
      return Status::Ok();
    default:
      break;
  }
  return Status::Unsupported("the cuda backend does not run op '" +
                             std::string(OpKindName(op.kind)) + "'");
}

// Prefill attention on tensor cores: for each sequence, query head group g and chunk of KV
// heads, S = Q K^T (cuBLAS, fp32 out), P = causal softmax(S / sqrt(head_dim)) in the session
// dtype, O = P V (cuBLAS) straight into the attention output. Used where every sequence of the
// step brings at least kGemmAttnMinRows tokens and one head's scores fit the scratch; the
// tiled kernel (kernels.cu) does everything else. CB_CUDA_ATTN=kernel turns it off.
bool CudaSession::UseGemmAttention() const {
  if (attn_scratch_bytes_ == 0 || step_seqs_.empty()) return false;
  if (const char* e = std::getenv("CB_CUDA_ATTN"); e != nullptr && std::string(e) == "kernel") {
    return false;
  }
  const uint64_t elem = DTypeBytes(cfg_.dtype);
  for (const SeqStep& q : step_seqs_) {
    const uint64_t len = static_cast<uint64_t>(q.past_len + q.new_tokens);
    if (q.new_tokens < kGemmAttnMinRows) return false;
    if (static_cast<uint64_t>(q.new_tokens) * len * (4 + elem) + 256 > attn_scratch_bytes_) {
      return false;
    }
  }
  return true;
}

Status CudaSession::GemmAttention(const char* k_cache, const char* v_cache, void* out) {
  const size_t elem = DTypeBytes(cfg_.dtype);
  const int64_t hd = dims_.head_dim, heads = dims_.heads, kvh = dims_.kv_heads;
  const int64_t group = heads / kvh, q_w = heads * hd;  // queries and output: [rows, heads * hd]
  const cudaDataType_t t = CudaType(cfg_.dtype);
  const float one = 1.0f, zero = 0.0f;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  CB_CUDA(LaunchConvertRows(B(Buf::kQkv).f32(), B(Buf::kQkv).width, q_conv_, cfg_.dtype, tokens_,
                            q_w, stream_));
  for (size_t si = 0; si < step_seqs_.size(); ++si) {
    const SeqStep& q = step_seqs_[si];
    const int64_t n = q.new_tokens, len = q.past_len + q.new_tokens, row0 = step_row0_[si];
    const uint64_t per_head = static_cast<uint64_t>(n * len) * (4 + elem);
    const int64_t chunk = std::min<int64_t>(kvh, (attn_scratch_bytes_ - 256) / per_head);
    float* scores = static_cast<float*>(attn_scratch_);
    char* probs = static_cast<char*>(attn_scratch_) +
                  (static_cast<uint64_t>(chunk * n * len) * 4 + 255) / 256 * 256;
    for (int64_t kv0 = 0; kv0 < kvh; kv0 += chunk) {
      const int c = static_cast<int>(std::min(chunk, kvh - kv0));
      const int64_t cache_off = q.slot * slot_stride_ + kv0 * head_stride_;
      const char* k0 = k_cache + cache_off * elem;
      const char* v0 = v_cache + cache_off * elem;
      for (int64_t g = 0; g < group; ++g) {
        const int64_t head = kv0 * group + g;  // first query head of the batch
        const char* q0 = static_cast<const char*>(q_conv_) + (row0 * q_w + head * hd) * elem;
        char* o0 = static_cast<char*>(out) + (row0 * q_w + head * hd) * elem;
        // Row-major S [n, len] = Q [n, hd] x K^T: column-major S^T = op_T(K^T) x op_N(Q^T).
        CB_CUBLAS(cublasGemmStridedBatchedEx(
            cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(len), static_cast<int>(n),
            static_cast<int>(hd), &one, k0, t, static_cast<int>(hd), head_stride_, q0, t,
            static_cast<int>(q_w), group * hd, &zero, scores, CUDA_R_32F, static_cast<int>(len),
            n * len, c, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        CB_CUDA(
            LaunchCausalSoftmax(scores, probs, cfg_.dtype, c, n, len, q.past_len, scale, stream_));
        // Row-major O [n, hd] = P [n, len] x V [len, hd]: column-major O^T = V^T x P^T.
        CB_CUBLAS(cublasGemmStridedBatchedEx(
            cublas_, CUBLAS_OP_N, CUBLAS_OP_N, static_cast<int>(hd), static_cast<int>(n),
            static_cast<int>(len), &one, v0, t, static_cast<int>(hd), head_stride_, probs, t,
            static_cast<int>(len), n * len, &zero, o0, t, static_cast<int>(q_w), group * hd, c,
            CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      }
    }
  }
  return Status::Ok();
}

Status CudaSession::Enqueue(const OpStream& s, OpRange range, bool for_graph) {
  for (size_t i = range.begin; i < range.end; ++i) {
    const Op& op = s.ops[i];
    Status st;
    // Fused residual add + RMSNorm: x += proj, then h = norm(x), in one pass over x.
    if (op.kind == OpKind::kResidualAdd && i + 1 < range.end &&
        s.ops[i + 1].kind == OpKind::kRmsNorm && s.ops[i + 1].in == op.out &&
        BufferRows(op.in) == BufferRows(s.ops[i + 1].out)) {
      const Op& norm = s.ops[i + 1];
      const DevBuf& out = B(norm.out);
      st = CudaStatus(LaunchRmsNorm(B(op.out).f32(), B(op.in).f32(), out.p, out.dtype,
                                    plans_[i + 1].gain[0], Rows(op.out), norm.n, eps_, stream_),
                      "LaunchRmsNorm (fused residual add)");
      ++i;
    } else {
      st = EnqueueOp(op, plans_[i], for_graph);
    }
    if (!st.ok()) {
      return Status(st.code(),
                    "op " + std::to_string(i) + " (" + OpName(op) + "): " + st.message());
    }
  }
  return Status::Ok();
}

Status CudaSession::RunGraph(const OpStream& s, OpRange range, const StepIO& io, bool* ran) {
  *ran = false;
  std::string key =
      std::to_string(range.begin) + ":" + std::to_string(range.end) + ":" + std::to_string(seqs_);
  if (graph_failed_.count(key)) return Status::Ok();
  auto it = graphs_.find(key);
  // The first step of a shape runs eagerly: cuBLAS picks and (lazily) loads its kernels
  // outside the capture. The second is captured, later ones replay.
  if (it == graphs_.end() && graph_seen_[key]++ == 0) return Status::Ok();
  if (it == graphs_.end()) {
    cudaGraph_t graph = nullptr;
    CB_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    const Status enq = Enqueue(s, range, /*for_graph=*/true);
    const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
    cudaGraphExec_t exec = nullptr;
    cudaError_t inst = cudaErrorUnknown;
    if (enq.ok() && end == cudaSuccess && graph != nullptr) {
      inst = cudaGraphInstantiate(&exec, graph, 0);
    }
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (!enq.ok() || end != cudaSuccess || inst != cudaSuccess) {
      cudaGetLastError();  // clear the capture's error; the step runs eagerly
      graph_failed_.insert(key);
      const std::string why = !enq.ok()            ? enq.message()
                              : end != cudaSuccess ? std::string(cudaGetErrorString(end))
                                                   : std::string(cudaGetErrorString(inst));
      graph_note_ =
          "CUDA graph capture of the decode step " + key + " failed (" + why + "); it runs eagerly";
      std::fprintf(stderr, "cuda: %s\n", graph_note_.c_str());
      return Status::Ok();
    }
    it = graphs_.emplace(key, exec).first;
  }
  CB_CUDA(cudaGraphLaunch(it->second, stream_));
  ++graph_replays_;
  *ran = true;
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
  CB_CUDA_DEVICE();
  CB_RETURN_IF_ERROR(PrepareStep(io));
  CB_RETURN_IF_ERROR(CheckKvValid(stream, range, io));

  bool decode = true;
  for (const SeqStep& q : io.seqs) decode = decode && q.new_tokens == 1;
  bool ran = false;
  if (graphs_enabled_ && decode && range.end > range.begin) {
    CB_RETURN_IF_ERROR(RunGraph(stream, range, io, &ran));
  }
  if (!ran) CB_RETURN_IF_ERROR(Enqueue(stream, range, /*for_graph=*/false));

  bool sampled = false;
  for (size_t i = range.begin; i < range.end; ++i) {
    const Op& op = stream.ops[i];
    if (op.kind == OpKind::kAttention) {
      for (const SeqStep& q : io.seqs) kv_valid_[op.layer][q.slot] = q.past_len + q.new_tokens;
    }
    if (op.kind == OpKind::kSampleGreedy) {
      io.next_tokens.resize(seqs_);
      CB_CUDA(cudaMemcpyAsync(io.next_tokens.data(), B(op.out).p, seqs_ * sizeof(int32_t),
                              cudaMemcpyDeviceToHost, stream_));
      if (io.want_logits) {
        io.logits.resize(static_cast<size_t>(seqs_ * op.n));
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
  CB_CUDA_DEVICE();
  CB_CUDA(cudaStreamSynchronize(stream_));
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Buffer access for tests

Status CudaSession::ReadBuffer(Buf buf, int64_t rows, std::vector<float>* out) const {
  if (!loaded_) return Status::InvalidInput("ReadBuffer before Load");
  if (buf == Buf::kNone) return Status::InvalidInput("no such buffer");
  const DevBuf& a = B(buf);
  if (rows < 0 || rows > a.rows) {
    return Status::InvalidInput("buffer '" + std::string(BufName(buf)) + "' has " +
                                std::to_string(a.rows) + " rows");
  }
  CB_CUDA(cudaSetDevice(device_));
  const size_t n = static_cast<size_t>(rows * a.width);
  const size_t elem = a.ids ? sizeof(int32_t) : DTypeBytes(a.dtype);
  std::vector<char> raw(n * elem);
  CB_CUDA(cudaMemcpyAsync(raw.data(), a.p, raw.size(), cudaMemcpyDeviceToHost, stream_));
  CB_CUDA(cudaStreamSynchronize(stream_));
  out->resize(n);
  if (a.ids) {
    for (size_t i = 0; i < n; ++i) {
      int32_t v;
      std::memcpy(&v, raw.data() + i * sizeof v, sizeof v);
      (*out)[i] = static_cast<float>(v);
    }
  } else {
    ToFloatHost(raw.data(), a.dtype, n, out->data());
  }
  return Status::Ok();
}

Status CudaSession::WriteBuffer(Buf buf, int64_t rows, const std::vector<float>& data) {
  if (!loaded_) return Status::InvalidInput("WriteBuffer before Load");
  if (buf == Buf::kNone) return Status::InvalidInput("no such buffer");
  const DevBuf& a = B(buf);
  if (rows < 0 || rows > a.rows || static_cast<int64_t>(data.size()) != rows * a.width) {
    return Status::InvalidInput("WriteBuffer: " + std::to_string(data.size()) + " values are not " +
                                std::to_string(rows) + " rows of '" + std::string(BufName(buf)) +
                                "'");
  }
  CB_CUDA_DEVICE();
  const size_t elem = a.ids ? sizeof(int32_t) : DTypeBytes(a.dtype);
  std::vector<char> raw(data.size() * elem);
  if (a.ids) {
    for (size_t i = 0; i < data.size(); ++i) {
      const int32_t v = static_cast<int32_t>(data[i]);
      if (buf == Buf::kTokens && (v < 0 || v >= dims_.vocab_full)) {
        return Status::InvalidInput("token id " + std::to_string(v) + " outside the vocabulary");
      }
      std::memcpy(raw.data() + i * sizeof v, &v, sizeof v);
    }
  } else {
    FromFloatHost(data.data(), a.dtype, data.size(), raw.data());
  }
  // Ordered after the stream's queued work and before whatever it runs next.
  CB_CUDA(cudaMemcpyAsync(a.p, raw.data(), raw.size(), cudaMemcpyHostToDevice, stream_));
  CB_CUDA(cudaStreamSynchronize(stream_));
  return Status::Ok();
}

}  // namespace cb::cuda
