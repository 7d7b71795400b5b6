#include "harness/scenarios/serving_metrics.h"

#include <algorithm>
#include <cmath>

#include "harness/cost/cost_model.h"
#include "harness/cost/energy_cost.h"
#include "harness/stats.h"

namespace cb {
namespace {

Metric Dist(const std::string& name, const std::string& unit, Provenance how,
            const std::vector<double>& samples) {
  return Metric{name, unit, how, Median(samples), true, Summarize(samples)};
}

void Put(RunRecord* rec, const std::string& name, const std::string& unit, Provenance how,
         double value) {
  std::erase_if(rec->metrics, [&](const Metric& m) { return m.name == name; });
  if (!std::isfinite(value)) return;
  rec->metrics.push_back(Metric{name, unit, how, value, false, {}});
}

struct Latencies {
  std::vector<double> ttft, tpot, e2e;
  double prompt_tokens = 0, output_tokens = 0, duration = 0;
  int64_t good = 0;
};

Latencies Collect(const ServingRecord& s) {
  Latencies l;
  double first = INFINITY, last = 0;
  for (const RequestSample& r : s.requests) {
    const double ttft = r.Ttft();
    const double e2e = r.finish_s - r.arrival_s;
    l.ttft.push_back(ttft);
    l.e2e.push_back(e2e);
    double tpot = 0;
    if (r.output_len > 1) {
      tpot = r.Tpot();
      l.tpot.push_back(tpot);
    }
    const bool ttft_ok = !(s.slo_ttft_s > 0) || ttft <= s.slo_ttft_s;
    const bool tpot_ok = !(s.slo_tpot_s > 0) || r.output_len <= 1 || tpot <= s.slo_tpot_s;
    l.good += ttft_ok && tpot_ok ? 1 : 0;
    l.prompt_tokens += static_cast<double>(r.prompt_len);
    l.output_tokens += static_cast<double>(r.output_len);
    first = std::min(first, r.arrival_s);
    last = std::max(last, r.finish_s);
  }
  l.duration = s.requests.empty() ? 0 : last - first;
  return l;
}

}  // namespace

void AddServingMetrics(Provenance how, int devices, RunRecord* rec) {
  ServingRecord& s = *rec->serving;
  Latencies l = Collect(s);
  s.duration_s = l.duration;
  auto& M = rec->metrics;
  const double d = l.duration > 0 ? l.duration : NAN;
  // One simulated attention group stands for `replicas`: the pool serves that many times more.
  const double r = static_cast<double>(std::max<int64_t>(1, s.replicas));
  const double n = static_cast<double>(s.requests.size()) * r;
  l.output_tokens *= r;
  l.prompt_tokens *= r;
  l.good *= static_cast<int64_t>(r);
  M.push_back(Dist("ttft_seconds", "s", how, l.ttft));
  if (!l.tpot.empty()) M.push_back(Dist("tpot_seconds", "s", how, l.tpot));
  M.push_back(Dist("e2e_latency_seconds", "s", how, l.e2e));
  Put(rec, "output_tokens_per_second", "tokens/s", how, l.output_tokens / d);
  Put(rec, "output_tokens_per_second_per_device", "tokens/s", how,
      l.output_tokens / d / std::max(1, devices));
  // The offline names too, so the table and the cost model read a serving run the same way:
  // output (decode) and prompt (prefill) tokens over the run's duration.
  Put(rec, "decode_tokens_per_second", "tokens/s", how, l.output_tokens / d);
  Put(rec, "prefill_tokens_per_second", "tokens/s", how, l.prompt_tokens / d);
  Put(rec, "requests_per_second", "requests/s", how, n / d);
  if (s.slo_ttft_s > 0 || s.slo_tpot_s > 0) {
    Put(rec, "goodput_requests_per_second", "requests/s", how, static_cast<double>(l.good) / d);
    Put(rec, "slo_attainment_ratio", "ratio", how, n > 0 ? static_cast<double>(l.good) / n : NAN);
  }
  if (!l.tpot.empty()) {
    Put(rec, "interactivity_tokens_per_second_per_user", "tokens/s", how, 1.0 / Median(l.tpot));
  }
}

ValidityInput ServingValidityInput(const RunRecord& rec) {
  ValidityInput in;
  const Latencies l = Collect(*rec.serving);
  in.duration_s = l.duration;
  in.requests = static_cast<int64_t>(rec.serving->requests.size());
  in.cv_samples = l.tpot;
  in.cv_of = "per-request TPOT";
  in.latencies = {
      {"ttft_seconds", l.ttft}, {"tpot_seconds", l.tpot}, {"e2e_latency_seconds", l.e2e}};
  return in;
}

ValidityInput OfflineValidityInput(const RunRecord& rec) {
  ValidityInput in;
  for (const RepetitionSample& s : rec.samples) {
    in.duration_s += s.e2e_s;
    in.cv_samples.push_back(s.e2e_s);
  }
  in.requests = static_cast<int64_t>(rec.samples.size()) * rec.workload.batch;
  in.cv_of = "repetitions' end-to-end time";
  if (rec.ceiling_check && rec.ceiling_check->verdict != "ok") {
    in.unstable_reasons = rec.ceiling_check->reasons;
  }
  return in;
}

void FixServingEnergyCost(RunRecord* rec) {
  if (!rec->serving) return;
  const Latencies l = Collect(*rec->serving);
  const double tokens = (l.prompt_tokens + l.output_tokens) *
                        static_cast<double>(std::max<int64_t>(1, rec->serving->replicas));
  if (rec->energy) {
    EnergyRecord& e = *rec->energy;
    e.tokens = tokens;
    e.attributed_s = l.duration;
    const Provenance how =
        e.reading.source == "model" ? Provenance::kModelled : Provenance::kMeasured;
    const double j = e.reading.joules;
    Put(rec, kEnergyJoules, "J", how, j);
    Put(rec, kEnergyJoulesPerToken, "J/token", how, tokens > 0 ? j / tokens : NAN);
    Put(rec, kTokensPerKwh, "tokens/kWh", how, j > 0 ? tokens / (j / 3.6e6) : NAN);
  }
  if (rec->cost) {
    CostRecord& c = *rec->cost;
    c.blended_tokens_per_second = l.duration > 0 ? tokens / l.duration : NAN;
    Put(rec, kCostBlended, "USD/Mtok", Provenance::kModelled,
        UsdPerMillionTokens(c.cost_per_device_hour_usd, c.devices, c.blended_tokens_per_second));
  }
}

}  // namespace cb
