// Every op kind of the dense stream on the CUDA backend against the reference, one op at a
// time, in fp32, bf16 and fp16 (the reference runs fp32 for fp16: it does not model fp16), on
// the fast paths ("fast": skinny matmuls up to 8 rows, decode and flash attention, QKV and
// gate/up in the session dtype) and on the paths they replace ("fallback": CB_CUDA_DISABLE=new).
// Inputs are written to the cuda session, read back as it stores them and given to the
// reference, as in tests/conformance/op_conformance_test.cc, whose tolerance reasoning holds
// here too: fp32 1e-4; a bf16 store 8e-3; bf16 attention 2.5e-2. fp16 adds the weights'
// rounding (2^-11 relative, the reference keeps fp32 weights): 5e-3 for matmuls and norms,
// the bf16 bounds elsewhere. An output the session stores in bf16/fp16 adds a store's bound.
// Skipped (reported SKIPPED) where no CUDA device is found.

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <tuple>

#include "tests/gpu/gpu_util.h"

namespace cb::gpu_test {
namespace {

using conformance::FreshSeed;
using conformance::HeadsSpec;
using conformance::MaxRelError;
using conformance::OddSpec;
using conformance::RandomValues;
using conformance::TinySpec;

StepIO TokenStep(int64_t tokens, int64_t past = 0) {
  StepIO io;
  io.seqs.push_back({0, past, tokens});
  return io;
}

StepIO SequenceStep(int64_t seqs) {
  StepIO io;
  for (int64_t s = 0; s < seqs; ++s) io.seqs.push_back({s, 3 + s, 1});
  return io;
}

/// (dtype, "fast" or "fallback").
using OpCase = std::tuple<DType, std::string>;

class CudaOpConformance : public ::testing::TestWithParam<OpCase> {
 protected:
  static constexpr int64_t kMaxSeqs = 12, kMaxContext = 48, kMaxTokens = 40;

  void SetUp() override {
    CB_REQUIRE_GPU();
    seed_ = FreshSeed();
    rng_.seed(seed_);
    paths_ = Paths(std::get<1>(GetParam()) == "fast" ? "" : "new");
  }
  DType dtype() const { return std::get<0>(GetParam()); }
  /// Tolerance `base` of an op whose output `b` the session may store in 16 bits.
  double Out(Buf b, double base) const {
    const DType t = cuda::BufDType(b, dtype(), paths_(cuda::Path::kNarrow));
    return t == DType::kF32 ? base : std::max(base, StoreTol());
  }
  double Exact() const { return dtype() == DType::kF16 ? 1e-3 : 0.0; }
  double F32Tol() const { return dtype() == DType::kF16 ? 5e-3 : 1e-4; }
  double StoreTol() const { return dtype() == DType::kF32 ? 1e-4 : 8e-3; }
  double AttnTol() const { return dtype() == DType::kF32 ? 1e-4 : 2.5e-2; }

  void Open(const ModelSpec& spec, int64_t context = kMaxContext, int64_t tokens = kMaxTokens) {
    p_ = CudaPair{};
    OpenCudaPair(spec, conformance::Config(dtype(), kMaxSeqs, context, tokens), seed_, &p_,
                 &paths_);
  }

  size_t FindOp(OpKind kind, int layer, int nth = 0) const {
    for (size_t i = 0; i < p_.stream.ops.size(); ++i) {
      if (p_.stream.ops[i].kind == kind && p_.stream.ops[i].layer == layer && nth-- == 0) return i;
    }
    ADD_FAILURE() << "no " << OpKindName(kind) << " op in layer " << layer;
    return 0;
  }

  void Feed(Buf buf, int64_t rows, float scale) {
    const int64_t width = std::max<int64_t>(1, BufferWidth(p_.stream.dims, buf));
    std::vector<float> v = RandomValues(rng_, rows * width, scale);
    Status s = p_.cuda->WriteBuffer(buf, rows, v);
    ASSERT_TRUE(s.ok()) << s.message();
    std::vector<float> stored;
    ASSERT_TRUE(p_.cuda->ReadBuffer(buf, rows, &stored).ok());
    s = p_.ref->WriteBuffer(buf, rows, stored);
    ASSERT_TRUE(s.ok()) << s.message();
  }

  void RunOp(size_t op, StepIO& a, StepIO& b) {
    Status s = p_.cuda->Run(p_.stream, {op, op + 1}, a);
    ASSERT_TRUE(s.ok()) << "cuda: " << s.message();
    s = p_.ref->Run(p_.stream, {op, op + 1}, b);
    ASSERT_TRUE(s.ok()) << "reference: " << s.message();
  }
  void RunOp(size_t op, const StepIO& io) {
    StepIO a = io, b = io;
    RunOp(op, a, b);
  }

