#include "harness/deployment/sim_serving.h"

#include <algorithm>
#include <cmath>

#include "backends/sim/sim_device.h"
#include "harness/deployment/sim_offline.h"
#include "harness/scenarios/serving_runner.h"

namespace cb {

Status CheckSimServing(const WorkloadSpec& w, const SimTarget& t, const std::string& where) {
  if (t.deployment.Disaggregated()) {
    return Status::InvalidInput(where + ": field 'disaggregate': the " + w.scenario +
                                " scenario models one mixed pool; disaggregated pools are "
                                "modelled in the offline scenario and compare-hardware");
  }
  if (t.deployment.mtp > 0) {
    return Status::InvalidInput(where + ": field 'mtp': the " + w.scenario +
                                " scenario models no multi-token prediction (allowed: 0); it is "
                                "modelled in the offline scenario and compare-hardware");
  }
  return Status::Ok();
}

Status RunSimulatedServing(const WorkloadSpec& w, const SimTarget& t, RunnerOptions opts,
                           RunRecord* rec) {
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
  const SimRankLoad load = SimRankLoadOf(w, t, pool);
  const RankMemory m = SimRankMemory(w, t, pool, SimRankLoad{0, load.context, load.step_tokens});
  const double per_token = RankKvBytesPerToken(w.model, pool, w.KvDType());
  opts.kv_pool_tokens = std::max<int64_t>(
      1, static_cast<int64_t>((0.9 * t.model.mem_bytes - m.weights - m.activations) / per_token));
  opts.energy = device.energy();  // the pool's devices over the pass, modelled
  opts.serving_replicas = groups;
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
    ClusterRecord c;
    c.world_size = pool.devices;
    c.tp = pool.tp;
    c.dp = pool.dp();
    c.ep = pool.ep;
    c.nodes = (pool.devices + std::max(1, t.topology.domain) - 1) / std::max(1, t.topology.domain);
    c.launcher = "sim";
    if (cluster) rec->cluster = std::move(c);
  }
  return Status::Ok();
}

}  // namespace cb
