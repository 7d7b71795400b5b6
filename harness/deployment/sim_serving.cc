#include "harness/deployment/sim_serving.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "backends/sim/sim_device.h"
#include "harness/deployment/pool_serving.h"
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

constexpr int kMaxMixedGroups = 8;

PoolServingConfig PoolConfig(const WorkloadSpec& w, const SimTarget& t,
                             const ServingGroupSample& gs,
                             const std::vector<std::unique_ptr<sim::StepModel>>& models) {
  const bool single = w.scenario == "single-stream";
  PoolServingConfig c;
  for (size_t i = 0; i < t.deployment.pools.size(); ++i) {
    const PoolLayout& p = t.deployment.pools[i];
    ServingPool sp;
    sp.role = p.role;
    sp.model = models[i].get();
    sp.groups = gs.groups[i];
    sp.slots = single ? 1 : std::max<int64_t>(1, SeqsPerRank(w.batch, p));
    sp.kv_tokens = KvPoolTokens(w, t, p);
    sp.prefill_chunk = t.prefill_chunk;
    c.pools.push_back(sp);
  }
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

void DescribePools(const WorkloadSpec& w, const SimTarget& t, const PoolServingResult& r,
                   const ServingGroupSample& gs, RunRecord* rec) {
  DeploymentRecord dr = DescribeDeployment(w, t);
  std::string sampled;
  for (size_t i = 0; i < t.deployment.pools.size(); ++i) {
    const ServingPoolStats& s = r.pools[i];
    PoolRecord& p = dr.pools[i];
    p.busy_ratio = r.end_s > 0 ? s.busy_seconds / r.end_s : 0;
    p.communication_seconds = s.comm_seconds;
    p.exposed_communication_seconds = s.exposed_comm_seconds;
    sampled += (sampled.empty() ? "" : " and ") + std::to_string(gs.groups[i]) + " " +
               PoolRoleName(t.deployment.pools[i].role);
  }
  if (t.deployment.Disaggregated()) {
    dr.kv_transfer_seconds = sim::TransferSeconds(
        t.topology, t.deployment.TotalDevices() <= t.topology.domain,
        static_cast<double>(w.prompt_len) * RankKvBytesPerToken(w.model, t.Prefill(), w.KvDType()));
  }
  dr.notes.push_back("serving: " + sampled +
                     " attention groups simulated, each pool's stepping together; they stand "
                     "for " +
                     std::to_string(gs.replicas) + " such sets");
  rec->deployment = std::move(dr);
}

/// The serving section and figures of a pool pass (the decode or mixed pool's slots and KV).
Status AddPoolServingRecord(const WorkloadSpec& w, const SimTarget& t, const PoolServingConfig& cfg,
                            const PoolServingResult& r, const ServingGroupSample& gs,
                            const std::vector<ServingRequest>& reqs, RunRecord* rec) {
  const ServingPool& decode = cfg.pools.back();
  const ServingPoolStats& ds = r.pools.back();
  ServingRecord s;
  CB_RETURN_IF_ERROR(
      DescribeServing(w, cfg.concurrency, decode.slots, cfg.pools.front().prefill_chunk, &s));
  s.replicas = gs.replicas;
  const int64_t page = std::max<int64_t>(1, s.kv_page_tokens);
  s.kv_pages = decode.kv_tokens / page;
  s.kv_pages_peak = (ds.kv_peak_tokens + page - 1) / page;
  s.kv_note = t.deployment.Disaggregated()
                  ? "simulated pools: max_batch and the KV pages are one decode rank's (its "
                    "attention group's); the prefill pool's groups hold only the prompts they "
                    "are prefilling"
                  : "simulated pool: max_batch and the KV pages are one attention group's; KV "
                    "for a request's whole context is taken when it is admitted";
  s.steps = ds.steps;
  s.max_step_prefill_tokens = r.pools.front().max_step_prefill_tokens;
  s.mean_running_batch = ds.steps > 0 ? ds.sum_running / static_cast<double>(ds.steps) : 0;
  AddRequestSamples(reqs, r.outcomes, &s);
  rec->serving = std::move(s);
  AddServingMetrics(Provenance::kModelled, t.deployment.TotalDevices(), rec);
  ApplyValidity(RulesFor(w), ServingValidityInput(*rec), rec);
  return Status::Ok();
}

/// Serves a server or single-stream workload on simulated pools (SimulatePoolServing): the
/// pass of a sample of groups at its share of the traffic, then the record like RunServing's,
/// every figure modelled.
Status RunPoolServing(const WorkloadSpec& w, const SimTarget& t, const RunnerOptions& opts,
                      RunRecord* rec) {
  rec->workload = w;
  rec->device = sim::PropsOf(t.model);
  rec->layers_run = static_cast<int>(w.model.num_layers);
  rec->extrapolated = false;
  rec->ceilings = opts.ceilings;
  rec->precision = PrecisionLabel(w.dtype, false);  // the simulator models W8A8 compute
  rec->verification.status = "not_run";
  const int devices = t.deployment.TotalDevices();
  const std::string why = devices > 1 ? "a deployment of " + std::to_string(devices) + " devices"
                                      : "multi-token prediction";
  rec->verification.message =
      w.verify ? "not run: " + why +
                     " is served analytically (no op runs); verify the stream on one device "
                     "without --mtp"
               : "disabled with --no-verify";
  std::vector<std::unique_ptr<sim::StepModel>> models;
  CB_RETURN_IF_ERROR(MakeStepModels(w, t, &models));
  const ServingGroupSample gs = SampleServingGroups(w, t);
  PoolServingConfig cfg = PoolConfig(w, t, gs, models);
  WorkloadSpec share = w;  // the sampled groups' share of the traffic
  if (share.serving.rate > 0) share.serving.rate /= static_cast<double>(gs.replicas);
  std::vector<ServingRequest> reqs;
  CB_RETURN_IF_ERROR(MakeRequests(share, 0, MeasuredRequests(w), w.model.vocab_size, &reqs));
  const std::string what =
      "modelling " + std::to_string(reqs.size()) + " requests on " + t.deployment.Describe();
  Progress(opts, what, 0);
  cfg.progress = [&](double done) { Progress(opts, what, done); };
  PoolServingResult r;
  CB_RETURN_IF_ERROR(SimulatePoolServing(cfg, &reqs, &r));
  CB_RETURN_IF_ERROR(AddPoolServingRecord(w, t, cfg, r, gs, reqs, rec));
  if (t.model.tdp_w > 0) {
    rec->energy = PoolsEnergy(t, r.end_s, r.pools.front().busy_seconds,
                              t.deployment.Disaggregated() ? r.pools.back().busy_seconds : 0);
  }
  DescribePools(w, t, r, gs, rec);
  if (t.deployment.TotalDevices() > 1) rec->cluster = SimCluster(t, t.Decode());
  rec->status = "ok";
  return Status::Ok();
}

}  // namespace

