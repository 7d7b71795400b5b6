#include "backends/registry.h"

#include "backends/cpu/cpu_backend.h"
#include "backends/reference/reference_backend.h"
#include "backends/sim/sim_device.h"
#if defined(CLUSTERBENCH_HAVE_CUDA)
#include "backends/cuda_plugin_loader.h"
#endif

namespace cb {

namespace {

// probe_cuda false: cuda is listed unavailable without loading the CUDA plugin (and with it the
// CUDA libraries), for OpenDevice of another backend.
std::vector<BackendInfo> ListBackends(bool probe_cuda) {
  std::vector<BackendInfo> list;
  BackendInfo cpu{"cpu", "x86 CPUs: oneDNN matmuls, AVX-512 kernels, OpenMP threads", true, ""};
  cpu.available = CpuBackendUsable(&cpu.unavailable_reason);
  list.push_back(cpu);
  BackendInfo cuda{"cuda", "NVIDIA GPUs: cuBLAS matmuls, CUDA kernels, CUDA graphs, NCCL or MPI",
                   false, ""};
#if defined(CLUSTERBENCH_HAVE_CUDA)
  // The CUDA backend is a plugin, dlopen'ed here (why: backends/cuda_plugin_loader.cc).
  if (!probe_cuda) {
    cuda.unavailable_reason = "not probed";
  } else if (const CudaPluginTable* plugin = LoadCudaPlugin(&cuda.unavailable_reason)) {
    cuda.available = plugin->backend_usable(&cuda.unavailable_reason);
  }
#else
  cuda.unavailable_reason =
      "built without CUDA (configure with -DCLUSTERBENCH_CUDA=ON or AUTO where nvcc is installed)";
#endif
  list.push_back(cuda);
  list.push_back({"reference",
                  "plain fp32 weights with fp64 accumulation; what every backend is verified "
                  "against",
                  true, ""});
  list.push_back({"sim",
                  "simulated Ascend-style device from the device catalog: sim:DEVICE (default "
                  "huawei-ascend-910c), --system for a catalog system; results are modelled",
                  true, ""});
  return list;
}

}  // namespace

std::vector<BackendInfo> ListBackends() { return ListBackends(/*probe_cuda=*/true); }

Status MeasureBackendCeilings(const std::string& backend, double matmul_flops_per_s[kDTypeCount],
                              double* mem_bytes_per_s, std::string* source) {
#if defined(CLUSTERBENCH_HAVE_CUDA)
  if (backend == "cuda") {
    std::string error;
    const CudaPluginTable* plugin = LoadCudaPlugin(&error);
    if (plugin == nullptr) return Status::Unsupported(error);
    CudaCeilings c;
    CB_RETURN_IF_ERROR(plugin->measure_ceilings(-1, &c));
    for (int i = 0; i < kDTypeCount; ++i) matmul_flops_per_s[i] = c.matmul_flops_per_s[i];
    *mem_bytes_per_s = c.copy_bytes_per_s;
    *source = c.source;
    return Status::Ok();
  }
#endif
  return Status::Unsupported("backend '" + backend + "' measures no ceilings of its own");
}

Status OpenDevice(const std::string& backend, std::unique_ptr<Device>* out) {
  if (backend == "sim" || backend.starts_with("sim:")) return sim::MakeSimDevice(backend, "", out);
  std::string allowed;
  for (const BackendInfo& b : ListBackends(/*probe_cuda=*/backend == "cuda")) {
    allowed += (allowed.empty() ? "" : ", ") + b.name;
    if (b.name != backend) continue;
    if (!b.available) {
      return Status::Unsupported("backend '" + backend +
                                 "' is not available: " + b.unavailable_reason);
    }
    if (backend == "cpu") {
      *out = MakeCpuDevice();
#if defined(CLUSTERBENCH_HAVE_CUDA)
    } else if (backend == "cuda") {
      return LoadCudaPlugin(nullptr)->open_device(-1, out);  // available: loaded
#endif
    } else if (backend == "reference") {
      *out = MakeReferenceDevice();
    } else {
      return Status::Internal("backend '" + backend + "' is listed but has no device");
    }
    return Status::Ok();
  }
  return Status::InvalidInput("unknown backend '" + backend + "'; allowed values: " + allowed);
}

}  // namespace cb
