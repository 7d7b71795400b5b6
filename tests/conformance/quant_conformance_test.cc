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

#include <algorithm>

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
    if (*name != 0) {
      ASSERT_TRUE(LoadModelSpec(name, &spec).ok());
    }
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
      // Inside moe_experts the SwiGLU rows are rounded again, computed in another order than
      // the reference: in bf16 for fp8, to int8 codes for int8, where a value within an ulp of
      // a boundary takes the neighbouring code (expert_kernels_test.cc has the figures).
      const bool bf16_out = cpu::SessionBufDType(out, GetParam()) == DType::kBF16;
      double tol = bf16_out ? 8e-3 : 1e-4;
      if (op.kind == OpKind::kMoeExperts) {
        tol = std::max(tol, GetParam() == DType::kInt8 ? kInt8CodeFlipTol : 8e-3);
      }
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

// Attention over an 8-bit KV cache (--kv-dtype int8 / fp8) in every compute dtype, on every
// head_dim path of the kernel: two uneven prefills (20 positions: a whole K tile and a tail),
// a chunk, then decode steps. Both sides quantise the same fp32 K and V rows into the same
// codes and scales (the cpu's encoder is QuantizeKvHead bit for bit, quant_kernels_test.cc).
// What differs: the cpu's fp32 dot products of q with the codes (each product rounded by at
// most 2^-24, at most 128 terms) times scale and the K scale, Exp16 (~2 ulp) and fp32 weighted
// sums of the codes, against the reference's double sums of code x scale: measured up to
// 1.9e-6 of the largest output (30 runs of each case, 6 shapes x 4 steps each), so 1e-4 as for
// fp32 and the bf16 cache (AttentionTol), which still catches a wrong scale, code or position
// (errors of 1e-2 and more). Outputs stored in bf16 (bf16 and fp8 weight-only sessions) add
// their rounding, 2^-8 of the largest (measured up to 3.9e-3): 8e-3. Also fp32 compute with a
// bf16 cache, which both sides round to bf16 as it is appended.
struct KvCase {
  DType dtype, kv;
};

class KvCacheConformance : public ::testing::TestWithParam<KvCase> {
 protected:
  void Feed(SessionPair& p, std::mt19937_64& rng, int64_t rows) {
    std::vector<float> v = RandomValues(rng, rows * p.stream.dims.QkvWidth(), 2.5f), stored;
    ASSERT_TRUE(p.cpu->WriteBuffer(Buf::kQkv, rows, v).ok());
    ASSERT_TRUE(p.cpu->ReadBuffer(Buf::kQkv, rows, &stored).ok());
    ASSERT_TRUE(p.ref->WriteBuffer(Buf::kQkv, rows, stored).ok());
  }
};

TEST_P(KvCacheConformance, AttentionPrefillThenDecode) {
  const KvCase c = GetParam();
  const uint64_t seed = FreshSeed();
  CB_TRACE_SEED(seed);
  std::mt19937_64 rng(seed);
  const double tol = cpu::SessionBufDType(Buf::kAttn, c.dtype) == DType::kBF16 ? 8e-3 : 1e-4;
  for (const ModelSpec& spec : {TinySpec(false, false), OddSpec(false, false), HeadsSpec(4, 1, 64),
                                HeadsSpec(8, 1, 32), HeadsSpec(6, 2, 128), HeadsSpec(5, 5, 40)}) {
    SCOPED_TRACE(spec.name);
    SessionConfig cfg = Config(c.dtype, 2, 48, 40);
    cfg.kv_dtype = c.kv;
    SessionPair p;
    OpenPair(spec, cfg, seed, &p);
    if (HasFatalFailure()) return;
    size_t op = 0;
    while (p.stream.ops[op].kind != OpKind::kAttention || p.stream.ops[op].layer != 1) ++op;
    const std::vector<std::vector<SeqStep>> steps = {
        {{0, 0, 20}, {1, 0, 5}}, {{1, 5, 3}, {0, 20, 1}}, {{0, 21, 1}, {1, 8, 1}}, {{1, 9, 1}}};
    for (size_t k = 0; k < steps.size(); ++k) {
      StepIO io;
      io.seqs = steps[k];
      const int64_t rows = io.TotalTokens();
      Feed(p, rng, rows);
      StepIO a = io, b = io;
      ASSERT_TRUE(p.cpu->Run(p.stream, {op, op + 1}, a).ok());
      ASSERT_TRUE(p.ref->Run(p.stream, {op, op + 1}, b).ok());
      std::vector<float> got, want;
      ASSERT_TRUE(p.cpu->ReadBuffer(Buf::kAttn, rows, &got).ok());
      ASSERT_TRUE(p.ref->ReadBuffer(Buf::kAttn, rows, &want).ok());
      EXPECT_LE(MaxRelError(got, want), tol) << "step " << k;
    }
  }
}

