#pragma once

// Launchers of the int8 / fp8 activation quantisers and the dequantising epilogue
// (quant_kernels.cu) that the quantised GEMMs (quant_gemm.h) run around cuBLASLt. Plain C++
// declarations; every launcher enqueues on `stream` and returns the launch error. The codes
// are those of workloads/quant.h, bit for bit (quant_codes.h).

#include <cuda_runtime.h>

#include <cstdint>

#include "harness/core/dtype.h"

namespace cb::cuda {

/// Activations to quantise: rows [0, rows) of x (x_ld elements apart, k values each, in
/// x_type: fp32, bf16 or fp16) into codes q [rows_pad, k_pad] (bytes, row-major) and scales.
/// Columns [k, k_pad) and rows [rows, rows_pad) get code 0; padding rows get scale 1. The
/// zeros add nothing to a GEMM, so k_pad and rows_pad may be rounded up to what cuBLASLt needs.
struct QuantizeArgs {
  const void* x = nullptr;
  DType x_type = DType::kF32;
  int64_t x_ld = 0;
  int64_t rows = 0, rows_pad = 0;
  int64_t k = 0, k_pad = 0;
  uint8_t* q = nullptr;
  /// int8: [rows_pad], one per token. fp8: [groups][rows_pad], groups = ceil(k / 128): the
  /// scale of token r's group g at g * rows_pad + r (cuBLASLt's VEC128_32F layout for B).
  float* scales = nullptr;
};

/// Per-token int8: scale = max|x_r| / 127 (1 for an all-zero row), q = clamp(rne(x / scale),
/// -127, 127) as int8 bytes (workloads/quant.h QuantizeRowsInt8).
cudaError_t LaunchQuantizeInt8(const QuantizeArgs& args, cudaStream_t stream);

/// Per-token-group (1 x 128) e4m3: scale = max|x_g| / 448 (1 for an all-zero group), q = the
/// e4m3 byte of x / scale, saturating (workloads/quant.h QuantizeFp8).
cudaError_t LaunchQuantizeFp8(const QuantizeArgs& args, cudaStream_t stream);

/// y[r, c] (fp32) = (accumulate ? y[r, c] : 0) + acc[r, c] x sx(r) x sw(c) for r < rows,
/// c < n, where acc is the GEMM's raw product (int32 or fp32, acc_ld apart), sx(r) =
/// sx[sx_offset + r] (1 when sx is null) and sw(c) = sw[(c / sw_block) * sw_stride +
/// sw_offset] (1 when sw is null). Int8: sx per token, sw per output channel (block 1,
/// stride 1). An fp8 K-slice g: sx = token scales of group g, sw = the 128 x 128 block scales
/// of slice g (block 128, stride = the layout's column stride, offset g).
struct EpilogueArgs {
  const void* acc = nullptr;
  bool acc_int32 = false;
  int64_t acc_ld = 0;
  const float* sx = nullptr;
  int64_t sx_offset = 0;
  const float* sw = nullptr;
  int64_t sw_block = 1, sw_stride = 1, sw_offset = 0;
  float* y = nullptr;
  int64_t y_ld = 0;
  int64_t rows = 0, n = 0;
  bool accumulate = false;
};
cudaError_t LaunchQuantEpilogue(const EpilogueArgs& args, cudaStream_t stream);

}  // namespace cb::cuda
