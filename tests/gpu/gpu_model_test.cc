// Whole tiny models on the CUDA backend against the reference: prefill of two uneven sequences,
// decode steps (CUDA-graph replays from the second one on), a 2-token chunk, a step run layer
// by layer, one sequence alone; fp32, bf16 and fp16; on the fast paths (every fusion, skinny
// matmuls, decode and flash attention) and on the fallback (CB_CUDA_DISABLE=new). Tolerances as
// in tests/conformance/model_conformance_test.cc (fp32 1e-4, bf16 5e-2; fp16 is compared with
// the fp32 reference at 5e-2). Also: graphs against eager execution, the device's identity, the
// memory-budget error and a bad CB_CUDA_DISABLE. Skipped (reported SKIPPED) where no CUDA
// device is found.

#include <gtest/gtest.h>

#include <cstdlib>
#include <regex>

#include "backends/cuda/cuda_session.h"
#include "tests/gpu/gpu_util.h"

namespace cb::gpu_test {
namespace {

using conformance::FreshSeed;
using conformance::MaxRelError;
using conformance::OddSpec;
using conformance::TinySpec;

struct ModelCase {
  std::string name;
  ModelSpec spec;
  DType dtype;
  std::string disable;  ///< CB_CUDA_DISABLE value of the case
};
std::ostream& operator<<(std::ostream& os, const ModelCase& c) { return os << c.name; }

const std::vector<std::vector<SeqStep>> kSteps = {{{0, 0, 7}, {1, 0, 3}},
                                                  {{0, 7, 1}, {1, 3, 1}},
                                                  {{1, 4, 2}, {0, 8, 1}},
                                                  {{0, 9, 1}, {1, 6, 1}},
                                                  {{1, 7, 1}},
                                                  {{0, 10, 1}, {1, 8, 1}},
                                                  {{0, 11, 1}, {1, 9, 1}}};

/// Runs kSteps on `session` (step 3 op range by op range), feeding back `feed` tokens; returns
/// the logits of every step.
std::vector<std::vector<float>> RunSteps(Session& session, const OpStream& stream, uint64_t seed,
                                         std::vector<std::vector<int32_t>>* tokens) {
  std::vector<std::vector<float>> out;
  std::mt19937_64 rng(seed ^ 0x5eed);
  std::uniform_int_distribution<int32_t> random_token(
      0, static_cast<int32_t>(stream.dims.vocab_full - 1));
  int32_t last[2] = {random_token(rng), random_token(rng)};
  for (size_t k = 0; k < kSteps.size(); ++k) {
    StepIO io;
    io.seqs = kSteps[k];
    io.want_logits = true;
    for (const SeqStep& s : io.seqs) {
      for (int64_t j = 0; j < s.new_tokens; ++j) {
        io.tokens.push_back(j == 0 && k > 0 ? last[s.slot] : random_token(rng));
      }
    }
    if (k == 3) {
      size_t begin = 0;
      std::vector<OpRange> ranges;
      for (int l = 0; l < stream.layers; ++l) {
        const auto [b, e] = stream.LayerRange(l);
        ranges.push_back({begin, b});
        ranges.push_back({b, e});
        begin = e;
      }
      ranges.push_back({begin, stream.ops.size()});
      for (const OpRange& r : ranges) {
        const Status s = session.Run(stream, r, io);
        EXPECT_TRUE(s.ok()) << s.message();
      }
    } else {
      const Status s = session.Run(stream, {0, stream.ops.size()}, io);
      EXPECT_TRUE(s.ok()) << s.message();
    }
    if (tokens != nullptr && k < tokens->size()) {
      // Feed the given tokens (the reference's) so both sides see the same sequence.
      for (size_t i = 0; i < io.seqs.size(); ++i) last[io.seqs[i].slot] = (*tokens)[k][i];
    } else {
      if (tokens != nullptr) tokens->push_back(io.next_tokens);
      for (size_t i = 0; i < io.seqs.size() && i < io.next_tokens.size(); ++i) {
        last[io.seqs[i].slot] = io.next_tokens[i];
      }
    }
    out.push_back(io.logits);
  }
  return out;
}

class CudaModelConformance : public ::testing::TestWithParam<ModelCase> {
 protected:
  void SetUp() override { CB_REQUIRE_GPU(); }
};

TEST_P(CudaModelConformance, PrefillThenDecodeMatchesReference) {
  const ModelCase& c = GetParam();
  const uint64_t seed = FreshSeed();
  CB_TRACE_SEED(seed);
  const double tol = c.dtype == DType::kF32 ? 1e-4 : 5e-2;
  CudaPair p;
  const cuda::CudaPaths paths = Paths(c.disable);
  OpenCudaPair(c.spec, conformance::Config(c.dtype, 2, 16, 10), seed, &p, &paths);
  if (HasFatalFailure()) return;
  std::vector<std::vector<int32_t>> ref_tokens;
  const auto want = RunSteps(*p.ref, p.stream, seed, &ref_tokens);
  const auto got = RunSteps(*p.cuda, p.stream, seed, &ref_tokens);
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    EXPECT_LE(MaxRelError(got[k], want[k]), tol) << c.name << " step " << k;
  }
  const cuda::CudaSession* cuda = p.session();
  EXPECT_GT(cuda->graph_replays(), 0) << cuda->graph_note();
  EXPECT_TRUE(cuda->graph_note().empty()) << cuda->graph_note();
  const cuda::PathCounts& n = cuda->path_counts();
  if (c.disable.empty()) {  // the decode steps took the fast paths
    EXPECT_GT(n.count("matmul_skinny"), 0u);
    EXPECT_GT(n.count("attention_decode"), 0u);
    EXPECT_GT(n.count("fused_residual"), 0u);
    if (cuda::FlashEligible(c.spec.head_dim, c.dtype, nullptr)) {
      EXPECT_GT(n.count("attention_flash"), 0u);
    }
  } else {
    EXPECT_EQ(n.count("matmul_skinny"), 0u);
    EXPECT_EQ(n.count("attention_flash") + n.count("attention_decode"), 0u);
  }
}

std::vector<ModelCase> Cases() {
  std::vector<ModelCase> cases;
  for (const std::string disable : {"", "new"}) {
    const std::string suffix = disable.empty() ? "_fast" : "_fallback";
    for (DType dt : {DType::kF32, DType::kBF16, DType::kF16}) {
      const std::string d(DTypeName(dt));
      cases.push_back({"llama_" + d + suffix, TinySpec(false, false), dt, disable});
      cases.push_back({"qwen3_tied_" + d + suffix, TinySpec(true, true), dt, disable});
      cases.push_back({"odd_shapes_" + d + suffix, OddSpec(true, true), dt, disable});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(TinyModels, CudaModelConformance, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

TEST(CudaGraphs, ReplayMatchesEagerExecution) {
  CB_REQUIRE_GPU();
  const uint64_t seed = FreshSeed();
  CB_TRACE_SEED(seed);
  const ModelSpec spec = TinySpec(true, false);
  OpStream stream;
  ASSERT_TRUE(BuildDenseDecoderStream(spec, ShardSpec{}, 2, &stream).ok());
  std::unique_ptr<Device> dev;
  ASSERT_TRUE(OpenCudaDevice(-1, &dev).ok());
  std::vector<std::vector<std::vector<float>>> logits;
  for (const char* disable : {"", "graphs"}) {
    const ScopedEnv env("CB_CUDA_DISABLE", disable);  // read by Device::Open
    std::unique_ptr<Session> s;
    ASSERT_TRUE(dev->Open(conformance::Config(DType::kF32, 2, 16, 10), &s).ok());
    ASSERT_TRUE(s->Load(stream, WeightSource(seed)).ok());
    std::vector<std::vector<int32_t>> tokens;
    logits.push_back(RunSteps(*s, stream, seed, &tokens));
    auto* cs = dynamic_cast<cuda::CudaSession*>(s.get());
    ASSERT_NE(cs, nullptr);
    if (disable[0] == '\0') {
      EXPECT_GT(cs->graph_replays(), 0) << cs->graph_note();
      EXPECT_GT(cs->graph_captures(), 0);
    } else {
      EXPECT_EQ(cs->graph_replays(), 0);
      EXPECT_GT(cs->eager_decode_steps(), 0);
      EXPECT_NE(cs->graph_note().find("CB_CUDA_DISABLE"), std::string::npos) << cs->graph_note();
    }
  }
  ASSERT_EQ(logits[0].size(), logits[1].size());
  for (size_t k = 0; k < logits[0].size(); ++k) {
    EXPECT_LE(MaxRelError(logits[0][k], logits[1][k]), 1e-5) << "step " << k;
  }
}

TEST(CudaSwitches, UnknownPathInTheEnvironmentIsRefusedAtOpen) {
  CB_REQUIRE_GPU();
  std::unique_ptr<Device> dev;
  ASSERT_TRUE(OpenCudaDevice(-1, &dev).ok());
  const ScopedEnv env("CB_CUDA_DISABLE", "skinny,warp_speed");
  std::unique_ptr<Session> s;
  const Status st = dev->Open(conformance::Config(DType::kBF16, 1, 16, 8), &s);
  EXPECT_EQ(st.code(), StatusCode::kInvalidInput) << st.message();
  EXPECT_NE(st.message().find("warp_speed"), std::string::npos) << st.message();
}

TEST(CudaDevice, IdentityAndSupport) {
  CB_REQUIRE_GPU();
  std::unique_ptr<Device> dev;
  ASSERT_TRUE(OpenCudaDevice(-1, &dev).ok());
  const DeviceProps p = dev->Props();
  EXPECT_EQ(p.backend, "cuda");
  EXPECT_EQ(p.kind, "gpu");
  EXPECT_FALSE(p.name.empty());
  EXPECT_TRUE(std::regex_match(
      p.uuid, std::regex("GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")))
      << p.uuid;
  EXPECT_GT(p.mem_bytes, 0u);
  EXPECT_NE(dev->energy(), nullptr);
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    EXPECT_TRUE(dev->Supports(t).supported) << dev->Supports(t).reason;
  }
  // A dtype the kernels are not built for (fp8, int8 when harness/core/dtype.h has them) is
  // refused, so such a run is skipped rather than failing in a kernel.
  EXPECT_FALSE(dev->Supports(static_cast<DType>(kDTypeCount)).supported);
  std::unique_ptr<Device> missing;
  EXPECT_EQ(OpenCudaDevice(1 << 20, &missing).code(), StatusCode::kInvalidInput);
}

TEST(CudaMemoryBudget, AbsurdContextIsRefusedBeforeAllocating) {
  CB_REQUIRE_GPU();
  const ModelSpec spec = TinySpec(false, false);
  OpStream stream;
  ASSERT_TRUE(BuildDenseDecoderStream(spec, ShardSpec{}, 2, &stream).ok());
  std::unique_ptr<Device> dev;
  ASSERT_TRUE(OpenCudaDevice(-1, &dev).ok());
  std::unique_ptr<Session> s;
  ASSERT_TRUE(dev->Open(conformance::Config(DType::kBF16, 64, int64_t{1} << 36, 16), &s).ok());
  const Status st = s->Load(stream, WeightSource(1));
  ASSERT_EQ(st.code(), StatusCode::kResourceExhausted) << st.message();
  EXPECT_NE(st.message().find(spec.name), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("free of"), std::string::npos) << st.message();
  EXPECT_EQ(s->AllocatedBytes(), 0u);
  StepIO io;
  io.seqs = {{0, 0, 1}};
  EXPECT_FALSE(s->Run(stream, {0, stream.ops.size()}, io).ok());
}

TEST(CudaSessionErrors, UnsupportedOpIsRefusedAtLoad) {
  CB_REQUIRE_GPU();
  OpStream stream;
  ASSERT_TRUE(BuildDenseDecoderStream(TinySpec(false, false), ShardSpec{}, 2, &stream).ok());
  stream.ops.push_back(stream.ops.back());
  stream.ops.back().kind = static_cast<OpKind>(1000);  // an op kind this backend does not know
  std::unique_ptr<Device> dev;
  ASSERT_TRUE(OpenCudaDevice(-1, &dev).ok());
  std::unique_ptr<Session> s;
  ASSERT_TRUE(dev->Open(conformance::Config(DType::kBF16, 1, 16, 8), &s).ok());
  const Status st = s->Load(stream, WeightSource(1));
  EXPECT_EQ(st.code(), StatusCode::kUnsupported) << st.message();
}

}  // namespace
}  // namespace cb::gpu_test
