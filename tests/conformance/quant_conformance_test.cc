// The quantised dtypes op by op: the cpu backend's int8 (W8A8, VNNI) and fp8 (weight-only)
// matmuls against the reference's simulated quantisation with the same codes and scales, on
// shapes that pad n and k, from 1 row (decode GEMV) to prefill sizes; and attention over the
// bf16 KV cache of a quantised session.
//
// Tolerance 1e-4 relative to max |reference output|, as for fp32 (op_conformance_test.cc):
// both sides quantise the same fp32 inputs with the same fp32 operations (per-token int8
// codes and scales are bit-identical); int8 products accumulate exactly in int32 on the cpu
// and in double in the reference; fp8 weights and bf16 inputs are exact in bf16 and their
// products exact in fp32. What remains is fp32 accumulation order and the final scaling.

#include <gtest/gtest.h>

#include "backends/cpu/cpu_session.h"
#include "tests/conformance/conformance_util.h"

namespace cb::conformance {
namespace {

constexpr double kQuantMatmulTol = 1e-4;
/// The attention output of a session whose KV cache is bf16 (both sides round K and V the
/// same way; what differs is fp32 against double softmax and sums); an fp8 (weight-only)
/// session also stores the output in bf16 for its matmul (2^-8, as kBf16StoreTol).
double AttentionTol(DType dtype) { return dtype == DType::kFP8 ? 8e-3 : 1e-4; }

StepIO Tokens(int64_t tokens) {
  StepIO io;
  io.seqs.push_back({0, 0, tokens});
  return io;
}

class QuantOpConformance : public ::testing::TestWithParam<DType> {
 protected:
  void SetUp() override {
    seed_ = FreshSeed();
    rng_.seed(seed_);
  }
  void Open(const ModelSpec& spec) { OpenPair(spec, Config(GetParam(), 4, 48, 40), seed_, &p_); }
  size_t FindOp(OpKind kind, int layer, int nth = 0) const {
    for (size_t i = 0; i < p_.stream.ops.size(); ++i) {
      if (p_.stream.ops[i].kind == kind && p_.stream.ops[i].layer == layer && nth-- == 0) return i;
    }
    ADD_FAILURE() << "no " << OpKindName(kind) << " op in layer " << layer;
    return 0;
  }
  void Feed(Buf buf, int64_t rows, float scale) {
    const int64_t width = BufferWidth(p_.stream.dims, buf);
    std::vector<float> v = RandomValues(rng_, rows * width, scale), stored;
    ASSERT_TRUE(p_.cpu->WriteBuffer(buf, rows, v).ok());
    ASSERT_TRUE(p_.cpu->ReadBuffer(buf, rows, &stored).ok());
    ASSERT_TRUE(p_.ref->WriteBuffer(buf, rows, stored).ok());
  }
  void Run(size_t op, const StepIO& io) {
    StepIO a = io, b = io;
    Status s = p_.cpu->Run(p_.stream, {op, op + 1}, a);
    ASSERT_TRUE(s.ok()) << "cpu: " << s.message();
    s = p_.ref->Run(p_.stream, {op, op + 1}, b);
    ASSERT_TRUE(s.ok()) << "reference: " << s.message();
  }
  void Expect(Buf buf, int64_t rows, double tol, const std::string& what) {
    std::vector<float> got, want;
    ASSERT_TRUE(p_.cpu->ReadBuffer(buf, rows, &got).ok());
    ASSERT_TRUE(p_.ref->ReadBuffer(buf, rows, &want).ok());
    EXPECT_LE(MaxRelError(got, want), tol) << what << ", " << DTypeName(GetParam());
  }

