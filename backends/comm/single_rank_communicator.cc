#include <cstring>

#include "backends/comm/communicator.h"

namespace cb {

Status SingleRankCommunicator::AllGather(const float* send, size_t count, float* recv) {
  if (send != recv) std::memmove(recv, send, count * sizeof(float));
  return Status::Ok();
}

Status SingleRankCommunicator::AllToAllV(const float* send, const int* send_counts,
                                         const int* send_offsets, float* recv,
                                         const int* recv_counts, const int* recv_offsets) {
  if (send_counts[0] != recv_counts[0]) return Status::Internal("alltoallv: count mismatch");
  std::memmove(recv + recv_offsets[0], send + send_offsets[0], send_counts[0] * sizeof(float));
  return Status::Ok();
}

Status SingleRankCommunicator::AllToAllVBytes(const void* send, const int* send_counts,
                                              const int* send_offsets, void* recv,
                                              const int* recv_counts, const int* recv_offsets) {
  if (send_counts[0] != recv_counts[0]) return Status::Internal("alltoallv: count mismatch");
  std::memmove(static_cast<char*>(recv) + recv_offsets[0],
               static_cast<const char*>(send) + send_offsets[0], send_counts[0]);
  return Status::Ok();
}

Status SingleRankCommunicator::Gather(const void* send, size_t bytes, void* recv, int) {
  if (send != recv) std::memmove(recv, send, bytes);
  return Status::Ok();
}

}  // namespace cb
