#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "backends/cpu/aligned_buffer.h"
#include "harness/core/dtype.h"
#include "harness/core/status.h"
#include "workloads/op_stream.h"
#include "workloads/weights.h"

namespace cb::cpu {

/// Block sizes of the packed weight layout.
inline constexpr int64_t kPackN = 64;  ///< output columns per block
/// Reduction elements per block: 32 for bf16 (16 pairs), 16 for fp32, 64 for int8 (16 quads),
/// 128 for fp8 (one scale block).
inline constexpr int64_t PackK(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return 32;
    case DType::kInt8:
      return 64;
    case DType::kFP8:
      return 128;
    default:
      return 16;
  }
}
/// Consecutive reduction elements of one row stored together: 2 (bf16, fp8), 4 (int8), 1.
inline constexpr int64_t PackGroup(DType dtype) {
  return dtype == DType::kInt8 ? 4 : dtype == DType::kF32 ? 1 : 2;
}

/// The weights of one matmul, W [n, k] (the Linear layout; several stream weights concatenated
/// along n), stored as the matrix B = W^T [k, n] in oneDNN's blocked layout for brgemm:
/// bf16 BA16a64b2a (blocks of 32 k x 64 n: 16 k-pairs x 64 n x 2), fp32 BA16a64b (16 k x 64 n).
/// Blocks are ordered n-block major, so one n-block over all k is one sequential stream
/// ([k_pad / 2][64][2] in bf16, [k_pad][64] in fp32): the skinny-GEMM kernel reads it with no
/// horizontal reductions, and oneDNN uses the same bytes with no reorder. n and k are padded
/// with zeros to whole blocks.
/// Quantised (quant_matrix.cc): int8 [k_pad / 4][64][4] per n-block with a scale and
/// 128 x sum(row) (the u8 activations' offset) per row; fp8 e4m3 [k_pad / 2][128 bytes: 64
/// rows x 2, interleaved as Fp8StepOffset says] with the
/// scale of each n-block's 128-column blocks (within one 128 x 128 block), [n-block][k_pad / 128].
/// A packed matrix's blocks without their storage: the whole of a PackedMatrix, or a run of its
/// 64-row blocks (one head's rows of a matrix that stacks every head).
struct PackedView {
  DType dtype = DType::kF32;
  int64_t n = 0, k = 0, n_pad = 0, k_pad = 0;
  const void* data = nullptr;
  const float* scales = nullptr;  ///< int8, fp8 (see above)
  const int32_t* comp = nullptr;  ///< int8: 128 x sum of each row's codes
  int64_t BlockElems() const { return kPackN * k_pad; }
  size_t Bytes() const { return static_cast<size_t>(n_pad * k_pad) * DTypeBytes(dtype); }
};

struct PackedMatrix {
  DType dtype = DType::kF32;
  int64_t n = 0, k = 0;          ///< logical size of W
  int64_t n_pad = 0, k_pad = 0;  ///< padded to kPackN, PackK(dtype)
  AlignedBuffer data;
  AlignedBuffer scales, comp;  ///< quantised dtypes only

  /// Offset, in elements, of W[row, col].
  int64_t Offset(int64_t row, int64_t col) const {
    const int64_t bk = PackK(dtype), g = PackGroup(dtype);
    const int64_t block = ((row / kPackN) * (k_pad / bk) + col / bk) * kPackN * bk;
    const int64_t r = row % kPackN, c = col % bk;
    if (dtype == DType::kFP8) return block + (c / 2) * (kPackN * 2) + Fp8StepOffset(r, c % 2);
    return block + (c / g) * (kPackN * g) + r * g + (c % g);
  }
  /// fp8: byte of (row r, k parity p) in a step's 128 bytes. Each 64-byte half holds 32 rows;
  /// its dword j is [row j, p 0 | row j + 16, p 0 | row j, p 1 | row j + 16, p 1], so the low
  /// bytes of its 16-bit words are rows j's k-pairs and the high bytes rows j + 16's: two
  /// shifts give the bf16 pairs of 16 rows each (quant_gemm.cc).
  static int64_t Fp8StepOffset(int64_t r, int64_t p) {
    const int64_t half = r / 32, rr = r % 32;
    return half * 64 + (rr % 16) * 4 + p * 2 + rr / 16;
  }
  /// Elements of one n-block (64 rows over all of k_pad).
  int64_t BlockElems() const { return kPackN * k_pad; }
  /// Rows [row, row + rows) as a matrix of their own; `row` is a multiple of kPackN.
  PackedView View(int64_t row, int64_t rows) const {
    const int64_t pad = (rows + kPackN - 1) / kPackN * kPackN;
    return {dtype, rows,  k,
            pad,   k_pad, static_cast<const char*>(data.data()) + row * k_pad * DTypeBytes(dtype)};
  }
  operator PackedView() const {
    return {dtype, n, k, n_pad, k_pad, data.data(), scales.as<float>(), comp.as<int32_t>()};
  }
};

/// Where row p of a packed matrix comes from: row `row` of the local shard `desc` (element c
/// of the packed row is desc[row][c]), or with `transposed` column `col` of it (element c is
/// desc[row + c][col]); zeros when `desc` is null.
struct RowSource {
  const WeightDesc* desc = nullptr;
  int64_t row = 0;
  bool transposed = false;
  int64_t col = 0;
};
using RowMap = std::function<RowSource(int64_t)>;

/// Generates the matrix of n rows (row p from rows(p)) and k columns straight into the packed
/// layout of `dtype` (fp32 or bf16, rounded as cb::RoundTo does), in parallel over n-blocks,
/// 8 elements at a time; every byte of `out` (padding included) is written once.
Status PackRows(int64_t n, int64_t k, const RowMap& rows, const WeightSource& source, DType dtype,
                PackedMatrix* out);

/// Generates the matrix of n rows (row p from rows(p), never transposed) and k columns
/// quantised in `dtype` (int8 or fp8: the codes and per-tensor scales of workloads/quant.h)
/// straight into the packed layout, with its scales (quant_matrix.cc).
Status PackQuantizedRows(int64_t n, int64_t k, const RowMap& rows, const WeightSource& source,
                         DType dtype, PackedMatrix* out);

/// workloads/quant.h's FloatToFp8 of n values, 8 at a time with AVX-512 (the packer's encoder,
/// exposed for its test).
void EncodeFp8(const float* x, int64_t n, uint8_t* out);

/// Packs the weights `parts` (concatenated along rows; all with the same cols) in `dtype`:
/// PackRows for fp32/bf16, PackQuantizedRows for int8/fp8.
Status PackWeights(const std::vector<const WeightDesc*>& parts, const WeightSource& source,
                   DType dtype, PackedMatrix* out);

/// Rounds the values of a packed fp32 matrix to bf16 in place: the unquantised weights of an
/// int8 session (bf16 values, HighPrecisionOf) for matmuls whose inputs are fp32, so that no
/// input is rounded to bf16 (padding stays zero).
void RoundValuesToBf16(PackedMatrix* m);

/// Generates `desc` row-major in `dtype` into `out` (an embedding table), in parallel.
Status FillPlain(const WeightDesc& desc, const WeightSource& source, DType dtype,
                 AlignedBuffer* out);

}  // namespace cb::cpu
