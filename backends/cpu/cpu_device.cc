#include <omp.h>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_session.h"
#include "backends/cpu/host_info.h"
#include "backends/cpu/quant_gemm.h"

namespace cb {
namespace {

class CpuDevice final : public Device {
 public:
  DeviceProps Props() const override {
    DeviceProps p;
    p.backend = "cpu";
    const int cores = cpu::CpuCount();
    p.name =
        cpu::CpuModelName() + " (" + std::to_string(cores) + (cores == 1 ? " core)" : " cores)");
    p.kind = "cpu";
    p.host = cpu::HostName();
    p.threads = omp_get_max_threads();
    p.mem_bytes = cpu::MemAvailableBytes();
    p.isa = cpu::DnnlIsaName();
    p.simulated = false;
    return p;
  }

  Support Supports(DType dtype) const override {
    std::string reason;
    if (!CpuBackendUsable(&reason)) return {false, reason};
    switch (dtype) {
      case DType::kF32:
        return {};
      case DType::kBF16:
        if (!cpu::DnnlIsaHasBf16()) {
          return {false, "bf16 needs avx512_core_bf16 or AMX; oneDNN reports " +
                             cpu::DnnlIsaName() + " on this CPU"};
        }
        return {};
      case DType::kF16:
        return {false, "the cpu backend does not run fp16"};
      case DType::kFP8:  // x86 has no fp8 arithmetic: fp8 weights, bf16 compute
        if (!cpu::Fp8GemmAvailable()) {
          return {false, "fp8 weight-only needs AVX512_BF16, which this CPU lacks"};
        }
        return {true, "", /*weight_only=*/true};
      case DType::kInt8:
        if (!cpu::Int8GemmAvailable())
          return {false, "int8 needs AVX512_VNNI, which this CPU lacks"};
        return {};
    }
    return {false, "unknown dtype"};
  }

  Status Open(const SessionConfig& config, std::unique_ptr<Session>* out) override {
    // fp32, bf16 and 8-bit KV caches with any compute dtype (MLA models: Load checks).
    if (config.kv_dtype == DType::kF16) {
      return Status::Unsupported("the cpu backend does not keep a KV cache in fp16");
    }
    const Support s = Supports(config.dtype);
    if (!s.supported) return Status::Unsupported(s.reason);
    if (s.weight_only && !config.weight_only) {
      return Status::Unsupported("the cpu backend runs " + std::string(DTypeName(config.dtype)) +
                                 " weight-only (x86 has no fp8 arithmetic)");
    }
    if (config.max_sequences < 1 || config.max_context < 1 || config.max_step_tokens < 1) {
      return Status::InvalidInput(
          "SessionConfig needs max_sequences, max_context and max_step_tokens of at least 1 "
          "(got " +
          std::to_string(config.max_sequences) + ", " + std::to_string(config.max_context) + ", " +
          std::to_string(config.max_step_tokens) + ")");
    }
    *out = std::make_unique<cpu::CpuSession>(config);
    return Status::Ok();
  }

  Clock& clock() override { return clock_; }
  EnergyMeter* energy() override { return nullptr; }

 private:
  SteadyClock clock_;
};

}  // namespace

bool CpuBackendUsable(std::string* reason) {
#if !defined(__x86_64__)
  if (reason) *reason = "the cpu backend needs an x86-64 CPU";
  return false;
#else
  if (!cpu::CpuHasAvx512()) {
    if (reason) *reason = "the cpu backend's kernels need AVX-512 (F, BW, VL, DQ)";
    return false;
  }
  return true;
#endif
}

std::unique_ptr<Device> MakeCpuDevice() { return std::make_unique<CpuDevice>(); }

}  // namespace cb
