#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "harness/core/dtype.h"
#include "harness/core/status.h"

namespace cb {

/// One short sample of a device's ceilings, taken right beside a measured window.
struct CeilingSample {
  double mem_read_bytes_per_s = 0;  ///< 0: not measured
  double matmul_flops_per_s = 0;    ///< in the sampled dtype; 0: not measured (no native kernel)
  double mem_read_s = 0;            ///< wall time the bandwidth probe took, setup included
  double matmul_s = 0;              ///< wall time the matmul probe took, setup included
};

/// The probes one rank took around its measured window (harness/ceiling_check.h).
struct WindowProbes {
  bool taken = false;  ///< both samples were taken
  CeilingSample before, after;
  std::string error;  ///< why a probe failed (the run then falls back to the cached ceilings)
};

/// Samples a device's ceilings in a short burst (a few hundred ms at most), so that MFU and MBU
/// are judged against what the device could do right beside the window they describe.
/// HostCeilingProbe implements it for the host CPU; a GPU backend could implement it with its
/// own kernels (the cuda backend's ceilings are measured once per process today).
class CeilingProbe {
 public:
  virtual ~CeilingProbe() = default;
  /// Measures the memory read bandwidth and the matmul peak in `dtype` now.
  virtual Status Sample(DType dtype, CeilingSample* out) = 0;
  /// How the samples are taken (kernels, sizes, statistic), for the record.
  virtual std::string Method(DType dtype) const = 0;
  /// Bytes of the last-level cache this process's threads use (0: unknown). A step that moves
  /// fewer bytes per device than this can be served from the cache, so memory bandwidth does
  /// not bound it and its MBU is not reported.
  virtual double CacheBytes() const = 0;
};

/// Short probes with the micro-suite's ceiling kernels, in this process: the streaming read of
/// `mem/read` (StreamReadSum over all OpenMP threads, AVX-512 where present) over a buffer far
/// larger than the last-level cache, and the oneDNN matmul of the micro-suite's smaller peak
/// shape (MatmulKernel, 2048^3, one weight copy: the shape is compute-bound, so cycling weight
/// copies would change its rate by well under 1%). Each figure is the best pass (bandwidth) or
/// the best iteration (matmul) of a burst of at least `min_time_s`: a ceiling is a best
/// achievable figure, as in MeasureCeilings. Buffers and kernels are created on the first
/// sample that needs them and kept for the process (the first sample's time includes that).
class HostCeilingProbe final : public CeilingProbe {
 public:
  struct Config {
    size_t buffer_bytes = 0;   ///< 0: 4 x the last-level cache, within [256 MiB, 1 GiB]
    double min_time_s = 0.05;  ///< per figure
    int min_passes = 3;        ///< bandwidth passes per sample, at least
    int min_iterations = 2;    ///< matmul iterations per sample, at least
    int64_t matmul_size = 2048;
  };
  HostCeilingProbe();
  explicit HostCeilingProbe(const Config& config);
  ~HostCeilingProbe() override;

  Status Sample(DType dtype, CeilingSample* out) override;
  std::string Method(DType dtype) const override;
  double CacheBytes() const override { return cache_bytes_; }

  size_t buffer_bytes() const { return config_.buffer_bytes; }

 private:
  Status SampleBandwidth(double* bytes_per_s);
  Status SampleMatmul(DType dtype, double* flops_per_s);

  struct State;
  Config config_;
  double cache_bytes_ = 0;
  std::unique_ptr<State> state_;
};

}  // namespace cb
