// The mapping table: which metric of a result file feeds which Prometheus family, and every
// family's help text. The README's "Prometheus metrics" table lists the same names, units and
// labels (tests/integration/prometheus_test.py checks that the two agree).
#include <map>
#include <string>

#include "results/prometheus/metrics_mapping.h"

namespace cb::prom {
namespace {

constexpr const char* kThroughput = "clusterbench_throughput_tokens_per_second";
constexpr const char* kLatency = "clusterbench_latency_seconds";
constexpr const char* kFlops = "clusterbench_achieved_flops_per_second";
constexpr const char* kBytes = "clusterbench_achieved_memory_bytes_per_second";
constexpr const char* kMfu = "clusterbench_mfu_ratio";
constexpr const char* kMbu = "clusterbench_mbu_ratio";
constexpr const char* kOverhead = "clusterbench_harness_overhead_ratio";
constexpr const char* kEnergy = "clusterbench_energy_joules";
constexpr const char* kEnergyPerToken = "clusterbench_energy_joules_per_token";
constexpr const char* kPower = "clusterbench_average_power_watts";
constexpr const char* kTokensPerJoule = "clusterbench_tokens_per_joule";
constexpr const char* kCost = "clusterbench_cost_usd_per_million_tokens";
constexpr const char* kOutput = "clusterbench_output_tokens_per_second";
constexpr const char* kOutputPerDevice = "clusterbench_output_tokens_per_second_per_device";
constexpr const char* kPrefillPerDevice = "clusterbench_prefill_tokens_per_second_per_device";
constexpr const char* kDecodePerDevice = "clusterbench_decode_tokens_per_second_per_device";
constexpr const char* kRequests = "clusterbench_requests_per_second";
constexpr const char* kGoodput = "clusterbench_goodput_requests_per_second";
constexpr const char* kSloAttainment = "clusterbench_slo_attainment_ratio";
constexpr const char* kInteractivity = "clusterbench_interactivity_tokens_per_second_per_user";
constexpr const char* kCommShare = "clusterbench_communication_share_ratio";
constexpr const char* kMoeImbalance = "clusterbench_moe_load_imbalance_ratio";
constexpr const char* kMoeRankImbalance = "clusterbench_moe_rank_load_imbalance_ratio";

const std::map<std::string, std::string>& HelpTexts() {
  static const std::map<std::string, std::string> help = {
      {kThroughput,
       "Tokens per second of the run's median repetition (serving runs: over the measured "
       "pass), the whole cluster or pool; phase=prefill counts prompt (input) tokens, "
       "phase=decode generated (output) tokens."},
      {kLatency,
       "Latency of the run in seconds: kind=ttft time to first token, kind=tpot time per "
       "output token, kind=e2e end to end, kind=itl inter-token latency of endpoint runs (gaps "
       "between streamed chunks) (offline: per repetition and decode step; serving: "
       "per request, from its scheduled arrival). Mean is _sum / _count; quantile 0 and 1 are "
       "min and max."},
      {kFlops, "Achieved FLOP/s of the prefill step (FLOPs of a step / median step time)."},
      {kBytes, "Achieved memory traffic in bytes/s of the decode steps."},
      {kMfu, "Model FLOPs utilisation: achieved FLOP/s / the device's measured matmul peak."},
      {kMbu, "Memory bandwidth utilisation: achieved bytes/s / measured memory read bandwidth."},
      {kOverhead, "Share of a repetition's measured window spent outside backend calls."},
      {kEnergy, "Energy the devices used in the measured window, in joules."},
      {kEnergyPerToken, "Energy per token (prompt and generated), in joules."},
      {kPower, "Average power of the devices over the measured window, in watts."},
      {kTokensPerJoule, "Tokens per joule (the result file's tokens_per_kwh / 3.6e6)."},
      {kCost,
       "Cost in USD per million tokens: kind=input (prefill), output (decode) or blended, "
       "from the cost model whose inputs the result file records."},
      {kOutput,
       "Serving runs: generated (output) tokens per second over the measured pass (first "
       "scheduled arrival to last completion), the whole pool."},
      {kOutputPerDevice,
       "Serving runs: generated tokens per second per device, the interactivity frontier's "
       "y axis."},
      {kPrefillPerDevice,
       "Runs on several devices (MPI ranks or a simulated pool): prompt tokens per second "
       "divided by the devices of the prefill pool."},
      {kDecodePerDevice,
       "Runs on several devices (MPI ranks or a simulated pool): generated tokens per second "
       "divided by the devices of the decode pool."},
      {kRequests,
       "Serving runs: completed requests per second over the measured pass (the achieved "
       "rate)."},
      {kGoodput,
       "Serving runs with an objective (--slo-ttft, --slo-tpot): requests per second that met "
       "every objective."},
      {kSloAttainment,
       "Serving runs with an objective: the share of requests that met every objective (0-1)."},
      {kInteractivity,
       "Serving runs: tokens per second each user sees, 1 / median TPOT (the interactivity "
       "frontier's x axis)."},
      {kCommShare,
       "Runs on several devices: share of the backend's time spent in collectives (MPI) or of "
       "the busy time spent communicating (simulated), median over ranks and repetitions."},
      {kMoeImbalance,
       "MoE models: max / mean tokens per expert in a step (1 = balanced), median over steps."},
      {kMoeRankImbalance,
       "MoE models under expert parallelism: max / mean tokens per expert-parallel rank in a "
       "step, median over steps."},
  };
  return help;
}

}  // namespace

const std::vector<KnownMetric>& KnownMetrics() {
  using S = MetricScope;
  static const std::vector<KnownMetric> table = {
      {"prefill_tokens_per_second", kThroughput, "phase", "prefill", 1},
      {"decode_tokens_per_second", kThroughput, "phase", "decode", 1},
      {"ttft_seconds", kLatency, "kind", "ttft", 1},
      {"tpot_seconds", kLatency, "kind", "tpot", 1},
      {"e2e_latency_seconds", kLatency, "kind", "e2e", 1},
      {"itl_seconds", kLatency, "kind", "itl", 1},
      {"prefill_flops_per_second", kFlops, "phase", "prefill", 1},
      {"decode_bytes_per_second", kBytes, "phase", "decode", 1},
      {"mfu_prefill_ratio", kMfu, "phase", "prefill", 1},
      {"mfu_decode_ratio", kMfu, "phase", "decode", 1},
      {"mbu_prefill_ratio", kMbu, "phase", "prefill", 1},
      {"mbu_decode_ratio", kMbu, "phase", "decode", 1},
      {"harness_overhead_ratio", kOverhead, "", "", 1},
      {"energy_joules", kEnergy, "", "", 1},
      {"energy_joules_per_token", kEnergyPerToken, "", "", 1},
      {"average_power_watts", kPower, "", "", 1},
      {"tokens_per_kwh", kTokensPerJoule, "", "", 1.0 / 3.6e6},
      {"cost_usd_per_million_input_tokens", kCost, "kind", "input", 1},
      {"cost_usd_per_million_output_tokens", kCost, "kind", "output", 1},
      {"cost_usd_per_million_tokens", kCost, "kind", "blended", 1},
      {"output_tokens_per_second", kOutput, "", "", 1, S::kServing},
      {"output_tokens_per_second_per_device", kOutputPerDevice, "", "", 1, S::kServing},
      {"requests_per_second", kRequests, "", "", 1, S::kServing},
      {"goodput_requests_per_second", kGoodput, "", "", 1, S::kServing},
      {"slo_attainment_ratio", kSloAttainment, "", "", 1, S::kServing},
      {"interactivity_tokens_per_second_per_user", kInteractivity, "", "", 1, S::kServing},
      {"prefill_tokens_per_second_per_device", kPrefillPerDevice, "", "", 1, S::kMultiDevice},
      {"decode_tokens_per_second_per_device", kDecodePerDevice, "", "", 1, S::kMultiDevice},
      {"communication_share_ratio", kCommShare, "", "", 1, S::kMultiDevice},
      {"moe_load_imbalance_ratio", kMoeImbalance, "", "", 1, S::kMoe},
      {"moe_rank_load_imbalance_ratio", kMoeRankImbalance, "", "", 1, S::kMoe},
  };
  return table;
}

const std::string& FamilyHelp(const std::string& family) {
  static const std::string none;
  const auto it = HelpTexts().find(family);
  return it == HelpTexts().end() ? none : it->second;
}

bool ScopeApplies(MetricScope scope, const RunRecord& r) {
  const WorkloadSpec& w = r.workload;
  switch (scope) {
    case MetricScope::kEveryRun:
      return true;
    case MetricScope::kServing:
      return w.scenario == "server" || w.scenario == "single-stream";
    case MetricScope::kMultiDevice:
      return (r.cluster && r.cluster->world_size > 1) || r.deployment.has_value();
    case MetricScope::kMoe:
      return w.model.moe.enabled();
  }
  return false;
}

}  // namespace cb::prom
