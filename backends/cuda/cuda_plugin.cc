// The entry point of libclusterbench_cuda.so: the CUDA backend as a plugin (cuda_plugin.h).
#include "backends/cuda/cuda_plugin.h"

#include "backends/cuda/cuda_backend.h"

extern "C" __attribute__((visibility("default"))) const cb::CudaPluginTable*
clusterbench_cuda_plugin() {
  static const cb::CudaPluginTable table = {
      cb::kCudaPluginVersion, sizeof(cb::CudaPluginTable), &cb::CudaBackendUsable,
      &cb::OpenCudaDevice,    &cb::MeasureCudaCeilings,
  };
  return &table;
}
