// Every op kind of the stream, one at a time: the cpu backend against the reference on the
// same weights and the same inputs (written to the cpu session, read back as it stores them,
// and given to the reference), in fp32 and bf16.
//
// Tolerances, relative to max |reference output|:
//  - kExact (0): ops that only copy or add fp32 values (embedding, select_last, residual add,
//    greedy sampling) must agree bit for bit: both sides round the same weights the same way,
//    and an fp32 add is correctly rounded like the reference's double add rounded to fp32.
//  - kF32Tol (1e-4): fp32 arithmetic against the reference's double accumulation. A length-K
//    fp32 dot product errs by about sqrt(K) * 2^-24 relative to its terms (1e-6 for K = 128);
//    the exp of softmax and SiLU adds a few ulp. 1e-4 leaves a margin of ~100 while a wrong
//    index, scale or sign gives errors of order 1. A bf16 matmul is held to the same bound: its
//    inputs and weights are the same bf16 values on both sides, bf16 x bf16 products are exact
//    in fp32, and only the fp32 accumulation differs.
//  - kBf16StoreTol (8e-3): a bf16 session stores normalised rows, the SwiGLU output and the
//    attention output in bf16: one rounding to 8 significant bits, at most 2^-8 = 3.9e-3 of
//    the value and so of max |out| (observed up to 3.8e-3 over 100 seeds); twice that bound.
//  - kBf16AttentionTol (2.5e-2): bf16 attention also reads K and V rounded to bf16 from the
//    cache (2^-8 each), which moves the softmax weights, and the output, an average smaller
//    than the largest V, carries V's rounding relative to max |V|. Observed up to 1.0e-2 over
//    100 seeds and head_dim 16 to 128; 2.5x that.

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

#include "tests/conformance/conformance_util.h"

namespace cb::conformance {
namespace {

constexpr double kExact = 0.0;
constexpr double kF32Tol = 1e-4;
constexpr double kBf16StoreTol = 8e-3;
constexpr double kBf16AttentionTol = 2.5e-2;

/// One sequence of `tokens` new tokens at position `past`.
StepIO TokenStep(int64_t tokens, int64_t past = 0) {
  StepIO io;
  io.seqs.push_back({0, past, tokens});
  return io;
}

/// `seqs` sequences with one new token each (decode shape).
StepIO SequenceStep(int64_t seqs) {
  StepIO io;
  for (int64_t s = 0; s < seqs; ++s) io.seqs.push_back({s, 3 + s, 1});
  return io;
}

class OpConformance : public ::testing::TestWithParam<DType> {
 protected:
  static constexpr int64_t kMaxSeqs = 12, kMaxContext = 48, kMaxTokens = 40;

  void SetUp() override {
    seed_ = FreshSeed();
    rng_.seed(seed_);
  }
  DType dtype() const { return GetParam(); }
  bool bf16() const { return dtype() == DType::kBF16; }
  /// Tolerance of an op whose output buffer a bf16 session stores in bf16.
  double StoreTol() const { return bf16() ? kBf16StoreTol : kF32Tol; }

  void Open(const ModelSpec& spec) {
    OpenPair(spec, Config(dtype(), kMaxSeqs, kMaxContext, kMaxTokens), seed_, &p_);
  }

  /// Index of the `nth` op of `kind` in `layer`.
  size_t FindOp(OpKind kind, int layer, int nth = 0) const {
    for (size_t i = 0; i < p_.stream.ops.size(); ++i) {
      if (p_.stream.ops[i].kind == kind && p_.stream.ops[i].layer == layer && nth-- == 0) return i;
    }
    ADD_FAILURE() << "no " << OpKindName(kind) << " op in layer " << layer;
    return 0;
  }

  /// Random values into `buf` of both sessions: written to the cpu session, read back as it
  /// stores them (bf16-rounded where it keeps bf16) and written to the reference.
  void Feed(Buf buf, int64_t rows, float scale) {
    const int64_t width = static_cast<int64_t>(Width(buf));
    std::vector<float> v = RandomValues(rng_, rows * width, scale);
    ASSERT_TRUE(p_.cpu->WriteBuffer(buf, rows, v).ok());
    std::vector<float> stored;
    ASSERT_TRUE(p_.cpu->ReadBuffer(buf, rows, &stored).ok());
    Status s = p_.ref->WriteBuffer(buf, rows, stored);
    ASSERT_TRUE(s.ok()) << s.message();
  }

  size_t Width(Buf buf) const {
    return static_cast<size_t>(std::max<int64_t>(1, BufferWidth(p_.stream.dims, buf)));
  }