  void Expect(Buf buf, int64_t rows, double tol, const std::string& what) {
    std::vector<float> got, want;
    ASSERT_TRUE(p_.cuda->ReadBuffer(buf, rows, &got).ok());
    ASSERT_TRUE(p_.ref->ReadBuffer(buf, rows, &want).ok());
    EXPECT_LE(MaxRelError(got, want), tol)
        << what << ": buffer " << BufName(buf) << ", " << rows << " rows, " << DTypeName(dtype());
  }

  /// Runs `steps` of the attention op of `layer`, each on fresh QKV rows, and compares.
  void AttentionSteps(const std::vector<std::vector<SeqStep>>& steps, int layer,
                      const std::string& what) {
    const size_t op = FindOp(OpKind::kAttention, layer);
    for (size_t k = 0; k < steps.size(); ++k) {
      StepIO io;
      io.seqs = steps[k];
      const int64_t rows = io.TotalTokens();
      Feed(Buf::kQkv, rows, 2.5f);
      RunOp(op, io);
      Expect(Buf::kAttn, rows, AttnTol(), what + " step " + std::to_string(k));
    }
  }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  cuda::CudaPaths paths_;
  CudaPair p_;
};

TEST_P(CudaOpConformance, EmbeddingPlainAndTied) {
  CB_TRACE_SEED(seed_);
  for (bool tie : {false, true}) {
    Open(TinySpec(false, tie));
    StepIO io = TokenStep(11);
    std::uniform_int_distribution<int32_t> tok(0, 255);
    for (int i = 0; i < 11; ++i) io.tokens.push_back(tok(rng_));
    io.tokens[3] = 255;
    io.tokens[4] = 0;
    RunOp(FindOp(OpKind::kEmbedding, -1), io);
    Expect(Buf::kX, 11, Exact(), tie ? "tied embedding" : "embedding");
  }
}

TEST_P(CudaOpConformance, RmsNormTokenAndSequenceRows) {
  CB_TRACE_SEED(seed_);
  for (const ModelSpec& spec : {TinySpec(false, false), OddSpec(false, false)}) {
    Open(spec);
    Feed(Buf::kX, 9, 3.0f);
    RunOp(FindOp(OpKind::kRmsNorm, 1, 1), TokenStep(9));
    Expect(Buf::kH, 9, std::max(StoreTol(), F32Tol()), spec.name + " rmsnorm");
    Feed(Buf::kXLast, 5, 0.5f);
    RunOp(FindOp(OpKind::kRmsNorm, -1), SequenceStep(5));
    Expect(Buf::kHLast, 5, std::max(StoreTol(), F32Tol()), spec.name + " final rmsnorm");
  }
}

TEST_P(CudaOpConformance, FusedResidualAddRmsNorm) {
  CB_TRACE_SEED(seed_);
  Open(OddSpec(false, false));
  const size_t add = FindOp(OpKind::kResidualAdd, 0, 0);  // followed by the mlp norm
  ASSERT_EQ(p_.stream.ops[add + 1].kind, OpKind::kRmsNorm);
  Feed(Buf::kX, 7, 2.0f);
  Feed(Buf::kProj, 7, 1.0f);
  StepIO a = TokenStep(7), b = TokenStep(7);
  ASSERT_TRUE(p_.cuda->Run(p_.stream, {add, add + 2}, a).ok());
  ASSERT_TRUE(p_.ref->Run(p_.stream, {add, add + 2}, b).ok());
  Expect(Buf::kX, 7, Exact(), "fused residual add");
  Expect(Buf::kH, 7, std::max(StoreTol(), F32Tol()), "fused rmsnorm");
}

TEST_P(CudaOpConformance, MatMulAllShapes) {
  CB_TRACE_SEED(seed_);
  for (const ModelSpec& spec : {TinySpec(false, false), OddSpec(false, true)}) {
    Open(spec);
    for (int nth = 0; nth < 4; ++nth) {
      const size_t op = FindOp(OpKind::kMatMul, 0, nth);
      const Op& o = p_.stream.ops[op];
      for (int64_t rows : {1, 2, 3, 4, 5, 6, 7, 8, 9, 33}) {
        Feed(o.in, rows, 1.0f);
        RunOp(op, TokenStep(rows));
        Expect(o.out, rows, Out(o.out, F32Tol()),
               spec.name + " matmul " + o.weights[0] + " rows " + std::to_string(rows));
      }
    }
    const size_t head = FindOp(OpKind::kMatMul, -1);
    for (int64_t seqs : {1, 5, 8, 12}) {
      Feed(Buf::kHLast, seqs, 1.0f);
      RunOp(head, SequenceStep(seqs));
      Expect(Buf::kLogits, seqs, F32Tol(), spec.name + " lm head " + std::to_string(seqs));
    }
  }
}

TEST_P(CudaOpConformance, QkNorm) {
  CB_TRACE_SEED(seed_);
  for (const ModelSpec& spec : {TinySpec(true, false), OddSpec(true, false)}) {
    Open(spec);
    Feed(Buf::kQkv, 7, 2.0f);
    RunOp(FindOp(OpKind::kQkNorm, 1), TokenStep(7));
    Expect(Buf::kQkv, 7, Out(Buf::kQkv, F32Tol()), spec.name + " qk_norm");
  }
}

TEST_P(CudaOpConformance, RopeAtSequencePositions) {
  CB_TRACE_SEED(seed_);
  for (const ModelSpec& spec : {TinySpec(false, false), OddSpec(false, false)}) {
    Open(spec);
    StepIO io;
    io.seqs = {{1, 17, 3}, {0, 0, 4}, {2, 40, 2}};
    Feed(Buf::kQkv, 9, 1.0f);
    RunOp(FindOp(OpKind::kRope, 0), io);
    Expect(Buf::kQkv, 9, Out(Buf::kQkv, 1e-4), spec.name + " rope");
  }
}

TEST_P(CudaOpConformance, AttentionPrefillThenDecodeWithKvCache) {
  CB_TRACE_SEED(seed_);
  for (const ModelSpec& spec :
       {TinySpec(false, false), OddSpec(false, false), HeadsSpec(4, 1, 64), HeadsSpec(8, 1, 32),
        HeadsSpec(6, 2, 128), HeadsSpec(5, 5, 40), HeadsSpec(40, 2, 16)}) {
    Open(spec);
    AttentionSteps({{{0, 0, 5}, {1, 0, 3}},
                    {{1, 3, 4}, {0, 5, 1}},
                    {{0, 6, 1}, {1, 7, 1}},
                    {{1, 8, 1}},
                    {{0, 7, 1}, {1, 9, 1}}},
                   1, spec.name + " attention");
    StepIO bad;
    bad.seqs = {{0, 20, 1}};
    const size_t op = FindOp(OpKind::kAttention, 1);
    EXPECT_FALSE(p_.cuda->Run(p_.stream, {op, op + 1}, bad).ok());
  }
}

TEST_P(CudaOpConformance, AttentionSplitKAndPrefillOverALongContext) {
  CB_TRACE_SEED(seed_);
  // 300 cached positions, then decode steps of one and two sequences: few blocks and a long
  // context, so split-K and its combine run (eagerly, and in a CUDA graph from the second
  // step of a shape). The 300-token prefill and the last step (two long chunks on cached
  // prefixes) run on the flash kernel (fast, 16-bit) or cuBLAS (fallback, fp32), the
  // 20-token prefill on flash or the tiled kernel.
  Open(HeadsSpec(8, 2, 64), /*context=*/512, /*tokens=*/320);
  AttentionSteps({{{0, 0, 300}},
                  {{1, 0, 20}},
                  {{0, 300, 1}},
                  {{0, 301, 1}, {1, 20, 1}},
                  {{0, 302, 1}, {1, 21, 1}},
                  {{0, 303, 150}, {1, 22, 130}}},
                 0, "long-context attention");
}

TEST_P(CudaOpConformance, AttentionPromptsOfThousandsOfTokens) {
  CB_TRACE_SEED(seed_);
  // head_dim 128 as Llama 3: a 1100-token prompt in 18 flash tiles, a second 1100-token chunk
  // on it (keys up to 2200), then decode steps at 2200 split 32 ways.
  Open(HeadsSpec(8, 2, 128), /*context=*/2300, /*tokens=*/1100);
  AttentionSteps(
      {{{0, 0, 1100}}, {{0, 1100, 1100}}, {{0, 2200, 1}}, {{0, 2201, 1}}, {{0, 2202, 1}}}, 1,
      "2K-context attention");
}

TEST_P(CudaOpConformance, SwiGlu) {
  CB_TRACE_SEED(seed_);
  for (const ModelSpec& spec : {TinySpec(false, false), OddSpec(false, false)}) {
    Open(spec);
    Feed(Buf::kGateUp, 6, 6.0f);
    RunOp(FindOp(OpKind::kSwiGlu, 0), TokenStep(6));
    Expect(Buf::kAct, 6, StoreTol(), spec.name + " swiglu");
  }
}

TEST_P(CudaOpConformance, ResidualAddAndSelectLast) {
  CB_TRACE_SEED(seed_);
  Open(OddSpec(false, false));
  Feed(Buf::kX, 10, 4.0f);
  Feed(Buf::kProj, 10, 1.0f);
  RunOp(FindOp(OpKind::kResidualAdd, 0, 1), TokenStep(10));
  Expect(Buf::kX, 10, 0.0, "residual add");  // fp32 buffers in every dtype
  StepIO io;
  io.seqs = {{2, 0, 4}, {0, 9, 1}, {1, 3, 5}};
  RunOp(FindOp(OpKind::kSelectLast, -1), io);
  Expect(Buf::kXLast, 3, 0.0, "select_last");
}

TEST_P(CudaOpConformance, SampleGreedyLowestIndexOnTiesAndNaN) {
  CB_TRACE_SEED(seed_);
  Open(OddSpec(false, false));
  const int64_t vocab = p_.stream.dims.vocab_full, seqs = 4;
  std::vector<float> logits = RandomValues(rng_, seqs * vocab, 5.0f);
  logits[0 * vocab + 17] = 9.0f;
  logits[0 * vocab + 200] = 9.0f;
  logits[1 * vocab + 249] = 7.0f;
  logits[2 * vocab + 3] = std::numeric_limits<float>::quiet_NaN();
  logits[2 * vocab + 100] = 8.0f;
  ASSERT_TRUE(p_.cuda->WriteBuffer(Buf::kLogits, seqs, logits).ok());
  ASSERT_TRUE(p_.ref->WriteBuffer(Buf::kLogits, seqs, logits).ok());
  StepIO a = SequenceStep(seqs), b = SequenceStep(seqs);
  a.want_logits = b.want_logits = true;
  RunOp(FindOp(OpKind::kSampleGreedy, -1), a, b);
  EXPECT_EQ(a.next_tokens, b.next_tokens);
  ASSERT_EQ(a.next_tokens.size(), 4u);
  EXPECT_EQ(a.next_tokens[0], 17);
  EXPECT_EQ(a.next_tokens[1], 249);
  EXPECT_EQ(a.next_tokens[2], 100);
}

TEST_P(CudaOpConformance, CollectivesAreIdentityOnOneRank) {
  CB_TRACE_SEED(seed_);
  OpStream stream;
  ASSERT_TRUE(BuildDenseDecoderStream(TinySpec(false, false), ShardSpec{}, 2, &stream).ok());
  const size_t reduce = stream.ops.size(), gather = reduce + 1;
  stream.ops.push_back({OpKind::kAllReduce, 0, Buf::kProj, Buf::kProj, {}, 64, 0});
  stream.ops.push_back({OpKind::kAllGather, -1, Buf::kLogits, Buf::kLogits, {}, 256, 0});
  std::unique_ptr<Device> dev;
  ASSERT_TRUE(OpenCudaDevice(-1, &dev).ok());
  std::unique_ptr<Session> s;
  ASSERT_TRUE(dev->Open(conformance::Config(dtype(), kMaxSeqs, kMaxContext, kMaxTokens), &s).ok());
  ASSERT_TRUE(s->Load(stream, WeightSource(seed_)).ok());
  const std::vector<float> v = RandomValues(rng_, 5 * 64, 1.0f);
  ASSERT_TRUE(s->WriteBuffer(Buf::kProj, 5, v).ok());
  StepIO io = TokenStep(5);
  ASSERT_TRUE(s->Run(stream, {reduce, reduce + 1}, io).ok());
  std::vector<float> after;
  ASSERT_TRUE(s->ReadBuffer(Buf::kProj, 5, &after).ok());
  EXPECT_EQ(after, v);
  StepIO io2 = SequenceStep(2);
  ASSERT_TRUE(s->Run(stream, {gather, gather + 1}, io2).ok());
}

INSTANTIATE_TEST_SUITE_P(Dtypes, CudaOpConformance,
                         ::testing::Combine(::testing::Values(DType::kF32, DType::kBF16,
                                                              DType::kF16),
                                            ::testing::Values("fast", "fallback")),
                         [](const auto& info) {
                           return std::string(DTypeName(std::get<0>(info.param))) + "_" +
                                  std::get<1>(info.param);
                         });

}  // namespace
}  // namespace cb::gpu_test
