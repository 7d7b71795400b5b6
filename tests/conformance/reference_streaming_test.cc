// The reference backend regenerating every weight from the generator whenever an op reads it
// (what verification of a large model uses) gives bit-identical results to the same backend
// holding every weight, on the tiny models, for a prefill and decode steps, in fp32 and bf16.
#include <gtest/gtest.h>

#include "tests/conformance/conformance_util.h"

namespace cb::conformance {
namespace {

class ReferenceStreaming : public ::testing::TestWithParam<DType> {};

TEST_P(ReferenceStreaming, RegeneratedWeightsGiveTheHeldWeightsBits) {
  const uint64_t seed = FreshSeed();
  CB_TRACE_SEED(seed);
  for (const char* name : {"tiny", "tiny-moe-mla", "tiny-moe-gqa"}) {
    SCOPED_TRACE(name);
    ModelSpec m;
    ASSERT_TRUE(LoadModelSpec(name, &m).ok());
    OpStream stream;
    ASSERT_TRUE(BuildDenseDecoderStream(m, {}, static_cast<int>(m.num_layers), &stream).ok());
    std::unique_ptr<Session> session[2];
    for (int i = 0; i < 2; ++i) {
      ReferenceOptions options;
      options.hold_limit = i == 0 ? int64_t{1} << 40 : 0;  // hold all / regenerate all
      auto device = MakeReferenceDevice(options);
      ASSERT_TRUE(device->Open(Config(GetParam(), 2, 32, 12), &session[i]).ok());
      ASSERT_TRUE(session[i]->Load(stream, WeightSource(seed)).ok());
    }
    EXPECT_LT(session[1]->AllocatedBytes(), session[0]->AllocatedBytes());
    std::mt19937_64 rng(seed);
    const std::vector<std::vector<SeqStep>> steps = {
        {{0, 0, 7}, {1, 0, 5}}, {{0, 7, 1}, {1, 5, 1}}, {{0, 8, 1}}};
    for (const auto& seqs : steps) {
      StepIO io[2];
      io[0].seqs = seqs;
      io[0].want_logits = true;
      for (int64_t t = 0; t < io[0].TotalTokens(); ++t) {
        io[0].tokens.push_back(static_cast<int32_t>(rng() % m.vocab_size));
      }
      io[1] = io[0];
      for (int i = 0; i < 2; ++i) {
        const Status s = session[i]->Run(stream, {0, stream.ops.size()}, io[i]);
        ASSERT_TRUE(s.ok()) << s.message();
      }
      ASSERT_EQ(io[0].logits.size(), io[1].logits.size());
      for (size_t j = 0; j < io[0].logits.size(); ++j) {
        ASSERT_EQ(io[0].logits[j], io[1].logits[j]) << "logit " << j;
      }
      EXPECT_EQ(io[0].expert_load, io[1].expert_load);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(DTypes, ReferenceStreaming, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

}  // namespace
}  // namespace cb::conformance
