#include "backends/registry.h"

#include "backends/cpu/cpu_backend.h"
#include "backends/reference/reference_backend.h"
#include "backends/sim/sim_device.h"

namespace cb {

std::vector<BackendInfo> ListBackends() {
  std::vector<BackendInfo> list;
  BackendInfo cpu{"cpu", "x86 CPUs: oneDNN matmuls, AVX-512 kernels, OpenMP threads", true, ""};
  cpu.available = CpuBackendUsable(&cpu.unavailable_reason);
  list.push_back(cpu);
  list.push_back({"cuda", "NVIDIA GPUs: CUDA, cuBLAS, NCCL or MPI", false,
                  "the CUDA backend is not implemented yet"});
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
