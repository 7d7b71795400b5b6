#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/cuda_paths.h"
#include "backends/cuda/cuda_plan.h"
#include "backends/cuda/fusion_plan.h"
#include "backends/cuda/kernels.h"

namespace cb::cuda {

class NcclCommunicator;

/// One model instance (one rank's shard) on one GPU. Load budgets device memory (PlanMemory vs
/// cudaMemGetInfo), then allocates weights, KV cache and step buffers once; Run enqueues the
/// ops on the session's stream (launch groups from fusion_plan.h: skinny GEMM or cuBLAS for
/// matmuls, kernels for the rest) and allocates nothing. Steps where every sequence brings one
/// token (decode) are captured once per shape as a CUDA graph and replayed; per-step data
/// (positions, slots, attention tiles) lives in a device metadata buffer refreshed from pinned
/// memory before each step, so a replay sees the new step. The files: cuda_session.cc
/// (lifecycle, Load, Run), session_buffers.cc (allocation, weights, buffer access),
/// session_step.cc (step metadata, CUDA graphs), session_dispatch.cc (ops and matmuls),
/// session_attention.cc (the attention paths).
class CudaSession final : public Session {
 public:
  CudaSession(const SessionConfig& config, int device, int sm_count, const CudaPaths& paths);
  ~CudaSession() override;

  Status Load(const OpStream& stream, const WeightSource& weights) override;
  Status Run(const OpStream& stream, OpRange range, StepIO& io) override;
  Status Synchronize() override;
  uint64_t AllocatedBytes() const override { return allocated_; }
  Status ReadBuffer(Buf buf, int64_t rows, std::vector<float>* out) const override;
  Status WriteBuffer(Buf buf, int64_t rows, const std::vector<float>& data) override;

  /// The switchable paths (from $CB_CUDA_DISABLE); SetPaths before Load changes them.
  const CudaPaths& paths() const { return paths_; }
  void SetPaths(const CudaPaths& paths);
  /// Ops enqueued by route ("matmul_skinny", "attention_flash", ...): eagerly or once into a
  /// graph capture.
  const PathCounts& path_counts() const { return counts_; }
  /// Decode steps replayed as graphs, captured, and run eagerly; why graphs are off or a
  /// capture failed (empty when neither).
  int64_t graph_replays() const { return graph_replays_; }
  int64_t graph_captures() const { return static_cast<int64_t>(graphs_.size()); }
  int64_t eager_decode_steps() const { return eager_decode_steps_; }
  const std::string& graph_note() const { return graph_note_; }

 private:
  struct DevBuf {
    void* p = nullptr;
    DType dtype = DType::kF32;
    bool ids = false;
    int64_t width = 0, rows = 0;
    float* f32() const { return static_cast<float*>(p); }
    int32_t* i32() const { return static_cast<int32_t*>(p); }
  };
  struct Matrix {
    void* w = nullptr;
    int64_t n = 0, k = 0;
  };
  struct OpPlan {
    int matrix = -1;              ///< kMatMul: index into matrices_
    const void* embed = nullptr;  ///< kEmbedding: [vocab, width] in the session dtype
    const float* gain[2] = {nullptr, nullptr};
  };
  /// Pinned host buffers for the per-step copies, reused round robin once their copy is done.
  struct PinnedSlot {
    int32_t* p = nullptr;
    cudaEvent_t done = nullptr;
  };

