#include <algorithm>
#include <dnnl.hpp>
#include <string>

#include "backends/cpu/matmul.h"
#include "backends/cpu/quant_gemm.h"
#include "backends/cpu/skinny_gemm.h"

namespace cb::cpu {
namespace {

using dnnl::memory;

/// The source's type: int8 matmuls read u8 activations (codes + 128).
memory::data_type DnnlType(DType t) {
  return t == DType::kBF16   ? memory::data_type::bf16
         : t == DType::kInt8 ? memory::data_type::u8
                             : memory::data_type::f32;
}

/// The output's: int8 accumulates in s32 (dequantised by Int8Epilogue), the others fp32.
memory::data_type DnnlDstType(DType t) {
  return t == DType::kInt8 ? memory::data_type::s32 : memory::data_type::f32;
}

/// oneDNN's descriptor of a packed B = W^T [k, n] (see PackedMatrix): the int8 layout
/// [k_pad / 4][64][4] per n-block is oneDNN's BA16a64b4a.
memory::desc WeightsDesc(const PackedView& w) {
  if (w.dtype == DType::kInt8) {
    return memory::desc({w.k, w.n}, memory::data_type::s8, memory::format_tag::BA16a64b4a);
  }
  return memory::desc(
      {w.k, w.n}, DnnlType(w.dtype),
      w.dtype == DType::kBF16 ? memory::format_tag::BA16a64b2a : memory::format_tag::BA16a64b);
}

/// Rows above which an int8 matmul goes to oneDNN's brgemm (prefill) rather than the GEMV.
constexpr int64_t kInt8OneDnnRows = 8;

/// Most cached primitives; prompt lengths vary, so the cache is cleared when it grows past.
constexpr size_t kMaxPrimitives = 256;

}  // namespace

struct MatmulRunner::OneDnn {
  using Key = std::tuple<int64_t, int64_t, int64_t, int, int64_t, int64_t>;  // M N K dt lda ldc
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::map<Key, dnnl::matmul> cache;
};

MatmulRunner::MatmulRunner() : dnnl_(std::make_unique<OneDnn>()) {}
MatmulRunner::~MatmulRunner() = default;

Status MatmulRunner::CheckLayout(const PackedView& w) const {
  if (w.dtype == DType::kInt8 && !Int8GemmAvailable()) {
    return Status::Unsupported("int8 matmuls need AVX512_VNNI, which this CPU lacks");
  }
  if (w.dtype == DType::kFP8 && !Fp8GemmAvailable()) {
    return Status::Unsupported("fp8 weight-only matmuls need AVX512_BF16, which this CPU lacks");
  }
  if (w.dtype == DType::kFP8) return Status::Ok();
  try {
    const size_t want = WeightsDesc(w).get_size();
    if (want != w.Bytes()) {
      return Status::Internal("packed weights hold " + std::to_string(w.Bytes()) +
                              " bytes, oneDNN expects " + std::to_string(want));
    }
    // A prefill-sized primitive must take the layout as it is (it is the one oneDNN picks
    // for format_tag::any on avx512_core_bf16; another ISA might refuse it): fail at Load.
    const int64_t rows = 2 * kSkinnyMaxRows;
    const memory::desc src({rows, w.k}, DnnlType(w.dtype), memory::format_tag::ab);
    const memory::desc dst({rows, w.n}, DnnlDstType(w.dtype), memory::format_tag::ab);
    dnnl::matmul::primitive_desc(dnnl::matmul::desc(src, WeightsDesc(w), dst), dnnl_->engine);
  } catch (const dnnl::error& e) {
    return Status::Unsupported(std::string("oneDNN rejects the packed weight layout: ") + e.what());
  }
  return Status::Ok();
}

Status MatmulRunner::Reserve(int64_t rows, int64_t k_pad, DType dtype) {
  if (dtype == DType::kInt8) quant_scale_.resize(std::max<size_t>(quant_scale_.size(), rows));
  if (dtype == DType::kFP8) dtype = DType::kBF16;  // staged as bf16
  if (rows * k_pad * static_cast<int64_t>(DTypeBytes(dtype)) <=
      static_cast<int64_t>(staging_.size())) {
    return Status::Ok();
  }
  return staging_.Allocate(static_cast<size_t>(rows * k_pad) * DTypeBytes(dtype),
                           "matmul input staging");
}

Status MatmulRunner::Run(const PackedView& w, const void* x, DType x_dtype, int64_t ldx,
                         int64_t rows, float* y, int64_t ldy) {
  if (rows <= 0) return Status::Ok();
  if (IsQuantized(w.dtype)) return RunQuantized(w, x, x_dtype, ldx, rows, y, ldy);
  if (w.dtype == DType::kF32 && x_dtype == DType::kF32 && rows <= kSkinnyMaxRows &&
      w.k == w.k_pad) {
    // fp32 decode steps (fp32 sessions; the router of int8 sessions): one pass over the
    // weights, below oneDNN's overhead. The kernel reads k_pad values of each row: only where
    // that is k.
    GroupedGemmF32(&w, 1, static_cast<const float*>(x), 0, ldx, rows, y, 0, ldy);
    return Status::Ok();
  }
  const bool skinny = w.dtype == DType::kBF16 && SkinnyGemmWins(rows);
  // Stage the input when its dtype differs from the weights', or when the skinny kernel needs
  // it zero-padded to k_pad.
  if (x_dtype != w.dtype || (skinny && w.k != w.k_pad)) {
    const int64_t need = rows * w.k_pad * static_cast<int64_t>(DTypeBytes(w.dtype));
    if (need > static_cast<int64_t>(staging_.size())) {
      return Status::Internal("matmul staging buffer too small (Reserve at Load)");
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < w.k_pad; ++c) {
        float v = 0;
        if (c < w.k) {
          v = x_dtype == DType::kBF16 ? Bf16ToFloat(static_cast<const uint16_t*>(x)[r * ldx + c])
                                      : static_cast<const float*>(x)[r * ldx + c];
        }
        if (w.dtype == DType::kBF16) {
          staging_.as<uint16_t>()[r * w.k_pad + c] = FloatToBf16(v);
        } else {
          staging_.as<float>()[r * w.k_pad + c] = v;
        }
      }
    }
    x = staging_.data();
    ldx = w.k_pad;
  }
  if (skinny) {
    SkinnyGemmBf16(w, static_cast<const uint16_t*>(x), ldx, rows, y, ldy);
    return Status::Ok();
  }
  return RunOneDnn(w, x, ldx, rows, y, ldy);
}

