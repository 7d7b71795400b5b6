#pragma once

#include <cuda_runtime.h>

#include <memory>

#include "backends/comm/communicator.h"

#if !defined(CLUSTERBENCH_HAVE_NCCL)
namespace cb::cuda {
/// Built without NCCL: the session holds no NcclCommunicator (the type is complete so that
/// its std::unique_ptr member can be destroyed).
class NcclCommunicator final {};
}  // namespace cb::cuda
#else
#include <nccl.h>

namespace cb::cuda {

/// Collectives among the GPUs of a tensor-parallel group through NCCL, one rank per GPU. It is
/// made over the group's existing Communicator (MPI under the launcher): rank 0's NCCL unique
/// id travels by that communicator's Broadcast, and the collectives NCCL does not cover
/// (all-to-all-v of host data, broadcast, barrier, gather) are delegated to it.
///
/// The CUDA session calls the *Device methods on its stream (device pointers, capturable in a
/// CUDA graph); the host-pointer Communicator methods stage through device memory and
/// synchronise, for callers that hold host data.
class NcclCommunicator final : public Communicator {
 public:
  /// Collective over `group`: every rank calls it with its own `device` (already current).
  static Status Create(Communicator* group, cudaStream_t stream,
                       std::unique_ptr<NcclCommunicator>* out);
  ~NcclCommunicator() override;

  Status AllReduceSumDevice(float* data, size_t count);
  Status AllGatherDevice(const float* send, size_t count, float* recv);

  int rank() const override { return group_->rank(); }
  int size() const override { return group_->size(); }
  Status AllReduceSum(float* data, size_t count) override;
  Status AllGather(const float* send, size_t count, float* recv) override;
  Status AllToAllV(const float* send, const int* send_counts, const int* send_offsets, float* recv,
                   const int* recv_counts, const int* recv_offsets) override {
    return group_->AllToAllV(send, send_counts, send_offsets, recv, recv_counts, recv_offsets);
  }
  Status Broadcast(void* data, size_t bytes, int root) override {
    return group_->Broadcast(data, bytes, root);
  }
  Status Barrier() override { return group_->Barrier(); }
  Status Gather(const void* send, size_t bytes, void* recv, int root) override {
    return group_->Gather(send, bytes, recv, root);
  }
  /// Host-side time of the host-pointer collectives only: device collectives are enqueued
  /// and timed with the step.
  double comm_seconds() const override { return comm_seconds_; }
  void ResetTimers() override { comm_seconds_ = 0; }

 private:
  NcclCommunicator(Communicator* group, ncclComm_t comm, cudaStream_t stream)
      : group_(group), comm_(comm), stream_(stream) {}
  Status Stage(size_t bytes);

  Communicator* group_;
  ncclComm_t comm_;
  cudaStream_t stream_;
  float* staging_ = nullptr;
  size_t staging_bytes_ = 0;
  double comm_seconds_ = 0;
};

}  // namespace cb::cuda
#endif  // CLUSTERBENCH_HAVE_NCCL
