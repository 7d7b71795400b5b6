#pragma once

// The int8 and fp8 GEMMs of the cuda backend on cuBLASLt, y = x W^T in fp32 with the formats of
// workloads/quant.h (docs/workloads.md has the table):
//  - int8 (W8A8): x quantised per token (LaunchQuantizeInt8), an IMMA GEMM (CUDA_R_8I x
//    CUDA_R_8I -> CUDA_R_32I, CUBLAS_COMPUTE_32I), then the epilogue y = acc x s_x[m] x s_w[n]
//    in fp32 (LaunchQuantEpilogue): cuBLASLt has no int32-accumulating kernel with an fp32
//    per-row x per-column dequantisation.
//  - fp8 (e4m3, weights in 128 x 128 blocks, activations in 1 x 128 groups): x quantised per
//    token group (LaunchQuantizeFp8), then one of two paths (Fp8Path):
//      kBlockScaled: one cuBLASLt call with CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F on W and
//        VEC128_32F on x (cuBLAS 12.9+, and cuBLAS documents it for compute capability 9.0
//        only), fp32 out;
//      kSliced: correct first, slow: K in 128-column slices, each an fp8 GEMM with unit
//        tensor-wide scales (sm_89+) into an fp32 scratch, then the epilogue adds it to y
//        times the slice's token-group and weight-block scales. 2 x ceil(k / 128) launches.
//    kAuto takes kBlockScaled where cuBLASLt offers an algorithm for it, else kSliced.
// Nothing here has run on a GPU yet (the machine it was written on has none): the tests in
// tests/gpu/gpu_quant_test.cc check it against the reference's math where one is found.
// Shapes: k is padded to a multiple of 16 (zero codes), n to 16 and the token count to 4
// (cuBLASLt's alignment rules for 8-bit types and for VEC128 scales); y is written unpadded.

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "harness/core/dtype.h"
#include "harness/core/status.h"
#include "workloads/op_stream.h"
#include "workloads/weights.h"

namespace cb::cuda {

struct EpilogueArgs;  // quant_kernels.h

inline constexpr int64_t kQuantKAlign = 16;   ///< k_pad: 16-byte rows for 8-bit tensor cores
inline constexpr int64_t kQuantNAlign = 16;   ///< n_pad
inline constexpr int64_t kQuantRowAlign = 4;  ///< token rows: VEC128 scales need N % 4 == 0
inline constexpr int64_t kQuantBlock = 128;   ///< = workloads/quant.h kFp8Block

inline int64_t QuantRoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/// One matmul's quantised weights on the host (quant_weights.cc): the rows of `parts` stacked ([n,
/// k]) as codes [n_pad, k_pad] (row-major, zero padding) and their scales.
struct QuantHostWeights {
  DType dtype = DType::kInt8;
  int64_t n = 0, k = 0, n_pad = 0, k_pad = 0;
  /// fp8: the column stride of the block scales, ceil(k / 128) rounded up to 4.
  int64_t scale_ld = 0;
  std::vector<uint8_t> codes;
  /// int8: [n_pad], per output channel (0 for padding rows). fp8: cuBLASLt's BLK128x128_32F
  /// layout, K-major: block (row block p, column block b) at p * scale_ld + b, ceil(n / 128)
  /// row blocks (0 beyond the blocks of k).
  std::vector<float> scales;
};

/// Codes from QuantizedWeightRows and scales from WeightQuantScale (workloads/quant.h) of the
/// rows of `parts` in order. fp8: parts of different scales must not share a block of 128
/// rows (Unsupported otherwise, naming them).
Status PackQuantWeights(const std::vector<const WeightDesc*>& parts, const WeightSource& source,
                        DType dtype, QuantHostWeights* out);

/// The same weights on the device (memory from the DeviceAlloc the upload was given).
struct QuantWeights {
  DType dtype = DType::kInt8;
  int64_t n = 0, k = 0, n_pad = 0, k_pad = 0, scale_ld = 0;
  const uint8_t* codes = nullptr;
  const float* scales = nullptr;
};

/// Allocates `bytes` of device memory for `what` into *p (the session's Alloc, or cudaMalloc).
using DeviceAlloc = std::function<Status(void** p, uint64_t bytes, const std::string& what)>;

/// Copies `host` to memory from `alloc` on `stream` (the host copy may go once this returns).
Status UploadQuantWeights(const QuantHostWeights& host, const DeviceAlloc& alloc,
                          cudaStream_t stream, QuantWeights* out);

enum class Fp8Path { kAuto, kBlockScaled, kSliced };
const char* Fp8PathName(Fp8Path p);

/// Whether a GPU of compute capability major.minor has the tensor cores of `dtype`'s GEMM
/// (int8: sm_80+ as the backend requires; fp8: e4m3 on sm_89+), else *why.
bool QuantGemmSupported(DType dtype, int major, int minor, std::string* why);

/// Whether kBlockScaled may be asked for: built against cuBLAS 12.9+ (the scale modes), run
/// with cuBLASLt 12.9+, on compute capability 9.0. cuBLASLt may still offer no algorithm.
bool Fp8BlockScalingAvailable(int major, int minor);

/// One GEMM: y[rows, n] (fp32, y_ld apart) = or += x[rows, k] W^T, x in fp32, bf16 or fp16.
struct QuantGemmArgs {
  const QuantWeights* w = nullptr;
  const void* x = nullptr;
  DType x_type = DType::kF32;
  int64_t x_ld = 0, rows = 0;
  float* y = nullptr;
  int64_t y_ld = 0;
  bool accumulate = false;  ///< y += the product (a fused residual add)
};

/// The cuBLASLt handle, the scratch (quantised activations, their scales, the raw product) and
/// the workspace of quantised GEMMs up to the sizes given to Init; Run allocates nothing.
class QuantGemm {
 public:
  QuantGemm() = default;
  ~QuantGemm();
  QuantGemm(const QuantGemm&) = delete;
  QuantGemm& operator=(const QuantGemm&) = delete;

