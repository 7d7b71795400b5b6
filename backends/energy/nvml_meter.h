#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/energy/sampler.h"

namespace cb::energy {

struct NvmlOptions {
  /// dlopen'ed at Start; a path loads that file (tests load a fake). Default: the driver's
  /// library, or $CLUSTERBENCH_NVML_LIBRARY when set.
  std::string library;
  std::vector<unsigned> indices;    ///< GPUs to read; empty: all
  double sample_interval_s = 0.05;  ///< power sampling period (devices without an energy counter)
};

/// Energy of NVIDIA GPUs through NVML, loaded with dlopen at run time (nothing at build time):
/// nvmlDeviceGetTotalEnergyConsumption deltas where the GPU has the counter (Volta and later),
/// else nvmlDeviceGetPowerUsage sampled on a thread and integrated (trapezoids). One domain per
/// GPU, named by index and identified by its UUID.
class NvmlMeter final : public EnergyMeter {
 public:
  explicit NvmlMeter(NvmlOptions options = {});
  ~NvmlMeter() override;
  std::string source() const override { return "nvml"; }
  Status Start() override;
  Status Stop(double* joules) override;
  Status StopReading(EnergyReading* out) override;

  /// Assumed update period of the counters; shorter windows are flagged invalid.
  static constexpr double kUpdatePeriodS = 0.1;

 private:
  struct Api;
  struct Gpu {
    void* handle = nullptr;
    unsigned index = 0;
    std::string uuid, name;
    bool energy_counter = false;
    unsigned long long start_mj = 0;
    double last_t = 0, last_w = 0, joules = 0;
    int samples = 0;
    bool failed = false;
  };
  void SamplePower();
  void Close();

  NvmlOptions opt_;
  void* lib_ = nullptr;
  Api* api_ = nullptr;
  bool initialised_ = false;
  Sampler sampler_;
  std::mutex mu_;
  std::vector<Gpu> gpus_;
  std::vector<std::string> notes_;
  double start_s_ = 0;
  bool running_ = false;
};

}  // namespace cb::energy
