#include "harness/deployment/sim_serving.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "backends/sim/sim_device.h"
#include "harness/deployment/disaggregated_serving.h"
#include "harness/deployment/sim_offline.h"
#include "harness/run_events.h"
#include "harness/scenarios/serving_fields.h"
#include "harness/scenarios/serving_metrics.h"
#include "harness/scenarios/serving_runner.h"
#include "harness/scenarios/validity.h"
#include "harness/verify.h"

namespace cb {
namespace {

/// KV cache tokens one rank of `pool` holds after its weights and one step's activations.
int64_t KvPoolTokens(const WorkloadSpec& w, const SimTarget& t, const PoolLayout& pool) {
  const SimRankLoad load = SimRankLoadOf(w, t, pool);
  const RankMemory m = SimRankMemory(w, t, pool, SimRankLoad{0, load.context, load.step_tokens});
  const double per_token = RankKvBytesPerToken(w.model, pool, w.KvDType());
  return std::max<int64_t>(
      1, static_cast<int64_t>((0.9 * t.model.mem_bytes - m.weights - m.activations) / per_token));
}

ClusterRecord SimCluster(const SimTarget& t, const PoolLayout& shown) {
  ClusterRecord c;
  c.world_size = t.deployment.TotalDevices();
  c.tp = shown.tp;
  c.dp = shown.dp();
  c.ep = shown.ep;
  c.nodes = (c.world_size + std::max(1, t.topology.domain) - 1) / std::max(1, t.topology.domain);
  c.launcher = "sim";
  return c;
}

/// The groups a disaggregated pass simulates: the fewest whose traffic both pools share
/// evenly (prefill groups : decode groups as the pools' attention groups), each standing for
/// `replicas` such sets; a single stream is one stream, so every group is simulated.
struct GroupSample {
  int prefill = 1, decode = 1;
  int64_t replicas = 1;
};
GroupSample SampleGroups(const WorkloadSpec& w, const SimTarget& t) {
  const int dp_p = std::max(1, t.Prefill().dp()), dp_d = std::max(1, t.Decode().dp());
  const int g = w.scenario == "single-stream" ? 1 : std::gcd(dp_p, dp_d);
  return GroupSample{dp_p / g, dp_d / g, g};
}

DisaggregatedServingConfig DisaggregatedConfig(
    const WorkloadSpec& w, const SimTarget& t, const GroupSample& gs,
    const std::vector<std::unique_ptr<sim::StepModel>>& models) {
  const bool single = w.scenario == "single-stream";
  DisaggregatedServingConfig c;
  c.prefill.model = models.front().get();
  c.prefill.groups = gs.prefill;
  c.prefill.slots = single ? 1 : std::max<int64_t>(1, SeqsPerRank(w.batch, t.Prefill()));
  c.prefill.kv_tokens = KvPoolTokens(w, t, t.Prefill());
  c.prefill.prefill_chunk = t.prefill_chunk;
  c.decode.model = models.back().get();
  c.decode.groups = gs.decode;
  c.decode.slots = single ? 1 : std::max<int64_t>(1, SeqsPerRank(w.batch, t.Decode()));
  c.decode.kv_tokens = KvPoolTokens(w, t, t.Decode());
  const double per_token = RankKvBytesPerToken(w.model, t.Prefill(), w.KvDType());
  const bool same_domain = t.deployment.TotalDevices() <= t.topology.domain;
  const sim::Topology topology = t.topology;
  c.transfer_s = [topology, same_domain, per_token](int64_t prompt) {
    return sim::TransferSeconds(topology, same_domain, static_cast<double>(prompt) * per_token);
  };
  if (single) {
    c.concurrency = 1;
  } else if (w.serving.rate <= 0) {
    c.concurrency = std::max<int64_t>(1, (w.serving.concurrency + gs.replicas - 1) / gs.replicas);
  }
  c.mtp = t.deployment.mtp;
  c.mtp_acceptance = t.deployment.mtp_acceptance;
  c.seed = w.seed;
  return c;
}

void DescribePools(const WorkloadSpec& w, const SimTarget& t, const DisaggregatedServingResult& r,
                   const GroupSample& gs, RunRecord* rec) {
  DeploymentRecord dr = DescribeDeployment(w, t);
  for (size_t i = 0; i < t.deployment.pools.size(); ++i) {
    const bool prefill = t.deployment.pools[i].role == PoolRole::kPrefill;
    const ServingPoolStats& s = prefill ? r.prefill : r.decode;
    PoolRecord& p = dr.pools[i];
    p.busy_ratio = r.end_s > 0 ? s.busy_seconds / r.end_s : 0;
    p.communication_seconds = s.comm_seconds;
    p.exposed_communication_seconds = s.exposed_comm_seconds;
  }
  const double prompt = static_cast<double>(w.prompt_len);
  dr.kv_transfer_seconds =
      sim::TransferSeconds(t.topology, t.deployment.TotalDevices() <= t.topology.domain,
                           prompt * RankKvBytesPerToken(w.model, t.Prefill(), w.KvDType()));
  dr.notes.push_back("serving: " + std::to_string(gs.prefill) + " prefill and " +
                     std::to_string(gs.decode) +
                     " decode attention groups simulated, each pool stepping together; they "
                     "stand for " +
                     std::to_string(gs.replicas) + " such sets");
  rec->deployment = std::move(dr);
}

/// Serves a server or single-stream workload on a prefill pool and a decode pool
/// (SimulateDisaggregatedServing): the pass of a sample of groups at its share of the traffic,
/// then the record like RunServing's, every figure modelled.
Status RunDisaggregatedServing(const WorkloadSpec& w, const SimTarget& t, const RunnerOptions& opts,
                               RunRecord* rec) {
  rec->workload = w;
  rec->device = sim::PropsOf(t.model);
  rec->layers_run = static_cast<int>(w.model.num_layers);
  rec->extrapolated = false;
  rec->ceilings = opts.ceilings;
  rec->precision = PrecisionLabel(w.dtype, false);  // the simulator models W8A8 compute
  rec->verification.status = "not_run";
  rec->verification.message = "not run: a deployment of " +
                              std::to_string(t.deployment.TotalDevices()) +
                              " devices is simulated analytically; verify the stream with "
                              "--devices 1";
  std::vector<std::unique_ptr<sim::StepModel>> models;
  CB_RETURN_IF_ERROR(MakeStepModels(w, t, &models));
  const GroupSample gs = SampleGroups(w, t);
  DisaggregatedServingConfig cfg = DisaggregatedConfig(w, t, gs, models);
  WorkloadSpec share = w;  // the sampled groups' share of the traffic
  if (share.serving.rate > 0) share.serving.rate /= static_cast<double>(gs.replicas);
  std::vector<ServingRequest> reqs;
  CB_RETURN_IF_ERROR(MakeRequests(share, 0, MeasuredRequests(w), w.model.vocab_size, &reqs));
  const std::string what = "modelling " + std::to_string(reqs.size()) + " requests on " +
                           t.deployment.Describe() + " (" + std::to_string(gs.prefill) +
                           " prefill + " + std::to_string(gs.decode) + " decode groups simulated)";
  Progress(opts, what, 0);
  cfg.progress = [&](double done) { Progress(opts, what, done); };
  DisaggregatedServingResult r;
  CB_RETURN_IF_ERROR(SimulateDisaggregatedServing(cfg, &reqs, &r));

  ServingRecord s;
  CB_RETURN_IF_ERROR(
      DescribeServing(w, cfg.concurrency, cfg.decode.slots, cfg.prefill.prefill_chunk, &s));
  s.replicas = gs.replicas;
  s.kv_pages = cfg.decode.kv_tokens / std::max<int64_t>(1, s.kv_page_tokens);
  s.kv_pages_peak =
      (r.decode.kv_peak_tokens + s.kv_page_tokens - 1) / std::max<int64_t>(1, s.kv_page_tokens);
  s.kv_note =
      "disaggregated pools: max_batch and the KV pages are one decode rank's (its attention "
      "group's); the prefill pool's groups hold only the prompts they are prefilling";
  s.steps = r.decode.steps;
  s.max_step_prefill_tokens = r.prefill.max_step_prefill_tokens;
  s.mean_running_batch =
      r.decode.steps > 0 ? r.decode.sum_running / static_cast<double>(r.decode.steps) : 0;
  AddRequestSamples(reqs, r.outcomes, &s);
  rec->serving = std::move(s);
  AddServingMetrics(Provenance::kModelled, t.deployment.TotalDevices(), rec);
  ApplyValidity(RulesFor(w), ServingValidityInput(*rec), rec);
  if (t.model.tdp_w > 0) {
    rec->energy = PoolsEnergy(t, r.end_s, r.prefill.busy_seconds, r.decode.busy_seconds);
  }
  DescribePools(w, t, r, gs, rec);
  rec->cluster = SimCluster(t, t.Decode());
  rec->status = "ok";
  return Status::Ok();
}

}  // namespace

Status CheckSimServing(const WorkloadSpec& w, const SimTarget& t, const std::string& where) {
  if (t.deployment.mtp > 0 && !t.deployment.Disaggregated()) {
    return Status::InvalidInput(where + ": field 'mtp': the " + w.scenario +
                                " scenario models multi-token prediction on disaggregated pools "
                                "only (allowed here: 0; or give --disaggregate)");
  }
  return Status::Ok();
}

Status RunSimulatedServing(const WorkloadSpec& w, const SimTarget& t, RunnerOptions opts,
                           RunRecord* rec) {
  if (t.deployment.Disaggregated()) return RunDisaggregatedServing(w, t, opts, rec);
  const PoolLayout& pool = t.Decode();
  const int64_t groups = std::max(1, pool.dp());
  WorkloadSpec g = w;  // one attention group's share of the traffic
  g.batch = (w.batch + groups - 1) / groups;
  if (g.serving.rate > 0) g.serving.rate = w.serving.rate / static_cast<double>(groups);
  if (g.serving.concurrency > 0) {
    g.serving.concurrency = (w.serving.concurrency + groups - 1) / groups;
  }
  g.serving.max_prefill_tokens = t.prefill_chunk;
  const bool cluster = pool.devices > 1;
  if (cluster) g.verify = false;
  sim::SimDevice device(t.model, t.topology);
  device.SetLayout(pool, t.deployment.redundant_experts, t.deployment.overlap);
  opts.kv_pool_tokens = KvPoolTokens(w, t, pool);
  opts.energy = device.energy();  // the pool's devices over the pass, modelled
  // A single stream is one stream whatever the pool: its one group stands for no other.
  opts.serving_replicas = w.scenario == "single-stream" ? 1 : groups;
  opts.serving_devices = pool.devices;
  CB_RETURN_IF_ERROR(RunServing(g, device, opts, rec));
  rec->workload = w;  // the pool's workload, not the group's share
  if (cluster && rec->verification.status == "not_run" && w.verify) {
    rec->verification.message = "not run: a deployment of " + std::to_string(pool.devices) +
                                " devices is simulated analytically; verify the stream with "
                                "--devices 1";
  }
  if (rec->status == "ok") {
    rec->deployment = DescribeDeployment(w, t);
    if (cluster) rec->cluster = SimCluster(t, pool);
  }
  return Status::Ok();
}

}  // namespace cb