// The cache really is 8-bit: 1 byte per value plus a scale per (position, KV head), K and V.
TEST_P(KvCacheConformance, CacheHoldsOneBytePerValuePlusScales) {
  const KvCase c = GetParam();
  const ModelSpec spec = TinySpec(false, false);
  OpStream stream;
  ASSERT_TRUE(BuildDenseDecoderStream(spec, ShardSpec{}, 2, &stream).ok());
  uint64_t bytes[2] = {};
  for (int i = 0; i < 2; ++i) {
    SessionConfig cfg = Config(c.dtype, 2, 48, 40);
    cfg.kv_dtype = i == 0 ? DType::kBF16 : c.kv;
    std::unique_ptr<Session> s;
    ASSERT_TRUE(MakeCpuDevice()->Open(cfg, &s).ok());
    ASSERT_TRUE(s->Load(stream, WeightSource(1)).ok());
    bytes[i] = s->AllocatedBytes();
  }
  // 2 layers x 2 slots x 2 KV heads x 48 positions, K and V: 16 values of 2 bytes in bf16,
  // 16 codes and a 4-byte scale in 8 bits.
  const int64_t heads_positions = 2 * 2 * 2 * 48 * 2;
  const int64_t head_bytes = IsQuantized(c.kv) ? 16 + 4 : 32;
  EXPECT_EQ(bytes[0] - bytes[1], static_cast<uint64_t>(heads_positions * (32 - head_bytes)));
}

std::vector<KvCase> KvCases() {
  std::vector<KvCase> cases;
  for (DType dtype : {DType::kF32, DType::kBF16, DType::kInt8, DType::kFP8}) {
    for (DType kv : {DType::kInt8, DType::kFP8}) cases.push_back({dtype, kv});
  }
  cases.push_back({DType::kF32, DType::kBF16});  // fp32 compute, bf16 cache: rounded on both
  return cases;
}

INSTANTIATE_TEST_SUITE_P(ComputeAndKvDTypes, KvCacheConformance, ::testing::ValuesIn(KvCases()),
                         [](const auto& info) {
                           return std::string(DTypeName(info.param.dtype)) + "_kv_" +
                                  std::string(DTypeName(info.param.kv));
                         });

// MLA models keep their latent cache in the high-precision dtype: both backends refuse an 8-bit
// (or any other) KV dtype for them at Load, kUnsupported with the reason.
TEST(KvCacheConformance, MlaModelsRefuseAnotherKvDType) {
  ModelSpec spec;
  ASSERT_TRUE(LoadModelSpec("tiny-moe-mla", &spec).ok());
  OpStream stream;
  ASSERT_TRUE(
      BuildDenseDecoderStream(spec, ShardSpec{}, static_cast<int>(spec.num_layers), &stream).ok());
  for (DType kv : {DType::kFP8, DType::kInt8}) {
    SessionConfig cfg = Config(DType::kBF16, 1, 16, 16);
    cfg.kv_dtype = kv;
    for (int backend = 0; backend < 2; ++backend) {
      const std::unique_ptr<Device> device = backend == 0 ? MakeCpuDevice() : MakeReferenceDevice();
      std::unique_ptr<Session> s;
      ASSERT_TRUE(device->Open(cfg, &s).ok());
      const Status st = s->Load(stream, WeightSource(1));
      EXPECT_EQ(st.code(), StatusCode::kUnsupported) << st.message();
      EXPECT_EQ(st.message(), "this backend keeps an MLA model's latent KV cache in bf16, not " +
                                  std::string(DTypeName(kv)));
    }
  }
}

}  // namespace
}  // namespace cb::conformance
