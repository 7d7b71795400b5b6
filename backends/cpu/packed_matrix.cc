#include "backends/cpu/packed_matrix.h"

#include <algorithm>
#include <string>

namespace cb::cpu {
namespace {

/// Rows generated in fp32 at a time: 4 blocks of kPackN.
constexpr int64_t kChunkRows = 4 * kPackN;

int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

}  // namespace

Status PackWeights(const std::vector<const WeightDesc*>& parts, const WeightSource& source,
                   DType dtype, PackedMatrix* out) {
  if (parts.empty()) return Status::InvalidInput("a matmul needs at least one weight");
  if (dtype != DType::kF32 && dtype != DType::kBF16) {
    return Status::Unsupported("packed weights are fp32 or bf16");
  }
  const int64_t k = parts[0]->cols;
  int64_t n = 0;
  for (const WeightDesc* p : parts) {
    if (p->cols != k) {
      return Status::InvalidInput("weights of one matmul differ in width: " + p->name + " has " +
                                  std::to_string(p->cols) + " columns, expected " +
                                  std::to_string(k));
    }
    n += p->rows;
  }
  out->dtype = dtype;
  out->n = n;
  out->k = k;
  out->n_pad = RoundUp(n, kPackN);
  out->k_pad = RoundUp(k, PackK(dtype));
  const size_t bytes = static_cast<size_t>(out->n_pad * out->k_pad) * DTypeBytes(dtype);
  CB_RETURN_IF_ERROR(out->data.Allocate(bytes, parts[0]->name.c_str()));

  std::vector<float> tmp(static_cast<size_t>(kChunkRows * k));
  const int64_t bk = PackK(dtype), k_blocks = out->k_pad / bk;
  for (int64_t r0 = 0; r0 < n; r0 += kChunkRows) {
    const int64_t rows = std::min(kChunkRows, n - r0);
    // Generate rows [r0, r0 + rows) of the concatenation, part by part.
    int64_t part_begin = 0;
    for (const WeightDesc* p : parts) {
      const int64_t lo = std::max(r0, part_begin), hi = std::min(r0 + rows, part_begin + p->rows);
      if (lo < hi) source.FillRows(*p, lo - part_begin, hi - lo, tmp.data() + (lo - r0) * k);
      part_begin += p->rows;
    }
    // Scatter into the blocks; padding stays zero from the allocation.
    const int64_t n_blocks = (rows + kPackN - 1) / kPackN;
#pragma omp parallel for collapse(2) schedule(static)
    for (int64_t nb = 0; nb < n_blocks; ++nb) {
      for (int64_t kb = 0; kb < k_blocks; ++kb) {
        const int64_t row_end = std::min<int64_t>(rows, (nb + 1) * kPackN);
        const int64_t col_end = std::min<int64_t>(k, (kb + 1) * bk);
        for (int64_t r = nb * kPackN; r < row_end; ++r) {
          const float* src = tmp.data() + r * k;
          for (int64_t c = kb * bk; c < col_end; ++c) {
            const int64_t off = out->Offset(r0 + r, c);
            if (dtype == DType::kBF16) {
              out->data.as<uint16_t>()[off] = FloatToBf16(src[c]);
            } else {
              out->data.as<float>()[off] = src[c];
            }
          }
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace cb::cpu
