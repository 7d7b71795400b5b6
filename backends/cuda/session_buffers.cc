// CudaSession: device allocation, weight upload, buffer access for tests.

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_session.h"

namespace cb::cuda {
namespace {

constexpr int kBufCount = static_cast<int>(Buf::kNextTokens) + 1;
constexpr int kPinnedSlots = 4;  ///< per-step copies in flight (metadata and tokens, two steps)

/// The rotary table: [max_context][head_dim], the cosines then the sines of each position.
std::vector<float> RopeTable(int64_t max_context, int64_t hd, double theta) {
  const int64_t half = hd / 2;
  std::vector<float> rope(static_cast<size_t>(max_context * hd));
  for (int64_t pos = 0; pos < max_context; ++pos) {
    float* row = rope.data() + pos * hd;
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(pos) * std::pow(theta, -2.0 * i / hd);
      row[i] = static_cast<float>(std::cos(angle));
      row[half + i] = static_cast<float>(std::sin(angle));
    }
  }
  return rope;
}

}  // namespace

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
      int64_t row = 0;
      for (size_t w = 0; w < op.weights.size() && st.ok(); ++w) {
        const WeightDesc* d = s.FindWeight(op.weights[w]);
        st = UploadRows(*d, weights, static_cast<char*>(m.w) + row * op.k * elem, staging);
        row += d->rows;
      }
      if (!st.ok()) return done(st);
      it = by_group.emplace(key, static_cast<int>(matrices_.size())).first;
      matrices_.push_back(m);
    }
    plans_[i].matrix = it->second;
  }
  const Status st = UploadGains(s, weights, staging);
  if (!st.ok()) return done(st);
  const cudaError_t e = cudaStreamSynchronize(stream_);
  return done(CudaStatus(e, "cudaStreamSynchronize after the weight upload"));
}

/// Embedding tables (or the tied LM head's rows) and the norm gains (fp32, rounded to the
/// session dtype as the reference rounds them).
Status CudaSession::UploadGains(const OpStream& s, const WeightSource& weights, float* staging) {
  const size_t elem = DTypeBytes(cfg_.dtype);
  std::map<std::string, float*> gains;
  std::vector<std::vector<float>> host;  // pageable sources stay alive until the synchronise
  for (size_t i = 0; i < s.ops.size(); ++i) {
    const Op& op = s.ops[i];
    if (op.kind == OpKind::kEmbedding) {
      const int64_t tied = TiedMatmulOf(s, op);
      if (tied >= 0) {
        plans_[i].embed = matrices_[plans_[tied].matrix].w;  // rows of the LM head
      } else {
        const WeightDesc& d = *s.FindWeight(op.weights[0]);
        void* table = nullptr;
        CB_RETURN_IF_ERROR(Alloc(&table, static_cast<uint64_t>(d.Elements()) * elem, d.name));
        CB_RETURN_IF_ERROR(UploadRows(d, weights, table, staging));
        plans_[i].embed = table;
      }
    }
    if (op.kind != OpKind::kRmsNorm && op.kind != OpKind::kQkNorm) continue;
    for (size_t w = 0; w < op.weights.size() && w < 2; ++w) {
      auto it = gains.find(op.weights[w]);
      if (it == gains.end()) {
        const WeightDesc& d = *s.FindWeight(op.weights[w]);
        std::vector<float>& g = host.emplace_back(static_cast<size_t>(d.Elements()));
        weights.FillRows(d, 0, d.rows, g.data());
        for (float& v : g) v = RoundToDType(cfg_.dtype, v);
        void* p = nullptr;
        CB_RETURN_IF_ERROR(Alloc(&p, g.size() * sizeof(float), d.name));
        CB_CUDA(cudaMemcpyAsync(p, g.data(), g.size() * sizeof(float), cudaMemcpyHostToDevice,
                                stream_));
        it = gains.emplace(op.weights[w], static_cast<float*>(p)).first;
      }
      plans_[i].gain[w] = it->second;
    }
  }
  CB_CUDA(cudaStreamSynchronize(stream_));
  return Status::Ok();
}

