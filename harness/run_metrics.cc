#include "harness/run_metrics.h"

#include <algorithm>
#include <set>

#include "harness/stats.h"

namespace cb {
namespace {

Metric Dist(const std::string& name, const std::string& unit, Provenance how,
            const std::vector<double>& samples) {
  return Metric{name, unit, how, Median(samples), true, Summarize(samples)};
}

Metric Scalar(const std::string& name, const std::string& unit, Provenance how, double value) {
  return Metric{name, unit, how, value, false, {}};
}

}  // namespace

void AddThroughputMetrics(const WorkloadSpec& w, const std::vector<RankTimings>& ranks,
                          const OpCost& prefill_cost, const OpCost& decode_cost,
                          const Ceilings& ceilings, Provenance how, RunRecord* rec) {
  const size_t reps = ranks.front().prefill_s.size();
  const double devices = static_cast<double>(ranks.size());
  std::vector<double> prefill_wall(reps, 0), decode_wall(reps, 0);
  std::vector<double> ttft, tpot, e2e, overhead, comm_share;
  for (const RankTimings& r : ranks) {
    for (size_t i = 0; i < reps; ++i) {
      prefill_wall[i] = std::max(prefill_wall[i], r.prefill_s[i]);
      decode_wall[i] = std::max(decode_wall[i], r.decode_s[i]);
      overhead.push_back(r.window_s[i] > 0 ? std::max(0.0, 1.0 - r.backend_s[i] / r.window_s[i])
                                           : 0.0);
      if (r.backend_s[i] > 0) comm_share.push_back(r.comm_s[i] / r.backend_s[i]);
      if (r.tp_rank != 0) continue;  // a replica's latency, once
      ttft.push_back(r.prefill_s[i]);
      tpot.insert(tpot.end(), r.decode_step_s[i].begin(), r.decode_step_s[i].end());
      e2e.push_back(r.prefill_s[i] + r.decode_s[i]);
    }
  }
  std::vector<double> prefill_tps, decode_tps;
  for (size_t i = 0; i < reps; ++i) {
    prefill_tps.push_back(static_cast<double>(w.batch * w.prompt_len) / prefill_wall[i]);
    decode_tps.push_back(static_cast<double>(w.batch * w.gen_len) / decode_wall[i]);
  }
  auto& M = rec->metrics;
  // Overhead and communication share are measured on real devices, modelled on a simulated one.
  const Provenance own = how == Provenance::kModelled ? how : Provenance::kMeasured;
  M.push_back(Dist("prefill_tokens_per_second", "tokens/s", how, prefill_tps));
  M.push_back(Dist("decode_tokens_per_second", "tokens/s", how, decode_tps));
  M.push_back(Dist("ttft_seconds", "s", how, ttft));
  M.push_back(Dist("tpot_seconds", "s", how, tpot));
  M.push_back(Dist("e2e_latency_seconds", "s", how, e2e));
  M.push_back(Dist("harness_overhead_ratio", "ratio", own, overhead));
  if (ranks.size() > 1) {
    auto per_device = [&](std::vector<double> v) {
      for (double& x : v) x /= devices;
      return v;
    };
    M.push_back(
        Dist("prefill_tokens_per_second_per_device", "tokens/s", how, per_device(prefill_tps)));
    M.push_back(
        Dist("decode_tokens_per_second_per_device", "tokens/s", how, per_device(decode_tps)));
    M.push_back(Dist("communication_share_ratio", "ratio", own, comm_share));
  }

  const double prefill_s = Median(prefill_wall);
  const double decode_s = Median(decode_wall);
  M.push_back(Scalar("prefill_flops_per_second", "FLOP/s", how, prefill_cost.flops / prefill_s));
  M.push_back(Scalar("decode_bytes_per_second", "bytes/s", how, decode_cost.bytes / decode_s));
  // A weight-only run computes in bf16: its MFU is against the bf16 peak.
  const bool weight_only = rec->precision.find("weight-only") != std::string::npos;
  const DType compute = weight_only ? DType::kBF16 : w.dtype;
  const double peak = ceilings.matmul_flops_per_s[static_cast<int>(compute)] * devices;
  const double bw = ceilings.mem_read_bytes_per_s * devices;
  if (peak > 0) {
    M.push_back(Scalar("mfu_prefill_ratio", "ratio", how, prefill_cost.flops / prefill_s / peak));
    M.push_back(Scalar("mfu_decode_ratio", "ratio", how, decode_cost.flops / decode_s / peak));
  }
  if (bw > 0) {
    M.push_back(Scalar("mbu_prefill_ratio", "ratio", how, prefill_cost.bytes / prefill_s / bw));
    M.push_back(Scalar("mbu_decode_ratio", "ratio", how, decode_cost.bytes / decode_s / bw));
  }
  // A utilisation above 1 means the ceiling is too low (measured while the host was busy),
  // not that the run beat the hardware: say so next to the figures.
  for (const char* name :
       {"mfu_prefill_ratio", "mfu_decode_ratio", "mbu_prefill_ratio", "mbu_decode_ratio"}) {
    const Metric* m = rec->FindMetric(name);
    if (m == nullptr || m->value <= 1.05) continue;
    rec->status_message += std::string(rec->status_message.empty() ? "" : "; ") +
                           "warning: " + name + " is " + std::to_string(m->value) +
                           ": the ceilings are lower than what this run achieved (measured on a "
                           "busy host?); re-measure with --remeasure-ceilings on a quiet host";
  }
}

ClusterRecord MakeClusterRecord(const ParallelContext& ctx, const std::vector<RankTimings>& ranks) {
  ClusterRecord c;
  c.world_size = ctx.world_size;
  c.tp = ctx.tp;
  c.dp = ctx.dp;
  c.ep = ctx.ep;
  c.launcher = ctx.launcher;
  c.collective_timeout_s = ctx.collective_timeout_s;
  std::set<std::string> hosts;
  for (const RankTimings& r : ranks) {
    hosts.insert(r.host);
    RankRecord rr{r.rank, r.tp_rank, r.dp_rank, r.host, r.sequences};
    rr.prefill_s = Median(r.prefill_s);
    std::vector<double> steps, shares;
    for (const auto& rep : r.decode_step_s) steps.insert(steps.end(), rep.begin(), rep.end());
    const Distribution d = Summarize(steps);
    rr.decode_step_min_s = d.min;
    rr.decode_step_mean_s = d.mean;
    rr.decode_step_max_s = d.max;
    rr.comm_s = Median(r.comm_s);
    for (size_t i = 0; i < r.comm_s.size(); ++i) {
      if (r.backend_s[i] > 0) shares.push_back(r.comm_s[i] / r.backend_s[i]);
    }
    rr.comm_share = Median(shares);
    c.ranks.push_back(rr);
  }
  c.nodes = static_cast<int>(hosts.size());
  return c;
}

}  // namespace cb
