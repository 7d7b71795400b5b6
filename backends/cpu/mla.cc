#include "backends/cpu/mla.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backends/cpu/skinny_gemm.h"
#include "backends/cpu/vec_math.h"

namespace cb::cpu {

Status LatentCache::Allocate(int layers, int64_t slots, int64_t max_context, int64_t width,
                             DType dtype) {
  dtype_ = dtype;
  slots_ = slots;
  capacity_ = max_context;
  width_ = width;
  valid_.assign(static_cast<size_t>(layers * slots), 0);
  return mem_.Allocate(
      static_cast<size_t>(layers * slots * max_context * width) * DTypeBytes(dtype),
      "the MLA latent cache");
}

Status PackMlaWeights(const WeightDesc& kv_b, const MlaShape& s, DType dtype, bool bf16_values,
                      const WeightSource& source, MlaWeights* out) {
  if (kv_b.rows != s.heads * (s.nope + s.v) || kv_b.cols != s.kv_lora) {
    return Status::InvalidInput("kv_b is " + std::to_string(kv_b.rows) + " x " +
                                std::to_string(kv_b.cols) + ", MLA needs heads x (nope + v) x " +
                                "kv_lora");
  }
  const int64_t lora_rows = (s.kv_lora + kPackN - 1) / kPackN * kPackN;
  const int64_t v_rows = (s.v + kPackN - 1) / kPackN * kPackN;
  // Head h's rows of kv_b start at h (nope + v): nope rows of W_uk, then v rows of W_uv.
  const RowMap uk_t = [&](int64_t p) {
    const int64_t h = p / lora_rows, r = p % lora_rows;
    return r < s.kv_lora ? RowSource{&kv_b, h * (s.nope + s.v), true, r} : RowSource{};
  };
  CB_RETURN_IF_ERROR(PackRows(s.heads * lora_rows, s.nope, uk_t, source, dtype, &out->uk_t));
  const RowMap uv = [&](int64_t p) {
    const int64_t h = p / v_rows, r = p % v_rows;
    return r < s.v ? RowSource{&kv_b, h * (s.nope + s.v) + s.nope + r} : RowSource{};
  };
  CB_RETURN_IF_ERROR(PackRows(s.heads * v_rows, s.kv_lora, uv, source, dtype, &out->uv));
  if (bf16_values && dtype == DType::kF32) {
    RoundValuesToBf16(&out->uk_t);
    RoundValuesToBf16(&out->uv);
  }
  out->uk_t_heads.clear();
  out->uv_heads.clear();
  for (int64_t h = 0; h < s.heads; ++h) {
    out->uk_t_heads.push_back(out->uk_t.View(h * lora_rows, s.kv_lora));
    out->uv_heads.push_back(out->uv.View(h * v_rows, s.v));
  }
  return Status::Ok();
}

Status MlaScratch::Allocate(int64_t rows, const MlaShape& s, int64_t max_context, DType dtype) {
  rows_ = rows;
  nope_pad_ = (s.nope + 31) / 32 * 32;
  lora_pad_ = (s.kv_lora + 31) / 32 * 32;
  per_thread_ = 4 * ((max_context + 15) / 16 * 16);
  const size_t dt = DTypeBytes(dtype), hr = static_cast<size_t>(s.heads * rows);
  CB_RETURN_IF_ERROR(q_nope_.Allocate(hr * nope_pad_ * dt, "MLA q_nope rows"));
  CB_RETURN_IF_ERROR(q_lat_.Allocate(hr * s.kv_lora * sizeof(float), "MLA latent queries"));
  CB_RETURN_IF_ERROR(o_lat_.Allocate(hr * lora_pad_ * dt, "MLA latent outputs"));
  CB_RETURN_IF_ERROR(y_.Allocate(hr * s.v * sizeof(float), "MLA head outputs"));
  return scores_.Allocate(static_cast<size_t>(omp_get_max_threads() * per_thread_) * sizeof(float),
                          "MLA scores");
}

uint64_t MlaScratch::AllocatedBytes() const {
  return q_nope_.size() + q_lat_.size() + o_lat_.size() + y_.size() + scores_.size();
}

/// The steps of MlaAttention over one step's rows.
class MlaKernel {
 public:
  MlaKernel(const MlaShape& s, const MlaWeights& w, MatmulRunner& matmul, LatentCache& cache,
            int layer, MlaScratch& scratch, int64_t rows, DType dtype)
      : s_(s),
        w_(w),
        matmul_(matmul),
        cache_(cache),
        layer_(layer),
        sc_(scratch),
        rows_(rows),
        dtype_(dtype) {}

