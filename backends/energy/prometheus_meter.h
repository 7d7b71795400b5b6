#pragma once

#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"
#include "backends/devices/catalog.h"
#include "backends/energy/sampler.h"

namespace cb::energy {

/// One sample of the Prometheus text exposition format.
struct PromSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
/// Parses the text format (comments and TYPE/HELP lines skipped, escapes in label values
/// undone); kInvalidInput names the line of a malformed sample.
Status ParsePrometheusText(std::string_view text, std::vector<PromSample>* out);

/// A series selector: NAME or NAME{label="value",...} (equality only).
struct PromSelector {
  std::string name;
  std::map<std::string, std::string> labels;
  bool Matches(const PromSample& s) const;
  std::string text() const;
};
Status ParsePromSelector(const std::string& text, PromSelector* out);

/// How a metric's value becomes energy: a counter of energy (joules = value x scale, summed
/// over the matching series, differenced between start and stop) or a gauge of power in watts
/// (sampled and integrated with trapezoids).
struct PromEnergyKind {
  bool counter = true;
  double scale = 1;  ///< counter: joules per unit (DCGM reports millijoules)
};
/// The kind from the metric name: DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION (mJ counter),
/// *_joules_total / *_joules (J counter), DCGM_FI_DEV_POWER_USAGE, npu_chip_info_power (Ascend
/// NPU exporter) and *_watts (W gauges). False for a name of unknown unit.
bool EnergyKindOf(const std::string& name, PromEnergyKind* out);

struct PrometheusMeterOptions {
  std::string url;        ///< the exporter's metrics URL, e.g. http://gpu-node:9400/metrics
  std::string selector;   ///< empty: the first of DCGM's energy counter, its power gauge, Ascend's
  double interval_s = 1;  ///< gauge sampling period
  double timeout_s = 3;   ///< bound on one scrape
};

/// Energy of remote serving hardware from its Prometheus exporter (DCGM-exporter, node
/// exporter's RAPL, an Ascend NPU exporter): source "prometheus", one domain per series.
class PrometheusEnergyMeter final : public EnergyMeter {
 public:
  explicit PrometheusEnergyMeter(PrometheusMeterOptions options) : opt_(std::move(options)) {}
  std::string source() const override { return "prometheus"; }
  Status Start() override;
  Status Stop(double* joules) override;
  Status StopReading(EnergyReading* out) override;

 private:
  /// Scrapes once: the matching series' values (by label set) and their sum.
  Status Scrape(std::map<std::string, double>* values);
  void Tick();

  PrometheusMeterOptions opt_;
  PromSelector selector_;
  PromEnergyKind kind_;
  std::map<std::string, double> start_values_;
  double start_s_ = 0;
  bool running_ = false;
  Sampler sampler_;
  std::mutex mu_;
  double last_t_ = 0, last_w_ = 0, joules_ = 0;
  int failed_ticks_ = 0, ticks_ = 0;
};

/// The meter of hardware behind an endpoint (docs/endpoint.md): `prometheus_url` given, its
/// exporter (PrometheusEnergyMeter, falling back to the power model when it cannot be read);
/// else the catalog's power model for `devices` devices of `entry`, busy through the window
/// (utilisation 1, assumed: the client cannot see the server's load). `choice` is auto, model
/// or off; rapl and nvml read this host, not the server's (kInvalidInput).
Status MakeRemoteEnergyMeter(const std::string& choice, const std::string& prometheus_url,
                             const std::string& selector, const CatalogEntry* entry, int devices,
                             std::unique_ptr<EnergyMeter>* out, std::string* note);

}  // namespace cb::energy