  /// On the current device: the handle, and scratch for up to max_rows tokens, max_n output
  /// columns and max_k input columns.
  Status Init(int64_t max_rows, int64_t max_n, int64_t max_k);
  void set_fp8_path(Fp8Path p) { fp8_path_ = p; }
  /// Quantises x, multiplies, dequantises into y, all enqueued on `stream`.
  Status Run(const QuantGemmArgs& a, cudaStream_t stream);
  /// The path the last fp8 Run took (kBlockScaled or kSliced; kAuto before one).
  Fp8Path last_fp8_path() const { return last_fp8_path_; }
  uint64_t bytes() const { return bytes_; }
  /// The last Run's quantised activations: codes [rows_pad, k_pad] and scales (quant_kernels.h
  /// QuantizeArgs says the layouts), rows_pad = rows rounded up to kQuantRowAlign.
  const uint8_t* act_codes() const { return act_; }
  const float* act_scales() const { return act_scales_; }

 private:
  struct Algo {
    bool ok = false;
    cublasLtMatmulAlgo_t algo{};
  };
  struct LtCall;
  Status RunInt8(const QuantGemmArgs& a, int64_t rows_pad, cudaStream_t stream);
  Status RunFp8Blocked(const QuantGemmArgs& a, int64_t rows_pad, bool* unsupported,
                       cudaStream_t stream);
  Status RunFp8Sliced(const QuantGemmArgs& a, int64_t rows_pad, cudaStream_t stream);
  Status Matmul(const LtCall& c, bool* unsupported, cudaStream_t stream);
  LtCall WeightsByActivations(const QuantWeights& w, int64_t rows_pad, const char* what) const;
  EpilogueArgs EpilogueInto(const QuantGemmArgs& a) const;
  Status Malloc(void** p, uint64_t bytes);
  void Free();

  cublasLtHandle_t lt_ = nullptr;
  int major_ = 0, minor_ = 0;
  int64_t max_rows_ = 0, max_rows_pad_ = 0, max_n_pad_ = 0, max_k_pad_ = 0;
  uint8_t* act_ = nullptr;
  float* act_scales_ = nullptr;
  void* product_ = nullptr;  ///< int32 or fp32 [rows_pad, n_pad]
  void* workspace_ = nullptr;
  uint64_t workspace_bytes_ = 0, bytes_ = 0;
  std::vector<void*> allocs_;
  Fp8Path fp8_path_ = Fp8Path::kAuto;
  Fp8Path last_fp8_path_ = Fp8Path::kAuto;
  std::map<std::string, Algo> algos_;  ///< cuBLASLt's choice by call shape
};

}  // namespace cb::cuda