  void Append(const float* kva, const RowPos* row_pos);
  Status LatentQueries(const float* q);
  template <typename TC>
  void Attend(const float* q, const RowPos* row_pos);
  Status Output(View out);

 private:
  /// y_g = x_g . W_g^T for every head g, rows_ rows (bf16: one grouped GEMM).
  Status PerHead(const std::vector<PackedView>& w, const void* x, int64_t ldx, float* y,
                 int64_t y_stride, int64_t ldy);
  template <typename TC, int H>
  void AttendHeads(const float* q, const RowPos& rp, int64_t r, int64_t h0, float* scores);

  const MlaShape& s_;
  const MlaWeights& w_;
  MatmulRunner& matmul_;
  LatentCache& cache_;
  int layer_;
  MlaScratch& sc_;
  int64_t rows_;
  DType dtype_;
};

void MlaKernel::Append(const float* kva, const RowPos* row_pos) {
  const int64_t c_w = s_.kv_lora + s_.rope;
  for (int64_t r = 0; r < rows_; ++r) {
    void* dst = cache_.Row(layer_, row_pos[r].slot, row_pos[r].pos);
    if (cache_.dtype() == DType::kBF16) {
      CopyRow(kva + r * c_w, static_cast<bf16_t*>(dst), c_w);
    } else {
      std::memcpy(dst, kva + r * c_w, c_w * sizeof(float));
    }
  }
}

Status MlaKernel::PerHead(const std::vector<PackedView>& w, const void* x, int64_t ldx, float* y,
                          int64_t y_stride, int64_t ldy) {
  const size_t dt = DTypeBytes(dtype_);
  if (dtype_ == DType::kBF16 && SkinnyGemmBf16Available()) {
    GroupedGemmBf16(w.data(), s_.heads, static_cast<const uint16_t*>(x), rows_ * ldx, ldx, rows_, y,
                    y_stride, ldy);
    return Status::Ok();
  }
  if (dtype_ == DType::kF32) {
    GroupedGemmF32(w.data(), s_.heads, static_cast<const float*>(x), rows_ * ldx, ldx, rows_, y,
                   y_stride, ldy);
    return Status::Ok();
  }
  for (int64_t h = 0; h < s_.heads; ++h) {
    CB_RETURN_IF_ERROR(matmul_.Run(w[h], static_cast<const char*>(x) + h * rows_ * ldx * dt, dtype_,
                                   ldx, rows_, y + h * y_stride, ldy));
  }
  return Status::Ok();
}

Status MlaKernel::LatentQueries(const float* q) {
  const int64_t qk = s_.nope + s_.rope, np = sc_.nope_pad_;
  const size_t dt = DTypeBytes(dtype_);
  char* qn = static_cast<char*>(sc_.q_nope_.data());
  for (int64_t h = 0; h < s_.heads; ++h) {  // q_nope by head, padded with zeros
    for (int64_t r = 0; r < rows_; ++r) {
      char* dst = qn + (h * rows_ + r) * np * dt;
      const float* src = q + r * s_.heads * qk + h * qk;
      if (dtype_ == DType::kBF16) {
        CopyRow(src, reinterpret_cast<bf16_t*>(dst), s_.nope);
      } else {
        std::memcpy(dst, src, s_.nope * sizeof(float));
      }
      std::memset(dst + s_.nope * dt, 0, (np - s_.nope) * dt);
    }
  }
  return PerHead(w_.uk_t_heads, qn, np, sc_.q_lat_.as<float>(), rows_ * s_.kv_lora, s_.kv_lora);
}

/// H heads of row r: scores against positions [0, pos], softmax, o_lat = sum p_t latent_t.
template <typename TC, int H>
void MlaKernel::AttendHeads(const float* q, const RowPos& rp, int64_t r, int64_t h0,
                            float* scores) {
  const int64_t lora = s_.kv_lora, qk = s_.nope + s_.rope, len = rp.pos + 1;
  const int64_t stride = (len + 15) / 16 * 16;
  const float scale = 1.0f / std::sqrt(static_cast<float>(qk));
  const float* q_lat[H];
  const float* q_rope[H];
  for (int i = 0; i < H; ++i) {
    q_lat[i] = sc_.q_lat_.as<float>() + ((h0 + i) * rows_ + r) * lora;
    q_rope[i] = q + r * s_.heads * qk + (h0 + i) * qk + s_.nope;
  }
  for (int64_t t = 0; t < len; ++t) {  // one pass over the cache row serves H heads
    const TC* c = static_cast<const TC*>(cache_.Row(layer_, rp.slot, t));
    __m512 acc[H];
    for (int i = 0; i < H; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t j = 0; j < lora; j += 16) {
      const __mmask16 m = TailMask(lora - j);
      const __m512 cv = Load16(c + j, m);
      for (int i = 0; i < H; ++i) acc[i] = _mm512_fmadd_ps(Load16(q_lat[i] + j, m), cv, acc[i]);
    }
    for (int64_t j = 0; j < s_.rope; j += 16) {
      const __mmask16 m = TailMask(s_.rope - j);
      const __m512 cv = Load16(c + lora + j, m);
      for (int i = 0; i < H; ++i) acc[i] = _mm512_fmadd_ps(Load16(q_rope[i] + j, m), cv, acc[i]);
    }
    for (int i = 0; i < H; ++i) scores[i * stride + t] = _mm512_reduce_add_ps(acc[i]) * scale;
  }
  float inv[H];
  for (int i = 0; i < H; ++i) inv[i] = SoftmaxNumerators(scores + i * stride, len);
  const size_t dt = DTypeBytes(dtype_);
  for (int64_t j = 0; j < lora; j += 16) {
    const __mmask16 m = TailMask(lora - j);
    __m512 acc[H];
    for (int i = 0; i < H; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t t = 0; t < len; ++t) {
      const __m512 cv = Load16(static_cast<const TC*>(cache_.Row(layer_, rp.slot, t)) + j, m);
      for (int i = 0; i < H; ++i) {
        acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(scores[i * stride + t]), cv, acc[i]);
      }
    }
    for (int i = 0; i < H; ++i) {
      char* o = static_cast<char*>(sc_.o_lat_.data()) + ((h0 + i) * rows_ + r) * sc_.lora_pad_ * dt;
      const __m512 v = _mm512_mul_ps(acc[i], _mm512_set1_ps(inv[i]));
      if (dtype_ == DType::kBF16) {
        Store16(reinterpret_cast<bf16_t*>(o) + j, v, m);
      } else {
        Store16(reinterpret_cast<float*>(o) + j, v, m);
      }
    }
  }
}

