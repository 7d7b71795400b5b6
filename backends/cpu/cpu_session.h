#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/attention.h"
#include "backends/cpu/expert_kernels.h"
#include "backends/cpu/kernels.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/mla.h"
#include "backends/cpu/moe_mla.h"
#include "backends/cpu/packed_matrix.h"

namespace cb::cpu {

inline constexpr int kBufCount = static_cast<int>(Buf::kNextTokens) + 1;

/// A buffer's element type in a session of `dtype`: matmul inputs in the dtype its matmuls read
/// (MatmulInputDType: the session dtype, bf16 for fp8, fp32 for int8), the rest fp32.
DType SessionBufDType(Buf b, DType dtype);

/// One model instance on the CPU. Load allocates everything (packed weights, KV cache,
/// activation buffers, scratch); Run executes ops one after another on the calling thread's
/// OpenMP team.
///
/// Buffer dtypes: the residual stream, projections, QKV, gate/up and logits are fp32; the
/// matmul inputs (normalised rows, attention output, SwiGLU output) are in the session dtype,
/// so a bf16 matmul reads them directly.
///
/// The session is split by op family: cpu_session.cc (Load, Run, buffers), cpu_session_check.cc
/// (the stream's contract), cpu_session_dense.cc (dense weights, activations, KV cache),
/// cpu_session_moe.cc (router and routed experts), cpu_session_ep.cc (expert parallelism),
/// cpu_session_mla.cc (multi-head latent attention).
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
  struct OpPlan {
    const PackedMatrix* matrix = nullptr;       ///< kMatMul, kRouter (the gate)
    const EmbedTable* embed = nullptr;          ///< kEmbedding
    const float* gain[2] = {nullptr, nullptr};  ///< norms; kRouter: gain[0] = selection bias
    ExpertKernels* experts = nullptr;           ///< kMoeExperts
    const MlaWeights* mla = nullptr;            ///< kMlaAttention
  };
  /// A MoE layer under expert parallelism whose shared experts run while its dispatch
  /// all-to-all is in flight: ops [shared, router) are the shared experts.
  struct EpOverlap {
    size_t shared = 0, router = 0, experts = 0;
  };

  DType BufDType(Buf b) const { return SessionBufDType(b, cfg_.dtype); }
  const ActBuffer& B(Buf b) const { return bufs_[static_cast<int>(b)]; }
  int64_t Rows(Buf b) const { return BufferRows(b) == Rows::kTokenRows ? tokens_ : seqs_; }
  void Progress(uint64_t bytes);

  // cpu_session_check.cc
  Status CheckStream(const OpStream& stream) const;
  /// What the cpu backend runs in int8/fp8: dense GQA models on one rank.
  Status CheckQuantizedStream(const OpStream& stream) const;
  // cpu_session_dense.cc
  Status PlanWeights(const OpStream& stream, const WeightSource& weights);
  Status AllocateBuffers(const OpStream& stream);
  // cpu_session.cc
  Status PrepareStep(const StepIO& io);
  Status RunOp(const Op& op, const OpPlan& plan, StepIO& io);
  Status RunAttention(const Op& op, const StepIO& io);
  Status RunAllGather(const Op& op);
  // cpu_session_moe.cc
  Status PlanMoe(const OpStream& stream, const WeightSource& weights);
  Status RunRouter(const Op& op, const OpPlan& plan, StepIO& io);
  Status RunMoeExperts(const Op& op, const OpPlan& plan);
  // cpu_session_ep.cc: dispatch rows to the experts' ranks (bf16 in a bf16 session), run the
  // local experts on what arrives, send the results back and combine them.
  void PlanEpOverlap(const OpStream& stream);
  Status StartEpDispatch(const Op& op);
  Status FinishEpExperts(const Op& op, const OpPlan& plan);
  // cpu_session_mla.cc
  Status PlanMla(const OpStream& stream, const WeightSource& weights);
  Status RunMlaAttention(const Op& op, const OpPlan& plan, const StepIO& io);

  SessionConfig cfg_;
  std::vector<float> gather_scratch_;  ///< allgather receive buffer (tensor parallel)
  bool loaded_ = false;
  size_t num_ops_ = 0;
  int layers_ = 0;
  int tp_size_ = 1;
  LocalDims dims_;
  float eps_ = 1e-5f;
  uint64_t load_done_ = 0, load_total_ = 0;  ///< bytes made so far, of the estimate

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

  // Mixture of experts (empty for a dense model).
  MoeSpec moe_;
  double zipf_s_ = 0;
  std::vector<std::unique_ptr<ExpertKernels>> experts_;
  std::map<std::string, std::vector<float>> dense_f32_;  ///< router biases
  AlignedBuffer router_logits_;                          ///< fp32 [max_step_tokens, experts]
  ExpertDispatch dispatch_;
  AlignedBuffer moe_act_;  ///< [pairs, ffn_pad] SwiGLU rows in the session dtype
  int64_t moe_pairs_ = 0;  ///< moe_act_'s row capacity
  Status EnsureMoePairs(int64_t pairs);

  // Expert parallelism.
  int ep_size_ = 1;
  std::vector<EpOverlap> ep_overlap_;
  std::vector<char> ep_send_, ep_recv_, ep_result_, ep_back_;  ///< alltoallv payloads
  std::vector<int> ep_counts_, ep_offsets_, ep_rcounts_, ep_roffsets_;
  std::vector<int32_t> ep_pair_token_;  ///< (token, weight) of each sent row, in send order
  std::vector<float> ep_pair_weight_;
  std::vector<int64_t> ep_offset_;  ///< received rows grouped by local expert
  std::vector<int32_t> ep_row_;
  std::unique_ptr<PendingCollective> ep_pending_;
  int64_t ep_received_ = 0;

  // Multi-head latent attention.
  std::vector<std::unique_ptr<MlaWeights>> mla_weights_;
  LatentCache latent_;
  AlignedBuffer mla_rope_;  ///< [max_context][qk_rope]: cosines then sines
  MlaScratch mla_scratch_;
};

}  // namespace cb::cpu
