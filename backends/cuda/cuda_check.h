#pragma once

// Every CUDA runtime, cuBLAS and NCCL call of the backend goes through these: a failure becomes
// a Status naming the call and the library's error string (out-of-memory as kResourceExhausted).

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "harness/core/status.h"

namespace cb::cuda {

inline Status CudaStatus(cudaError_t e, const char* call) {
  if (e == cudaSuccess) return Status::Ok();
  std::string m =
      std::string(call) + " failed: " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")";
  return e == cudaErrorMemoryAllocation ? Status::Exhausted(m) : Status::Internal(m);
}

inline Status CublasStatus(cublasStatus_t e, const char* call) {
  if (e == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  std::string m = std::string(call) + " failed: " + cublasGetStatusName(e) + " (" +
                  cublasGetStatusString(e) + ")";
  return e == CUBLAS_STATUS_ALLOC_FAILED ? Status::Exhausted(m) : Status::Internal(m);
}

}  // namespace cb::cuda

#define CB_CUDA(call) CB_RETURN_IF_ERROR(::cb::cuda::CudaStatus((call), #call))
#define CB_CUBLAS(call) CB_RETURN_IF_ERROR(::cb::cuda::CublasStatus((call), #call))
