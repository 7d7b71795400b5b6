#include "backends/comm/mpi_communicator.h"

#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "harness/core/cancel_flag.h"

namespace cb {
namespace {

constexpr int kFailureTag = 7117;
MPI_Comm g_failure_comm = MPI_COMM_NULL;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

void MpiFailureChannel::Init() {
  if (g_failure_comm == MPI_COMM_NULL) MPI_Comm_dup(MPI_COMM_WORLD, &g_failure_comm);
}

void MpiFailureChannel::Notify(int my_rank, int world_size, const std::string& message) {
  static bool sent = false;
  if (sent || g_failure_comm == MPI_COMM_NULL) return;
  sent = true;
  static std::string text;
  text = "rank " + std::to_string(my_rank) + ": " + message;
  // Small messages go eagerly: the sends complete without the peers receiving them.
  for (int r = 0; r < world_size; ++r) {
    if (r == my_rank) continue;
    MPI_Request req;
    MPI_Isend(text.data(), static_cast<int>(text.size()), MPI_CHAR, r, kFailureTag, g_failure_comm,
              &req);
    MPI_Request_free(&req);
  }
}

bool MpiFailureChannel::Pending(std::string* message) {
  if (g_failure_comm == MPI_COMM_NULL) return false;
  int flag = 0;
  MPI_Status status;
  MPI_Iprobe(MPI_ANY_SOURCE, kFailureTag, g_failure_comm, &flag, &status);
  if (!flag) return false;
  int count = 0;
  MPI_Get_count(&status, MPI_CHAR, &count);
  std::string text(static_cast<size_t>(count), '\0');
  MPI_Recv(text.data(), count, MPI_CHAR, status.MPI_SOURCE, kFailureTag, g_failure_comm,
           MPI_STATUS_IGNORE);
  *message = text;
  return true;
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, double timeout_s)
    : comm_(comm), timeout_s_(timeout_s) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

Status MpiCommunicator::Wait(MPI_Request* request, const char* what, double started) {
  int spins = 0;
  std::string failure;
  while (true) {
    int done = 0;
    MPI_Test(request, &done, MPI_STATUS_IGNORE);
    if (done) {
      comm_seconds_ += Now() - started;
      return Status::Ok();
    }
    if (g_cancel_requested.load(std::memory_order_relaxed)) {
      int world_rank = 0, world_size = 1;
      MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
      MPI_Comm_size(MPI_COMM_WORLD, &world_size);
      MpiFailureChannel::Notify(world_rank, world_size, kInterruptedNotice);
      return Status::Cancelled(std::string(what) + " abandoned: interrupted on rank " +
                               std::to_string(world_rank));
    }
    if (MpiFailureChannel::Pending(&failure)) {
      // Another rank was interrupted: this one ends the same way (exit 130), not as a failure.
      if (failure.find(kInterruptedNotice) != std::string::npos) {
        return Status::Cancelled(std::string(what) + " abandoned: " + failure);
      }
      return Status::Internal(std::string(what) + " abandoned: " + failure);
    }
    if (timeout_s_ > 0 && Now() - started > timeout_s_) {
      return Status::Internal(std::string(what) + " did not complete within " +
                              std::to_string(timeout_s_) +
                              " s (--collective-timeout): a rank stopped or is far behind");
    }
    // Spin briefly for low latency, then yield the core to ranks that are still computing.
    if (++spins > 2000) std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

Status MpiCommunicator::AllReduceSum(float* data, size_t count) {
  const double t0 = Now();
  MPI_Request req;
  MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_FLOAT, MPI_SUM, comm_, &req);
  return Wait(&req, "allreduce", t0);
}

Status MpiCommunicator::AllGather(const float* send, size_t count, float* recv) {
  const double t0 = Now();
  MPI_Request req;
  MPI_Iallgather(send, static_cast<int>(count), MPI_FLOAT, recv, static_cast<int>(count), MPI_FLOAT,
                 comm_, &req);
  return Wait(&req, "allgather", t0);
}

Status MpiCommunicator::AllToAllV(const float* send, const int* send_counts,
                                  const int* send_offsets, float* recv, const int* recv_counts,
                                  const int* recv_offsets) {
  const double t0 = Now();
  MPI_Request req;
  MPI_Ialltoallv(send, send_counts, send_offsets, MPI_FLOAT, recv, recv_counts, recv_offsets,
                 MPI_FLOAT, comm_, &req);
  return Wait(&req, "alltoallv", t0);
}

Status MpiCommunicator::AllToAllVBytes(const void* send, const int* send_counts,
                                       const int* send_offsets, void* recv, const int* recv_counts,
                                       const int* recv_offsets) {
  const double t0 = Now();
  MPI_Request req;
  MPI_Ialltoallv(send, send_counts, send_offsets, MPI_BYTE, recv, recv_counts, recv_offsets,
                 MPI_BYTE, comm_, &req);
  return Wait(&req, "alltoallv", t0);
}

/// An MPI_Ialltoallv in flight; only the time Finish waits counts as communication (the work
/// overlapped with it is the point).
class MpiPending final : public PendingCollective {
 public:
  explicit MpiPending(MpiCommunicator* comm) : comm_(comm) {}
  MPI_Request* request() { return &request_; }
  void Progress() override {
    int done = 0;
    MPI_Test(&request_, &done, MPI_STATUS_IGNORE);
  }
  Status Finish() override { return comm_->Wait(&request_, "alltoallv", Now()); }

 private:
  MpiCommunicator* comm_;
  MPI_Request request_ = MPI_REQUEST_NULL;
};

Status MpiCommunicator::StartAllToAllVBytes(const void* send, const int* send_counts,
                                            const int* send_offsets, void* recv,
                                            const int* recv_counts, const int* recv_offsets,
                                            std::unique_ptr<PendingCollective>* pending) {
  auto p = std::make_unique<MpiPending>(this);
  MPI_Ialltoallv(send, send_counts, send_offsets, MPI_BYTE, recv, recv_counts, recv_offsets,
                 MPI_BYTE, comm_, p->request());
  *pending = std::move(p);
  return Status::Ok();
}

Status MpiCommunicator::Broadcast(void* data, size_t bytes, int root) {
  const double t0 = Now();
  MPI_Request req;
  MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, comm_, &req);
  return Wait(&req, "broadcast", t0);
}

Status MpiCommunicator::Barrier() {
  const double t0 = Now();
  MPI_Request req;
  MPI_Ibarrier(comm_, &req);
  return Wait(&req, "barrier", t0);
}

Status MpiCommunicator::Gather(const void* send, size_t bytes, void* recv, int root) {
  const double t0 = Now();
  MPI_Request req;
  MPI_Igather(send, static_cast<int>(bytes), MPI_BYTE, recv, static_cast<int>(bytes), MPI_BYTE,
              root, comm_, &req);
  return Wait(&req, "gather", t0);
}

}  // namespace cb
