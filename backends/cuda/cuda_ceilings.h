#pragma once

#include <string>

#include "harness/core/dtype.h"
#include "harness/core/status.h"

namespace cb {

/// How one ceiling was timed: `windows` windows of `iterations` operations each, every window
/// at least `seconds` long; the figure is the median window's rate, `min` and `max` the
/// slowest and fastest window's.
struct CeilingWindows {
  double seconds = 0;
  int iterations = 0;
  int windows = 0;
  double min = 0, max = 0;
};

/// What MFU and MBU of a cuda run are computed against, measured on the GPU itself in the same
/// process: cuBLAS GEMM throughput per dtype (the backend's own call: inputs in the dtype, fp32
/// accumulation and output; 8192^3, fp32 4096^3) on random inputs, and the device-to-device
/// cudaMemcpy bandwidth of 2 GiB counted as read + write bytes per second (copy_bytes_per_s).
struct CudaCeilings {
  double matmul_flops_per_s[kDTypeCount] = {};
  double copy_bytes_per_s = 0;
  std::string source;  ///< how they were measured
  CeilingWindows matmul[kDTypeCount];
  CeilingWindows copy;
};

/// Measures on GPU `ordinal` (-1: the one OpenCudaDevice(-1) picks). Takes a few seconds.
Status MeasureCudaCeilings(int ordinal, CudaCeilings* out);

}  // namespace cb
