#pragma once

#include <mpi.h>

#include <string>

#include "backends/comm/communicator.h"

namespace cb {

/// Failure notices between ranks: a small message on a dedicated communicator, probed while
/// any collective waits.
class MpiFailureChannel {
 public:
  static void Init();
  static void Notify(int my_rank, int world_size, const std::string& message);
  /// True (and the notice in `message`) when another rank reported a failure.
  static bool Pending(std::string* message);
};

/// Collectives over an MPI communicator, non-blocking underneath: each waits by polling, so
/// it can give up after the timeout or when another rank reports a failure.
class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, double timeout_s);
  ~MpiCommunicator() override;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  Status AllReduceSum(float* data, size_t count) override;
  Status AllGather(const float* send, size_t count, float* recv) override;
  Status AllToAllV(const float* send, const int* send_counts, const int* send_offsets, float* recv,
                   const int* recv_counts, const int* recv_offsets) override;
  Status AllToAllVBytes(const void* send, const int* send_counts, const int* send_offsets,
                        void* recv, const int* recv_counts, const int* recv_offsets) override;
  Status StartAllToAllVBytes(const void* send, const int* send_counts, const int* send_offsets,
                             void* recv, const int* recv_counts, const int* recv_offsets,
                             std::unique_ptr<PendingCollective>* pending) override;
  Status Broadcast(void* data, size_t bytes, int root) override;
  Status Barrier() override;
  Status Gather(const void* send, size_t bytes, void* recv, int root) override;
  double comm_seconds() const override { return comm_seconds_; }
  void ResetTimers() override { comm_seconds_ = 0; }

  MPI_Comm comm() const { return comm_; }
  double timeout() const { return timeout_s_; }
  void set_timeout(double s) { timeout_s_ = s; }

 private:
  friend class MpiPending;
  /// Waits for `request`; `what` names the collective in errors.
  Status Wait(MPI_Request* request, const char* what, double started);

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  double timeout_s_;
  double comm_seconds_ = 0;
};

}  // namespace cb
