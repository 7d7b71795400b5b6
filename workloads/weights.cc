#include "workloads/weights.h"

#include <cmath>

#include "workloads/weight_gen_avx512.h"

namespace cb {
namespace {

constexpr uint64_t kGolden = 0x9e3779b97f4a7c15ULL;

inline float Unit(uint64_t stream, uint64_t index) {
  const uint64_t bits = Mix64(stream + index * kGolden);
  // 24 random bits -> [-1, 1) exactly representable in fp32.
  return static_cast<float>(bits >> 40) * (1.0f / 8388608.0f) - 1.0f;
}

bool HasAvx512Dq() {
  static const bool has = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                          __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
  return has;
}

/// dst[c] = value of element base + c, c < n, 8 at a time.
CB_WEIGHT_GEN_TARGET void FillRunAvx512(uint64_t stream, uint64_t base, float scale, float offset,
                                        int64_t n, float* dst) {
  const __m512i s = _mm512_set1_epi64(static_cast<int64_t>(stream));
  const __m512i lanes = _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0);
  const __m256 sc = _mm256_set1_ps(scale), off = _mm256_set1_ps(offset);
  for (int64_t c = 0; c < n; c += 8) {
    const __m512i idx = _mm512_add_epi64(_mm512_set1_epi64(static_cast<int64_t>(base + c)), lanes);
    const __m256 v = weight_gen::Values8(s, idx, sc, off);
    const int64_t left = n - c;
    _mm256_mask_storeu_ps(dst + c, left >= 8 ? 0xff : static_cast<__mmask8>((1u << left) - 1), v);
  }
}

}  // namespace

uint64_t WeightSource::HashName(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

uint64_t WeightSource::Stream(uint64_t name_hash) const { return Mix64(seed_ ^ Mix64(name_hash)); }

float WeightSource::UnitValue(uint64_t name_hash, uint64_t index) const {
  return Unit(Stream(name_hash), index);
}

void WeightSource::FillRows(const WeightDesc& desc, int64_t row_begin, int64_t row_count,
                            float* out) const {
  const uint64_t stream = Stream(HashOf(desc));
  const float offset = Offset(desc);
  const bool vector = HasAvx512Dq();
#pragma omp parallel for schedule(static) if (row_count * desc.cols >= (1 << 16))
  for (int64_t r = 0; r < row_count; ++r) {
    const int64_t global_row = desc.row_offset + row_begin + r;
    const uint64_t base = static_cast<uint64_t>(global_row) * desc.global_cols + desc.col_offset;
    float* dst = out + r * desc.cols;
    if (vector) {
      FillRunAvx512(stream, base, desc.scale, offset, desc.cols, dst);
      continue;
    }
    for (int64_t c = 0; c < desc.cols; ++c) {
      dst[c] = std::fma(desc.scale, Unit(stream, base + c), offset);
    }
  }
}

int32_t SyntheticToken(uint64_t seed, int64_t sequence, int64_t position, int64_t vocab) {
  const uint64_t bits = Mix64(Mix64(seed ^ 0x746f6b656e73ULL) + Mix64(sequence) * 31 + position);
  return static_cast<int32_t>(bits % static_cast<uint64_t>(vocab));
}

}  // namespace cb
