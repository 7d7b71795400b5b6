#pragma once

#include <cstdint>

#include "workloads/op_stream.h"

namespace cb {

/// SplitMix64's finaliser: the generator's bit mixer (Mix64(state += 0x9e3779b97f4a7c15) is
/// SplitMix64).
inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// Counter-based synthetic weights: the value of element i of tensor `name` depends only on
/// (seed, name, i), so each rank builds its own shard and every backend and rank count sees
/// identical values. Scales are chosen by the stream builder so activations stay bounded.
///
/// Element i of a tensor is fma(scale, unit, offset) with unit = the top 24 bits of
/// Mix64(Stream(name) + i * 0x9e3779b97f4a7c15) mapped to [-1, 1) (workloads/weights.cc;
/// workloads/weight_gen_avx512.h computes the same on 8 lanes).
class WeightSource {
 public:
  explicit WeightSource(uint64_t seed) : seed_(seed) {}

  uint64_t seed() const { return seed_; }

  /// Uniform in [-1, 1) for global element `index` of tensor `name_hash`.
  float UnitValue(uint64_t name_hash, uint64_t index) const;
  /// The per-tensor constant of the generator.
  uint64_t Stream(uint64_t name_hash) const;

  /// Fills rows [row_begin, row_begin + row_count) of the local shard `desc` as fp32,
  /// row-major with `desc.cols` columns, into `out`.
  void FillRows(const WeightDesc& desc, int64_t row_begin, int64_t row_count, float* out) const;

  static uint64_t HashName(const std::string& name);
  /// The generator key of a weight: its key, or its name when it has none.
  static uint64_t HashOf(const WeightDesc& desc) {
    return HashName(desc.key.empty() ? desc.name : desc.key);
  }
  /// The value added to scale x unit: 1 for norm gains, 0 otherwise.
  static float Offset(const WeightDesc& desc) {
    return desc.init == WeightInit::kNearOne ? 1.0f : 0.0f;
  }

 private:
  uint64_t seed_;
};

/// Deterministic input token ids for a run: counter-based like the weights.
int32_t SyntheticToken(uint64_t seed, int64_t sequence, int64_t position, int64_t vocab);

}  // namespace cb
