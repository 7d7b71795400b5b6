#pragma once

#include <cstdint>
#include <vector>

#include "backends/cpu/aligned_buffer.h"
#include "harness/core/dtype.h"
#include "harness/core/status.h"
#include "workloads/op_stream.h"
#include "workloads/weights.h"

namespace cb::cpu {

/// Block sizes of the packed weight layout.
inline constexpr int64_t kPackN = 64;  ///< output columns per block
/// Reduction elements per block: 32 for bf16 (16 pairs), 16 for fp32.
inline constexpr int64_t PackK(DType dtype) { return dtype == DType::kBF16 ? 32 : 16; }

/// The weights of one matmul, W [n, k] (the Linear layout; several stream weights concatenated
/// along n), stored as the matrix B = W^T [k, n] in oneDNN's blocked layout for brgemm:
/// bf16 BA16a64b2a (blocks of 32 k x 64 n: 16 k-pairs x 64 n x 2), fp32 BA16a64b (16 k x 64 n).
/// Blocks are ordered n-block major, so one n-block over all k is one sequential stream: the
/// skinny-GEMM kernel reads it with no horizontal reductions, and oneDNN uses the same bytes
/// with no reorder. n and k are padded with zeros to whole blocks.
struct PackedMatrix {
  DType dtype = DType::kF32;
  int64_t n = 0, k = 0;          ///< logical size of W
  int64_t n_pad = 0, k_pad = 0;  ///< padded to kPackN, PackK(dtype)
  AlignedBuffer data;

  /// Offset, in elements, of W[row, col].
  int64_t Offset(int64_t row, int64_t col) const {
    const int64_t bk = PackK(dtype);
    const int64_t block = ((row / kPackN) * (k_pad / bk) + col / bk) * kPackN * bk;
    const int64_t r = row % kPackN, c = col % bk;
    return dtype == DType::kBF16 ? block + (c / 2) * (kPackN * 2) + r * 2 + (c % 2)
                                 : block + c * kPackN + r;
  }
};

/// Packs the weights `parts` (concatenated along rows; all with the same cols) into `out`,
/// generating them block by block from `source` and rounding to `dtype` as cb::RoundTo does.
/// Never holds more than a few hundred rows in fp32.
Status PackWeights(const std::vector<const WeightDesc*>& parts, const WeightSource& source,
                   DType dtype, PackedMatrix* out);

}  // namespace cb::cpu
