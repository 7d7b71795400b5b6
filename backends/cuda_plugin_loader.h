#pragma once

#include <string>

#include "backends/cuda/cuda_plugin.h"

namespace cb {

/// Loads the CUDA backend's plugin (libclusterbench_cuda.so) once per process and returns its
/// table, or nullptr with `error` ("plugin not found: ..." with dlerror()'s text, or a version
/// mismatch). Looked for next to the running executable, then at $CLUSTERBENCH_CUDA_PLUGIN,
/// then where this build tree put it. Only in builds with CLUSTERBENCH_HAVE_CUDA.
const CudaPluginTable* LoadCudaPlugin(std::string* error);

}  // namespace cb
