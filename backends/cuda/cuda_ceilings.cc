#include "backends/cuda/cuda_ceilings.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernels.h"

namespace cb {
namespace {

constexpr double kGemmWindowSeconds = 0.1;  // zeros and short windows overstate and scatter
constexpr double kCopyWindowSeconds = 0.2;
constexpr int kWindows = 5;

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
  /// `bytes` of device memory filled with uniform values of `type` in [-1, 1).
  Status Random(size_t bytes, DType type, uint64_t seed, void** p) {
    CB_CUDA(cudaMalloc(p, bytes));
    mem.push_back(*p);
    CB_CUDA(cuda::LaunchFillUniform(*p, type, static_cast<int64_t>(bytes / DTypeBytes(type)), seed,
                                    1.0f, nullptr));
    return Status::Ok();
  }
  Status Events() {
    CB_CUDA(cudaEventCreate(&t0));
    CB_CUDA(cudaEventCreate(&t1));
    return Status::Ok();
  }
  /// Seconds `iters` calls of `op` take, timed with events on the legacy stream.
  Status Time(const std::function<Status()>& op, int iters, double* seconds) {
    CB_CUDA(cudaEventRecord(t0));
    for (int i = 0; i < iters; ++i) CB_RETURN_IF_ERROR(op());
    CB_CUDA(cudaEventRecord(t1));
    CB_CUDA(cudaEventSynchronize(t1));
    float ms = 0;
    CB_CUDA(cudaEventElapsedTime(&ms, t0, t1));
    *seconds = ms * 1e-3;
    return Status::Ok();
  }
};

/// Rate of `op` (`work` units each): warm-up, an estimate of one call, then kWindows windows
/// of at least `window` seconds (a window that came out shorter is redone with more calls);
/// the median window's rate.
Status TimeWindows(Scratch& s, const std::function<Status()>& op, double work, double window,
                   CeilingWindows* w, double* rate) {
  double t = 0;
  CB_RETURN_IF_ERROR(s.Time(op, 3, &t));  // warm-up: clocks, lazy loading, heuristics
  CB_RETURN_IF_ERROR(s.Time(op, 3, &t));
  int iters = static_cast<int>(std::clamp(std::ceil(window / std::max(t / 3, 1e-9)), 1.0, 1e6));
  std::vector<double> rates;
  for (int tries = 0; static_cast<int>(rates.size()) < kWindows && tries < 3 * kWindows; ++tries) {
    CB_RETURN_IF_ERROR(s.Time(op, iters, &t));
    if (t < window) {
      iters = static_cast<int>(std::min(1e6, std::ceil(iters * 1.2 * window / std::max(t, 1e-9))));
      continue;
    }
    rates.push_back(work * iters / t);
  }
  if (rates.empty()) return Status::Internal("ceilings: no timed window reached its length");
  std::sort(rates.begin(), rates.end());
  *rate = rates[rates.size() / 2];
  w->seconds = window;
  w->iterations = iters;
  w->windows = static_cast<int>(rates.size());
  w->min = rates.front();
  w->max = rates.back();
  return Status::Ok();
}

Status CopyBandwidth(CeilingWindows* w, double* out) {
  Scratch s;
  const size_t bytes = 2ull << 30;
  void *a = nullptr, *b = nullptr;
  CB_RETURN_IF_ERROR(s.Random(bytes, DType::kF32, 1, &a));
  CB_RETURN_IF_ERROR(s.Random(bytes, DType::kF32, 2, &b));
  CB_RETURN_IF_ERROR(s.Events());
  auto copy = [&] {
    CB_CUDA(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    return Status::Ok();
  };
  return TimeWindows(s, copy, 2.0 * static_cast<double>(bytes), kCopyWindowSeconds, w, out);
}

Status GemmThroughput(DType dtype, CeilingWindows* w, double* out) {
  Scratch s;
  const int n = dtype == DType::kF32 ? 4096 : 8192;
  const cudaDataType_t type = dtype == DType::kF32    ? CUDA_R_32F
                              : dtype == DType::kBF16 ? CUDA_R_16BF
                                                      : CUDA_R_16F;
  const size_t elems = static_cast<size_t>(n) * n;
  void *a = nullptr, *b = nullptr, *c = nullptr, *ws = nullptr;
  CB_RETURN_IF_ERROR(s.Random(elems * DTypeBytes(dtype), dtype, 3, &a));
  CB_RETURN_IF_ERROR(s.Random(elems * DTypeBytes(dtype), dtype, 4, &b));
  CB_RETURN_IF_ERROR(s.Random(elems * sizeof(float), DType::kF32, 5, &c));
  CB_RETURN_IF_ERROR(s.Random(32u << 20, DType::kF32, 6, &ws));
  CB_CUBLAS(cublasCreate(&s.blas));
  CB_CUBLAS(cublasSetWorkspace(s.blas, ws, 32u << 20));
  CB_RETURN_IF_ERROR(s.Events());
  const float alpha = 1, beta = 0;
  auto gemm = [&] {
    CB_CUBLAS(cublasGemmEx(s.blas, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &alpha, a, type, n, b, type,
                           n, &beta, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    return Status::Ok();
  };
  return TimeWindows(s, gemm, 2.0 * n * n * static_cast<double>(n), kGemmWindowSeconds, w, out);
}

}  // namespace

Status MeasureCudaCeilings(int ordinal, CudaCeilings* out) {
  std::unique_ptr<Device> dev;
  CB_RETURN_IF_ERROR(OpenCudaDevice(ordinal, &dev));  // makes the GPU current
  CudaCeilings c;
  CB_RETURN_IF_ERROR(CopyBandwidth(&c.copy, &c.copy_bytes_per_s));
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {
    const int i = static_cast<int>(t);
    CB_RETURN_IF_ERROR(GemmThroughput(t, &c.matmul[i], &c.matmul_flops_per_s[i]));
  }
  c.source = "measured on " + dev->Props().name +
             " in this process: cuBLAS GEMM on random inputs (fp32 accumulation, 8192^3; fp32 "
             "4096^3), median of 5 windows of >= 100 ms; device-to-device cudaMemcpy of 2 GiB "
             "(read + write bytes), median of 5 windows of >= 200 ms";
  *out = c;
  return Status::Ok();
}

}  // namespace cb