  void RunOp(size_t op, StepIO& io_cpu, StepIO& io_ref) {
    Status s = p_.cpu->Run(p_.stream, {op, op + 1}, io_cpu);
    ASSERT_TRUE(s.ok()) << "cpu: " << s.message();
    s = p_.ref->Run(p_.stream, {op, op + 1}, io_ref);
    ASSERT_TRUE(s.ok()) << "reference: " << s.message();
  }
  void RunOp(size_t op, const StepIO& io) {
    StepIO a = io, b = io;
    RunOp(op, a, b);
  }

  /// Reads `rows` of `buf` from both sessions and checks the relative error.
  void Expect(Buf buf, int64_t rows, double tol, const std::string& what) {
    std::vector<float> got, want;
    ASSERT_TRUE(p_.cpu->ReadBuffer(buf, rows, &got).ok());
    ASSERT_TRUE(p_.ref->ReadBuffer(buf, rows, &want).ok());
    const double err = MaxRelError(got, want);
    EXPECT_LE(err, tol) << what << ": buffer " << BufName(buf) << ", " << rows << " rows, "
                        << DTypeName(dtype());
  }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  SessionPair p_;
};

TEST_P(OpConformance, EmbeddingPlainAndTied) {
  CB_TRACE_SEED(seed_);
  for (bool tie : {false, true}) {
    Open(TinySpec(false, tie));
    StepIO io = TokenStep(11);
    std::uniform_int_distribution<int32_t> tok(0, 255);
    for (int i = 0; i < 11; ++i) io.tokens.push_back(tok(rng_));
    io.tokens[3] = 255;  // the last row of the table
    io.tokens[4] = 0;
    RunOp(FindOp(OpKind::kEmbedding, -1), io);
    Expect(Buf::kX, 11, kExact, tie ? "tied embedding" : "embedding");
  }
}

TEST_P(OpConformance, RmsNorm) {
  CB_TRACE_SEED(seed_);
  for (const ModelSpec& spec : {TinySpec(false, false), OddSpec(false, false)}) {
    Open(spec);
    Feed(Buf::kX, 9, 3.0f);
    RunOp(FindOp(OpKind::kRmsNorm, 1, 1), TokenStep(9));  // mlp_norm of layer 1
    Expect(Buf::kH, 9, StoreTol(), spec.name + " rmsnorm");
    Feed(Buf::kXLast, 5, 0.5f);
    RunOp(FindOp(OpKind::kRmsNorm, -1), SequenceStep(5));  // final norm, sequence rows
    Expect(Buf::kHLast, 5, StoreTol(), spec.name + " final rmsnorm");
  }
}

TEST_P(OpConformance, MatMulSkinnyAndOneDnn) {
  CB_TRACE_SEED(seed_);
  // Up to 8 rows run on the skinny kernel, more on oneDNN; odd shapes pad n and k.
  for (const ModelSpec& spec : {TinySpec(false, false), OddSpec(false, true)}) {
    Open(spec);
    for (int nth = 0; nth < 4; ++nth) {  // QKV, O, gate/up, down of layer 0
      const size_t op = FindOp(OpKind::kMatMul, 0, nth);
      const Op& o = p_.stream.ops[op];
      for (int64_t rows : {1, 2, 3, 4, 5, 7, 8, 9, 33}) {
        Feed(o.in, rows, 1.0f);
        RunOp(op, TokenStep(rows));
        Expect(o.out, rows, kF32Tol,
               spec.name + " matmul " + o.weights[0] + " rows " + std::to_string(rows));
      }
    }
    const size_t head = FindOp(OpKind::kMatMul, -1);  // LM head on sequence rows
    for (int64_t seqs : {1, 2, 5, 8, 9, 12}) {
      Feed(Buf::kHLast, seqs, 1.0f);
      RunOp(head, SequenceStep(seqs));
      Expect(Buf::kLogits, seqs, kF32Tol,
             spec.name + " lm head, sequences " + std::to_string(seqs));
    }
  }
}

TEST_P(OpConformance, QkNorm) {
  CB_TRACE_SEED(seed_);
  for (const ModelSpec& spec : {TinySpec(true, false), OddSpec(true, false)}) {
    Open(spec);
    Feed(Buf::kQkv, 7, 2.0f);
    RunOp(FindOp(OpKind::kQkNorm, 1), TokenStep(7));
    Expect(Buf::kQkv, 7, kF32Tol, spec.name + " qk_norm");
  }
}

TEST_P(OpConformance, RopeAtSequencePositions) {
  CB_TRACE_SEED(seed_);
  for (const ModelSpec& spec : {TinySpec(false, false), OddSpec(false, false)}) {
    Open(spec);
    StepIO io;
    io.seqs = {{1, 17, 3}, {0, 0, 4}, {2, 40, 2}};  // positions 17..19, 0..3, 40..41
    Feed(Buf::kQkv, 9, 1.0f);
    RunOp(FindOp(OpKind::kRope, 0), io);
    Expect(Buf::kQkv, 9, kF32Tol, spec.name + " rope");
  }
}

TEST_P(OpConformance, AttentionPrefillThenDecodeWithKvCache) {
  CB_TRACE_SEED(seed_);
  const double tol = bf16() ? kBf16AttentionTol : kF32Tol;
  for (const ModelSpec& spec : {TinySpec(false, false), OddSpec(false, false), HeadsSpec(4, 1, 64),
                                HeadsSpec(8, 1, 32), HeadsSpec(6, 2, 128), HeadsSpec(5, 5, 40)}) {
    Open(spec);
    const size_t op = FindOp(OpKind::kAttention, 1);
    // Prefill of two uneven sequences, a chunk on top of one of them in a different order,
    // then decode steps: each step's K and V join the cache the next steps attend to.
    const std::vector<std::vector<SeqStep>> steps = {
        {{0, 0, 5}, {1, 0, 3}}, {{1, 3, 4}, {0, 5, 1}}, {{0, 6, 1}, {1, 7, 1}}, {{1, 8, 1}}};
    for (size_t k = 0; k < steps.size(); ++k) {
      StepIO io;
      io.seqs = steps[k];
      const int64_t rows = io.TotalTokens();
      Feed(Buf::kQkv, rows, 2.5f);
      RunOp(op, io);
      Expect(Buf::kAttn, rows, tol, spec.name + " attention step " + std::to_string(k));
    }
    // A step that claims more cached positions than the slot holds is refused by both.
    StepIO bad;
    bad.seqs = {{0, 20, 1}};
    EXPECT_FALSE(p_.cpu->Run(p_.stream, {op, op + 1}, bad).ok());
    EXPECT_FALSE(p_.ref->Run(p_.stream, {op, op + 1}, bad).ok());
  }
}

TEST_P(OpConformance, SwiGlu) {
  CB_TRACE_SEED(seed_);
  for (const ModelSpec& spec : {TinySpec(false, false), OddSpec(false, false)}) {
    Open(spec);
    Feed(Buf::kGateUp, 6, 6.0f);  // wide enough for both tails of the SiLU
    RunOp(FindOp(OpKind::kSwiGlu, 0), TokenStep(6));
    Expect(Buf::kAct, 6, StoreTol(), spec.name + " swiglu");
  }
}

TEST_P(OpConformance, ResidualAdd) {
  CB_TRACE_SEED(seed_);
  Open(OddSpec(false, false));
  Feed(Buf::kX, 10, 4.0f);
  Feed(Buf::kProj, 10, 1.0f);
  RunOp(FindOp(OpKind::kResidualAdd, 0, 1), TokenStep(10));
  Expect(Buf::kX, 10, kExact, "residual add");
}

TEST_P(OpConformance, SelectLastOfUnevenSequences) {
  CB_TRACE_SEED(seed_);
  Open(TinySpec(false, false));
  StepIO io;
  io.seqs = {{2, 0, 4}, {0, 9, 1}, {1, 3, 6}};
  Feed(Buf::kX, 11, 1.0f);
  RunOp(FindOp(OpKind::kSelectLast, -1), io);
  Expect(Buf::kXLast, 3, kExact, "select_last");
  std::vector<float> x, last;
  ASSERT_TRUE(p_.cpu->ReadBuffer(Buf::kX, 11, &x).ok());
  ASSERT_TRUE(p_.cpu->ReadBuffer(Buf::kXLast, 3, &last).ok());
  const int64_t h = p_.stream.dims.hidden;
  EXPECT_TRUE(std::equal(last.begin(), last.begin() + h, x.begin() + 3 * h));
  EXPECT_TRUE(std::equal(last.begin() + h, last.begin() + 2 * h, x.begin() + 4 * h));
  EXPECT_TRUE(std::equal(last.begin() + 2 * h, last.end(), x.begin() + 10 * h));
}

TEST_P(OpConformance, SampleGreedyLowestIndexOnTiesAndNaN) {
  CB_TRACE_SEED(seed_);
  Open(OddSpec(false, false));  // vocab 250: a vector tail
  const int64_t vocab = p_.stream.dims.vocab_full, seqs = 4;
  std::vector<float> logits = RandomValues(rng_, seqs * vocab, 5.0f);
  logits[0 * vocab + 17] = 9.0f;  // a tie: index 17 wins over 200
  logits[0 * vocab + 200] = 9.0f;
  logits[1 * vocab + 249] = 7.0f;                                   // the maximum in the tail
  logits[2 * vocab + 3] = std::numeric_limits<float>::quiet_NaN();  // NaN never wins
  logits[2 * vocab + 100] = 8.0f;
  ASSERT_TRUE(p_.cpu->WriteBuffer(Buf::kLogits, seqs, logits).ok());
  ASSERT_TRUE(p_.ref->WriteBuffer(Buf::kLogits, seqs, logits).ok());
  StepIO a = SequenceStep(seqs), b = SequenceStep(seqs);
  a.want_logits = b.want_logits = true;
  RunOp(FindOp(OpKind::kSampleGreedy, -1), a, b);
  EXPECT_EQ(a.next_tokens, b.next_tokens);
  ASSERT_EQ(a.next_tokens.size(), 4u);
  EXPECT_EQ(a.next_tokens[0], 17);
  EXPECT_EQ(a.next_tokens[1], 249);
  EXPECT_EQ(a.next_tokens[2], 100);
  ASSERT_EQ(a.logits.size(), logits.size());
  EXPECT_TRUE(std::equal(a.logits.begin(), a.logits.end(), logits.begin(), [](float x, float y) {
    return x == y || (std::isnan(x) && std::isnan(y));
  }));
}

TEST_P(OpConformance, CollectivesAreIdentityOnOneRank) {
  CB_TRACE_SEED(seed_);
  OpStream stream;
  ASSERT_TRUE(BuildDenseDecoderStream(TinySpec(false, false), ShardSpec{}, 2, &stream).ok());
  const size_t reduce = stream.ops.size(), gather = reduce + 1;
  stream.ops.push_back({OpKind::kAllReduce, 0, Buf::kProj, Buf::kProj, {}, 64, 0});
  stream.ops.push_back({OpKind::kAllGather, -1, Buf::kLogits, Buf::kLogits, {}, 256, 0});
  OpenPair(stream, Config(dtype(), kMaxSeqs, kMaxContext, kMaxTokens), seed_, &p_);
  Feed(Buf::kProj, 5, 1.0f);
  std::vector<float> before;
  ASSERT_TRUE(p_.cpu->ReadBuffer(Buf::kProj, 5, &before).ok());
  RunOp(reduce, TokenStep(5));
  Expect(Buf::kProj, 5, kExact, "allreduce");
  std::vector<float> after;
  ASSERT_TRUE(p_.cpu->ReadBuffer(Buf::kProj, 5, &after).ok());
  EXPECT_EQ(before, after);
  Feed(Buf::kLogits, 2, 1.0f);
  RunOp(gather, SequenceStep(2));
  Expect(Buf::kLogits, 2, kExact, "allgather");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, OpConformance, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

TEST(OpConformanceTp, CollectivesAcrossRanksNeedACommunicator) {
  OpStream stream;
  ASSERT_TRUE(BuildDenseDecoderStream(TinySpec(false, false), ShardSpec{2, 1}, 1, &stream).ok());
  auto device = MakeCpuDevice();
  std::unique_ptr<Session> s;
  ASSERT_TRUE(device->Open(Config(DType::kF32, 1, 8, 8), &s).ok());
  // A shard of a 2-way split with no tensor-parallel communicator: the session refuses it at
  // Load, or (without communicator support) its collectives refuse to run.
  const Status load = s->Load(stream, WeightSource(1));
  if (!load.ok()) {
    EXPECT_NE(load.message().find("communicator"), std::string::npos) << load.message();
  } else {
    size_t reduce = stream.ops.size();
    for (size_t i = 0; i < stream.ops.size() && reduce == stream.ops.size(); ++i) {
      if (stream.ops[i].kind == OpKind::kAllReduce) reduce = i;
    }
    ASSERT_LT(reduce, stream.ops.size());
    StepIO io = TokenStep(2);
    const Status st = s->Run(stream, {reduce, reduce + 1}, io);
    EXPECT_EQ(st.code(), StatusCode::kUnsupported);
    EXPECT_NE(st.message().find("MPI"), std::string::npos) << st.message();
  }

  auto ref = MakeReferenceDevice();
  std::unique_ptr<Session> r;
  ASSERT_TRUE(ref->Open(Config(DType::kF32, 1, 8, 8), &r).ok());
  EXPECT_EQ(r->Load(stream, WeightSource(1)).code(), StatusCode::kUnsupported);
}

}  // namespace
}  // namespace cb::conformance
