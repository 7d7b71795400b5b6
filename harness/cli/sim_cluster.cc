#include "harness/cli/sim_cluster.h"

#include <algorithm>

#include "harness/cost/energy_cost.h"
#include "harness/runner.h"

namespace cb {

int ChooseTensorParallel(const WorkloadSpec& w, double mem_bytes, int limit,
                         const std::function<int64_t(int)>& replica_batch) {
  const ModelSpec& m = w.model;
  for (int tp = 1; tp <= std::max(1, limit); tp *= 2) {
    if (m.num_heads % tp || m.num_kv_heads % tp || m.ffn_size % tp || m.vocab_size % tp) break;
    WorkloadSpec probe = w;
    probe.verify = false;
    probe.batch = std::max<int64_t>(1, replica_batch(tp));
    if (mem_bytes <= 0 || PerDevicePeak(EstimateMemory(probe), tp) <= 0.9 * mem_bytes) return tp;
  }
  return 0;
}

Status SimCluster::Prepare(const SimClusterOptions& o, const std::string& catalog_dir,
                           std::vector<WorkloadSpec>* plan) {
  DeviceCatalog catalog;
  CB_RETURN_IF_ERROR(
      DeviceCatalog::Load(catalog_dir.empty() ? DefaultCatalogDir() : catalog_dir, &catalog));
  const CatalogEntry* system = nullptr;
  if (!o.system.empty()) {
    system = sim::FindEntry(catalog, o.system);
    if (system == nullptr || system->type != "system") {
      std::string systems;
      for (const CatalogEntry& e : catalog.entries()) {
        if (e.type == "system") systems += (systems.empty() ? "" : ", ") + e.id;
      }
      return Status::InvalidInput("command line: --system: unknown system '" + o.system +
                                  "'; known: " + systems);
    }
  }
  int devices = o.devices > 0 ? o.devices : system ? static_cast<int>(system->device_count) : 1;
  if (o.devices == 0 && !system && o.single_process && (o.tp > 1 || o.dp > 1)) {
    // `--backend sim --tp 8` in one process: that many virtual devices, if every run is sim.
    const bool all_sim = std::all_of(plan->begin(), plan->end(), [](const WorkloadSpec& w) {
      return w.backend == "sim" || w.backend.starts_with("sim:");
    });
    if (all_sim) devices = std::max(1, o.tp) * std::max(1, o.dp);
  }
  bool any_sim = false;
  for (WorkloadSpec& w : *plan) {
    if (system) w.backend = "sim:" + system->device;
    if (w.backend != "sim" && !w.backend.starts_with("sim:")) {
      if (system || o.devices > 1) {
        return Status::InvalidInput(
            "command line: --system and --devices are for --backend sim; "
            "workload " +
            w.model.name + " uses backend " + w.backend);
      }
      verify_notes_.emplace_back();
      continue;
    }
    any_sim = true;
    const std::string dev_name = w.backend == "sim" ? "huawei-ascend-910c" : w.backend.substr(4);
    const CatalogEntry* dev = sim::FindEntry(catalog, dev_name);
    if (dev == nullptr || dev->type != "device") {
      return Status::InvalidInput("command line: --backend " + w.backend +
                                  ": unknown catalog device '" + dev_name +
                                  "'; known: " + catalog.Ids());
    }
    if (w.cost.catalog_device.empty()) {
      // A system without a price is priced by its devices' entry (rental or purchase).
      const bool priced =
          system && (system->purchase_usd.known() || system->rental_usd_per_hour.known());
      w.cost.catalog_device = priced ? system->id : dev->id;
    }
    if (!have_topo_) {
      CB_RETURN_IF_ERROR(sim::TopologyFor(system ? *system : *dev, devices, &topo_));
      have_topo_ = true;
    }
    std::string note;
    if (w.verify) {
      double fp32 = static_cast<double>(EstimateMemory(w).verification);
      if (fp32 > sim::kMaxNumericsBytes) {
        note = "not run: the sim computes numerics only for models up to 4 GiB of fp32 weights";
      } else if (devices > 1) {
        note =
            "not run: a virtual cluster is simulated analytically; verify the stream with "
            "--devices 1";
      }
      if (!note.empty()) w.verify = false;
    }
    verify_notes_.push_back(note);
  }
  if (!any_sim || devices <= 1) return Status::Ok();

  // Choose tp x dp for the virtual devices.
  int tp = o.tp;
  if (tp <= 0 && o.dp > 0) tp = std::max(1, devices / o.dp);
  if (tp <= 0) {
    tp = 1;
    for (const WorkloadSpec& w : *plan) {
      const CatalogEntry* dev =
          sim::FindEntry(catalog, w.backend == "sim" ? "huawei-ascend-910c" : w.backend.substr(4));
      const double mem = dev && dev->mem_bytes.known() ? dev->mem_bytes.value : 0;
      const int need = ChooseTensorParallel(w, mem, std::min(devices, topo_.domain), [&](int t) {
        const int64_t replicas = std::max(1, devices / t);
        return o.batch_per_replica ? w.batch : (w.batch + replicas - 1) / replicas;
      });
      if (need == 0) {
        return Status::InvalidInput(w.model.name + " does not fit in " +
                                    std::to_string(std::min(devices, topo_.domain)) +
                                    " devices of one scale-up domain; give --tp");
      }
      tp = std::max(tp, need);
    }
  }
  if (devices % tp != 0) {
    return Status::InvalidInput("command line: --tp " + std::to_string(tp) + " does not divide " +
                                std::to_string(devices) + " devices");
  }
  const int dp = devices / tp;
  if (o.dp > 0 && o.dp != dp) {
    return Status::InvalidInput("command line: --tp " + std::to_string(tp) + " x --dp " +
                                std::to_string(o.dp) + " is not " + std::to_string(devices) +
                                " devices");
  }
  for (WorkloadSpec& w : *plan) {
    if (w.batch < dp) w.batch = dp;  // every replica serves at least one sequence
  }
  tp_ = tp;
  dp_ = dp;
  active_ = true;
  world_ = std::make_unique<SingleRankCommunicator>();
  group_ = std::make_unique<sim::VirtualGroup>(tp);
  ctx_ = ParallelContext{};
  ctx_.tp = tp;
  ctx_.dp = dp;
  ctx_.host = "simulated";
  ctx_.launcher = "sim";
  ctx_.world = world_.get();
  ctx_.tp_group = group_.get();
  ctx_.virtual_cluster = true;
  return Status::Ok();
}

void SimCluster::Configure(Device& device) const {
  auto* d = dynamic_cast<sim::SimDevice*>(&device);
  if (d == nullptr) return;
  if (have_topo_) d->SetTopology(topo_);
  d->SetLayout(tp_, dp_);
}

Ceilings SimCluster::CeilingsOf(const DeviceProps& p) {
  Ceilings c;
  for (int d = 0; d < kDTypeCount; ++d) c.matmul_flops_per_s[d] = p.peak_flops[d];
  c.mem_read_bytes_per_s = p.mem_bandwidth_bytes_per_s;
  c.source = std::string(sim::kModelVersion) + ": the simulated device's modelled peaks";
  c.measured_at = "";
  return c;
}

void SimCluster::Annotate(size_t workload, RunRecord* rec) const {
  if (workload < verify_notes_.size() && !verify_notes_[workload].empty()) {
    rec->verification.message = verify_notes_[workload];
  }
}

}  // namespace cb

namespace cb {

void SimCluster::FinishCost(RunRecord* rec) const {
  if (!active_ || !rec->cost) return;
  rec->cost->devices = static_cast<int64_t>(tp_) * dp_;
  rec->cost->notes.push_back("devices: " + std::to_string(tp_ * dp_) + " simulated devices (tp " +
                             std::to_string(tp_) + " x dp " + std::to_string(dp_) + ") of " +
                             topo_.name);
  AddCostMetrics(rec);
}

}  // namespace cb
