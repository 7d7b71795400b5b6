#include "harness/micro/ceiling_probe.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "harness/micro/host_info.h"
#include "harness/micro/matmul_kernel.h"
#include "harness/micro/memory_kernels.h"

namespace cb {
namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kMinBuffer = 256 * kMiB;
constexpr size_t kMaxBuffer = 1024 * kMiB;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Keeps the read sums observable, so the compiler cannot drop the passes.
volatile double g_sink = 0;

}  // namespace

struct HostCeilingProbe::State {
  std::unique_ptr<BandwidthBuffer> buffer;
  std::unique_ptr<MatmulKernel> matmul[kDTypeCount];
  std::string impl[kDTypeCount];
};

HostCeilingProbe::HostCeilingProbe() : HostCeilingProbe(Config{}) {}

HostCeilingProbe::HostCeilingProbe(const Config& config)
    : config_(config),
      cache_bytes_(static_cast<double>(LastLevelCacheBytes())),
      state_(std::make_unique<State>()) {
  if (config_.buffer_bytes == 0) {
    const size_t four_llc = static_cast<size_t>(4 * cache_bytes_);
    config_.buffer_bytes = std::clamp(four_llc, kMinBuffer, kMaxBuffer);
  }
  config_.min_passes = std::max(1, config_.min_passes);
  config_.min_iterations = std::max(1, config_.min_iterations);
}

HostCeilingProbe::~HostCeilingProbe() = default;

Status HostCeilingProbe::SampleBandwidth(double* bytes_per_s) {
  if (!state_->buffer) {
    // First touch is parallel with the kernel's partition, then one unmeasured pass.
    state_->buffer = std::make_unique<BandwidthBuffer>(config_.buffer_bytes / sizeof(float), 1.0f);
    if (!state_->buffer->ok()) {
      state_->buffer.reset();
      return Status::Exhausted("ceiling probe: cannot allocate " +
                               std::to_string(config_.buffer_bytes >> 20) + " MiB");
    }
    g_sink = g_sink + StreamReadSum(state_->buffer->data(), state_->buffer->size());
  }
  const BandwidthBuffer& b = *state_->buffer;
  const double bytes = static_cast<double>(b.bytes());
  double best = 0;
  const double start = Now();
  for (int pass = 0; pass < config_.min_passes || Now() - start < config_.min_time_s; ++pass) {
    const double t0 = Now();
    g_sink = g_sink + StreamReadSum(b.data(), b.size());
    const double t = Now() - t0;
    if (t > 0) best = std::max(best, bytes / t);
  }
  *bytes_per_s = best;
  return Status::Ok();
}

Status HostCeilingProbe::SampleMatmul(DType dtype, double* flops_per_s) {
  *flops_per_s = 0;
  if (!MatmulKernel::Supported(dtype)) return Status::Ok();  // no native kernel: no figure
  std::unique_ptr<MatmulKernel>& kernel = state_->matmul[static_cast<int>(dtype)];
  if (!kernel) {
    MatmulConfig c;
    c.dtype = dtype;
    c.m = c.n = c.k = config_.matmul_size;
    CB_RETURN_IF_ERROR(MatmulKernel::Create(c, &kernel));
    kernel->Run();  // JIT and first touch, unmeasured
    state_->impl[static_cast<int>(dtype)] = kernel->impl();
  }
  double best = 0;
  const double start = Now();
  for (int i = 0; i < config_.min_iterations || Now() - start < config_.min_time_s; ++i) {
    const double t0 = Now();
    kernel->Run();
    const double t = Now() - t0;
    if (t > 0) best = std::max(best, kernel->Flops() / t);
  }
  *flops_per_s = best;
  return Status::Ok();
}

Status HostCeilingProbe::Sample(DType dtype, CeilingSample* out) {
  CeilingSample s;
  double t0 = Now();
  CB_RETURN_IF_ERROR(SampleBandwidth(&s.mem_read_bytes_per_s));
  s.mem_read_s = Now() - t0;
  t0 = Now();
  CB_RETURN_IF_ERROR(SampleMatmul(dtype, &s.matmul_flops_per_s));
  s.matmul_s = Now() - t0;
  *out = s;
  return Status::Ok();
}

std::string HostCeilingProbe::Method(DType dtype) const {
  const int size = static_cast<int>(config_.matmul_size);
  std::string impl = state_->impl[static_cast<int>(dtype)];
  if (impl.empty()) impl = MatmulKernel::Supported(dtype) ? "oneDNN" : "no native kernel here";
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "in-process probes with the micro-suite's ceiling kernels: memory read = best "
                "pass of a streaming read (%s, %d OpenMP threads) over a %zu MiB buffer, >= %d "
                "passes and >= %.0f ms; matmul = best iteration of oneDNN %s %dx%dx%d (%s), >= "
                "%d iterations and >= %.0f ms",
                MemoryKernelsUseAvx512() ? "AVX-512" : "scalar", omp_get_max_threads(),
                config_.buffer_bytes >> 20, config_.min_passes, config_.min_time_s * 1e3,
                DTypeName(dtype).data(), size, size, size, impl.c_str(), config_.min_iterations,
                config_.min_time_s * 1e3);
  return buf;
}

}  // namespace cb
