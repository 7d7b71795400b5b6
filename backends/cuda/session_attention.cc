// CudaSession: attention. New K and V go into the cache first (with QK-norm and RoPE in the
// same kernel when fused), then one of four paths: the decode kernel for decode steps, the
// flash kernel for other steps, cuBLAS (S = Q K^T, softmax, O = P V) for long prefills where
// flash cannot run, the tiled kernel for everything else.

#include <algorithm>
#include <cmath>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_session.h"

namespace cb::cuda {
namespace {

cudaDataType_t CudaType(DType t) { return t == DType::kBF16 ? CUDA_R_16BF : CUDA_R_16F; }

}  // namespace

AttentionArgs CudaSession::AttentionArgsFor(const Op& op) const {
  const size_t elem = DTypeBytes(cfg_.dtype);
  const DevBuf& qkv = B(op.in);
  AttentionArgs a;
  a.qkv = qkv.p;
  a.qkv_type = qkv.dtype;
  a.qkv_width = qkv.width;
  a.k_cache = static_cast<const char*>(k_cache_) + op.layer * layer_stride_ * elem;
  a.v_cache = static_cast<const char*>(v_cache_) + op.layer * layer_stride_ * elem;
  a.slot_stride = slot_stride_;
  a.head_stride = head_stride_;
  a.row_slot = meta_ + step_.slot;
  a.positions = meta_ + step_.pos;
  a.heads = static_cast<int>(dims_.heads);
  a.kv_heads = static_cast<int>(dims_.kv_heads);
  a.head_dim = static_cast<int>(dims_.head_dim);
  a.tiling = tiling_;
  a.out = B(op.out).p;
  a.partial = partial_;
  a.partial_rows = SplitRows(cfg_);
  a.rows = step_.tokens;
  a.scale = 1.0f / std::sqrt(static_cast<float>(dims_.head_dim));
  a.dtype = cfg_.dtype;
  return a;
}

Status CudaSession::Attention(const Op& op, const OpPlan* qk_norm, bool rope, bool for_graph) {
  AttentionArgs a = AttentionArgsFor(op);
  if (rope) {
    RopeAppendArgs r;
    r.qkv = const_cast<void*>(a.qkv);
    r.qkv_type = a.qkv_type;
    r.rows = step_.tokens;
    r.width = a.qkv_width;
    r.heads = a.heads;
    r.kv_heads = a.kv_heads;
    r.head_dim = a.head_dim;
    if (qk_norm != nullptr) {
      r.q_gain = qk_norm->gain[0];
      r.k_gain = qk_norm->gain[1];
      r.eps = eps_;
    }
    r.positions = a.positions;
    r.row_slot = a.row_slot;
    r.table = rope_;
    r.k_cache = const_cast<void*>(a.k_cache);
    r.v_cache = const_cast<void*>(a.v_cache);
    r.cache_type = cfg_.dtype;
    r.slot_stride = slot_stride_;
    r.head_stride = head_stride_;
    Count(qk_norm != nullptr ? "fused_qknorm_rope_append" : "fused_rope_append");
    CB_CUDA(LaunchRopeAppend(r, stream_));
  } else {
    CB_CUDA(LaunchKvAppend(a.qkv, a.qkv_type, step_.tokens, a.qkv_width, dims_.heads,
                           dims_.kv_heads, dims_.head_dim, a.row_slot, a.positions,
                           const_cast<void*>(a.k_cache), const_cast<void*>(a.v_cache), cfg_.dtype,
                           slot_stride_, head_stride_, stream_));
  }
  // A graph is replayed at longer contexts than it was captured at: split for the longest.
  const int64_t max_len = for_graph ? cfg_.max_context : step_.max_len;
  if (step_.decode && paths_(Path::kDecodeAttn) && decode_plan_.ok) {
    const int64_t blocks = step_.tokens * dims_.kv_heads * decode_plan_.head_chunks;
    a.splits = ChooseAttentionSplits(blocks, max_len, step_.tokens, sms_, kDecodeMinKeysPerSplit);
    Count("attention_decode");
    CB_CUDA(LaunchDecodeAttention(a, decode_plan_, stream_));
    return Status::Ok();
  }
  if (!step_.decode && !for_graph && flash_ok_) {
    a.tiles = meta_ + step_.flash;
    a.num_tiles = static_cast<int>(step_.num_flash);
    Count("attention_flash");
    CB_CUDA(LaunchFlashAttention(a, stream_));
    return Status::Ok();
  }
  if (!for_graph && UseGemmAttention()) {
    Count("attention_gemm");
    return GemmAttention(static_cast<const char*>(a.k_cache), static_cast<const char*>(a.v_cache),
                         a.out);
  }
  a.tiles = meta_ + step_.tiles;
  a.num_tiles = static_cast<int>(step_.num_tiles);
  const int64_t blocks = step_.num_tiles * dims_.kv_heads * tiling_.head_chunks;
  a.splits = ChooseAttentionSplits(blocks, max_len, step_.tokens, sms_);
  Count("attention_tiled");
  CB_CUDA(LaunchAttention(a, stream_));
  return Status::Ok();
}

// Prefill attention on tensor cores through cuBLAS: for each sequence, query head group g and
// chunk of KV heads, S = Q K^T (fp32 out), P = causal softmax(S / sqrt(head_dim)) in the
// session dtype, O = P V straight into the attention output. Used where every sequence of the
// step brings at least kGemmAttnMinRows tokens and one head's scores fit the scratch.
bool CudaSession::UseGemmAttention() const {
  if (!gemm_attn_ || attn_scratch_bytes_ == 0 || step_seqs_.empty()) return false;
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
  const int64_t group = heads / kvh, q_w = heads * hd;  // output: [rows, heads * hd]
  const cudaDataType_t t = cfg_.dtype == DType::kF32 ? CUDA_R_32F : CudaType(cfg_.dtype);
  const float one = 1.0f, zero = 0.0f;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // Queries in the session dtype: the QKV buffer itself when it holds them (narrow), else a
  // dense copy.
  const DevBuf& qkv = B(Buf::kQkv);
  const bool direct = qkv.dtype == cfg_.dtype;
  const char* queries = direct ? static_cast<const char*>(qkv.p) : static_cast<char*>(q_conv_);
  const int64_t q_ld = direct ? qkv.width : q_w;
  if (!direct) {
    CB_CUDA(
        LaunchConvertRows(qkv.f32(), qkv.width, q_conv_, cfg_.dtype, step_.tokens, q_w, stream_));
  }
  for (size_t si = 0; si < step_seqs_.size(); ++si) {
    const SeqStep& q = step_seqs_[si];
    const int64_t n = q.new_tokens, len = q.past_len + q.new_tokens, row0 = step_.row0[si];
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
        const char* q0 = queries + (row0 * q_ld + head * hd) * elem;
        char* o0 = static_cast<char*>(out) + (row0 * q_w + head * hd) * elem;
        // Row-major S [n, len] = Q [n, hd] x K^T: column-major S^T = op_T(K^T) x op_N(Q^T).
        CB_CUBLAS(cublasGemmStridedBatchedEx(
            cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(len), static_cast<int>(n),
            static_cast<int>(hd), &one, k0, t, static_cast<int>(hd), head_stride_, q0, t,
            static_cast<int>(q_ld), group * hd, &zero, scores, CUDA_R_32F, static_cast<int>(len),
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

}  // namespace cb::cuda
