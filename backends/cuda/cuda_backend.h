#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"

namespace cb {

/// The cuda backend: NVIDIA GPUs. Matmuls on cuBLAS (tensor cores, fp32 accumulation); RMSNorm
/// (fused with the residual add), RoPE, QK-norm, SwiGLU, flash-style attention with split-K
/// decode and greedy sampling as CUDA kernels; decode steps replayed as CUDA graphs; tensor
/// parallelism through NCCL (or MPI with host staging). docs/cuda.md.
///
/// Opens GPU `ordinal`, or with -1: $CB_CUDA_DEVICE, else the MPI/Slurm local rank modulo the
/// GPU count (one rank per GPU), else GPU 0.
Status OpenCudaDevice(int ordinal, std::unique_ptr<Device>* out);

/// Whether a CUDA GPU can be used here: false, with `reason` ("no CUDA device found: ...")
/// when cudaGetDeviceCount fails or finds none.
bool CudaBackendUsable(std::string* reason);

}  // namespace cb
