#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/reference/reference_backend.h"
#include "backends/reference/reference_weights.h"

namespace cb {

inline constexpr int kRefBufCount = static_cast<int>(Buf::kNextTokens) + 1;

/// sum_i x[i] * w[i] in double: every dot product of the reference is this one loop, so held
/// and regenerated weights give the same bits.
inline double Dot(const float* x, const float* w, int64_t n) {
  double acc = 0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; ++i) acc += static_cast<double>(x[i]) * w[i];
  return acc;
}

/// How a matmul reads its input rows (workloads/quant.h): as they are, rounded to bf16
/// (weight-only fp8/int8), or quantised per token (int8) or per group of 128 columns (fp8).
enum class ActQuant { kNone, kBf16, kInt8, kFp8 };
ActQuant ActQuantOf(const SessionConfig& config);

/// One input row as a matmul reads it: its values (the codes' values when quantised) and the
/// scale of each group of `group` columns.
struct QuantRow {
  std::vector<float> v, scale;
  int64_t group = 0;
};
void QuantizeInput(ActQuant mode, const float* x, int64_t k, QuantRow* out);
/// sum over groups g of scale_g * Dot(x_g, w_g): with the weight's scale, the exact value of
/// the quantised dot product (integer and e4m3 products are exact in double).
double QDot(const QuantRow& x, const float* w);

/// The reference session (reference_backend.h): reference_backend.cc holds Load, Run and the
/// buffers, reference_ops.cc the dense ops, reference_moe_mla.cc the router, the experts and
/// MLA.
class ReferenceSession final : public Session {
 public:
  ReferenceSession(const SessionConfig& config, const ReferenceOptions& options)
      : cfg_(config),
        options_(options),
        act_(ActQuantOf(config)),
        kv_dtype_(config.kv_dtype.value_or(DefaultKvDType(config.dtype))) {}

  Status Load(const OpStream& stream, const WeightSource& weights) override;
  Status Run(const OpStream& stream, OpRange range, StepIO& io) override;
  Status Synchronize() override { return Status::Ok(); }
  uint64_t AllocatedBytes() const override;
  Status ReadBuffer(Buf buf, int64_t rows, std::vector<float>* out) const override;
  Status WriteBuffer(Buf buf, int64_t rows, const std::vector<float>& data) override;

 private:
  struct KvEntry {
    std::vector<float> k, v;  ///< [positions, kv_heads * head_dim]; MLA: k holds the latent
    int64_t valid = 0;        ///< positions written so far
  };
  /// The slot must already hold the positions the step says are cached.
  static Status CheckCachedPrefix(const KvEntry& kv, const SeqStep& s, int layer) {
    if (kv.valid >= s.past_len) return Status::Ok();
    return Status::InvalidInput("slot " + std::to_string(s.slot) + " holds " +
                                std::to_string(kv.valid) + " cached positions at layer " +
                                std::to_string(layer) + ", the step says past_len " +
                                std::to_string(s.past_len));
  }

  Status RunOp(const Op& op, StepIO& io);
  Status Input(Buf b, int64_t width, const float** out) const;
  float* Output(Buf b, int64_t width);
  const RefWeights::Entry& W(const std::string& name) const { return weights_.At(name); }
  int64_t Rows(Buf b) const { return BufferRows(b) == Rows::kTokenRows ? tokens_ : seqs_; }

  Status EmbeddingOp(const Op& op);
  Status RmsNormOp(const Op& op);
  Status MatMulOp(const Op& op);
  Status QkNormOp(const Op& op);
  Status RopeOp(const Op& op, const StepIO& io);
  Status AttentionOp(const Op& op, const StepIO& io);
  Status SwiGluOp(const Op& op);
  Status ResidualAddOp(const Op& op);
  Status SelectLastOp(const Op& op, const StepIO& io);
  Status SampleGreedyOp(const Op& op, StepIO& io);
  Status RouterOp(const Op& op, StepIO& io);
  /// The gate's logits of every token (+ the skew bias) and, per (token, expert),
  /// sum_c |h_c g_ec| (the size of the rounding that can move the logit).
  void RouterLogits(const Op& op, const float* h, std::vector<double>* logits,
                    std::vector<double>* abs_dot) const;
  Status MoeExpertsOp(const Op& op);
  Status MlaKvNormOp(const Op& op);
  Status MlaRopeOp(const Op& op, const StepIO& io);
  Status MlaAttentionOp(const Op& op, const StepIO& io);

  SessionConfig cfg_;
  ReferenceOptions options_;
  ActQuant act_ = ActQuant::kNone;
  /// The KV cache's dtype. The cache holds what the cpu backend's would give back: 8-bit codes
  /// times their scales (RoundKvHead); bf16-rounded values where the cpu backend's compute
  /// dtype is not bf16 (its fp32 K and V rounded on the way in); the values themselves in
  /// a bf16 session, whose activations the reference keeps in fp32 throughout.
  DType kv_dtype_ = DType::kF32;
  bool loaded_ = false;
  LocalDims dims_;
  double eps_ = 1e-5, theta_ = 10000.0;
  MoeSpec moe_;
  double zipf_s_ = 0;
  int layers_ = 0;
  size_t num_ops_ = 0;
  RefWeights weights_;
  std::vector<float> bufs_[kRefBufCount];  ///< token ids are held as exact floats
  std::vector<std::vector<KvEntry>> kv_;   ///< [layer][slot]
  int64_t tokens_ = 0, seqs_ = 0;          ///< rows of the current step
};

}  // namespace cb
