// The per-expert format (any dtype: each expert's rows gathered, then MatmulRunner: oneDNN,
// or the int8/fp8 kernels of quant_gemm.h), the choice of format, and the combine shared by
// every format and by expert parallelism.

#include "backends/cpu/expert_kernels.h"

#include <algorithm>
#include <cstring>

#include "backends/cpu/kernels.h"
#include "backends/cpu/quant_gemm.h"
#include "backends/cpu/skinny_gemm.h"
#include "backends/cpu/vec_math.h"

namespace cb::cpu {
namespace {

/// Rows handed to oneDNN: above the skinny kernel's reach, padded to a multiple of 16 so it
/// sees few distinct shapes (each is a cached primitive).
int64_t PaddedRows(int64_t rows) { return rows <= kSkinnyMaxRows ? rows : (rows + 15) / 16 * 16; }

class PerExpertKernels final : public ExpertKernels {
 public:
  PerExpertKernels(DType dtype, MatmulRunner* matmul)
      : dtype_(dtype),
        act_dtype_(MatmulInputDType(dtype)),
        y_dtype_(IsQuantized(dtype) ? DType::kF32 : dtype),
        matmul_(matmul) {}
  Status Load(const ExpertShape& shape, const WeightDesc& gate_up, const WeightDesc& down,
              const WeightSource& source);
  Status GateUp(const void* x, int64_t ld_x, const ExpertRows& rows, void* act) override;
  Status DownCombine(const void* act, const ExpertRows& rows, float* out, int64_t ld_out) override;
  Status DownStore(const void* act, const ExpertRows& rows, void* out, int64_t ld_out) override;
  uint64_t AllocatedBytes() const override;

 private:
  /// y_ = the expert's pairs' act rows x W_down^T, rounded to the session dtype.
  Status DownRows(const void* act, const ExpertRows& rows, int64_t e);
  Status Reserve(int64_t rows);

  /// int8: experts with at most kSkinnyMaxRows pairs (every expert of a decode step) run
  /// together, one parallel region per projection (Int8GemmGrouped); larger ones one by one.
  bool Grouped(int64_t pairs) const { return dtype_ == DType::kInt8 && pairs <= kSkinnyMaxRows; }
  /// The grouped experts' matrices of `mats`, their row offsets and the pairs of their rows.
  Status SelectGrouped(const ExpertRows& rows, const std::vector<PackedMatrix>& mats);
  /// Quantises fp32 rows `src(j)` (k values) of the grouped pairs and runs the grouped GEMM
  /// into gy_ (row stride ldy).
  template <typename RowOf>
  void RunGrouped(RowOf src, int64_t k, int64_t ldy);
  Status GateUpGrouped(const void* x, int64_t ld_x, const ExpertRows& rows, void* act);
  Status DownGrouped(const void* act, const ExpertRows& rows);

