#include "backends/registry.h"

#include "backends/cpu/cpu_backend.h"
#include "backends/reference/reference_backend.h"
#include "backends/sim/sim_device.h"
#if defined(CLUSTERBENCH_HAVE_CUDA)
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_ceilings.h"
#endif

namespace cb {

std::vector<BackendInfo> ListBackends() {
  std::vector<BackendInfo> list;
  BackendInfo cpu{"cpu", "x86 CPUs: oneDNN matmuls, AVX-512 kernels, OpenMP threads", true, ""};
  cpu.available = CpuBackendUsable(&cpu.unavailable_reason);
  list.push_back(cpu);
  BackendInfo cuda{"cuda", "NVIDIA GPUs: cuBLAS matmuls, CUDA kernels, CUDA graphs, NCCL or MPI",
                   false, ""};
#if defined(CLUSTERBENCH_HAVE_CUDA)
  cuda.available = CudaBackendUsable(&cuda.unavailable_reason);
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

Status MeasureBackendCeilings(const std::string& backend, double matmul_flops_per_s[kDTypeCount],
                              double* mem_bytes_per_s, std::string* source) {
#if defined(CLUSTERBENCH_HAVE_CUDA)
  if (backend == "cuda") {
    CudaCeilings c;
    CB_RETURN_IF_ERROR(MeasureCudaCeilings(-1, &c));
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
  for (const BackendInfo& b : ListBackends()) {
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
      return OpenCudaDevice(-1, out);
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
