#include "backends/cuda/nccl_communicator.h"

#include <chrono>
#include <string>

#include "backends/cuda/cuda_check.h"

namespace cb::cuda {
namespace {

Status NcclStatus(ncclResult_t r, const char* call) {
  if (r == ncclSuccess) return Status::Ok();
  return Status::Internal(std::string(call) + " failed: " + ncclGetErrorString(r));
}
#define CB_NCCL(call) CB_RETURN_IF_ERROR(NcclStatus((call), #call))

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

Status NcclCommunicator::Create(Communicator* group, cudaStream_t stream,
                                std::unique_ptr<NcclCommunicator>* out) {
  if (group == nullptr) return Status::InvalidInput("NCCL needs a communicator to start from");
  ncclUniqueId id{};
  if (group->rank() == 0) CB_NCCL(ncclGetUniqueId(&id));
  CB_RETURN_IF_ERROR(group->Broadcast(&id, sizeof id, 0));
  ncclComm_t comm = nullptr;
  CB_NCCL(ncclCommInitRank(&comm, group->size(), id, group->rank()));
  out->reset(new NcclCommunicator(group, comm, stream));
  return Status::Ok();
}

NcclCommunicator::~NcclCommunicator() {
  if (staging_ != nullptr) cudaFree(staging_);
  if (comm_ != nullptr) ncclCommDestroy(comm_);
}

Status NcclCommunicator::AllReduceSumDevice(float* data, size_t count) {
  CB_NCCL(ncclAllReduce(data, data, count, ncclFloat32, ncclSum, comm_, stream_));
  return Status::Ok();
}

Status NcclCommunicator::AllGatherDevice(const float* send, size_t count, float* recv) {
  CB_NCCL(ncclAllGather(send, recv, count, ncclFloat32, comm_, stream_));
  return Status::Ok();
}

Status NcclCommunicator::Stage(size_t bytes) {
  if (bytes <= staging_bytes_) return Status::Ok();
  if (staging_ != nullptr) CB_CUDA(cudaFree(staging_));
  staging_ = nullptr;
  staging_bytes_ = 0;
  CB_CUDA(cudaMalloc(reinterpret_cast<void**>(&staging_), bytes));
  staging_bytes_ = bytes;
  return Status::Ok();
}

Status NcclCommunicator::AllReduceSum(float* data, size_t count) {
  const double t0 = Now();
  CB_RETURN_IF_ERROR(Stage(count * sizeof(float)));
  CB_CUDA(cudaMemcpyAsync(staging_, data, count * sizeof(float), cudaMemcpyHostToDevice, stream_));
  CB_RETURN_IF_ERROR(AllReduceSumDevice(staging_, count));
  CB_CUDA(cudaMemcpyAsync(data, staging_, count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CB_CUDA(cudaStreamSynchronize(stream_));
  comm_seconds_ += Now() - t0;
  return Status::Ok();
}

Status NcclCommunicator::AllGather(const float* send, size_t count, float* recv) {
  const double t0 = Now();
  const size_t n = static_cast<size_t>(size());
  CB_RETURN_IF_ERROR(Stage((n + 1) * count * sizeof(float)));
  float* in = staging_ + n * count;
  CB_CUDA(cudaMemcpyAsync(in, send, count * sizeof(float), cudaMemcpyHostToDevice, stream_));
  CB_RETURN_IF_ERROR(AllGatherDevice(in, count, staging_));
  CB_CUDA(
      cudaMemcpyAsync(recv, staging_, n * count * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  CB_CUDA(cudaStreamSynchronize(stream_));
  comm_seconds_ += Now() - t0;
  return Status::Ok();
}

}  // namespace cb::cuda
