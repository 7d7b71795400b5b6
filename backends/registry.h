#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace cb {

struct BackendInfo {
  std::string name;  ///< as given to --backend
  std::string description;
  bool available = false;  ///< built in and usable on this machine
  std::string unavailable_reason;
};

/// Every backend clusterbench knows, available or not.
std::vector<BackendInfo> ListBackends();

/// Ceilings that `backend` measures on its own device, for backends whose MFU and MBU must not
/// use the host CPU's `clusterbench micro` ceilings: cuda (cuBLAS GEMM per dtype, device copy
/// bandwidth; backends/cuda/cuda_ceilings.h). kUnsupported for the others.
Status MeasureBackendCeilings(const std::string& backend, double matmul_flops_per_s[kDTypeCount],
                              double* mem_bytes_per_s, std::string* source);

/// Opens the device of `backend` (kInvalidInput for an unknown name, naming the allowed ones;
/// kUnsupported when it is known but not available here).
Status OpenDevice(const std::string& backend, std::unique_ptr<Device>* out);

}  // namespace cb
