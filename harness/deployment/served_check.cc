#include "harness/deployment/served_check.h"

#include <algorithm>
#include <vector>

#include "harness/deployment/sim_serving.h"
#include "harness/stats.h"

namespace cb {
namespace {

/// Requests that reach the steady state: four times what the sampled groups hold in flight
/// at that load, at least `at_least`, at most 20,000.
int64_t RequestsFor(const ServingGroupSample& gs, const LayoutPoint& p, double load,
                    int64_t at_least) {
  const double in_flight = load * static_cast<double>(p.seqs_per_rank) *
                           p.deployment.Decode().dp() / static_cast<double>(gs.replicas);
  return std::clamp<int64_t>(static_cast<int64_t>(4 * in_flight), at_least, 20000);
}

}  // namespace

Status ServeLayout(const WorkloadSpec& base, const SimTarget& device, const LayoutPoint& p,
                   double load, int64_t requests, double slo_ttft_s, double slo_tpot_s,
                   ServedFigures* out) {
  *out = ServedFigures{};
  out->load = load;
  WorkloadSpec w = InDType(base, p.dtype);
  w.backend = "sim";
  w.scenario = "server";
  w.verify = false;
  w.batch = p.seqs_per_rank * p.deployment.Decode().dp();
  out->offered_requests_per_s = load * p.output_tokens_per_s / static_cast<double>(w.gen_len);
  w.serving.rate = out->offered_requests_per_s;
  w.serving.warmup_requests = 0;
  w.serving.min_duration = 0;
  w.serving.max_prefill_tokens = p.prefill_chunk;
  SimTarget t = device;
  t.deployment = p.deployment;
  t.prefill_chunk = p.prefill_chunk;
  const ServingGroupSample gs = SampleServingGroups(w, t);
  w.serving.requests = RequestsFor(gs, p, load, requests);
  RunnerOptions opts;
  opts.quiet = true;
  RunRecord rec;
  if (Status s = RunSimulatedServing(w, t, opts, &rec); !s.ok()) {
    if (s.code() == StatusCode::kCancelled) return s;
    out->skipped = "not served: " + s.message();
    return Status::Ok();
  }
  if (rec.status != "ok" || !rec.serving) {
    out->skipped = "not served: " + rec.status_message;
    return Status::Ok();
  }
  // The steady state: requests from the fifth to the fourth fifth by arrival, past the ramp
  // from an empty system and before the drain at the end; served: the rate at which they
  // finished (between the 5th and 95th percentiles of their finish times).
  const std::vector<RequestSample>& all = rec.serving->requests;
  const size_t lo = all.size() / 5, hi = all.size() * 4 / 5;
  if (hi <= lo + 20) {
    out->skipped = "too few requests to reach a steady state";
    return Status::Ok();
  }
  std::vector<double> ttft, tpot, finish;
  for (size_t i = lo; i < hi; ++i) {
    const RequestSample& q = all[i];
    finish.push_back(q.finish_s);
    ttft.push_back(q.Ttft());
    if (q.output_len > 1) tpot.push_back(q.Tpot());
  }
  std::sort(finish.begin(), finish.end());
  const size_t f5 = finish.size() / 20, f95 = finish.size() - 1 - finish.size() / 20;
  const double span = finish[f95] - finish[f5];
  const double replicas = static_cast<double>(gs.replicas);
  out->served_requests_per_s = span > 0 ? static_cast<double>(f95 - f5) / span * replicas : 0;
  const Distribution t_first = Summarize(ttft), t_out = Summarize(tpot);
  out->ttft_p50_s = t_first.p50;
  out->ttft_p99_s = t_first.p99;
  out->tpot_p50_s = t_out.p50;
  out->tpot_p99_s = t_out.p99;
  out->meets_slo = (slo_ttft_s <= 0 || out->ttft_p99_s <= slo_ttft_s) &&
                   (slo_tpot_s <= 0 || out->tpot_p99_s <= slo_tpot_s);
  return Status::Ok();
}

}  // namespace cb
