#include "harness/cost/energy_cost.h"

#include <algorithm>
#include <cmath>

#include "harness/cost/cost_model.h"

namespace cb {
namespace {

void Put(RunRecord* rec, const char* name, const char* unit, Provenance how, double value) {
  std::erase_if(rec->metrics, [&](const Metric& m) { return m.name == name; });
  if (!std::isfinite(value)) return;
  rec->metrics.push_back(Metric{name, unit, how, value, false, {}});
}

double MetricValue(const RunRecord& rec, const char* name) {
  const Metric* m = rec.FindMetric(name);
  return m ? m->value : std::nan("");
}

}  // namespace

void AddEnergyMetrics(RunRecord* rec) {
  if (!rec->energy) return;
  EnergyRecord& e = *rec->energy;
  const WorkloadSpec& w = rec->workload;
  e.tokens = static_cast<double>(rec->samples.size()) * static_cast<double>(w.batch) *
             static_cast<double>(w.prompt_len + w.gen_len);
  e.attributed_s = 0;
  for (const RepetitionSample& s : rec->samples) e.attributed_s += s.e2e_s;
  const EnergyReading& r = e.reading;
  const bool counter = r.source != "model";
  const Provenance power_how = counter ? Provenance::kMeasured : Provenance::kModelled;
  const Provenance how = !counter            ? Provenance::kModelled
                         : rec->extrapolated ? Provenance::kExtrapolated
                                             : Provenance::kMeasured;
  const double watts = r.window_s > 0 ? r.joules / r.window_s : std::nan("");
  // A full run's energy is what was read; an extrapolated run's is the measured average power
  // over the extrapolated time.
  const double joules = rec->extrapolated ? watts * e.attributed_s : r.joules;
  Put(rec, kAveragePowerWatts, "W", power_how, watts);
  Put(rec, kEnergyJoules, "J", how, joules);
  Put(rec, kEnergyJoulesPerToken, "J/token", how, e.tokens > 0 ? joules / e.tokens : std::nan(""));
  Put(rec, kTokensPerKwh, "tokens/kWh", how,
      joules > 0 ? e.tokens / (joules / 3.6e6) : std::nan(""));
}

void AddCostMetrics(RunRecord* rec) {
  if (!rec->cost) return;
  CostRecord& c = *rec->cost;
  const WorkloadSpec& w = rec->workload;
  c.input_tokens_per_second = MetricValue(*rec, "prefill_tokens_per_second");
  c.output_tokens_per_second = MetricValue(*rec, "decode_tokens_per_second");
  const double e2e = MetricValue(*rec, "e2e_latency_seconds");
  c.blended_tokens_per_second =
      e2e > 0 ? static_cast<double>(w.batch * (w.prompt_len + w.gen_len)) / e2e : std::nan("");
  if (c.input_devices > 0 && c.output_devices > 0) {
    // Disaggregated pools work side by side: requests flow at the slower pool's rate.
    const double requests_per_s =
        std::min(c.input_tokens_per_second / static_cast<double>(w.prompt_len),
                 c.output_tokens_per_second / static_cast<double>(w.gen_len));
    c.blended_tokens_per_second = requests_per_s * static_cast<double>(w.prompt_len + w.gen_len);
  }
  c.cost_per_device_hour_usd = CostPerDeviceHour(c);
  const double h = c.cost_per_device_hour_usd;
  const Provenance how = Provenance::kModelled;
  Put(rec, kCostInput, "USD/Mtok", how,
      UsdPerMillionTokens(h, c.input_devices > 0 ? c.input_devices : c.devices,
                          c.input_tokens_per_second));
  Put(rec, kCostOutput, "USD/Mtok", how,
      UsdPerMillionTokens(h, c.output_devices > 0 ? c.output_devices : c.devices,
                          c.output_tokens_per_second));
  Put(rec, kCostBlended, "USD/Mtok", how,
      UsdPerMillionTokens(h, c.devices, c.blended_tokens_per_second));
}

}  // namespace cb
