#include "workloads/weights.h"

namespace cb {
namespace {

inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
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

float WeightSource::UnitValue(uint64_t name_hash, uint64_t index) const {
  const uint64_t stream = Mix64(seed_ ^ Mix64(name_hash));
  const uint64_t bits = Mix64(stream + index * 0x9e3779b97f4a7c15ULL);
  // 24 random bits -> [-1, 1) exactly representable in fp32.
  return static_cast<float>(bits >> 40) * (1.0f / 8388608.0f) - 1.0f;
}

void WeightSource::FillRows(const WeightDesc& desc, int64_t row_begin, int64_t row_count,
                            float* out) const {
  const uint64_t name_hash = HashName(desc.key.empty() ? desc.name : desc.key);
  const float offset = desc.init == WeightInit::kNearOne ? 1.0f : 0.0f;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < row_count; ++r) {
    const int64_t global_row = desc.row_offset + row_begin + r;
    const uint64_t base = static_cast<uint64_t>(global_row) * desc.global_cols + desc.col_offset;
    float* dst = out + r * desc.cols;
    for (int64_t c = 0; c < desc.cols; ++c) {
      dst[c] = offset + desc.scale * UnitValue(name_hash, base + c);
    }
  }
}

int32_t SyntheticToken(uint64_t seed, int64_t sequence, int64_t position, int64_t vocab) {
  const uint64_t bits = Mix64(Mix64(seed ^ 0x746f6b656e73ULL) + Mix64(sequence) * 31 + position);
  return static_cast<int32_t>(bits % static_cast<uint64_t>(vocab));
}

}  // namespace cb