template <typename TC>
void MlaKernel::Attend(const float* q, const RowPos* row_pos) {
  const int64_t groups = (s_.heads + 3) / 4;
#pragma omp parallel for collapse(2) schedule(dynamic)
  for (int64_t r = 0; r < rows_; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      float* scores = sc_.scores_.as<float>() + omp_get_thread_num() * sc_.per_thread_;
      const int64_t h0 = 4 * g;
      switch (std::min<int64_t>(4, s_.heads - h0)) {
        case 1:
          AttendHeads<TC, 1>(q, row_pos[r], r, h0, scores);
          break;
        case 2:
          AttendHeads<TC, 2>(q, row_pos[r], r, h0, scores);
          break;
        case 3:
          AttendHeads<TC, 3>(q, row_pos[r], r, h0, scores);
          break;
        default:
          AttendHeads<TC, 4>(q, row_pos[r], r, h0, scores);
          break;
      }
    }
  }
}

Status MlaKernel::Output(View out) {
  const int64_t width = s_.heads * s_.v;
  float* y = out.dtype == DType::kF32 ? static_cast<float*>(out.data) : sc_.y_.as<float>();
  CB_RETURN_IF_ERROR(PerHead(w_.uv_heads, sc_.o_lat_.data(), sc_.lora_pad_, y, s_.v, width));
  if (out.dtype == DType::kBF16) CopyRow(y, static_cast<bf16_t*>(out.data), rows_ * width);
  return Status::Ok();
}

Status MlaAttention(const float* q, const float* kva, int64_t rows, const RowPos* row_pos,
                    const MlaShape& shape, const MlaWeights& w, MatmulRunner& matmul,
                    LatentCache& cache, int layer, View out, MlaScratch& scratch) {
  if (rows > scratch.rows()) return Status::Internal("MLA scratch holds fewer rows than the step");
  MlaKernel k(shape, w, matmul, cache, layer, scratch, rows, w.uk_t.dtype);
  // Append first: a row may attend to rows of the same step.
  k.Append(kva, row_pos);
  CB_RETURN_IF_ERROR(k.LatentQueries(q));
  if (cache.dtype() == DType::kBF16) {
    k.Attend<bf16_t>(q, row_pos);
  } else {
    k.Attend<float>(q, row_pos);
  }
  return k.Output(out);
}

}  // namespace cb::cpu
