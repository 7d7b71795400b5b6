#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "harness/core/dtype.h"
#include "harness/core/status.h"

namespace cb {

/// What MatmulKernel::Create builds.
struct MatmulConfig {
  DType dtype = DType::kF32;
  int64_t m = 0, n = 0, k = 0;
  /// Identical copies of the weights that Run() cycles through, so that weights come from
  /// DRAM as in a real decode step (where every layer's weights are read once) rather than
  /// from a cache that holds one small matrix. 1 = a single, cache-hot copy.
  int weight_copies = 1;
  /// Optional fp32 values, rounded to `dtype`: src is M*K, weights K*N, both row-major.
  /// Empty: a deterministic pattern in [-1, 1).
  std::vector<float> src, weights;
};

/// dst[M,N] = src[M,K] x weights[K,N] with oneDNN, src/weights/dst all of one dtype; int8:
/// u8 src x s8 weights -> s32 dst (AVX512_VNNI), the operands of a W8A8 matmul.
/// The primitive is created once; weights are reordered once into the blocked layout the
/// primitive prefers (format_tag::any), so Run() times only the matmul itself.
class MatmulKernel {
 public:
  /// True where oneDNN has a native kernel for `dtype` on this CPU (fp32 always; bf16 from
  /// avx512_core_bf16 up, so emulated bf16 is never mistaken for a ceiling; int8 from
  /// avx512_core_vnni up).
  static bool Supported(DType dtype);

  /// Creates the primitive and its buffers.
  static Status Create(const MatmulConfig& config, std::unique_ptr<MatmulKernel>* out);

  /// Copies needed so that the weights of one (M, N, K, dtype) matmul span `footprint_bytes`.
  static int CopiesForFootprint(DType dtype, int64_t n, int64_t k, double footprint_bytes,
                                int max_copies);

  ~MatmulKernel();
  MatmulKernel(const MatmulKernel&) = delete;
  MatmulKernel& operator=(const MatmulKernel&) = delete;

  /// Executes the matmul once (with the next weight copy) and waits for it.
  void Run();

  /// The dst of the last Run() as fp32, row-major M*N.
  std::vector<float> Output() const;

  /// oneDNN's implementation name, e.g. "brg:avx512_core_bf16".
  const std::string& impl() const { return impl_; }
  int weight_copies() const { return weight_copies_; }

  /// 2*M*N*K.
  double Flops() const { return 2.0 * static_cast<double>(m_) * n_ * k_; }
  /// Compulsory traffic of one Run(): src + weights + dst, in bytes.
  double Bytes() const;

 private:
  struct State;
  MatmulKernel() = default;

  DType dtype_ = DType::kF32;
  int64_t m_ = 0, n_ = 0, k_ = 0;
  int weight_copies_ = 1;
  std::string impl_;
  std::unique_ptr<State> state_;
};

}  // namespace cb
