#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"
#include "backends/devices/catalog.h"
#include "results/run_record.h"
#include "workloads/workload_spec.h"

namespace cb {

/// What `clusterbench run` needs for energy and cost: the catalog, the chosen energy source,
/// the catalog entry of each workload's device, a meter per run, and the metrics afterwards.
class EnergyCostPlanner {
 public:
  /// Loads the catalog (`catalog_dir` empty: backends/devices); kInvalidInput for a bad file
  /// or an unknown `energy` choice.
  Status Init(const std::string& catalog_dir, const std::string& energy);
  /// Pre-flight: the workload's catalog entry resolves (an unknown catalog_device is bad input).
  Status Check(const WorkloadSpec& w, const DeviceProps& props) const;
  /// The meter for one run on `device`: the device's own, else RAPL/NVML/the power model.
  /// `*meter` is null when energy is off or cannot be had (`*note` says why).
  Status MakeMeter(const WorkloadSpec& w, Device& device, std::unique_ptr<EnergyMeter>* owned,
                   EnergyMeter** meter, std::string* note) const;
  /// The meter of the hardware behind an endpoint: its Prometheus exporter when the workload
  /// names one (energy_metrics), else the power model of `devices` x `device_entry`
  /// (energy::MakeRemoteEnergyMeter; --energy rapl/nvml are refused, kInvalidInput).
  Status MakeEndpointMeter(const WorkloadSpec& w, const CatalogEntry* device_entry, int devices,
                           std::unique_ptr<EnergyMeter>* owned, EnergyMeter** meter,
                           std::string* note) const;
  const std::string& energy_choice() const { return energy_; }
  /// After the run: energy metrics, the cost section and the cost metrics.
  void Finish(const WorkloadSpec& w, RunRecord* rec) const;

  const DeviceCatalog& catalog() const { return catalog_; }

  /// The entry for a device: `catalog_device` by id or name if given (nullptr + error when
  /// unknown), else matched on the device name, then (CPUs) on the host's CPU model string.
  static Status ResolveEntry(const DeviceCatalog& catalog, const std::string& catalog_device,
                             const std::string& origin, const DeviceProps& props,
                             const CatalogEntry** out, std::string* matched_by);

 private:
  DeviceCatalog catalog_;
  std::string energy_ = "auto";
};

/// "model name" of /proc/cpuinfo, empty if unknown.
std::string HostCpuModel();

}  // namespace cb
