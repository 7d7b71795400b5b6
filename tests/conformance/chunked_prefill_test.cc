// Chunked prefill and mixed steps (continuous batching) give the same greedy tokens as a
// one-shot prefill, on the reference and the cpu backend in fp32: a prompt prefilled in
// chunks (past_len > 0) while another sequence decodes in the same steps must continue
// exactly as when it was prefilled alone in one step.
#include <gtest/gtest.h>

#include <random>

#include "tests/conformance/conformance_util.h"

namespace cb::conformance {
namespace {

std::vector<int32_t> RandomPrompt(std::mt19937_64& rng, int64_t n, int64_t vocab) {
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> p(n);
  for (auto& t : p) t = tok(rng);
  return p;
}

Status Step(Session& s, const OpStream& stream, std::vector<SeqStep> seqs,
            std::vector<int32_t> tokens, std::vector<int32_t>* next) {
  StepIO io;
  io.seqs = std::move(seqs);
  io.tokens = std::move(tokens);
  CB_RETURN_IF_ERROR(s.Run(stream, {0, stream.ops.size()}, io));
  *next = io.next_tokens;
  return Status::Ok();
}

/// One prompt alone: prefill in one step, then `gen` - 1 decode steps.
std::vector<int32_t> OneShot(Session& s, const OpStream& stream, const std::vector<int32_t>& p,
                             int gen) {
  std::vector<int32_t> out, next;
  EXPECT_TRUE(Step(s, stream, {{0, 0, static_cast<int64_t>(p.size())}}, p, &next).ok());
  out.push_back(next[0]);
  for (int g = 1; g < gen; ++g) {
    EXPECT_TRUE(
        Step(s, stream, {{0, static_cast<int64_t>(p.size()) + g - 1, 1}}, {out.back()}, &next)
            .ok());
    out.push_back(next[0]);
  }
  return out;
}

class ChunkedPrefill : public ::testing::TestWithParam<std::string> {};

TEST_P(ChunkedPrefill, MixedStepsEqualOneShotGreedyTokens) {
  const uint64_t seed = FreshSeed();
  CB_TRACE_SEED(seed);
  const ModelSpec spec = TinySpec(false, false);
  OpStream stream;
  ASSERT_TRUE(BuildDenseDecoderStream(spec, ShardSpec{}, 2, &stream).ok());
  std::unique_ptr<Device> dev = GetParam() == "cpu" ? MakeCpuDevice() : MakeReferenceDevice();
  std::unique_ptr<Session> batched, alone;
  ASSERT_TRUE(dev->Open(Config(DType::kF32, 2, 40, 24), &batched).ok());
  ASSERT_TRUE(dev->Open(Config(DType::kF32, 1, 40, 24), &alone).ok());
  const WeightSource weights(seed);
  ASSERT_TRUE(batched->Load(stream, weights).ok());
  ASSERT_TRUE(alone->Load(stream, weights).ok());
  const int64_t vocab = stream.dims.vocab_full;
  std::mt19937_64 rng(seed ^ 0xc4u);
  const std::vector<int32_t> a = RandomPrompt(rng, 5, vocab);   // sequence A: decodes
  const std::vector<int32_t> b = RandomPrompt(rng, 13, vocab);  // sequence B: chunked 6+4+3
  const int gen = 6;

  // Slot 0: A prefilled alone, then decodes while B's prompt arrives in chunks in slot 1.
  std::vector<int32_t> next, a_out, b_out;
  ASSERT_TRUE(Step(*batched, stream, {{0, 0, 5}}, a, &next).ok());
  a_out.push_back(next[0]);
  int64_t b_done = 0;
  for (int64_t chunk : {6, 4, 3}) {
    std::vector<int32_t> tokens = {a_out.back()};
    tokens.insert(tokens.end(), b.begin() + b_done, b.begin() + b_done + chunk);
    ASSERT_TRUE(Step(*batched, stream,
                     {{0, 5 + static_cast<int64_t>(a_out.size()) - 1, 1}, {1, b_done, chunk}},
                     tokens, &next)
                    .ok());
    a_out.push_back(next[0]);
    b_done += chunk;
  }
  b_out.push_back(next[1]);  // the last chunk samples B's first token
  // Both decode together, B listed first this time.
  while (static_cast<int>(b_out.size()) < gen) {
    std::vector<SeqStep> seqs = {{1, 13 + static_cast<int64_t>(b_out.size()) - 1, 1}};
    std::vector<int32_t> tokens = {b_out.back()};
    const bool a_more = static_cast<int>(a_out.size()) < gen;
    if (a_more) {
      seqs.push_back({0, 5 + static_cast<int64_t>(a_out.size()) - 1, 1});
      tokens.push_back(a_out.back());
    }
    ASSERT_TRUE(Step(*batched, stream, seqs, tokens, &next).ok());
    b_out.push_back(next[0]);
    if (a_more) a_out.push_back(next[1]);
  }
  a_out.resize(gen);

  EXPECT_EQ(b_out, OneShot(*alone, stream, b, gen)) << GetParam() << ": chunked B";
  EXPECT_EQ(a_out, OneShot(*alone, stream, a, gen)) << GetParam() << ": A beside B's chunks";
}

INSTANTIATE_TEST_SUITE_P(Backends, ChunkedPrefill, ::testing::Values("reference", "cpu"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace cb::conformance
