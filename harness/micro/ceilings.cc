#include "harness/micro/ceilings.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "harness/micro/ceilings_cache.h"
#include "harness/micro/host_info.h"
#include "harness/micro/matmul_kernel.h"
#include "harness/micro/micro_benchmarks.h"

namespace cb {
namespace {

/// Repetitions and time per repetition of the ceiling set (see MeasureCeilings).
constexpr int kCeilingRepetitions = 6;
constexpr double kCeilingMinTimeS = 0.1;

/// 1-minute load average, or -1 when unknown.
double LoadAverage() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (f == nullptr) return -1;
  double load = -1;
  if (std::fscanf(f, "%lf", &load) != 1) load = -1;
  std::fclose(f);
  return load;
}

}  // namespace

Status MeasureCeilings(Ceilings* out) {
  std::vector<MicroBenchSpec> specs;
  for (auto& s : AllMicroBenchmarks()) {
    if (s.ceiling) specs.push_back(std::move(s));
  }
  const double load = LoadAverage();
  if (load > 0.5) {
    std::fprintf(stderr,
                 "warning: ceilings: host load average is %.2f; other work slows the "
                 "benchmarks and lowers the ceilings (re-measure on a quiet host)\n",
                 load);
  }
  const auto start = std::chrono::steady_clock::now();
  Ceilings c;
  c.measured_at = IsoUtcNow();
  std::vector<MicroResult> results;
  CB_RETURN_IF_ERROR(
      RunMicroBenchmarks(specs, MicroRunConfig{kCeilingMinTimeS, kCeilingRepetitions}, &results));
  for (size_t i = 0; i < specs.size(); ++i) {
    const MicroResult& r = results[i];
    if (!r.ok) return Status::Internal("ceilings: " + r.name + " failed: " + r.error);
    if (specs[i].kind == MicroKind::kMatmul) {
      double& peak = c.matmul_flops_per_s[static_cast<int>(specs[i].dtype)];
      peak = std::max(peak, r.flops_per_s_max);
    } else if (specs[i].kind == MicroKind::kMemRead) {
      c.mem_read_bytes_per_s = r.bytes_per_s_max;
    }
  }
  if (c.matmul_flops_per_s[static_cast<int>(DType::kF32)] <= 0 || c.mem_read_bytes_per_s <= 0) {
    return Status::Internal("ceilings: fp32 matmul or memory read was not measured");
  }
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr,
               "ceilings: fp32 %.3f TFLOP/s, bf16 %.3f TFLOP/s, int8 %.3f TOP/s, memory read "
               "%.1f GB/s (%.1f s)\n",
               c.matmul_flops_per_s[static_cast<int>(DType::kF32)] / 1e12,
               c.matmul_flops_per_s[static_cast<int>(DType::kBF16)] / 1e12,
               c.matmul_flops_per_s[static_cast<int>(DType::kInt8)] / 1e12,
               c.mem_read_bytes_per_s / 1e9, secs);
  c.source = "measured by clusterbench micro on " + CurrentHostInfo().host + " at " +
             c.measured_at + " (not cached)";
  *out = c;
  return Status::Ok();
}

std::string FormatCeilings(const Ceilings& c) {
  std::string out;
  char buf[128];
  for (DType t : {DType::kF32, DType::kBF16, DType::kF16, DType::kInt8, DType::kFP8}) {
    const double v = c.matmul_flops_per_s[static_cast<int>(t)];
    if (v <= 0) continue;
    std::snprintf(buf, sizeof(buf), "matmul %-5s %10.3f %s\n", DTypeName(t).data(), v / 1e12,
                  IsQuantized(t) ? "TOP/s" : "TFLOP/s");
    out += buf;
  }
  std::snprintf(buf, sizeof(buf), "memory read  %10.1f GB/s\n", c.mem_read_bytes_per_s / 1e9);
  out += buf;
  out += "source: " + c.source + "\n";
  return out;
}

Status LoadOrMeasureCeilings(const std::string& results_dir, bool remeasure, Ceilings* out) {
  CB_RETURN_IF_ERROR(
      LoadOrMeasureCeilingsWith(results_dir, remeasure, CurrentHostInfo(), MeasureCeilings, out));
  // A cache written before the int8 peak existed: measure again rather than leave int8 runs
  // without MFU.
  if (!remeasure && out->matmul_flops_per_s[static_cast<int>(DType::kInt8)] <= 0 &&
      MatmulKernel::Supported(DType::kInt8)) {
    std::fprintf(stderr, "ceilings: the cache has no int8 matmul peak; re-measuring\n");
    return LoadOrMeasureCeilingsWith(results_dir, true, CurrentHostInfo(), MeasureCeilings, out);
  }
  return Status::Ok();
}

}  // namespace cb
