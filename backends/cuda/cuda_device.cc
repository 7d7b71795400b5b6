#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <sstream>

#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_paths.h"
#include "backends/cuda/cuda_session.h"
#include "backends/devices/catalog.h"
#include "backends/energy/nvml_meter.h"

namespace cb {
namespace {

/// "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as nvidia-smi prints it.
std::string FormatUuid(const cudaUUID_t& u) {
  std::string s = "GPU-";
  char hex[3];
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    std::snprintf(hex, sizeof hex, "%02x", static_cast<unsigned char>(u.bytes[i]));
    s += hex;
  }
  return s;
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "";
  return buf;
}

/// The local rank under mpirun/srun, or -1.
int LocalRank() {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID",
                        "MV2_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "PMI_LOCAL_RANK"}) {
    if (const char* s = std::getenv(v)) return std::atoi(s);
  }
  return -1;
}

/// NVML index of CUDA device `ordinal` where it can be told: without CUDA_VISIBLE_DEVICES NVML
/// and CUDA both number the GPUs by PCI bus (CUDA's fastest-first order ties to bus order on
/// the identical GPUs of a server), with a numeric list it is the list's entry. Else -1.
int NvmlIndex(int ordinal) {
  const char* vis = std::getenv("CUDA_VISIBLE_DEVICES");
  if (vis == nullptr) return ordinal;
  std::stringstream in(vis);
  std::string item;
  for (int i = 0; std::getline(in, item, ','); ++i) {
    if (i != ordinal) continue;
    if (item.empty() || item.find_first_not_of("0123456789") != std::string::npos) return -1;
    return std::atoi(item.c_str());
  }
  return -1;
}

class CudaDevice final : public Device {
 public:
  CudaDevice(int ordinal, const cudaDeviceProp& prop) : ordinal_(ordinal), prop_(prop) {
    DeviceCatalog catalog;
    if (DeviceCatalog::Load(DefaultCatalogDir(), &catalog).ok()) {
      const CatalogEntry* e = catalog.Match(prop_.name, "gpu");
      if (e != nullptr && !e->fallback) entry_ = *e;
    }
    energy::NvmlOptions o;
    const int idx = NvmlIndex(ordinal);
    if (idx >= 0) o.indices = {static_cast<unsigned>(idx)};
    meter_ = std::make_unique<energy::NvmlMeter>(o);
  }

  DeviceProps Props() const override {
    DeviceProps p;
    p.backend = "cuda";
    p.name = prop_.name;
    p.kind = "gpu";
    p.uuid = FormatUuid(prop_.uuid);
    p.host = HostName();
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(ordinal_) == cudaSuccess &&
        cudaMemGetInfo(&free_b, &total_b) == cudaSuccess) {
      p.mem_bytes = free_b;
    } else {
      p.mem_bytes = prop_.totalGlobalMem;
    }
    if (entry_) {
      for (DType t : {DType::kF32, DType::kBF16, DType::kF16}) {  // the dtypes it runs
        auto it = entry_->peak_flops.find(std::string(DTypeName(t)));
        if (it != entry_->peak_flops.end() && it->second.known()) {
          p.peak_flops[static_cast<int>(t)] = it->second.value;
        }
      }
      if (entry_->mem_bandwidth_bytes_per_s.known()) {
        p.mem_bandwidth_bytes_per_s = entry_->mem_bandwidth_bytes_per_s.value;
      }
    }
    p.threads = 0;
    p.isa = "sm_" + std::to_string(prop_.major) + std::to_string(prop_.minor);
    p.simulated = false;
    return p;
  }

  Support Supports(DType dtype) const override {
    if (prop_.major < 8) {
      return {false, "the cuda backend is built for sm_90 with compute_80 PTX; " +
                         std::string(prop_.name) + " is compute capability " +
                         std::to_string(prop_.major) + "." + std::to_string(prop_.minor)};
    }
    if (IsQuantized(dtype)) {  // the GEMMs exist (quant_gemm.h); the session path does not
      return {false, "the cuda backend runs fp32, bf16 and fp16, not " +
                         std::string(DTypeName(dtype)) +
                         ": its int8 and fp8 GEMMs (backends/cuda/quant_gemm.h) are not wired "
                         "into sessions yet"};
    }
    if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF16) {
      return {false,
              "the cuda backend runs fp32, bf16 and fp16, not " + std::string(DTypeName(dtype))};
    }
    return {};  // on every sm_80+ GPU
  }

  Status Open(const SessionConfig& config, std::unique_ptr<Session>* out) override {
    if (config.kv_dtype && *config.kv_dtype != DefaultKvDType(config.dtype)) {
      return Status::Unsupported("this backend keeps the KV cache in " +
                                 std::string(DTypeName(DefaultKvDType(config.dtype))) + ", not " +
                                 std::string(DTypeName(*config.kv_dtype)));
    }
    const Support s = Supports(config.dtype);
    if (!s.supported) return Status::Unsupported(s.reason);
    if (config.max_sequences < 1 || config.max_context < 1 || config.max_step_tokens < 1) {
      return Status::InvalidInput(
          "SessionConfig needs max_sequences, max_context and max_step_tokens of at least 1 "
          "(got " +
          std::to_string(config.max_sequences) + ", " + std::to_string(config.max_context) + ", " +
          std::to_string(config.max_step_tokens) + ")");
    }
    cuda::CudaPaths paths;
    CB_RETURN_IF_ERROR(cuda::PathsFromEnvironment(&paths));
    *out = std::make_unique<cuda::CudaSession>(config, ordinal_, prop_.multiProcessorCount, paths);
    return Status::Ok();
  }

  Clock& clock() override { return clock_; }  // read after Synchronize (the runner does)
  EnergyMeter* energy() override { return meter_.get(); }

 private:
  int ordinal_;
  cudaDeviceProp prop_;
  std::optional<CatalogEntry> entry_;
  SteadyClock clock_;
  std::unique_ptr<energy::NvmlMeter> meter_;
};

}  // namespace

bool CudaBackendUsable(std::string* reason) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (reason) {
      *reason = std::string("no CUDA device found: cudaGetDeviceCount: ") + cudaGetErrorName(e) +
                " (" + cudaGetErrorString(e) + ")";
    }
    return false;
  }
  if (n == 0) {
    if (reason) *reason = "no CUDA device found: cudaGetDeviceCount reports 0 devices";
    return false;
  }
  return true;
}

Status OpenCudaDevice(int ordinal, std::unique_ptr<Device>* out) {
  std::string reason;
  if (!CudaBackendUsable(&reason)) return Status::Unsupported(reason);
  int count = 0;
  CB_CUDA(cudaGetDeviceCount(&count));
  if (ordinal < 0) {
    if (const char* s = std::getenv("CB_CUDA_DEVICE")) {
      ordinal = std::atoi(s);
    } else {
      const int local = LocalRank();
      ordinal = local >= 0 ? local % count : 0;
    }
  }
  if (ordinal < 0 || ordinal >= count) {
    return Status::InvalidInput("CUDA device " + std::to_string(ordinal) + " does not exist (" +
                                std::to_string(count) + " visible; CB_CUDA_DEVICE picks one)");
  }
  cudaDeviceProp prop{};
  CB_CUDA(cudaGetDeviceProperties(&prop, ordinal));
  CB_CUDA(cudaSetDevice(ordinal));
  *out = std::make_unique<CudaDevice>(ordinal, prop);
  return Status::Ok();
}

}  // namespace cb