ServingGroupSample SampleServingGroups(const WorkloadSpec& w, const SimTarget& t) {
  const int dp_p = std::max(1, t.Prefill().dp()), dp_d = std::max(1, t.Decode().dp());
  if (w.scenario == "single-stream") {
    return ServingGroupSample{std::vector<int>(t.deployment.pools.size(), 1), 1};
  }
  if (t.deployment.Disaggregated()) {
    const int g = std::gcd(dp_p, dp_d);
    return ServingGroupSample{{dp_p / g, dp_d / g}, g};
  }
  int k = std::min(dp_d, kMaxMixedGroups);
  while (dp_d % k != 0) --k;
  return ServingGroupSample{{k}, dp_d / k};
}

Status RunSimulatedServing(const WorkloadSpec& w, const SimTarget& t, RunnerOptions opts,
                           RunRecord* rec) {
  const PoolLayout& pool = t.Decode();
  if (t.deployment.TotalDevices() > 1 || t.deployment.mtp > 0) {
    return RunPoolServing(w, t, opts, rec);
  }
  // One device: the serving runner drives the simulated device like a measured one, and
  // verifies small models through the reference.
  WorkloadSpec g = w;
  g.serving.max_prefill_tokens = t.prefill_chunk;
  sim::SimDevice device(t.model, t.topology);
  device.SetLayout(pool, t.deployment.redundant_experts, t.deployment.overlap);
  opts.kv_pool_tokens = KvPoolTokens(w, t, pool);
  opts.energy = device.energy();  // modelled over the pass
  opts.serving_replicas = 1;
  opts.serving_devices = 1;
  CB_RETURN_IF_ERROR(RunServing(g, device, opts, rec));
  rec->workload = w;
  if (rec->status == "ok") rec->deployment = DescribeDeployment(w, t);
  return Status::Ok();
}

}  // namespace cb
