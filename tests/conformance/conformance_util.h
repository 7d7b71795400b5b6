#pragma once

/// Shared helpers of the conformance tests: tiny models, a cpu + reference session pair on the
/// same weights, fresh seeds, and error measures.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/cpu_backend.h"
#include "backends/reference/reference_backend.h"
#include "workloads/model_spec.h"
#include "workloads/op_stream.h"

namespace cb::conformance {

/// A fresh seed per test (std::random_device), or CB_CONFORMANCE_SEED to replay a failure.
inline uint64_t FreshSeed() {
  if (const char* s = std::getenv("CB_CONFORMANCE_SEED")) return std::strtoull(s, nullptr, 0);
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

/// Puts the seed into every assertion message of the enclosing scope.
#define CB_TRACE_SEED(seed)                                                                  \
  SCOPED_TRACE(::testing::Message() << "seed " << (seed) << " (replay: CB_CONFORMANCE_SEED=" \
                                    << (seed) << " ./conformance_tests --gtest_filter=...)")

/// hidden 64, 2 layers, 4 heads / 2 KV heads of 16, FFN 128, vocab 256.
inline ModelSpec TinySpec(bool qk_norm, bool tie_embeddings) {
  ModelSpec m;
  m.name = "conformance-tiny";
  m.family = qk_norm ? "qwen3" : "llama";
  m.hidden_size = 64;
  m.num_layers = 2;
  m.num_heads = 4;
  m.num_kv_heads = 2;
  m.head_dim = 16;
  m.ffn_size = 128;
  m.vocab_size = 256;
  m.max_context = 64;
  m.rope_theta = 10000.0;
  m.norm_eps = 1e-5;
  m.qk_norm = qk_norm;
  m.tie_embeddings = tie_embeddings;
  return m;
}

/// Shapes that are not multiples of the kernels' blocks: hidden 72 (k padded to 80), head_dim
/// 24 (vector tails), 3 query heads on 1 KV head, FFN 100, vocab 250 (n padded to 256).
inline ModelSpec OddSpec(bool qk_norm, bool tie_embeddings) {
  ModelSpec m = TinySpec(qk_norm, tie_embeddings);
  m.name = "conformance-odd";
  m.hidden_size = 72;
  m.num_heads = 3;
  m.num_kv_heads = 1;
  m.head_dim = 24;
  m.ffn_size = 100;
  m.vocab_size = 250;
  m.rope_theta = 500000.0;
  return m;
}

/// TinySpec with other attention heads: `heads` query heads on `kv_heads` KV heads of
/// `head_dim` (the attention kernels specialise head_dim 16, 32, 64 and 128).
inline ModelSpec HeadsSpec(int64_t heads, int64_t kv_heads, int64_t head_dim) {
  ModelSpec m = TinySpec(false, false);
  m.name = "conformance-heads-" + std::to_string(heads) + "x" + std::to_string(kv_heads) + "x" +
           std::to_string(head_dim);
  m.num_heads = heads;
  m.num_kv_heads = kv_heads;
  m.head_dim = head_dim;
  return m;
}

/// The cpu session under test and the reference session, loaded with the same weights.
struct SessionPair {
  OpStream stream;
  std::unique_ptr<Device> cpu_device, ref_device;
  std::unique_ptr<Session> cpu, ref;
};

/// fp8 runs weight-only (the cpu backend's only fp8 mode) on both sides.
inline SessionConfig Config(DType dtype, int64_t sequences, int64_t context, int64_t step_tokens) {
  SessionConfig c;
  c.dtype = dtype;
  c.weight_only = dtype == DType::kFP8;
  c.max_sequences = sequences;
  c.max_context = context;
  c.max_step_tokens = step_tokens;
  return c;
}

/// Opens and loads both sessions for `stream` (already built) with weights of `seed`.
inline void OpenPair(const OpStream& stream, const SessionConfig& config, uint64_t seed,
                     SessionPair* p) {
  p->stream = stream;
  p->cpu_device = MakeCpuDevice();
  p->ref_device = MakeReferenceDevice();
  ASSERT_TRUE(p->cpu_device->Supports(config.dtype).supported)
      << p->cpu_device->Supports(config.dtype).reason;
  Status s = p->cpu_device->Open(config, &p->cpu);
  ASSERT_TRUE(s.ok()) << s.message();
  s = p->ref_device->Open(config, &p->ref);
  ASSERT_TRUE(s.ok()) << s.message();
  const WeightSource weights(seed);
  s = p->cpu->Load(p->stream, weights);
  ASSERT_TRUE(s.ok()) << s.message();
  s = p->ref->Load(p->stream, weights);
  ASSERT_TRUE(s.ok()) << s.message();
}

inline void OpenPair(const ModelSpec& spec, const SessionConfig& config, uint64_t seed,
                     SessionPair* p) {
  OpStream stream;
  const Status s =
      BuildDenseDecoderStream(spec, ShardSpec{}, static_cast<int>(spec.num_layers), &stream);
  ASSERT_TRUE(s.ok()) << s.message();
  OpenPair(stream, config, seed, p);
}

/// One int8 code flip of the expert down projection's input (SwiGLU rows computed in another
/// order than the reference, a value within an ulp of a code boundary): expert_kernels_test.cc
/// measured up to 1.13e-3 over 300 fresh-seed runs; a wrong kernel is off by far more.
inline constexpr double kInt8CodeFlipTol = 2.5e-3;

/// max |got - want| / max |want| (absolute when want is all zero); infinity on a size mismatch
/// or a non-finite value in `got`.
inline double MaxRelError(const std::vector<float>& got, const std::vector<float>& want) {
  if (got.size() != want.size() || want.empty()) return INFINITY;
  double max_ref = 0, max_err = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(want[i])));
    max_err = std::max(max_err, std::fabs(static_cast<double>(got[i]) - want[i]));
  }
  return max_ref > 0 ? max_err / max_ref : max_err;
}

inline std::vector<float> RandomValues(std::mt19937_64& rng, size_t n, float scale) {
  std::uniform_real_distribution<float> u(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = u(rng);
  return v;
}

}  // namespace cb::conformance
