// Quantised weights straight into the packed layout (packed_matrix.h): the codes of
// workloads/quant.h, so every backend and shard sees the same numbers.
#include <algorithm>
#include <string>

#include "backends/cpu/packed_matrix.h"
#include "workloads/quant.h"

namespace cb::cpu {
namespace {

int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/// One n-block: the codes of its rows (zeros for padding) scattered into the layout, and the
/// rows' scales (and int8 offsets).
Status PackQuantBlock(const RowMap& rows, const WeightSource& source, PackedMatrix* out, int64_t nb,
                      std::vector<uint8_t>* row) {
  const DType dt = out->dtype;
  const int64_t k_pad = out->k_pad, groups = k_pad / kFp8Block;
  uint8_t* block = out->data.as<uint8_t>() + nb * out->BlockElems();
  row->resize(static_cast<size_t>(out->k));
  const WeightDesc* first = nullptr;
  for (int64_t r = 0; r < kPackN; ++r) {
    const int64_t p = nb * kPackN + r;
    float scale = 0;
    int32_t sum = 0;
    std::fill(row->begin(), row->end(), 0);
    const RowSource src = p < out->n ? rows(p) : RowSource{};
    if (src.desc != nullptr) {
      if (src.transposed) return Status::Unsupported("quantised weights are packed by rows");
      QuantizedWeightRows(*src.desc, source, dt, src.row, 1, row->data());
      scale = WeightQuantScale(*src.desc, dt);
      if (first == nullptr) first = src.desc;
    }
    for (int64_t c = 0; c < k_pad; ++c) {
      const uint8_t q = c < out->k ? (*row)[c] : 0;
      block[out->Offset(r, c)] = q;
      sum += static_cast<int8_t>(q);
    }
    if (dt == DType::kInt8) {
      out->scales.as<float>()[p] = scale;
      out->comp.as<int32_t>()[p] = 128 * sum;
    } else if (p < out->n) {  // one scale per 64 rows x 128 columns (inside a 128 x 128 block)
      float* s = out->scales.as<float>() + nb * groups;
      if (r > 0 && s[0] != scale) {
        return Status::Unsupported("fp8 weights of different scales share a block of 64 rows (" +
                                   first->name + ")");
      }
      std::fill(s, s + groups, scale);
    }
  }
  return Status::Ok();
}

}  // namespace

Status PackQuantizedRows(int64_t n, int64_t k, const RowMap& rows, const WeightSource& source,
                         DType dtype, PackedMatrix* out) {
  if (!IsQuantized(dtype)) return Status::InvalidInput("PackQuantizedRows takes int8 or fp8");
  if (n <= 0 || k <= 0) return Status::InvalidInput("a packed matrix needs rows and columns");
  out->dtype = dtype;
  out->n = n;
  out->k = k;
  out->n_pad = RoundUp(n, kPackN);
  out->k_pad = RoundUp(k, PackK(dtype));
  const RowSource first = rows(0);
  const char* what = first.desc != nullptr ? first.desc->name.c_str() : "quantised weights";
  CB_RETURN_IF_ERROR(
      out->data.AllocateUninitialized(static_cast<size_t>(out->n_pad * out->k_pad), what));
  const int64_t scales =
      dtype == DType::kInt8 ? out->n_pad : out->n_pad / kPackN * (out->k_pad / kFp8Block);
  CB_RETURN_IF_ERROR(out->scales.Allocate(static_cast<size_t>(scales) * sizeof(float), what));
  if (dtype == DType::kInt8) {
    CB_RETURN_IF_ERROR(out->comp.Allocate(static_cast<size_t>(out->n_pad) * sizeof(int32_t), what));
  }
  const int64_t blocks = out->n_pad / kPackN;
  Status status = Status::Ok();
#pragma omp parallel
  {
    std::vector<uint8_t> row;
#pragma omp for schedule(dynamic, 1)
    for (int64_t nb = 0; nb < blocks; ++nb) {
      Status s = PackQuantBlock(rows, source, out, nb, &row);
      if (!s.ok()) {
#pragma omp critical
        status = s;
      }
    }
  }
  return status;
}

}  // namespace cb::cpu
