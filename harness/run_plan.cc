#include "harness/run_plan.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include "backends/comm/mpi_world.h"
#include "backends/registry.h"
#include "backends/sim/sim_device.h"
#include "harness/cancel.h"
#include "harness/cost/run_energy_cost.h"
#include "harness/deployment/sim_offline.h"
#include "harness/deployment/sim_serving.h"
#include "harness/deployment/sim_target.h"
#include "harness/fault_injection.h"
#include "harness/micro/ceilings.h"
#include "harness/parallel.h"
#include "harness/runner.h"
#include "harness/scenarios/serving_metrics.h"
#include "harness/scenarios/serving_runner.h"
#include "results/atomic_file.h"
#include "results/record_json.h"

namespace cb {
namespace {

/// Everything the plan needs, opened once before anything runs.
struct Prepared {
  ParallelGroups groups;
  const ParallelContext* par = nullptr;
  EnergyCostPlanner energy_cost;
  std::map<std::string, std::unique_ptr<Device>> devices;  ///< measured backends by name
  std::map<size_t, SimTarget> sim;                         ///< simulated deployments by workload
  Ceilings ceilings;
};

bool Serving(const WorkloadSpec& w) {
  return w.scenario == "single-stream" || w.scenario == "server";
}

/// Simulated workloads in one process are resolved against the catalog as deployments.
Status PrepareSim(std::vector<WorkloadSpec>& plan, const World& world, Prepared* p) {
  for (size_t i = 0; i < plan.size(); ++i) {
    WorkloadSpec& w = plan[i];
    const std::string where = DescribeWorkload(w);
    if (!IsSimBackend(w.backend)) {
      if (w.deployment.Given()) {
        return Status::InvalidInput(
            where +
            ": field 'system'/'devices'/'tp'/'dp'/'ep'/'disaggregate': these lay out "
            "simulated devices (--backend sim); a " +
            w.backend + " run's layout is its MPI job's (mpirun -np N ... --tp/--dp/--ep)");
      }
      continue;
    }
    if (world.size() > 1) {
      if (w.deployment.Given()) {
        return Status::InvalidInput(where +
                                    ": under mpirun each rank drives one simulated device; "
                                    "give the layout with --tp/--dp/--ep of the job");
      }
      continue;
    }
    SimTarget t;
    CB_RETURN_IF_ERROR(ResolveSimTarget(w, p->energy_cost.catalog(), where, &t));
    if (w.cost.catalog_device.empty()) w.cost.catalog_device = t.cost_entry;
    if (Serving(w)) CB_RETURN_IF_ERROR(CheckSimServing(w, t, where));
    p->sim.emplace(i, std::move(t));
  }
  return Status::Ok();
}

/// Measured (and MPI-simulated) workloads: the stream shards, every backend opens, the
/// workload fits in the device's memory.
Status PrepareMeasured(const std::vector<WorkloadSpec>& plan, const PlanRunOptions& o,
                       Prepared* p) {
  const ParallelContext& par = *p->par;
  for (size_t i = 0; i < plan.size(); ++i) {
    if (p->sim.count(i)) continue;
    const WorkloadSpec& w = plan[i];
    OpStream probe;
    if (Status s = BuildDenseDecoderStream(w.model, ShardSpec{par.tp, 0}, w.LayersRun(), &probe);
        !s.ok()) {
      return Status(s.code(), DescribeWorkload(w) + ": " + s.message());
    }
    if (Serving(w) && (par.world_size > 1 || par.tp > 1 || par.dp > 1)) {
      return Status::InvalidInput(DescribeWorkload(w) + ": the " + w.scenario +
                                  " scenario runs on one device (no MPI ranks, --tp or --dp)");
    }
    if (w.batch < par.dp) {
      return Status::InvalidInput(DescribeWorkload(w) + ": batch " + std::to_string(w.batch) +
                                  " is smaller than --dp " + std::to_string(par.dp));
    }
    auto& dev = p->devices[w.backend];
    if (!dev) {
      CB_RETURN_IF_ERROR(OpenDevice(w.backend, &dev));
      if (!o.inject_fault.empty()) {
        CB_RETURN_IF_ERROR(WrapWithFault(o.inject_fault, par.world_rank, std::move(dev), &dev));
      }
    }
    CB_RETURN_IF_ERROR(p->energy_cost.Check(w, dev->Props()));
    const uint64_t available = dev->Props().mem_bytes;
    WorkloadSpec replica_w = w;  // a device holds its replica's sequences only
    replica_w.batch = LocalBatch(w.batch, par.dp, 0);
    const MemoryEstimate mem = EstimateMemory(replica_w);
    if (available > 0 && PerDevicePeak(mem, par.tp) > available) {
      return Status::Exhausted(
          DescribeWorkload(w) + ": needs about " +
          std::to_string(PerDevicePeak(mem, par.tp) >> 20) + " MiB per device (weights " +
          std::to_string(mem.weights >> 20) + ", KV cache " + std::to_string(mem.kv_cache >> 20) +
          ", verification " + std::to_string(mem.verification >> 20) + " MiB), " +
          std::to_string(available >> 20) +
          " MiB available; use --layers N, a smaller --batch, shorter --prompt-len/--gen-len, "
          "or --no-verify");
    }
  }
  return Status::Ok();
}

/// MFU and MBU ceilings of a run: the host's (rank 0 measures or loads them once), a GPU's
/// own (measured in-process once), or a simulated device's modelled peaks.
Ceilings CeilingsFor(const WorkloadSpec& w, const Prepared& p) {
  if (w.backend != "cuda") return p.ceilings;
  static Ceilings gpu;
  static const Status gpu_status = [&] {
    Status s = MeasureBackendCeilings(w.backend, gpu.matmul_flops_per_s, &gpu.mem_read_bytes_per_s,
                                      &gpu.source);
    if (!s.ok()) {
      std::fprintf(stderr,
                   "clusterbench run: warning: no GPU ceilings (%s); MFU and MBU are omitted\n",
                   s.message().c_str());
    }
    return s;
  }();
  return gpu_status.ok() ? gpu : Ceilings{};
}

Ceilings SimCeilings(const DeviceProps& props) {
  Ceilings c;
  for (int d = 0; d < kDTypeCount; ++d) c.matmul_flops_per_s[d] = props.peak_flops[d];
  c.mem_read_bytes_per_s = props.mem_bandwidth_bytes_per_s;
  c.source = std::string(sim::kModelVersion) + ": the simulated device's modelled peaks";
  return c;
}

/// Runs workload `i`; `rec` is filled whatever happens to the run. Non-OK ends the plan.
Status RunOne(const WorkloadSpec& w, size_t i, size_t n, const PlanRunOptions& o, Prepared& p,
              RunRecord* rec) {
  const ParallelContext& par = *p.par;
  RunnerOptions opts;
  opts.quiet = o.quiet || par.world_rank != 0;
  opts.parallel = &par;
  opts.progress_prefix = "[" + std::to_string(i + 1) + "/" + std::to_string(n) + "]";
  if (!opts.quiet) {
    std::fprintf(stderr, "%s %s%s\n", opts.progress_prefix.c_str(), DescribeWorkload(w).c_str(),
                 par.world_size > 1
                     ? (" on " + std::to_string(par.world_size) + " ranks (tp " +
                        std::to_string(par.tp) + " x dp " + std::to_string(par.dp) + ")")
                           .c_str()
                     : "");
  }
  StampRun(rec);
  if (auto it = p.sim.find(i); it != p.sim.end()) {
    const SimTarget& t = it->second;
    opts.parallel = nullptr;
    opts.ceilings = SimCeilings(sim::PropsOf(t.model));
    TagSweep(w, rec);
    Status s =
        Serving(w) ? RunSimulatedServing(w, t, opts, rec) : RunSimulatedOffline(w, t, opts, rec);
    if (!s.ok()) return s;
    if (!Serving(w)) ApplyOfflineValidity(w, rec);
    p.energy_cost.Finish(w, rec);
    FinishSimCost(t, rec);
    FixServingEnergyCost(rec);
    return Status::Ok();
  }
  Device& device = *p.devices[w.backend];
  const DeviceProps props = device.Props();
  opts.ceilings = props.simulated ? SimCeilings(props) : CeilingsFor(w, p);
  std::unique_ptr<EnergyMeter> meter;
  std::string energy_note;
  CB_RETURN_IF_ERROR(p.energy_cost.MakeMeter(w, device, &meter, &opts.energy, &energy_note));
  if (!energy_note.empty() && !o.quiet) {
    std::fprintf(stderr, "%s %s\n", opts.progress_prefix.c_str(), energy_note.c_str());
  }
  Status s;
  try {
    s = RunScenario(w, device, opts, rec);
  } catch (const std::exception& e) {
    rec->status = "failed";
    rec->status_message = std::string("exception: ") + e.what();
  }
  p.energy_cost.Finish(w, rec);
  FixServingEnergyCost(rec);
  return s;
}

/// A rank that stopped mid-run leaves the others inside collectives: end the whole job.
void EndJobAfterFailure(const WorkloadSpec& w, const std::string& out_dir,
                        const ParallelContext& par, RunRecord* rec) {
  World& world = World::Get();
  if (rec->status == "invalid") rec->status = "failed";
  world.NotifyFailure(rec->status_message);
  if (par.world_rank == 0) {
    rec->end_time = NowIso8601();
    const std::string path = out_dir + "/" + RunFileName(*rec);
    if (WriteFileAtomically(path, ToJson(*rec).dump(2) + "\n").ok()) {
      std::fprintf(stderr, "clusterbench run: the failed run is recorded in %s\n", path.c_str());
    }
    std::fprintf(stderr, "clusterbench run: %s failed: %s\n", DescribeWorkload(w).c_str(),
                 rec->status_message.c_str());
  }
  world.AbortJob(1);
}

}  // namespace

std::string DescribeWorkload(const WorkloadSpec& w) {
  std::string scenario;
  if (w.scenario != "offline") {
    scenario = " " + w.scenario;
    if (w.scenario == "server") {
      scenario += w.serving.rate > 0 ? " at " + std::to_string(w.serving.rate) + " req/s"
                                     : " " + std::to_string(w.serving.concurrency) + " in flight";
    }
  }
  std::string where;
  if (IsSimBackend(w.backend) && w.deployment.Given()) {
    const DeploymentSpec& d = w.deployment;
    where = d.system.empty() ? "" : " on " + d.system;
    if (d.devices > 0) where += " x" + std::to_string(d.devices);
    if (!d.disaggregate.empty()) where += " " + d.disaggregate;
    if (d.tp > 0) where += " tp" + std::to_string(d.tp);
    if (d.ep > 0) where += " ep" + std::to_string(d.ep);
  }
  std::string layers;
  if (LayerPlan plan; w.Extrapolated() && !IsSimBackend(w.backend) &&
                      PlanLayers(w.model, w.LayersRun(), &plan).ok()) {
    layers = " (" + std::to_string(w.LayersRun()) + "/" + std::to_string(w.model.num_layers) +
             " layers: " + plan.Describe() + ", extrapolated)";
  }
  return w.model.name + scenario + " " + w.backend + where + " " + std::string(DTypeName(w.dtype)) +
         " batch " + std::to_string(w.batch) + " prompt " + std::to_string(w.prompt_len) + " gen " +
         std::to_string(w.gen_len) + layers;
}

std::string RunFileName(const RunRecord& r) {
  std::string name = r.run_id + "_" + r.workload.model.name + "_" + r.workload.backend + "_" +
                     std::string(DTypeName(r.workload.dtype)) + "_b" +
                     std::to_string(r.workload.batch) +
                     (r.workload.scenario == "offline" ? "" : "_" + r.workload.scenario) + ".json";
  for (char& c : name) {
    if (c == '/' || c == ' ') c = '_';
  }
  return name;
}

Status RunPlan(std::vector<WorkloadSpec> plan, const PlanRunOptions& o, PlanRunResult* out) {
  World& world = World::Get();
  Prepared p;
  CB_RETURN_IF_ERROR(p.energy_cost.Init(o.catalog_dir, o.energy));
  CB_RETURN_IF_ERROR(PrepareSim(plan, world, &p));
  const int dp = o.dp > 0 ? o.dp : std::max(1, world.size() / std::max(1, o.tp));
  if (p.sim.size() < plan.size() || world.size() > 1) {
    CB_RETURN_IF_ERROR(p.groups.Init(o.tp, dp, world, o.collective_timeout_s, o.ep));
  } else {
    CB_RETURN_IF_ERROR(p.groups.Init(1, 1, world, o.collective_timeout_s, 1));
  }
  p.par = &p.groups.context();
  const ParallelContext& par = *p.par;
  CB_RETURN_IF_ERROR(PrepareMeasured(plan, o, &p));
  out->rank0 = par.world_rank == 0;
  // Only rank 0 computes the job's figures, so only it needs (and measures) the ceilings.
  const bool need_ceilings = std::any_of(p.devices.begin(), p.devices.end(), [](const auto& d) {
    return !d.second->Props().simulated;
  });
  if (Status s = out->rank0 && need_ceilings
                     ? LoadOrMeasureCeilings(o.results_dir, o.remeasure_ceilings, &p.ceilings)
                     : Status::Ok();
      !s.ok()) {
    std::fprintf(stderr, "clusterbench run: warning: no ceilings (%s); MFU and MBU are omitted\n",
                 s.message().c_str());
    p.ceilings = Ceilings{};
  }
  if (CancelRequested()) return Status::Cancelled("interrupted before the first run");
  if (par.world_size > 1) {
    // Rank 0 may have spent a while measuring ceilings: wait for it without the timeout.
    world.set_collective_timeout(0);
    CB_RETURN_IF_ERROR(par.world->Barrier());
    world.set_collective_timeout(o.collective_timeout_s);
  }
  out->out_dir = o.out_dir.empty() ? o.results_dir + "/runs" : o.out_dir;
  for (size_t i = 0; i < plan.size(); ++i) {
    const WorkloadSpec& w = plan[i];
    RunRecord rec;
    const Status s = RunOne(w, i, plan.size(), o, p, &rec);
    if (s.ok() && par.world_size > 1 && (rec.status == "failed" || rec.status == "invalid") &&
        rec.verification.status != "failed") {
      EndJobAfterFailure(w, out->out_dir, par, &rec);
    }
    if (s.code() == StatusCode::kCancelled) {
      std::fprintf(stderr,
                   "clusterbench run: interrupted; the run in progress was discarded, %zu "
                   "finished run(s) are in %s\n",
                   out->records.size(), out->out_dir.c_str());
      return s;
    }
    CB_RETURN_IF_ERROR(s);
    if (!out->rank0) continue;  // only rank 0 writes results
    rec.end_time = NowIso8601();
    const std::string path = out->out_dir + "/" + RunFileName(rec);
    if (Status ws = WriteFileAtomically(path, ToJson(rec).dump(2) + "\n"); !ws.ok()) {
      std::fprintf(stderr, "clusterbench run: %s\n", ws.message().c_str());
      out->any_bad = true;
    } else if (!o.quiet) {
      std::fprintf(stderr, "[%zu/%zu] %s: %s%s -> %s\n", i + 1, plan.size(), rec.status.c_str(),
                   rec.status_message.c_str(), rec.status_message.empty() ? "done" : "",
                   path.c_str());
    }
    out->any_bad |= rec.status == "failed" || rec.status == "invalid";
    out->records.push_back(std::move(rec));
  }
  return Status::Ok();
}

}  // namespace cb
