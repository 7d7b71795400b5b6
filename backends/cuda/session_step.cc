// CudaSession: the per-step metadata copies and the CUDA graphs of decode steps.

#include <cstdio>
#include <cstring>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_session.h"
#include "backends/step_check.h"

namespace cb::cuda {

Status CudaSession::PrepareStep(const StepIO& io) {
  int64_t total = 0;
  CB_RETURN_IF_ERROR(CheckStep(io, cfg_, dims_.vocab_full, &total));
  BuildStepMeta(io.seqs, tiling_.rows_per_tile, &step_);
  step_seqs_ = io.seqs;
  CB_RETURN_IF_ERROR(Upload(step_.data, meta_, &meta_sent_));
  if (!io.tokens.empty()) CB_RETURN_IF_ERROR(Upload(io.tokens, B(Buf::kTokens).p, &tokens_sent_));
  return Status::Ok();
}

/// Copies `data` to `dst` on the stream through the next pinned slot, unless the device copy
/// already holds it (`sent`: what was copied there last): a step run op range by op range
/// copies its metadata once.
Status CudaSession::Upload(const std::vector<int32_t>& data, void* dst,
                           std::vector<int32_t>* sent) {
  if (data.empty() || data == *sent) return Status::Ok();
  if (static_cast<int64_t>(data.size()) > pinned_ints_) {
    return Status::Internal("step data of " + std::to_string(data.size()) +
                            " values outgrew the pinned buffers");
  }
  PinnedSlot& slot = pinned_[pinned_next_];
  pinned_next_ = (pinned_next_ + 1) % pinned_.size();
  CB_CUDA(cudaEventSynchronize(slot.done));  // its last copy has read it
  std::memcpy(slot.p, data.data(), data.size() * sizeof(int32_t));
  CB_CUDA(
      cudaMemcpyAsync(dst, slot.p, data.size() * sizeof(int32_t), cudaMemcpyHostToDevice, stream_));
  CB_CUDA(cudaEventRecord(slot.done, stream_));
  *sent = data;
  return Status::Ok();
}

Status CudaSession::CheckKvValid(const OpStream& s, OpRange range, const StepIO& io) const {
  for (size_t i = range.begin; i < range.end; ++i) {
    const Op& op = s.ops[i];
    if (op.kind != OpKind::kAttention) continue;
    for (const SeqStep& q : io.seqs) {
      const int64_t valid = kv_valid_[op.layer][q.slot];
      if (valid < q.past_len) {
        return Status::InvalidInput(
            "op " + std::to_string(i) + " (" + std::string(OpKindName(op.kind)) + " of layer " +
            std::to_string(op.layer) + "): slot " + std::to_string(q.slot) + " holds " +
            std::to_string(valid) + " cached positions, the step says past_len " +
            std::to_string(q.past_len));
      }
    }
  }
  return Status::Ok();
}

Status CudaSession::RunGraph(const OpStream& s, OpRange range, bool* ran) {
  *ran = false;
  const std::string key = std::to_string(range.begin) + ":" + std::to_string(range.end) + ":" +
                          std::to_string(step_.seqs);
  if (graph_failed_.count(key)) return Status::Ok();
  auto it = graphs_.find(key);
  // The first step of a shape runs eagerly: cuBLAS picks and (lazily) loads its kernels, and
  // kernels raise their shared-memory limits, outside the capture. The second is captured,
  // later ones replay.
  if (it == graphs_.end() && graph_seen_[key]++ == 0) return Status::Ok();
  if (it == graphs_.end()) {
    cudaGraph_t graph = nullptr;
    CB_CUDA(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    const Status enq = Enqueue(s, range, /*for_graph=*/true);
    const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
    cudaGraphExec_t exec = nullptr;
    cudaError_t inst = cudaErrorUnknown;
    if (enq.ok() && end == cudaSuccess && graph != nullptr) {
      inst = cudaGraphInstantiate(&exec, graph, 0);
    }
    if (graph != nullptr) cudaGraphDestroy(graph);
    if (!enq.ok() || end != cudaSuccess || inst != cudaSuccess) {
      cudaGetLastError();  // clear the capture's error; the step runs eagerly
      graph_failed_.insert(key);
      const std::string why = !enq.ok()            ? enq.message()
                              : end != cudaSuccess ? std::string(cudaGetErrorString(end))
                                                   : std::string(cudaGetErrorString(inst));
      graph_note_ =
          "CUDA graph capture of the decode step " + key + " failed (" + why + "); it runs eagerly";
      std::fprintf(stderr, "cuda: %s\n", graph_note_.c_str());
      return Status::Ok();
    }
    it = graphs_.emplace(key, exec).first;
  }
  CB_CUDA(cudaGraphLaunch(it->second, stream_));
  ++graph_replays_;
  *ran = true;
  return Status::Ok();
}

}  // namespace cb::cuda
