#pragma once

#include <functional>
#include <optional>
#include <string>

#include "backends/backend.h"

namespace cb::energy {

struct PowerModelOptions {
  double idle_w = 0;  ///< per device, from the catalog
  double tdp_w = 0;   ///< per device, from the catalog
  int devices = 1;
  std::string entry;  ///< catalog entry id, for the record
  /// Utilisation in [0, 1] over the whole window. Unset: the process's CPU time over the
  /// window's wall time times the online CPUs (what a CPU backend keeps busy).
  std::optional<double> utilisation;
};

/// Modelled energy where no counter can be read: devices x (idle + (TDP - idle) x
/// utilisation) x window. Its readings say source "model".
class PowerModelMeter final : public EnergyMeter {
 public:
  explicit PowerModelMeter(PowerModelOptions options) : opt_(std::move(options)) {}
  std::string source() const override { return "model"; }
  Status Start() override;
  Status Stop(double* joules) override;
  Status StopReading(EnergyReading* out) override;

 private:
  PowerModelOptions opt_;
  double start_wall_s_ = 0, start_cpu_s_ = 0;
  bool running_ = false;
};

/// Uses `primary` (RAPL, NVML) when it starts, else `fallback` (the power model), and says
/// why in the reading's notes.
class FallbackMeter final : public EnergyMeter {
 public:
  FallbackMeter(std::unique_ptr<EnergyMeter> primary, std::unique_ptr<EnergyMeter> fallback)
      : primary_(std::move(primary)), fallback_(std::move(fallback)) {}
  std::string source() const override { return active_ ? active_->source() : primary_->source(); }
  Status Start() override;
  Status Stop(double* joules) override;
  Status StopReading(EnergyReading* out) override;

 private:
  std::unique_ptr<EnergyMeter> primary_, fallback_;
  EnergyMeter* active_ = nullptr;
  std::string why_;
};

}  // namespace cb::energy
