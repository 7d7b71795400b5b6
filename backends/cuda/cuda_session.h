#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/cuda_plan.h"
#include "backends/cuda/kernels.h"

namespace cb::cuda {

class NcclCommunicator;

/// One model instance (one rank's shard) on one GPU. Load budgets device memory (PlanMemory vs
/// cudaMemGetInfo), then allocates weights, KV cache and step buffers once; Run enqueues the
/// ops on the session's stream (cuBLAS for matmuls, kernels.cu for the rest) and allocates
/// nothing. Steps where every sequence brings one token (decode) are captured once per shape
/// as a CUDA graph and replayed; per-step data (positions, slots, attention tiles) lives in
/// a device metadata buffer refreshed before each step, so a replay sees the new step.
class CudaSession final : public Session {
 public:
  CudaSession(const SessionConfig& config, int device, int sm_count);
  ~CudaSession() override;

  Status Load(const OpStream& stream, const WeightSource& weights) override;
  Status Run(const OpStream& stream, OpRange range, StepIO& io) override;
  Status Synchronize() override;
  uint64_t AllocatedBytes() const override { return allocated_; }
  Status ReadBuffer(Buf buf, int64_t rows, std::vector<float>* out) const override;
  Status WriteBuffer(Buf buf, int64_t rows, const std::vector<float>& data) override;

  /// Graph replays and eager steps so far, and why graphs are off (empty when they are on).
  int64_t graph_replays() const { return graph_replays_; }
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

  Status Init();
  void Release();
  Status Alloc(void** p, uint64_t bytes, const std::string& what);
  Status CheckStream(const OpStream& s) const;
  Status UploadRows(const WeightDesc& d, const WeightSource& weights, void* dst, float* staging);
  Status PlanWeights(const OpStream& s, const WeightSource& weights);
  Status AllocateBuffers(const OpStream& s);
  Status PrepareStep(const StepIO& io);
  Status CheckKvValid(const OpStream& s, OpRange range, const StepIO& io) const;
  Status Enqueue(const OpStream& s, OpRange range, bool for_graph);
  Status EnqueueOp(const Op& op, const OpPlan& plan, bool for_graph);
  bool UseGemmAttention() const;
  Status GemmAttention(const char* k_cache, const char* v_cache, void* out);
  Status RunGraph(const OpStream& s, OpRange range, const StepIO& io, bool* ran);
  Status Collective(const Op& op);
  int64_t Rows(Buf b) const { return BufferRows(b) == Rows::kTokenRows ? tokens_ : seqs_; }
  const DevBuf& B(Buf b) const { return bufs_[static_cast<int>(b)]; }

  SessionConfig cfg_;
  int device_ = 0, sms_ = 1;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  bool loaded_ = false;
  size_t num_ops_ = 0;
  int layers_ = 0, tp_size_ = 1;
  LocalDims dims_;
  float eps_ = 1e-5f;
  AttentionTiling tiling_;

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
  int32_t* meta_ = nullptr;       ///< step metadata (layout: meta offsets below)
  void* attn_scratch_ = nullptr;  ///< GEMM attention: scores (fp32) then probabilities
  uint64_t attn_scratch_bytes_ = 0;
  void* q_conv_ = nullptr;  ///< GEMM attention: the step's queries in the session dtype
  std::vector<int32_t> meta_host_;
  int64_t off_pos_ = 0, off_slot_ = 0, off_last_ = 0, off_tiles_ = 0;
  std::vector<std::vector<int64_t>> kv_valid_;  ///< [layer][slot]: cached positions

  // The current step (PrepareStep).
  int64_t tokens_ = 0, seqs_ = 0, num_tiles_ = 0, max_len_ = 0;
  std::vector<SeqStep> step_seqs_;
  std::vector<int64_t> step_row0_;  ///< first row of each sequence

  // Tensor parallelism: NCCL on the stream, or host staging through cfg_.tp_comm.
  std::unique_ptr<NcclCommunicator> nccl_;
  std::vector<float> host_stage_;

  // CUDA graphs of decode steps, by shape.
  bool graphs_enabled_ = true;
  std::string graph_note_;
  std::map<std::string, cudaGraphExec_t> graphs_;
  std::set<std::string> graph_failed_;
  std::map<std::string, int> graph_seen_;  ///< eager steps per shape before its capture
  int64_t graph_replays_ = 0;
};

}  // namespace cb::cuda
