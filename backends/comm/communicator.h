#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "harness/core/status.h"

namespace cb {

/// A collective started without waiting (Communicator::StartAllToAllVBytes).
class PendingCollective {
 public:
  virtual ~PendingCollective() = default;
  /// Lets the collective advance (call it between pieces of overlapped work).
  virtual void Progress() {}
  /// Waits for it to complete.
  virtual Status Finish() = 0;
};

/// A collective that already completed, with its outcome.
class DoneCollective final : public PendingCollective {
 public:
  explicit DoneCollective(Status s) : status_(std::move(s)) {}
  Status Finish() override { return status_; }

 private:
  Status status_;
};

/// Collectives among the ranks of one group (a tensor-parallel group, a data-parallel group,
/// or the whole world). Every call is collective: all ranks of the group make it, in the
/// same order. A collective that does not complete within the group's timeout, or during
/// which another rank reports a failure, returns a non-OK status instead of hanging.
class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  /// In place: data[i] = sum over ranks of data[i].
  virtual Status AllReduceSum(float* data, size_t count) = 0;
  /// recv = the `count` floats of rank 0, then rank 1, ... (recv holds size() * count).
  virtual Status AllGather(const float* send, size_t count, float* recv) = 0;
  /// Variable all-to-all of floats: send_counts[r] floats go to rank r (at send_offsets[r]),
  /// recv_counts[r] arrive from rank r (at recv_offsets[r]).
  virtual Status AllToAllV(const float* send, const int* send_counts, const int* send_offsets,
                           float* recv, const int* recv_counts, const int* recv_offsets) = 0;
  /// AllToAllV of bytes: counts and offsets in bytes. Backends without it refuse.
  virtual Status AllToAllVBytes(const void* send, const int* send_counts, const int* send_offsets,
                                void* recv, const int* recv_counts, const int* recv_offsets) {
    return Status::Unsupported("this communicator has no byte all-to-all");
  }
  /// Starts AllToAllVBytes; the buffers must stay untouched until `pending` finishes. By
  /// default it runs to completion here.
  virtual Status StartAllToAllVBytes(const void* send, const int* send_counts,
                                     const int* send_offsets, void* recv, const int* recv_counts,
                                     const int* recv_offsets,
                                     std::unique_ptr<PendingCollective>* pending) {
    *pending = std::make_unique<DoneCollective>(
        AllToAllVBytes(send, send_counts, send_offsets, recv, recv_counts, recv_offsets));
    return Status::Ok();
  }
  virtual Status Broadcast(void* data, size_t bytes, int root) = 0;
  virtual Status Barrier() = 0;
  /// Gathers `bytes` from every rank at `root` (recv: size() * bytes, only used at root).
  virtual Status Gather(const void* send, size_t bytes, void* recv, int root) = 0;

  /// Wall time spent inside collectives since the last ResetTimers().
  virtual double comm_seconds() const = 0;
  virtual void ResetTimers() = 0;
};

/// A group of one rank: every collective is a copy or a no-op. Used without a launcher.
class SingleRankCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  Status AllReduceSum(float*, size_t) override { return Status::Ok(); }
  Status AllGather(const float* send, size_t count, float* recv) override;
  Status AllToAllV(const float* send, const int* send_counts, const int* send_offsets, float* recv,
                   const int* recv_counts, const int* recv_offsets) override;
  Status AllToAllVBytes(const void* send, const int* send_counts, const int* send_offsets,
                        void* recv, const int* recv_counts, const int* recv_offsets) override;
  Status Broadcast(void*, size_t, int) override { return Status::Ok(); }
  Status Barrier() override { return Status::Ok(); }
  Status Gather(const void* send, size_t bytes, void* recv, int root) override;
  double comm_seconds() const override { return 0; }
  void ResetTimers() override {}
};

}  // namespace cb
