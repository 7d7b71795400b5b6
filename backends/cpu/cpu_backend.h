#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"

namespace cb {

/// The cpu backend: real execution on x86 CPUs. Matmuls run on oneDNN (and, for the few rows
/// of a decode step, on an AVX-512 skinny-GEMM kernel that streams the weights once); every
/// other op is an AVX-512 kernel threaded with OpenMP. bf16 sessions keep weights and KV cache
/// in bf16 and accumulate in fp32.
std::unique_ptr<Device> MakeCpuDevice();

/// Whether this machine can run the cpu backend at all (its kernels need AVX-512 F/BW/VL/DQ);
/// when not, `reason` says why.
bool CpuBackendUsable(std::string* reason);

}  // namespace cb