  uint64_t seed_ = 0;
  std::mt19937_64 rng_;
  SessionPair p_;
};

TEST_P(QuantOpConformance, MatMulEveryProjectionAndRowCount) {
  CB_TRACE_SEED(seed_);
  for (const ModelSpec& spec : {TinySpec(false, false), OddSpec(false, true)}) {
    Open(spec);
    for (int nth = 0; nth < 4; ++nth) {  // QKV, O, gate/up, down of layer 0
      const size_t op = FindOp(OpKind::kMatMul, 0, nth);
      const Op& o = p_.stream.ops[op];
      for (int64_t rows : {1, 2, 3, 4, 5, 6, 7, 13, 33}) {
        Feed(o.in, rows, 1.0f);
        Run(op, Tokens(rows));
        Expect(o.out, rows, kQuantMatmulTol,
               spec.name + " matmul " + o.weights[0] + " rows " + std::to_string(rows));
      }
    }
    const size_t head = FindOp(OpKind::kMatMul, -1);  // the quantised LM head
    StepIO io;
    for (int64_t s = 0; s < 3; ++s) io.seqs.push_back({s, 0, 1});
    Feed(Buf::kHLast, 3, 1.0f);
    Run(head, io);
    Expect(Buf::kLogits, 3, kQuantMatmulTol, spec.name + " lm head");
  }
}

// Every op of the tiny dense, MoE and MLA models' streams in order, each on the inputs the
// cpu session produced (copied to the reference first), so that an op's error is its own.
TEST_P(QuantOpConformance, EveryOpOfTheStreamOnTheSameInputs) {
  CB_TRACE_SEED(seed_);
  for (const char* name : {"", "tiny-moe-gqa", "tiny-moe-mla"}) {
    SCOPED_TRACE(name);
    ModelSpec spec = TinySpec(true, false);
    if (*name != 0) ASSERT_TRUE(LoadModelSpec(name, &spec).ok());
    Open(spec);
    StepIO io = Tokens(7);
    std::uniform_int_distribution<int32_t> tok(0, 255);
    for (int i = 0; i < 7; ++i) io.tokens.push_back(tok(rng_));
    for (size_t i = 0; i < p_.stream.ops.size(); ++i) {
      const Op& op = p_.stream.ops[i];
      if (op.kind == OpKind::kSampleGreedy) break;
      std::vector<Buf> inputs = {op.in};
      if (op.kind == OpKind::kResidualAdd) inputs.push_back(op.out);
      if (op.kind == OpKind::kMoeExperts) inputs.push_back(Buf::kRoute);  // the cpu's choices
      if (op.kind == OpKind::kMlaRope || op.kind == OpKind::kMlaAttention) {
        inputs = {Buf::kQ, Buf::kKva};
      }
      for (Buf b : inputs) {
        if (b == Buf::kTokens) continue;
        std::vector<float> in;
        const int64_t rows = BufferRows(b) == Rows::kTokenRows ? 7 : 1;
        ASSERT_TRUE(p_.cpu->ReadBuffer(b, rows, &in).ok());
        ASSERT_TRUE(p_.ref->WriteBuffer(b, rows, in).ok());
      }
      Run(i, io);
      // The router's top-k may break a near-tie differently (its scores are checked by
      // moe_mla_conformance_test.cc); the experts then run on the cpu's choices.
      if (op.kind == OpKind::kRouter) continue;
      const Buf out = op.out == Buf::kNone ? op.in : op.out;
      const int64_t rows = BufferRows(out) == Rows::kTokenRows ? 7 : 1;
      // An fp8 (weight-only) session stores matmul inputs in bf16 (2^-8, as kBf16StoreTol).
      const bool bf16_out = cpu::SessionBufDType(out, GetParam()) == DType::kBF16;
      const double tol = bf16_out ? 8e-3 : 1e-4;
      Expect(out, rows, tol, "op " + std::to_string(i) + " " + std::string(OpKindName(op.kind)));
    }
  }
}

TEST_P(QuantOpConformance, AttentionOverTheBf16KvCache) {
  CB_TRACE_SEED(seed_);
  Open(TinySpec(false, false));
  const size_t op = FindOp(OpKind::kAttention, 1);
  Feed(Buf::kQkv, 9, 1.0f);
  Run(op, Tokens(9));
  Expect(Buf::kAttn, 9, AttentionTol(GetParam()), "prefill attention");
  StepIO decode;
  decode.seqs.push_back({0, 9, 1});
  Feed(Buf::kQkv, 1, 1.0f);
  Run(op, decode);
  Expect(Buf::kAttn, 1, AttentionTol(GetParam()), "decode attention");
}

INSTANTIATE_TEST_SUITE_P(QuantDTypes, QuantOpConformance,
                         ::testing::Values(DType::kInt8, DType::kFP8),
                         [](const auto& info) { return std::string(DTypeName(info.param)); });

}  // namespace
}  // namespace cb::conformance