Status CudaSession::AllocateBuffers(const OpStream& s) {
  for (int b = 1; b < kBufCount; ++b) {
    const Buf buf = static_cast<Buf>(b);
    DevBuf& a = bufs_[b];
    a.ids = BufIsIds(buf);
    a.dtype = BufDType(buf, cfg_.dtype, paths_(Path::kNarrow));
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

  const std::vector<float> rope = RopeTable(cfg_.max_context, dims_.head_dim, s.model.rope_theta);
  CB_RETURN_IF_ERROR(Alloc(&p, rope.size() * sizeof(float), "the rotary table"));
  rope_ = static_cast<float*>(p);
  // On the session's stream (a non-blocking stream does not wait for the legacy stream); from
  // pageable memory the call returns once `rope` is staged.
  CB_CUDA(cudaMemcpyAsync(rope_, rope.data(), rope.size() * sizeof(float), cudaMemcpyHostToDevice,
                          stream_));
  return Status::Ok();
}

/// Step metadata (device and pinned host), the allgather buffer, the GEMM attention's scratch
/// and the cuBLAS workspace.
Status CudaSession::AllocateStepData() {
  void* p = nullptr;
  const int64_t meta_ints = StepMetaCapacity(cfg_.max_step_tokens, cfg_.max_sequences);
  CB_RETURN_IF_ERROR(
      Alloc(&p, static_cast<uint64_t>(meta_ints) * sizeof(int32_t), "step metadata"));
  meta_ = static_cast<int32_t*>(p);
  const int64_t ints = std::max(meta_ints, cfg_.max_step_tokens);
  if (pinned_ints_ < ints) {
    for (PinnedSlot& slot : pinned_) {
      CB_CUDA(cudaEventSynchronize(slot.done));
      CB_CUDA(cudaFreeHost(slot.p));
      slot.p = nullptr;
    }
    pinned_.resize(kPinnedSlots);
    for (PinnedSlot& slot : pinned_) {
      CB_CUDA(cudaMallocHost(reinterpret_cast<void**>(&slot.p), ints * sizeof(int32_t)));
      if (slot.done == nullptr) {
        CB_CUDA(cudaEventCreateWithFlags(&slot.done, cudaEventDisableTiming));
        CB_CUDA(cudaEventRecord(slot.done, stream_));
      }
    }
    pinned_ints_ = ints;
  }
  if (tp_size_ > 1) {
    CB_RETURN_IF_ERROR(
        Alloc(&p, static_cast<uint64_t>(cfg_.max_sequences) * dims_.vocab_full * sizeof(float),
              "the allgather buffer"));
    gather_ = static_cast<float*>(p);
  }
  if (gemm_attn_) {
    attn_scratch_bytes_ = GemmAttnScratchBytes(dims_, cfg_);
    CB_RETURN_IF_ERROR(Alloc(&attn_scratch_, attn_scratch_bytes_, "the attention score scratch"));
    CB_RETURN_IF_ERROR(Alloc(&q_conv_, GemmAttnQueryBytes(dims_, cfg_), "the attention queries"));
  }
  CB_RETURN_IF_ERROR(Alloc(&workspace_, kCublasWorkspaceBytes, "the cuBLAS workspace"));
  CB_CUBLAS(cublasSetWorkspace(cublas_, workspace_, kCublasWorkspaceBytes));
  return Status::Ok();
}

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
  CB_CUDA(cudaSetDevice(device_));
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
  if (buf == Buf::kTokens) tokens_sent_.clear();  // the device no longer holds the last step's
  // Ordered after the stream's queued work and before whatever it runs next.
  CB_CUDA(cudaMemcpyAsync(a.p, raw.data(), raw.size(), cudaMemcpyHostToDevice, stream_));
  CB_CUDA(cudaStreamSynchronize(stream_));
  return Status::Ok();
}

}  // namespace cb::cuda
