#include "backends/cpu/packed_matrix.h"

#include <algorithm>
#include <string>

#include "backends/cpu/packed_lanes.h"
#include "backends/cpu/vec_math.h"
#include "workloads/weight_gen_avx512.h"

namespace cb::cpu {
namespace {

int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/// One n-block: bf16 [k_pad / 2][64][2] or fp32 [k_pad][64], written in memory order.
void PackBlock(const BlockLanes& ln, int64_t k, int64_t k_pad, DType dtype, void* out) {
  if (dtype == DType::kBF16) {
    bf16_t* o = static_cast<bf16_t*>(out);
    for (int64_t s = 0; s < k_pad / 2; ++s) {
      for (int l = 0; l < 2 * kPackN; l += 16) {
        const __m512 v = _mm512_insertf32x8(_mm512_castps256_ps512(LaneValues(ln, l, s, 2, k)),
                                            LaneValues(ln, l + 8, s, 2, k), 1);
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + s * 2 * kPackN + l), ToBf16(v));
      }
    }
    return;
  }
  float* o = static_cast<float*>(out);
  for (int64_t s = 0; s < k_pad; ++s) {
    for (int l = 0; l < kPackN; l += 8)
      _mm256_store_ps(o + s * kPackN + l, LaneValues(ln, l, s, 1, k));
  }
}

}  // namespace

void FillLanes(int64_t nb, int64_t n, const RowMap& rows, const WeightSource& source, int width,
               BlockLanes* lanes) {
  const WeightDesc* last = nullptr;
  int64_t stream = 0;
  for (int r = 0; r < kPackN; ++r) {
    const int64_t p = nb * kPackN + r;
    const RowSource src = p < n ? rows(p) : RowSource{};
    const WeightDesc* d = src.desc;
    if (d != nullptr && d != last) {
      stream = static_cast<int64_t>(source.Stream(WeightSource::HashOf(*d)));
      last = d;
    }
    for (int j = 0; j < width; ++j) {
      const int l = r * width + j;
      lanes->col[l] = j;
      if (d == nullptr) {  // a padding row: 0 x unit + 0
        lanes->stream[l] = lanes->base[l] = lanes->stride[l] = 0;
        lanes->scale[l] = lanes->offset[l] = 0.0f;
        continue;
      }
      const int64_t stride = src.transposed ? d->global_cols : 1;
      lanes->stream[l] = stream;
      lanes->stride[l] = stride;
      lanes->base[l] =
          (d->row_offset + src.row) * d->global_cols + d->col_offset + src.col + j * stride;
      lanes->scale[l] = d->scale;
      lanes->offset[l] = WeightSource::Offset(*d);
    }
  }
}

Status PackRows(int64_t n, int64_t k, const RowMap& rows, const WeightSource& source, DType dtype,
                PackedMatrix* out) {
  if (dtype != DType::kF32 && dtype != DType::kBF16) {
    return Status::Unsupported("packed weights are fp32 or bf16");
  }
  if (n <= 0 || k <= 0) return Status::InvalidInput("a packed matrix needs rows and columns");
  out->dtype = dtype;
  out->n = n;
  out->k = k;
  out->n_pad = RoundUp(n, kPackN);
  out->k_pad = RoundUp(k, PackK(dtype));
  const size_t dt = DTypeBytes(dtype);
  const size_t bytes = static_cast<size_t>(out->n_pad * out->k_pad) * dt;
  if (out->data.size() != bytes) {  // a matrix packed again (micro-suite) keeps its buffer
    const RowSource first = rows(0);
    CB_RETURN_IF_ERROR(out->data.AllocateUninitialized(
        bytes, first.desc != nullptr ? first.desc->name.c_str() : "packed weights"));
  }
  const int64_t blocks = out->n_pad / kPackN;
  const int width = dtype == DType::kBF16 ? 2 : 1;
  char* base = static_cast<char*>(out->data.data());
#pragma omp parallel
  {
    BlockLanes lanes;
#pragma omp for schedule(dynamic, 1)
    for (int64_t nb = 0; nb < blocks; ++nb) {
      FillLanes(nb, n, rows, source, width, &lanes);
      PackBlock(lanes, k, out->k_pad, dtype, base + nb * out->BlockElems() * dt);
    }
  }
  return Status::Ok();
}

Status PackWeights(const std::vector<const WeightDesc*>& parts, const WeightSource& source,
                   DType dtype, PackedMatrix* out) {
  if (parts.empty()) return Status::InvalidInput("a matmul needs at least one weight");
  const int64_t k = parts[0]->cols;
  std::vector<int64_t> starts;
  int64_t n = 0;
  for (const WeightDesc* p : parts) {
    if (p->cols != k) {
      return Status::InvalidInput("weights of one matmul differ in width: " + p->name + " has " +
                                  std::to_string(p->cols) + " columns, expected " +
                                  std::to_string(k));
    }
    starts.push_back(n);
    n += p->rows;
  }
  const RowMap concatenated = [&](int64_t row) {
    const size_t i = std::upper_bound(starts.begin(), starts.end(), row) - starts.begin() - 1;
    return RowSource{parts[i], row - starts[i]};
  };
  return IsQuantized(dtype) ? PackQuantizedRows(n, k, concatenated, source, dtype, out)
                            : PackRows(n, k, concatenated, source, dtype, out);
}

void RoundValuesToBf16(PackedMatrix* m) {
  if (m->dtype != DType::kF32) return;
  float* v = m->data.as<float>();
  const int64_t n = static_cast<int64_t>(m->data.size() / sizeof(float));
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) v[i] = RoundTo(DType::kBF16, v[i]);
}

Status FillPlain(const WeightDesc& desc, const WeightSource& source, DType dtype,
                 AlignedBuffer* out) {
  const size_t dt = DTypeBytes(dtype);
  CB_RETURN_IF_ERROR(
      out->AllocateUninitialized(static_cast<size_t>(desc.Elements()) * dt, desc.name.c_str()));
  constexpr int64_t kRows = 64;
  const int64_t chunks = (desc.rows + kRows - 1) / kRows;
#pragma omp parallel
  {
    std::vector<float> tmp(static_cast<size_t>(kRows * desc.cols));
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t r0 = c * kRows, rows = std::min(kRows, desc.rows - r0);
      source.FillRows(desc, r0, rows, tmp.data());
      if (dtype == DType::kBF16) {
        CopyRow(tmp.data(), out->as<bf16_t>() + r0 * desc.cols, rows * desc.cols);
      } else {
        CopyRow(tmp.data(), out->as<float>() + r0 * desc.cols, rows * desc.cols);
      }
    }
  }
  return Status::Ok();
}

}  // namespace cb::cpu