Status MatmulRunner::RunQuantized(const PackedView& w, const void* x, DType x_dtype, int64_t ldx,
                                  int64_t rows, float* y, int64_t ldy) {
  if (x_dtype != MatmulInputDType(w.dtype)) {
    return Status::Internal("a " + std::string(DTypeName(w.dtype)) + " matmul reads " +
                            std::string(DTypeName(MatmulInputDType(w.dtype))) + " inputs, not " +
                            std::string(DTypeName(x_dtype)));
  }
  const int64_t staged = rows * w.k_pad * (w.dtype == DType::kInt8 ? 1 : 2);
  if (staged > static_cast<int64_t>(staging_.size()) ||
      (w.dtype == DType::kInt8 && rows > static_cast<int64_t>(quant_scale_.size()))) {
    return Status::Internal("matmul staging buffer too small (Reserve at Load)");
  }
  if (w.dtype == DType::kInt8) {
    uint8_t* xu = staging_.as<uint8_t>();
    QuantizeRowsU8(static_cast<const float*>(x), ldx, rows, w.k, w.k_pad, xu, quant_scale_.data());
    if (rows <= kInt8OneDnnRows) {
      Int8Gemm(w, xu, quant_scale_.data(), rows, y, ldy);
      return Status::Ok();
    }
    // Prefill: oneDNN's int8 brgemm on the same packed bytes, int32 sums written into y.
    CB_RETURN_IF_ERROR(RunOneDnn(w, xu, w.k_pad, rows, y, ldy));
    Int8Epilogue(w, quant_scale_.data(), rows, y, ldy);
    return Status::Ok();
  }
  if (w.k != w.k_pad) {  // the kernel reads k_pad values, zero beyond k
    uint16_t* st = staging_.as<uint16_t>();
    for (int64_t r = 0; r < rows; ++r) {
      const uint16_t* xr = static_cast<const uint16_t*>(x) + r * ldx;
      std::copy_n(xr, w.k, st + r * w.k_pad);
      std::fill(st + r * w.k_pad + w.k, st + (r + 1) * w.k_pad, uint16_t{0});
    }
    x = st;
    ldx = w.k_pad;
  }
  Fp8WeightOnlyGemm(w, static_cast<const uint16_t*>(x), ldx, rows, y, ldy);
  return Status::Ok();
}

Status MatmulRunner::RunOneDnn(const PackedView& w, const void* x, int64_t ldx, int64_t rows,
                               float* y, int64_t ldy) {
  try {
    const OneDnn::Key key{rows, w.n, w.k, static_cast<int>(w.dtype), ldx, ldy};
    auto it = dnnl_->cache.find(key);
    if (it == dnnl_->cache.end()) {
      if (dnnl_->cache.size() >= kMaxPrimitives) dnnl_->cache.clear();
      const memory::desc src({rows, w.k}, DnnlType(w.dtype), {ldx, 1});
      const memory::desc dst({rows, w.n}, DnnlDstType(w.dtype), {ldy, 1});
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, WeightsDesc(w), dst),
                                            dnnl_->engine);
      it = dnnl_->cache.emplace(key, dnnl::matmul(pd)).first;
    }
    const memory::desc src({rows, w.k}, DnnlType(w.dtype), {ldx, 1});
    const memory::desc dst({rows, w.n}, DnnlDstType(w.dtype), {ldy, 1});
    memory src_m(src, dnnl_->engine, const_cast<void*>(x));
    memory wei_m(WeightsDesc(w), dnnl_->engine, const_cast<void*>(w.data));
    memory dst_m(dst, dnnl_->engine, y);
    it->second.execute(dnnl_->stream,
                       {{DNNL_ARG_SRC, src_m}, {DNNL_ARG_WEIGHTS, wei_m}, {DNNL_ARG_DST, dst_m}});
    dnnl_->stream.wait();
  } catch (const dnnl::error& e) {
    return Status::Internal(std::string("oneDNN matmul failed: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace cb::cpu
