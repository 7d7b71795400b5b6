#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/energy/sampler.h"

namespace cb::energy {

/// How to grant read access to the RAPL counters (root-only since CVE-2020-8694).
std::string RaplAccessHint(const std::string& root);

struct RaplOptions {
  std::string root = "/sys/class/powercap";  ///< a fake tree in tests
  /// Longest time between two reads; shortened to a quarter of the fastest wrap period.
  double sample_interval_s = 0.1;
  bool include_dram = true;
  /// Reads a whole file into `out`; returns 0 or an errno value. Tests inject failures here
  /// (root can read a chmod 000 file). Default: the real file.
  std::function<int(const std::string& path, std::string* out)> read_file;
};

/// Energy from the Linux powercap RAPL zones (`intel-rapl:N` packages and their `dram`
/// subzones; AMD families 17h/19h/1Ah expose packages through the same driver). A sampling
/// thread reads every counter faster than it can wrap (`max_energy_range_uj`), so wraps are
/// counted once each.
class RaplMeter final : public EnergyMeter {
 public:
  explicit RaplMeter(RaplOptions options = {});
  ~RaplMeter() override;

  std::string source() const override { return "rapl"; }
  /// kUnsupported with an explanation (no zones, unreadable counters and how to grant access).
  Status Start() override;
  Status Stop(double* joules) override;
  Status StopReading(EnergyReading* out) override;
  /// One read of every counter now (the sampling thread calls this; tests call it directly).
  void SampleNow();
  /// The sampling period chosen at Start.
  double sample_interval_s() const { return interval_s_; }

  /// RAPL update period: the counters advance about every millisecond.
  static constexpr double kUpdatePeriodS = 0.001;

 private:
  struct Domain {
    std::string name;  ///< "package-0", "package-0/dram"
    std::string zone;  ///< "intel-rapl:0", "intel-rapl:0:1"
    uint64_t max_range_uj = 0;
    double wrap_period_s = 0;
    uint64_t last_uj = 0;
    double total_uj = 0;
    int wraps = 0;
  };
  Status Discover(std::vector<Domain>* out, std::vector<std::string>* notes) const;
  int Read(const std::string& path, uint64_t* value) const;

  RaplOptions opt_;
  Sampler sampler_;
  std::mutex mu_;
  std::vector<Domain> domains_;
  std::vector<std::string> notes_;
  double interval_s_ = 0;
  double start_s_ = 0, last_sample_s_ = 0, max_gap_s_ = 0, min_wrap_s_ = 0;
  bool read_failed_ = false;
  bool running_ = false;
};

}  // namespace cb::energy
