#include "backends/cuda/cuda_ceilings.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <memory>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"

namespace cb {
namespace {

/// Frees device memory, destroys events and the cuBLAS handle on every path out.
struct Scratch {
  std::vector<void*> mem;
  cudaEvent_t t0 = nullptr, t1 = nullptr;
  cublasHandle_t blas = nullptr;
  ~Scratch() {
    for (void* p : mem) cudaFree(p);
    if (t0 != nullptr) cudaEventDestroy(t0);
    if (t1 != nullptr) cudaEventDestroy(t1);
    if (blas != nullptr) cublasDestroy(blas);
  }
  Status Alloc(size_t bytes, void** p) {
    CB_CUDA(cudaMalloc(p, bytes));
    mem.push_back(*p);
    CB_CUDA(cudaMemset(*p, 0, bytes));
    return Status::Ok();
  }
  Status Elapsed(double* seconds) {
    CB_CUDA(cudaEventSynchronize(t1));
    float ms = 0;
    CB_CUDA(cudaEventElapsedTime(&ms, t0, t1));
    *seconds = ms * 1e-3;
    return Status::Ok();
  }
};

Status CopyBandwidth(double* out) {
  Scratch s;
  const size_t bytes = 2ull << 30;
  void *a = nullptr, *b = nullptr;
  CB_RETURN_IF_ERROR(s.Alloc(bytes, &a));
  CB_RETURN_IF_ERROR(s.Alloc(bytes, &b));
  CB_CUDA(cudaEventCreate(&s.t0));
  CB_CUDA(cudaEventCreate(&s.t1));
  for (int i = 0; i < 3; ++i) CB_CUDA(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
  constexpr int kIters = 20;
  CB_CUDA(cudaEventRecord(s.t0));
  for (int i = 0; i < kIters; ++i) CB_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
  CB_CUDA(cudaEventRecord(s.t1));
  double t = 0;
  CB_RETURN_IF_ERROR(s.Elapsed(&t));
  *out = 2.0 * static_cast<double>(bytes) * kIters / t;
  return Status::Ok();
}

Status GemmThroughput(DType dtype, double* out) {
  Scratch s;
  const int n = dtype == DType::kF32 ? 4096 : 8192;
  const cudaDataType_t type = dtype == DType::kF32    ? CUDA_R_32F
                              : dtype == DType::kBF16 ? CUDA_R_16BF
                                                      : CUDA_R_16F;
  const size_t elems = static_cast<size_t>(n) * n;
  void *a = nullptr, *b = nullptr, *c = nullptr, *ws = nullptr;
  CB_RETURN_IF_ERROR(s.Alloc(elems * DTypeBytes(dtype), &a));
  CB_RETURN_IF_ERROR(s.Alloc(elems * DTypeBytes(dtype), &b));
  CB_RETURN_IF_ERROR(s.Alloc(elems * sizeof(float), &c));
  CB_RETURN_IF_ERROR(s.Alloc(32u << 20, &ws));
  CB_CUBLAS(cublasCreate(&s.blas));
  CB_CUBLAS(cublasSetWorkspace(s.blas, ws, 32u << 20));
  CB_CUDA(cudaEventCreate(&s.t0));
  CB_CUDA(cudaEventCreate(&s.t1));
  const float alpha = 1, beta = 0;
  auto gemm = [&] {
    return cublasGemmEx(s.blas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a, type, n, b, type, n,
                        &beta, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  for (int i = 0; i < 3; ++i) CB_CUBLAS(gemm());
  constexpr int kIters = 20;
  CB_CUDA(cudaEventRecord(s.t0));
  for (int i = 0; i < kIters; ++i) CB_CUBLAS(gemm());
  CB_CUDA(cudaEventRecord(s.t1));
  double t = 0;
  CB_RETURN_IF_ERROR(s.Elapsed(&t));
  *out = 2.0 * n * n * static_cast<double>(n) * kIters / t;
  return Status::Ok();
}

}  // namespace

Status MeasureCudaCeilings(int ordinal, CudaCeilings* out) {
  std::unique_ptr<Device> dev;
  CB_RETURN_IF_ERROR(OpenCudaDevice(ordinal, &dev));  // makes the GPU current
  CudaCeilings c;
  CB_RETURN_IF_ERROR(CopyBandwidth(&c.copy_bytes_per_s));
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    CB_RETURN_IF_ERROR(GemmThroughput(t, &c.matmul_flops_per_s[static_cast<int>(t)]));
  }
  c.source = "measured on " + dev->Props().name +
             " in this process: cuBLAS GEMM (fp32 accumulation, 8192^3; fp32 4096^3) and "
             "device-to-device cudaMemcpy of 2 GiB (read + write bytes)";
  *out = c;
  return Status::Ok();
}

}  // namespace cb
