#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "backends/backend.h"
#include "backends/cuda/cuda_ceilings.h"
#include "harness/core/status.h"

namespace cb {

/// The table the CUDA backend's plugin (libclusterbench_cuda.so, a MODULE library built from
/// cb_cuda_backend and cuda_plugin.cc) hands to the `clusterbench` binary, which dlopens it only
/// when the cuda backend is asked for (backends/cuda_plugin_loader.h). Bump
/// kCudaPluginVersion whenever a member or one of the C++ types it passes changes.
inline constexpr int kCudaPluginVersion = 2;

struct CudaPluginTable {
  int version = 0;
  size_t size = 0;  ///< sizeof(CudaPluginTable) as the plugin was compiled
  bool (*backend_usable)(std::string* reason) = nullptr;                       // CudaBackendUsable
  Status (*open_device)(int ordinal, std::unique_ptr<Device>* out) = nullptr;  // OpenCudaDevice
  Status (*measure_ceilings)(int ordinal, CudaCeilings* out) = nullptr;  // MeasureCudaCeilings
};

}  // namespace cb

/// The plugin's one exported symbol (dlsym name "clusterbench_cuda_plugin").
extern "C" const cb::CudaPluginTable* clusterbench_cuda_plugin();