  // cuda_session.cc
  Status Init();
  void Release();
  Status Alloc(void** p, uint64_t bytes, const std::string& what);
  // session_buffers.cc
  Status UploadRows(const WeightDesc& d, const WeightSource& weights, void* dst, float* staging);
  Status PlanWeights(const OpStream& s, const WeightSource& weights);
  Status UploadGains(const OpStream& s, const WeightSource& weights, float* staging);
  Status AllocateBuffers(const OpStream& s);
  Status AllocateStepData();
  // session_step.cc
  Status PrepareStep(const StepIO& io);
  Status Upload(const std::vector<int32_t>& data, void* dst, std::vector<int32_t>* sent);
  Status CheckKvValid(const OpStream& s, OpRange range, const StepIO& io) const;
  Status RunGraph(const OpStream& s, OpRange range, bool* ran);
  // session_dispatch.cc
  Status Enqueue(const OpStream& s, OpRange range, bool for_graph);
  Status EnqueueGroup(const OpStream& s, const LaunchGroup& g, bool for_graph);
  Status EnqueueOp(const Op& op, const OpPlan& plan);
  Status MatMul(const OpStream& s, const LaunchGroup& g);
  Status SkinnyMatMul(const OpStream& s, const LaunchGroup& g, const DevBuf& out);
  Status Collective(const Op& op);
  // session_attention.cc
  Status Attention(const Op& op, const OpPlan* qk_norm, bool rope, bool for_graph);
  AttentionArgs AttentionArgsFor(const Op& op) const;
  bool UseGemmAttention() const;
  Status GemmAttention(const char* k_cache, const char* v_cache, void* out);

  int64_t Rows(Buf b) const {
    return BufferRows(b) == Rows::kTokenRows ? step_.tokens : step_.seqs;
  }
  const DevBuf& B(Buf b) const { return bufs_[static_cast<int>(b)]; }
  void Count(const char* route) { ++counts_[route]; }

  SessionConfig cfg_;
  int device_ = 0, sms_ = 1;
  CudaPaths paths_;
  PathCounts counts_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  bool loaded_ = false;
  size_t num_ops_ = 0;
  int layers_ = 0, tp_size_ = 1;
  LocalDims dims_;
  float eps_ = 1e-5f;
  AttentionTiling tiling_;
  DecodeAttnPlan decode_plan_;
  bool flash_ok_ = false, gemm_attn_ = false;
  std::vector<uint32_t> dead_after_;  ///< DeadAfter of the loaded stream

  std::vector<void*> allocs_;
  uint64_t allocated_ = 0;
  void* workspace_ = nullptr;
  std::vector<Matrix> matrices_;
  std::vector<OpPlan> plans_;
  DevBuf bufs_[static_cast<int>(Buf::kNextTokens) + 1];
  void* k_cache_ = nullptr;  ///< [layer][slot][kv_head][max_context][head_dim]
  void* v_cache_ = nullptr;
  int64_t layer_stride_ = 0, slot_stride_ = 0, head_stride_ = 0;
  float* rope_ = nullptr;         ///< [max_context][head_dim]: cosines, then sines
  float* partial_ = nullptr;      ///< split-K attention partials
  float* gather_ = nullptr;       ///< allgather receive buffer (tensor parallel)
  int32_t* meta_ = nullptr;       ///< the step's StepMeta on the device
  void* attn_scratch_ = nullptr;  ///< GEMM attention: scores (fp32) then probabilities
  uint64_t attn_scratch_bytes_ = 0;
  void* q_conv_ = nullptr;  ///< GEMM attention: the step's queries in the session dtype

  // The current step (PrepareStep) and what the device copies hold.
  StepMeta step_;
  std::vector<SeqStep> step_seqs_;
  std::vector<int32_t> meta_sent_, tokens_sent_;
  std::vector<PinnedSlot> pinned_;
  size_t pinned_next_ = 0;
  int64_t pinned_ints_ = 0;
  std::vector<std::vector<int64_t>> kv_valid_;  ///< [layer][slot]: cached positions

  // Tensor parallelism: NCCL on the stream, or host staging through cfg_.tp_comm.
  std::unique_ptr<NcclCommunicator> nccl_;
  std::vector<float> host_stage_;

  // CUDA graphs of decode steps, by shape.
  bool graphs_enabled_ = true;
  std::string graph_note_;
  std::map<std::string, cudaGraphExec_t> graphs_;
  std::set<std::string> graph_failed_;
  std::map<std::string, int> graph_seen_;  ///< eager steps per shape before its capture
  int64_t graph_replays_ = 0, eager_decode_steps_ = 0;
};

}  // namespace cb::cuda
