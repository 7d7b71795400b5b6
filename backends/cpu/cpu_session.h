#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/attention.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/moe_mla.h"
#include "backends/cpu/packed_matrix.h"

namespace cb::cpu {

inline constexpr int kBufCount = static_cast<int>(Buf::kNextTokens) + 1;

/// One model instance on the CPU. Load allocates everything (packed weights, KV cache,
/// activation buffers, scratch); Run executes ops one after another on the calling thread's
/// OpenMP team and allocates nothing.
///
/// Buffer dtypes: the residual stream, projections, QKV, gate/up and logits are fp32; the
/// matmul inputs (normalised rows, attention output, SwiGLU output) are in the session dtype,
/// so a bf16 matmul reads them directly.
class CpuSession final : public Session {
 public:
  explicit CpuSession(const SessionConfig& config) : cfg_(config) {}

  Status Load(const OpStream& stream, const WeightSource& weights) override;
  Status Run(const OpStream& stream, OpRange range, StepIO& io) override;
  Status Synchronize() override { return Status::Ok(); }
  uint64_t AllocatedBytes() const override;
  Status ReadBuffer(Buf buf, int64_t rows, std::vector<float>* out) const override;
  Status WriteBuffer(Buf buf, int64_t rows, const std::vector<float>& data) override;

 private:
  struct ActBuffer {
    AlignedBuffer mem;
    bool ids = false;  ///< int32 token ids
    DType dtype = DType::kF32;
    int64_t width = 0, rows = 0;  ///< rows: capacity
    View view() const { return {mem.data(), dtype}; }
    float* f32() const { return mem.as<float>(); }
    int32_t* i32() const { return mem.as<int32_t>(); }
  };
  /// An embedding table: plain rows, or the packed matrix of a tied LM head.
  struct EmbedTable {
    AlignedBuffer plain;
    DType dtype = DType::kF32;
    const PackedMatrix* packed = nullptr;
    int64_t vocab = 0;
  };
  /// What Load prepared for one op of the stream.
  /// Packed weights of one MoE layer's local experts.
  struct ExpertWeights {
    std::vector<std::unique_ptr<PackedMatrix>> gate_up, down;
  };
  struct OpPlan {
    const PackedMatrix* matrix = nullptr;       ///< kMatMul, kRouter (the gate)
    const EmbedTable* embed = nullptr;          ///< kEmbedding
    const float* gain[2] = {nullptr, nullptr};  ///< norms; kRouter: gain[0] = selection bias
    const ExpertWeights* experts = nullptr;     ///< kMoeExperts
    const float* kv_b = nullptr;                ///< kMlaAttention: fp32 [heads (nope + v), lora]
  };

  DType BufDType(Buf b) const;
  Status CheckStream(const OpStream& stream) const;
  Status PlanWeights(const OpStream& stream, const WeightSource& weights);
  Status AllocateBuffers(const OpStream& stream);
  Status PrepareStep(const StepIO& io);
  Status RunOp(const Op& op, const OpPlan& plan, StepIO& io);
  Status PlanMoeMla(const OpStream& stream, const WeightSource& weights);
  Status AllocateMoeMla(const OpStream& stream);
  Status RunMoeExperts(const Op& op, const OpPlan& plan);
  /// Expert parallelism: rows to the experts' ranks and results back (alltoallv).
  Status RunMoeExpertsEp(const Op& op, const OpPlan& plan);
  /// One local expert on `rows` gathered rows (moe_in_) -> moe_out_.
  Status RunExpert(const ExpertWeights& w, int64_t e, int64_t rows);
  Status EnsureMoeRows(int64_t rows);
  int64_t Rows(Buf b) const { return BufferRows(b) == Rows::kTokenRows ? tokens_ : seqs_; }

  SessionConfig cfg_;
  std::vector<float> gather_scratch_;  ///< allgather receive buffer (tensor parallel)
  bool loaded_ = false;
  size_t num_ops_ = 0;
  int layers_ = 0;
  int tp_size_ = 1;
  LocalDims dims_;
  float eps_ = 1e-5f;

  std::vector<std::unique_ptr<PackedMatrix>> matrices_;
  std::vector<std::unique_ptr<EmbedTable>> embeds_;
  std::map<std::string, std::vector<float>> gains_;
  std::vector<OpPlan> plans_;
  ActBuffer bufs_[kBufCount];
  KvCache kv_;
  AttentionScratch attn_scratch_;
  AlignedBuffer rope_;  ///< [max_context][head_dim]: head_dim / 2 cosines, then sines
  MatmulRunner matmul_;

  // The current step, filled by PrepareStep (capacity reserved at Load).
  int64_t tokens_ = 0, seqs_ = 0;
  std::vector<RowPos> row_pos_;
  std::vector<int32_t> positions_;

  // Mixture of experts and MLA (empty for a dense GQA model).
  MoeSpec moe_;
  double zipf_s_ = 0;
  std::vector<std::unique_ptr<ExpertWeights>> experts_;
  std::map<std::string, std::vector<float>> dense_f32_;  ///< router bias, kv_b
  AlignedBuffer router_logits_;                          ///< fp32 [max_step_tokens, experts]
  ExpertDispatch dispatch_;
  AlignedBuffer moe_in_, moe_gu_, moe_act_, moe_out_;  ///< per-expert gathered rows
  int64_t moe_rows_ = 0;                               ///< their row capacity
  int ep_size_ = 1;
  std::vector<float> ep_send_, ep_recv_, ep_result_, ep_back_;  ///< alltoallv payloads
  std::vector<int> ep_counts_, ep_offsets_, ep_rcounts_, ep_roffsets_;
  std::vector<int32_t> ep_pair_token_;  ///< (token, weight) of each sent row, in send order
  std::vector<float> ep_pair_weight_;
  LatentCache latent_;
  AlignedBuffer mla_rope_;     ///< [max_context][qk_rope]: cosines then sines
  AlignedBuffer mla_scratch_;  ///< per thread: q_lat, o_lat, scores
  int64_t mla_scratch_per_thread_ = 0;
};

}  // namespace cb::cpu
