#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <vector>

#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/packed_matrix.h"
#include "harness/core/status.h"

namespace cb::cpu {

/// The dtype a matmul with weights of `w` reads its inputs in: bf16 for fp8 (weight-only),
/// fp32 for int8 (quantised per token from fp32), the weights' dtype otherwise.
inline DType MatmulInputDType(DType w) {
  return w == DType::kFP8 ? DType::kBF16 : w == DType::kInt8 ? DType::kF32 : w;
}

/// Runs y = x . W^T for packed weights: the bf16 skinny-GEMM kernel for the few rows of a
/// decode step or the LM head where it is measured faster (SkinnyGemmWins), oneDNN's matmul
/// otherwise (prefill, fp32); int8 and fp8 weights go to the quantised kernels (quant_gemm.h)
/// for every row count. oneDNN primitives are created once per shape and cached; they
/// read the packed weights in place.
class MatmulRunner {
 public:
  MatmulRunner();
  ~MatmulRunner();

  /// Checks that oneDNN takes `w` in its packed layout as it is.
  Status CheckLayout(const PackedView& w) const;
  /// Allocates the staging buffer for inputs that must be converted to the weights' dtype
  /// (or zero-padded for the skinny kernel): up to `rows` rows of `k_pad` elements.
  Status Reserve(int64_t rows, int64_t k_pad, DType dtype);
  /// y[rows, w.n] (fp32, row stride ldy) = x[rows, w.k] . W^T; x holds `x_dtype` values with
  /// row stride ldx.
  Status Run(const PackedView& w, const void* x, DType x_dtype, int64_t ldx, int64_t rows, float* y,
             int64_t ldy);
  uint64_t AllocatedBytes() const { return staging_.size() + quant_scale_.size() * sizeof(float); }

 private:
  Status RunQuantized(const PackedView& w, const void* x, DType x_dtype, int64_t ldx, int64_t rows,
                      float* y, int64_t ldy);
  struct OneDnn;
  Status RunOneDnn(const PackedView& w, const void* x, int64_t ldx, int64_t rows, float* y,
                   int64_t ldy);

  std::unique_ptr<OneDnn> dnnl_;
  AlignedBuffer staging_;
  std::vector<float> quant_scale_;  ///< int8: the staged rows' scales
};

}  // namespace cb::cpu
