#include "harness/run_plan.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>

#include "backends/comm/mpi_world.h"
#include "backends/endpoint/endpoint_url.h"
#include "backends/registry.h"
#include "backends/sim/sim_device.h"
#include "harness/cancel.h"
#include "harness/core/fmt.h"
#include "harness/cost/run_energy_cost.h"
#include "harness/deployment/sim_offline.h"
#include "harness/deployment/sim_serving.h"
#include "harness/deployment/sim_target.h"
#include "harness/endpoint/endpoint_runner.h"
#include "harness/fault_injection.h"
#include "harness/micro/ceiling_probe.h"
#include "harness/micro/ceilings.h"
#include "harness/parallel.h"
#include "harness/progress.h"
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
  std::map<size_t, EndpointTarget> endpoints;              ///< OpenAI-compatible servers
  Ceilings ceilings;
  /// Samples the host's ceilings beside each measured window (harness/ceiling_check.h), on
  /// every rank; a test fault replaces it with a fake.
  std::unique_ptr<CeilingProbe> host_probe;
};

bool Serving(const WorkloadSpec& w) {
  return w.scenario == "single-stream" || w.scenario == "server";
}

/// Endpoint workloads: the URL, the key's variable, the dataset (read and checked) and the
/// declared hardware, all before anything runs; nothing is sent to the server yet.
Status PrepareEndpoints(std::vector<WorkloadSpec>& plan, const World& world, Prepared* p) {
  std::map<std::string, std::shared_ptr<const Dataset>> datasets;
  for (size_t i = 0; i < plan.size(); ++i) {
    WorkloadSpec& w = plan[i];
    if (!IsEndpointBackend(w.backend)) continue;
    const std::string where = DescribeWorkload(w);
    if (world.size() > 1) {
      return Status::InvalidInput(where +
                                  ": an endpoint is driven by one client process; run "
                                  "it without mpirun");
    }
    EndpointTarget t;
    CB_RETURN_IF_ERROR(ResolveEndpointTarget(w, p->energy_cost.catalog(), where, &datasets, &t));
    std::unique_ptr<EnergyMeter> probe_meter;
    EnergyMeter* unused = nullptr;
    std::string note;
    CB_RETURN_IF_ERROR(p->energy_cost.MakeEndpointMeter(w, t.device_entry, t.devices, &probe_meter,
                                                        &unused, &note));
    w.cost.catalog_device = t.cost_entry;
    p->endpoints.emplace(i, std::move(t));
  }
  return Status::Ok();
}

