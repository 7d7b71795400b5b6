#pragma once

#include <string>

#include "harness/core/dtype.h"
#include "harness/core/status.h"

namespace cb {

/// What MFU and MBU of a cuda run are computed against, measured on the GPU itself in the same
/// process: cuBLAS GEMM throughput per dtype (the backend's own call: inputs in the dtype, fp32
/// accumulation and output; 8192^3, fp32 4096^3) and the device-to-device cudaMemcpy bandwidth
/// of 2 GiB counted as read + write bytes per second (copy_bytes_per_s).
struct CudaCeilings {
  double matmul_flops_per_s[kDTypeCount] = {0, 0, 0};
  double copy_bytes_per_s = 0;
  std::string source;  ///< how they were measured
};

/// Measures on GPU `ordinal` (-1: the one OpenCudaDevice(-1) picks). Takes a few seconds.
Status MeasureCudaCeilings(int ordinal, CudaCeilings* out);

}  // namespace cb
