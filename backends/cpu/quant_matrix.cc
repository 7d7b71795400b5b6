// Quantised weights straight into the packed layout (packed_matrix.h): the codes of
// workloads/quant.h, generated 8 elements at a time as PackRows generates fp32 and bf16, so
// every backend and shard sees the same numbers.
#include <algorithm>
#include <cstring>
#include <string>

#include "backends/cpu/packed_lanes.h"
#include "backends/cpu/packed_matrix.h"
#include "backends/cpu/quant_codes.h"
#include "workloads/quant.h"

namespace cb::cpu {
namespace {

int64_t RoundUp(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

/// One int8 n-block [k_pad / 4][64][4]: codes in lane order, each row's scale and offset.
void PackInt8Block(const BlockLanes& ln, const float* row_scale, int64_t k, int64_t k_pad,
                   uint8_t* out, int32_t* row_sum) {
  __m256i sums[4 * kPackN / 8];
  for (auto& s : sums) s = _mm256_setzero_si256();
  __m256 scale[4 * kPackN / 8];
  for (int l = 0; l < 4 * kPackN; l += 8) {
    const __m256i row = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_set1_epi32(l), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)), 2);
    scale[l / 8] = _mm256_i32gather_ps(row_scale, row, 4);
  }
  for (int64_t s = 0; s < k_pad / 4; ++s) {
    for (int l = 0; l < 4 * kPackN; l += 8) {
      const __m256i q = Int8Codes8(LaneValues(ln, l, s, 4, k), scale[l / 8]);
      sums[l / 8] = _mm256_add_epi32(sums[l / 8], q);
      const uint64_t b = Bytes8(q);
      std::memcpy(out + s * 4 * kPackN + l, &b, 8);
    }
  }
  alignas(32) int32_t lane_sums[8];
  for (int r = 0; r < kPackN; ++r) row_sum[r] = 0;
  for (int l = 0; l < 4 * kPackN; l += 8) {
    _mm256_store_si256(reinterpret_cast<__m256i*>(lane_sums), sums[l / 8]);
    for (int j = 0; j < 8; ++j) row_sum[(l + j) / 4] += lane_sums[j];
  }
}

/// One fp8 n-block [k_pad / 2][128 bytes, PackedMatrix::Fp8StepOffset]; `scale` is the block's.
/// The lanes are put in the step's byte order first, so 8 codes are one 8-byte store.
void PackFp8Block(const BlockLanes& ln, float scale, int64_t k, int64_t k_pad, uint8_t* out) {
  BlockLanes stored;  // lane at byte Fp8StepOffset(l / 2, l % 2) of a step: lane l of ln
  for (int l = 0; l < 2 * kPackN; ++l) {
    const int64_t at = PackedMatrix::Fp8StepOffset(l / 2, l % 2);
    stored.stream[at] = ln.stream[l];
    stored.base[at] = ln.base[l];
    stored.stride[at] = ln.stride[l];
    stored.scale[at] = ln.scale[l];
    stored.offset[at] = ln.offset[l];
    stored.col[at] = ln.col[l];
  }
  const __m256 inv = _mm256_set1_ps(scale);
  for (int64_t s = 0; s < k_pad / 2; ++s) {
    uint8_t* step = out + s * 2 * kPackN;
    for (int at = 0; at < 2 * kPackN; at += 8) {
      const uint64_t b = Bytes8(Fp8Codes8(_mm256_div_ps(LaneValues(stored, at, s, 2, k), inv)));
      std::memcpy(step + at, &b, 8);
    }
  }
}

/// One n-block: generated, quantised and stored, with its scales (and int8 row offsets).
Status PackQuantBlock(const RowMap& rows, const WeightSource& source, PackedMatrix* out, int64_t nb,
                      BlockLanes* lanes) {
  const DType dt = out->dtype;
  uint8_t* block = out->data.as<uint8_t>() + nb * out->BlockElems();
  alignas(64) float row_scale[kPackN];
  const WeightDesc* first = nullptr;
  for (int64_t r = 0; r < kPackN; ++r) {
    const int64_t p = nb * kPackN + r;
    const RowSource src = p < out->n ? rows(p) : RowSource{};
    if (src.desc != nullptr && src.transposed) {
      return Status::Unsupported("quantised weights are packed by rows");
    }
    // Padding rows: scale 1 (their codes are zero whatever it is), reported as 0.
    row_scale[r] = src.desc != nullptr ? WeightQuantScale(*src.desc, dt) : 1.0f;
    if (first == nullptr && src.desc != nullptr) first = src.desc;
    if (dt == DType::kFP8 && src.desc != nullptr && row_scale[r] != row_scale[0]) {
      return Status::Unsupported("fp8 weights of different scales share a block of 64 rows (" +
                                 first->name + ")");
    }
  }
  FillLanes(nb, out->n, rows, source, dt == DType::kInt8 ? 4 : 2, lanes);
  if (dt == DType::kInt8) {
    int32_t row_sum[kPackN];
    PackInt8Block(*lanes, row_scale, out->k, out->k_pad, block, row_sum);
    for (int64_t r = 0; r < kPackN; ++r) {
      const int64_t p = nb * kPackN + r;
      out->scales.as<float>()[p] = p < out->n ? row_scale[r] : 0.0f;
      out->comp.as<int32_t>()[p] = 128 * row_sum[r];
    }
  } else {  // one scale per 64 rows x 128 columns (inside a 128 x 128 block)
    PackFp8Block(*lanes, row_scale[0], out->k, out->k_pad, block);
    const int64_t groups = out->k_pad / kFp8Block;
    std::fill_n(out->scales.as<float>() + nb * groups, groups, row_scale[0]);
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
    BlockLanes lanes;
#pragma omp for schedule(dynamic, 1)
    for (int64_t nb = 0; nb < blocks; ++nb) {
      Status s = PackQuantBlock(rows, source, out, nb, &lanes);
      if (!s.ok()) {
#pragma omp critical
        status = s;
      }
    }
  }
  return status;
}

void EncodeFp8(const float* x, int64_t n, uint8_t* out) {
  EncodeCodes(DType::kFP8, x, n, 1.0f, out);  // x / 1 is x: FloatToFp8's codes
}

}  // namespace cb::cpu