/// Simulated workloads in one process are resolved against the catalog as deployments.
Status PrepareSim(std::vector<WorkloadSpec>& plan, const World& world, Prepared* p) {
  for (size_t i = 0; i < plan.size(); ++i) {
    WorkloadSpec& w = plan[i];
    const std::string where = DescribeWorkload(w);
    if (p->endpoints.count(i)) continue;
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
    if (p->sim.count(i) || p->endpoints.count(i)) continue;
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

/// An endpoint workload: its meter (the server's exporter or the power model), the run, then
/// energy and cost as for a local serving run, priced by the declared devices.
Status RunOneEndpoint(const WorkloadSpec& w, const EndpointTarget& t, RunnerOptions opts,
                      Prepared& p, RunRecord* rec) {
  opts.parallel = nullptr;
  TagSweep(w, rec);
  std::unique_ptr<EnergyMeter> meter;
  std::string note;
  CB_RETURN_IF_ERROR(
      p.energy_cost.MakeEndpointMeter(w, t.device_entry, t.devices, &meter, &opts.energy, &note));
  if (!note.empty() && !opts.quiet) {
    std::fprintf(stderr, "%s %s\n", opts.progress_prefix.c_str(), note.c_str());
  }
  CB_RETURN_IF_ERROR(RunEndpoint(w, t, opts, rec));
  p.energy_cost.Finish(w, rec);
  FinishEndpointCost(t, rec);
  FixServingEnergyCost(rec);
  return Status::Ok();
}

/// Runs workload `i`; `rec` is filled whatever happens to the run. Non-OK ends the plan.
Status RunOne(const WorkloadSpec& w, size_t i, size_t n, const PlanRunOptions& o, Prepared& p,
              RunRecord* rec) {
  const ParallelContext& par = *p.par;
  RunnerOptions opts;
  opts.quiet = o.quiet || par.world_rank != 0;
  opts.parallel = &par;
  opts.progress_prefix = "[" + std::to_string(i + 1) + "/" + std::to_string(n) + "]";
  PlanProgress::Get().BeginRun(i);
  if (!opts.quiet) {
    PlanProgress::Get().Step(
        opts.progress_prefix,
        DescribeWorkload(w) + (par.world_size > 1 ? " on " + std::to_string(par.world_size) +
                                                        " ranks (tp " + std::to_string(par.tp) +
                                                        " x dp " + std::to_string(par.dp) + ")"
                                                  : ""));
  }
  StampRun(rec);
  if (auto it = p.endpoints.find(i); it != p.endpoints.end()) {
    return RunOneEndpoint(w, it->second, opts, p, rec);
  }
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
  if (!props.simulated && w.backend != "cuda") opts.ceiling_probe = p.host_probe.get();
  std::unique_ptr<EnergyMeter> meter;
  std::string energy_note;
  CB_RETURN_IF_ERROR(p.energy_cost.MakeMeter(w, device, &meter, &opts.energy, &energy_note));
  if (!energy_note.empty() && !o.quiet) {
    PlanProgress::Get().Line(opts.progress_prefix + " " + energy_note);
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

/// A workload's cost for the progress line's ETA: parameters run x (tokens processed + a fixed
/// share for loading weights and verifying, about 2,600 tokens' worth on the cpu backend);
/// a simulated deployment costs next to nothing.
double EstimatedWork(const WorkloadSpec& w, bool simulated) {
  if (simulated) return 1e-3;
  const double layers = std::max<int64_t>(1, w.model.num_layers);
  const double params = static_cast<double>(w.model.ActiveParams()) * w.LayersRun() / layers;
  const bool serving = w.scenario == "server" || w.scenario == "single-stream";
  const double sequences = serving ? std::max<int64_t>(w.serving.requests, w.batch)
                                   : static_cast<double>((w.warmup + w.repetitions) * w.batch);
  return std::max(1.0, params) * (2600 + sequences * static_cast<double>(w.prompt_len + w.gen_len));
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
      scenario += w.serving.rate > 0 ? " at " + Fmt(w.serving.rate, "%g") + " req/s"
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
  // An endpoint's URL is in the record, not the name.
  const std::string backend =
      IsEndpointBackend(r.workload.backend) ? "endpoint" : r.workload.backend;
  std::string name = r.run_id + "_" + r.workload.model.name + "_" + backend + "_" +
                     std::string(DTypeName(r.workload.dtype)) + "_b" +
                     std::to_string(r.workload.batch) +
                     (r.workload.scenario == "offline" ? "" : "_" + r.workload.scenario) + ".json";
  for (char& c : name) {
    const bool safe = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
    if (!safe) c = '_';
  }
  return name;
}

Status RunPlan(std::vector<WorkloadSpec> plan, const PlanRunOptions& o, PlanRunResult* out) {
  World& world = World::Get();
  Prepared p;
  CB_RETURN_IF_ERROR(p.energy_cost.Init(o.catalog_dir, o.energy));
  CB_RETURN_IF_ERROR(PrepareEndpoints(plan, world, &p));
  CB_RETURN_IF_ERROR(PrepareSim(plan, world, &p));
  const int dp = o.dp > 0 ? o.dp : std::max(1, world.size() / std::max(1, o.tp));
  if (p.sim.size() + p.endpoints.size() < plan.size() || world.size() > 1) {
    CB_RETURN_IF_ERROR(p.groups.Init(o.tp, dp, world, o.collective_timeout_s, o.ep));
  } else {
    CB_RETURN_IF_ERROR(p.groups.Init(1, 1, world, o.collective_timeout_s, 1));
  }
  p.par = &p.groups.context();
  const ParallelContext& par = *p.par;
  CB_RETURN_IF_ERROR(PrepareMeasured(plan, o, &p));
  out->rank0 = par.world_rank == 0;
  out->out_dir = o.out_dir.empty() ? o.results_dir + "/runs" : o.out_dir;
  if (out->rank0) {
    // Where results go is checked before anything is measured, not after.
    CB_RETURN_IF_ERROR(CheckWritableDir(o.results_dir, "command line: --results-dir"));
    CB_RETURN_IF_ERROR(CheckWritableDir(out->out_dir, "command line: --out"));
    if (const int stale = RemoveStaleTemporaries(out->out_dir); stale > 0 && !o.quiet) {
      std::fprintf(stderr,
                   "clusterbench run: removed %d temporary file(s) of interrupted runs in %s\n",
                   stale, out->out_dir.c_str());
    }
  }
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
  p.host_probe = MakeFaultyCeilingProbe(o.inject_fault);
  if (!p.host_probe) p.host_probe = std::make_unique<HostCeilingProbe>();
  PlanProgress& progress = PlanProgress::Get();
  std::vector<double> work;
  for (size_t i = 0; i < plan.size(); ++i) work.push_back(EstimatedWork(plan[i], p.sim.count(i)));
  progress.Start(std::move(work), o.quiet || !out->rank0);
  for (size_t i = 0; i < plan.size(); ++i) {
    const WorkloadSpec& w = plan[i];
    RunRecord rec;
    const Status s = RunOne(w, i, plan.size(), o, p, &rec);
    if (s.ok() && par.world_size > 1 && (rec.status == "failed" || rec.status == "invalid") &&
        rec.verification.status != "failed") {
      EndJobAfterFailure(w, out->out_dir, par, &rec);
    }
    if (s.code() == StatusCode::kCancelled) {
      progress.Finish();
      if (out->rank0) {
        std::fprintf(stderr,
                     "clusterbench run: interrupted (%s); the run in progress was discarded, %zu "
                     "finished run(s) are in %s\n",
                     s.message().c_str(), out->records.size(), out->out_dir.c_str());
      }
      return s;
    }
    if (!s.ok()) progress.Finish();
    CB_RETURN_IF_ERROR(s);
    if (!out->rank0) continue;  // only rank 0 writes results
    if (!o.cluster_name.empty() && !rec.device.simulated) rec.cluster_name = o.cluster_name;
    rec.end_time = NowIso8601();
    const std::string path = out->out_dir + "/" + RunFileName(rec);
    if (Status ws = WriteFileAtomically(path, ToJson(rec).dump(2) + "\n"); !ws.ok()) {
      progress.Line("clusterbench run: " + ws.message());
      out->any_bad = true;
    } else if (!o.quiet) {
      std::string what = rec.status_message.empty() ? "done" : rec.status_message;
      if (rec.status == "ok" && !rec.Publishable()) {  // kept, but shortened or unstable
        what = "not published as valid";
        for (const std::string& r : rec.validity->reasons) {
          if (r.rfind("note:", 0) != 0) what += "; " + r;
        }
      }
      progress.Line("[" + std::to_string(i + 1) + "/" + std::to_string(plan.size()) + "] " +
                    DescribeWorkload(w) + ": " + rec.status + ": " + what + " -> " + path);
    }
    out->any_bad |= rec.status == "failed" || rec.status == "invalid";
    out->records.push_back(std::move(rec));
  }
  progress.Finish();
  return Status::Ok();
}

}  // namespace cb