  DType dtype_;      ///< the weights'
  DType act_dtype_;  ///< inputs and act rows: fp32 for int8, bf16 for fp8
  DType y_dtype_;    ///< results: fp32 for int8 and fp8 (as their dense matmuls give)
  MatmulRunner* matmul_;
  ExpertShape shape_;
  int64_t k_pad_ = 0;
  std::vector<PackedMatrix> gate_up_, down_;  ///< gate rows, then up rows, per expert
  AlignedBuffer x_, gu_, y32_, y_;            ///< one expert's gathered rows and results
  int64_t capacity_ = 0;
  std::vector<PackedView> g_views_;
  std::vector<int64_t> g_offset_, g_pair_;
  AlignedBuffer g_x_, g_y_;  ///< grouped pairs' u8 rows and fp32 results
  std::vector<float> g_scale_;
};

Status PerExpertKernels::Load(const ExpertShape& shape, const WeightDesc& gate_up,
                              const WeightDesc& down, const WeightSource& source) {
  shape_ = shape;
  gate_up_.resize(shape.experts);
  down_.resize(shape.experts);
  for (int64_t e = 0; e < shape.experts; ++e) {
    const RowMap gu = [&](int64_t p) { return RowSource{&gate_up, e * 2 * shape.ffn + p}; };
    const RowMap dn = [&](int64_t p) { return RowSource{&down, e * shape.hidden + p}; };
    if (IsQuantized(dtype_)) {
      CB_RETURN_IF_ERROR(
          PackQuantizedRows(2 * shape.ffn, shape.hidden, gu, source, dtype_, &gate_up_[e]));
      CB_RETURN_IF_ERROR(PackQuantizedRows(shape.hidden, shape.ffn, dn, source, dtype_, &down_[e]));
    } else {
      CB_RETURN_IF_ERROR(PackRows(2 * shape.ffn, shape.hidden, gu, source, dtype_, &gate_up_[e]));
      CB_RETURN_IF_ERROR(PackRows(shape.hidden, shape.ffn, dn, source, dtype_, &down_[e]));
    }
  }
  CB_RETURN_IF_ERROR(matmul_->CheckLayout(gate_up_[0]));
  CB_RETURN_IF_ERROR(matmul_->CheckLayout(down_[0]));
  k_pad_ = gate_up_[0].k_pad;
  return Reserve(16);
}

Status PerExpertKernels::Reserve(int64_t rows) {
  if (rows <= capacity_) return Status::Ok();
  capacity_ = PaddedRows(rows);
  const size_t dt = DTypeBytes(act_dtype_);
  const int64_t width = std::max(k_pad_, shape_.FfnPad());
  CB_RETURN_IF_ERROR(matmul_->Reserve(std::max(capacity_, kSkinnyMaxRows),
                                      std::max(k_pad_, down_[0].k_pad), dtype_));
  CB_RETURN_IF_ERROR(x_.Allocate(capacity_ * width * dt, "expert input rows"));
  CB_RETURN_IF_ERROR(gu_.Allocate(capacity_ * 2 * shape_.ffn * sizeof(float), "expert gate/up"));
  CB_RETURN_IF_ERROR(y32_.Allocate(capacity_ * shape_.hidden * sizeof(float), "expert results"));
  return y_.Allocate(capacity_ * shape_.hidden * DTypeBytes(y_dtype_), "expert output rows");
}

uint64_t PerExpertKernels::AllocatedBytes() const {
  uint64_t bytes = x_.size() + gu_.size() + y32_.size() + y_.size() + g_x_.size() + g_y_.size();
  for (const auto& m : gate_up_) bytes += m.data.size() + m.scales.size() + m.comp.size();
  for (const auto& m : down_) bytes += m.data.size() + m.scales.size() + m.comp.size();
  return bytes;
}

Status PerExpertKernels::SelectGrouped(const ExpertRows& rows,
                                       const std::vector<PackedMatrix>& mats) {
  g_views_.clear();
  g_pair_.clear();
  g_offset_.assign(1, 0);
  for (int64_t e = 0; e < rows.experts; ++e) {
    const int64_t begin = rows.offset[e], n = rows.offset[e + 1] - begin;
    if (n == 0 || !Grouped(n)) continue;
    g_views_.push_back(mats[e]);
    for (int64_t i = begin; i < begin + n; ++i) g_pair_.push_back(i);
    g_offset_.push_back(static_cast<int64_t>(g_pair_.size()));
  }
  const size_t pairs = g_pair_.size();
  const int64_t width = std::max(k_pad_, down_[0].k_pad);
  const int64_t out = std::max(2 * shape_.ffn, shape_.hidden);
  if (g_scale_.size() < pairs) g_scale_.resize(pairs);
  if (g_x_.size() < pairs * width) CB_RETURN_IF_ERROR(g_x_.Allocate(pairs * width, "expert rows"));
  if (g_y_.size() < pairs * out * sizeof(float)) {
    CB_RETURN_IF_ERROR(g_y_.Allocate(pairs * out * sizeof(float), "expert results"));
  }
  return Status::Ok();
}

template <typename RowOf>
void PerExpertKernels::RunGrouped(RowOf src, int64_t k, int64_t ldy) {
  const int64_t k_pad = g_views_[0].k_pad;
  const int64_t pairs = static_cast<int64_t>(g_pair_.size());
#pragma omp parallel for schedule(static) if (pairs > kSkinnyMaxRows)
  for (int64_t j = 0; j < pairs; ++j) {
    QuantizeRowsU8(src(j), k, 1, k, k_pad, g_x_.as<uint8_t>() + j * k_pad, &g_scale_[j]);
  }
  Int8GemmGrouped(g_views_.data(), static_cast<int64_t>(g_views_.size()), g_offset_.data(),
                  g_x_.as<uint8_t>(), g_scale_.data(), g_y_.as<float>(), ldy);
}

Status PerExpertKernels::GateUpGrouped(const void* x, int64_t ld_x, const ExpertRows& rows,
                                       void* act) {
  CB_RETURN_IF_ERROR(SelectGrouped(rows, gate_up_));
  if (g_pair_.empty()) return Status::Ok();
  const int64_t f = shape_.ffn, f_pad = shape_.FfnPad();
  const float* xf = static_cast<const float*>(x);
  RunGrouped([&](size_t j) { return xf + rows.row[g_pair_[j]] * ld_x; }, shape_.hidden, 2 * f);
  const int64_t pairs = static_cast<int64_t>(g_pair_.size());
#pragma omp parallel for schedule(static) if (pairs > kSkinnyMaxRows)
  for (int64_t j = 0; j < pairs; ++j) {
    float* a = static_cast<float*>(act) + g_pair_[j] * f_pad;
    SwiGlu(g_y_.as<float>() + j * 2 * f, {a, DType::kF32}, 1, f);
    std::fill(a + f, a + f_pad, 0.0f);
  }
  return Status::Ok();
}

Status PerExpertKernels::DownGrouped(const void* act, const ExpertRows& rows) {
  CB_RETURN_IF_ERROR(SelectGrouped(rows, down_));
  if (g_pair_.empty()) return Status::Ok();
  const float* a = static_cast<const float*>(act);
  const int64_t f_pad = shape_.FfnPad();
  RunGrouped([&](size_t j) { return a + g_pair_[j] * f_pad; }, shape_.ffn, shape_.hidden);
  return Status::Ok();
}

Status PerExpertKernels::GateUp(const void* x, int64_t ld_x, const ExpertRows& rows, void* act) {
  const size_t dt = DTypeBytes(act_dtype_);
  const int64_t f = shape_.ffn, f_pad = shape_.FfnPad();
  if (dtype_ == DType::kInt8) CB_RETURN_IF_ERROR(GateUpGrouped(x, ld_x, rows, act));
  for (int64_t e = 0; e < rows.experts; ++e) {
    const int64_t begin = rows.offset[e], n = rows.offset[e + 1] - begin;
    if (n == 0 || Grouped(n)) continue;
    CB_RETURN_IF_ERROR(Reserve(n));
    const int64_t padded = PaddedRows(n);
    char* xe = static_cast<char*>(x_.data());
    for (int64_t r = 0; r < padded; ++r) {  // gathered rows, zero beyond hidden and n
      char* dst = xe + r * k_pad_ * dt;
      std::memset(dst, 0, k_pad_ * dt);
      if (r < n) {
        std::memcpy(dst, static_cast<const char*>(x) + rows.row[begin + r] * ld_x * dt,
                    shape_.hidden * dt);
      }
    }
    CB_RETURN_IF_ERROR(
        matmul_->Run(gate_up_[e], xe, act_dtype_, k_pad_, padded, gu_.as<float>(), 2 * f));
    char* a = static_cast<char*>(act) + begin * f_pad * dt;
    for (int64_t r = 0; r < n; ++r) std::memset(a + (r * f_pad + f) * dt, 0, (f_pad - f) * dt);
    // SwiGLU row by row into the act rows (stride f_pad).
    for (int64_t r = 0; r < n; ++r) {
      SwiGlu(gu_.as<float>() + r * 2 * f, {a + r * f_pad * dt, act_dtype_}, 1, f);
    }
  }
  return Status::Ok();
}

Status PerExpertKernels::DownRows(const void* act, const ExpertRows& rows, int64_t e) {
  const size_t dt = DTypeBytes(act_dtype_);
  const int64_t begin = rows.offset[e], n = rows.offset[e + 1] - begin, f_pad = shape_.FfnPad();
  CB_RETURN_IF_ERROR(Reserve(n));
  const int64_t padded = PaddedRows(n);
  // act rows are contiguous per expert; oneDNN may read `padded` rows, so pad through x_.
  const char* a = static_cast<const char*>(act) + begin * f_pad * dt;
  const void* in = a;
  if (padded != n) {
    std::memset(x_.data(), 0, padded * f_pad * dt);
    std::memcpy(x_.data(), a, n * f_pad * dt);
    in = x_.data();
  }
  CB_RETURN_IF_ERROR(
      matmul_->Run(down_[e], in, act_dtype_, f_pad, padded, y32_.as<float>(), shape_.hidden));
  for (int64_t r = 0; r < n; ++r) {
    const float* src = y32_.as<float>() + r * shape_.hidden;
    if (y_dtype_ == DType::kBF16) {
      CopyRow(src, y_.as<bf16_t>() + r * shape_.hidden, shape_.hidden);
    } else {
      std::memcpy(y_.as<float>() + r * shape_.hidden, src, shape_.hidden * sizeof(float));
    }
  }
  return Status::Ok();
}

Status PerExpertKernels::DownCombine(const void* act, const ExpertRows& rows, float* out,
                                     int64_t ld_out) {
  if (dtype_ == DType::kInt8) CB_RETURN_IF_ERROR(DownGrouped(act, rows));
  int64_t grouped = 0;  // the next grouped pair's row in g_y_
  for (int64_t e = 0; e < rows.experts; ++e) {
    const int64_t begin = rows.offset[e], n = rows.offset[e + 1] - begin;
    if (n == 0) continue;
    const void* y = g_y_.as<float>() + grouped * shape_.hidden;
    if (Grouped(n)) {
      grouped += n;
    } else {
      CB_RETURN_IF_ERROR(DownRows(act, rows, e));
      y = y_.data();
    }
    CombineRows(y, y_dtype_, shape_.hidden, rows.row + begin, rows.weight + begin, n, shape_.hidden,
                out, ld_out);
  }
  return Status::Ok();
}

Status PerExpertKernels::DownStore(const void* act, const ExpertRows& rows, void* out,
                                   int64_t ld_out) {
  const size_t dt = DTypeBytes(y_dtype_);
  if (dtype_ == DType::kInt8) CB_RETURN_IF_ERROR(DownGrouped(act, rows));
  int64_t grouped = 0;
  for (int64_t e = 0; e < rows.experts; ++e) {
    const int64_t begin = rows.offset[e], n = rows.offset[e + 1] - begin;
    if (n == 0) continue;
    const char* y = g_y_.as<char>() + grouped * shape_.hidden * dt;
    if (Grouped(n)) {
      grouped += n;
    } else {
      CB_RETURN_IF_ERROR(DownRows(act, rows, e));
      y = static_cast<const char*>(y_.data());
    }
    for (int64_t r = 0; r < n; ++r) {
      std::memcpy(static_cast<char*>(out) + rows.row[begin + r] * ld_out * dt,
                  y + r * shape_.hidden * dt, shape_.hidden * dt);
    }
  }
  return Status::Ok();
}

template <typename TY>
void CombineRowsT(const TY* y, int64_t ld_y, const int32_t* row, const float* weight, int64_t pairs,
                  int64_t hidden, float* out, int64_t ld_out) {
#pragma omp parallel for schedule(static) if (pairs * hidden >= (1 << 16))
  for (int64_t c = 0; c < hidden; c += 16) {  // columns: a row's pairs stay in order
    const __mmask16 m = TailMask(hidden - c);
    for (int64_t i = 0; i < pairs; ++i) {
      float* o = out + row[i] * ld_out + c;
      const __m512 v = Load16(y + i * ld_y + c, m);
      Store16(o, _mm512_fmadd_ps(_mm512_set1_ps(weight[i]), v, Load16(o, m)), m);
    }
  }
}

}  // namespace

void CombineRows(const void* y, DType dtype, int64_t ld_y, const int32_t* row, const float* weight,
                 int64_t pairs, int64_t hidden, float* out, int64_t ld_out) {
  if (dtype == DType::kBF16) {
    CombineRowsT(static_cast<const bf16_t*>(y), ld_y, row, weight, pairs, hidden, out, ld_out);
  } else {
    CombineRowsT(static_cast<const float*>(y), ld_y, row, weight, pairs, hidden, out, ld_out);
  }
}

Status MakeOneDnnExpertKernels(DType dtype, const ExpertShape& shape, const WeightDesc& gate_up,
                               const WeightDesc& down, const WeightSource& source,
                               MatmulRunner* matmul, std::unique_ptr<ExpertKernels>* out) {
  auto k = std::make_unique<PerExpertKernels>(dtype, matmul);
  CB_RETURN_IF_ERROR(k->Load(shape, gate_up, down, source));
  *out = std::move(k);
  return Status::Ok();
}

Status MakeExpertKernels(DType dtype, const ExpertShape& shape, const WeightDesc& gate_up,
                         const WeightDesc& down, const WeightSource& source, MatmulRunner* matmul,
                         std::unique_ptr<ExpertKernels>* out) {
  if (dtype == DType::kBF16 && SkinnyGemmBf16Available()) {
    return MakeBf16ExpertKernels(shape, gate_up, down, source, out);
  }
  return MakeOneDnnExpertKernels(dtype, shape, gate_up, down, source, matmul, out);
}

}  // namespace cb::cpu
