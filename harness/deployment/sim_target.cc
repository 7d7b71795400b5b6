#include "harness/deployment/sim_target.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "backends/sim/sim_device.h"

namespace cb {
namespace {

/// Share of a device's memory a deployment may fill (the rest: runtime, fragmentation,
/// communication buffers). Assumed; serving engines default to 0.85-0.9.
constexpr double kUsableMemory = 0.9;

std::string Gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

std::string SupportedDTypes(const sim::DeviceModel& m) {
  std::string s;
  for (DType d : {DType::kF32, DType::kBF16, DType::kFP8, DType::kInt8}) {
    if (m.Peak(d) > 0) s += (s.empty() ? "" : ", ") + std::string(DTypeName(d));
  }
  return s;
}

}  // namespace

SimRankLoad SimRankLoadOf(const WorkloadSpec& w, const SimTarget& t, const PoolLayout& pool) {
  SimRankLoad r;
  const int64_t chunk = t.prefill_chunk;
  if (pool.role == PoolRole::kPrefill) {
    r.seqs = std::min(SeqsPerRank(w.batch, pool), chunk / w.prompt_len + 2);
    r.context = w.prompt_len;
    r.step_tokens = std::min(chunk, r.seqs * w.prompt_len);
    return r;
  }
  r.seqs = SeqsPerRank(w.batch, pool);
  r.context = w.prompt_len + w.gen_len;
  const int64_t decode = r.seqs * (1 + t.deployment.mtp);
  r.step_tokens = pool.role == PoolRole::kDecode
                      ? decode
                      : std::max(decode, std::min(chunk, r.seqs * w.prompt_len));
  return r;
}

RankMemory SimRankMemory(const WorkloadSpec& w, const SimTarget& t, const PoolLayout& pool,
                         const SimRankLoad& load) {
  RankMemory m = RankMemoryOf(w.model, pool, t.deployment.redundant_experts, w.dtype, w.KvDType(),
                              load.seqs, load.context, load.step_tokens);
  if (t.deployment.mtp > 0) {
    // The MTP module: one more layer like the last, and its 2h x h projection.
    const double layer = RankWeightBytes(w.model, pool, t.deployment.redundant_experts, w.dtype) /
                         static_cast<double>(w.model.num_layers);
    m.weights += layer + 2.0 * w.model.hidden_size * w.model.hidden_size * DTypeBytes(w.dtype);
  }
  return m;
}

namespace {

/// The smallest power-of-two tp (within a scale-up domain, dividing the devices) whose rank
/// holds its share of the batch; 0 when none does.
int ChooseTp(const WorkloadSpec& w, SimTarget* t, int devices) {
  const int limit = std::min(devices, std::max(1, t->topology.domain));
  for (int tp = 1; tp <= limit; tp *= 2) {
    if (devices % tp != 0) break;
    PoolLayout p{PoolRole::kMixed, devices, tp, 1};
    if (!ValidatePool(w.model, p, 0, "").ok()) break;
    t->deployment.pools = {p};
    const RankMemory m = SimRankMemory(w, *t, p, SimRankLoadOf(w, *t, p));
    if (m.Total() <= kUsableMemory * t->model.mem_bytes) return tp;
  }
  return 0;
}

}  // namespace

bool IsSimBackend(const std::string& backend) {
  return backend == "sim" || backend.starts_with("sim:");
}

int64_t SeqsPerRank(int64_t batch, const PoolLayout& pool) {
  const int64_t dp = std::max(1, pool.dp());
  return (batch + dp - 1) / dp;
}

int64_t DefaultPrefillChunk(const sim::DeviceModel& m) { return m.kind == "cpu" ? 512 : 16384; }

Status CheckSimMemory(const WorkloadSpec& w, const SimTarget& t, const std::string& where) {
  const double capacity = t.model.mem_bytes;
  if (!(capacity > 0)) return Status::Ok();
  for (const PoolLayout& pool : t.deployment.pools) {
    const SimRankLoad load = SimRankLoadOf(w, t, pool);
    const RankMemory m = SimRankMemory(w, t, pool, load);
    if (m.Total() <= kUsableMemory * capacity) continue;
    const std::string in =
        pool.role == PoolRole::kMixed ? "" : " of the " + PoolRoleName(pool.role) + " pool";
    std::string msg = (where.empty() ? "" : where + ": field 'batch': ") + w.model.name + " " +
                      std::string(DTypeName(w.dtype)) + " on " + pool.Describe() + " " +
                      t.model.name + in + " needs " + Gib(m.Total()) + " per device (weights " +
                      Gib(m.weights) + ", KV cache of " + std::to_string(load.seqs) + " x " +
                      std::to_string(load.context) + " tokens " + Gib(m.kv_cache) +
                      ", activations " + Gib(m.activations) + "), " +
                      Gib(kUsableMemory * capacity) + " usable of " + Gib(capacity);
    const double per_seq = m.kv_cache / std::max<int64_t>(1, load.seqs);
    const double room = kUsableMemory * capacity - m.weights - m.activations;
    if (room <= per_seq || pool.role == PoolRole::kPrefill) {
      msg += std::string(
                 "; the weights do not leave room for one sequence: use more devices, a "
                 "larger tp or ep") +
             (IsQuantized(w.dtype) ? "" : ", or fp8/int8 weights");
    } else {
      const int64_t fits = static_cast<int64_t>(room / per_seq) * std::max(1, pool.dp());
      msg += "; allowed: batch <= about " + std::to_string(fits);
    }
    return Status::Exhausted(msg);
  }
  return Status::Ok();
}

Status ResolveSimDevice(const WorkloadSpec& w, const DeviceCatalog& catalog,
                        const std::string& where, SimTarget* out) {
  auto bad = [&](const char* field, const std::string& what) {
    return Status::InvalidInput(where + ": field '" + field + "': " + what);
  };
  const DeploymentSpec& d = w.deployment;
  SimTarget& t = *out;
  const CatalogEntry* system = nullptr;
  if (!d.system.empty()) {
    system = sim::FindEntry(catalog, d.system);
    if (system == nullptr || system->type != "system") {
      std::string known;
      for (const CatalogEntry& e : catalog.entries()) {
        if (e.type == "system") known += (known.empty() ? "" : ", ") + e.id;
      }
      return bad("system", "unknown system '" + d.system + "'; allowed values: " + known);
    }
    t.system_id = system->id;
  }
  const std::string named = w.backend == "sim" ? "" : w.backend.substr(4);
  const std::string dev_name = system          ? system->device
                               : named.empty() ? "huawei-ascend-910c"
                                               : named;
  const CatalogEntry* dev = sim::FindEntry(catalog, dev_name);
  if (dev != nullptr && dev->type == "system") {
    return bad("backend", "sim:" + dev_name + " is a system: give --backend sim --system " +
                              dev->id + " (its devices and links), or --backend sim:" +
                              dev->device + " for its device alone");
  }
  if (dev == nullptr || dev->type != "device") {
    std::string known;
    for (const CatalogEntry& e : catalog.entries()) {
      if (e.type == "device") known += (known.empty() ? "" : ", ") + e.id;
    }
    return bad("backend", "sim:" + dev_name + ": unknown catalog device; allowed values: " + known);
  }
  if (system && !named.empty() && sim::FindEntry(catalog, named) != dev) {
    return bad("backend", w.backend + " is not the device of system " + system->id + " (" +
                              system->device + "); give --backend sim");
  }
  t.device_id = dev->id;
  CB_RETURN_IF_ERROR(sim::LoadDeviceModel(catalog, dev->id, &t.model));
  if (w.dtype == DType::kF16 || t.model.Peak(w.dtype) <= 0) {
    return bad("dtype",
               t.model.name + " has no native " + std::string(DTypeName(w.dtype)) +
                   " in the catalog; allowed values on this device: " + SupportedDTypes(t.model));
  }
  if (w.KvDType() == DType::kFP8 && t.model.Peak(DType::kFP8) <= 0) {
    return bad("kv_dtype", t.model.name + " has no native fp8; allowed values: bf16, int8");
  }
  const int devices = d.devices > 0 ? d.devices
                      : system      ? static_cast<int>(system->device_count)
                                    : 1;
  CB_RETURN_IF_ERROR(sim::TopologyFor(system ? *system : *dev, devices, &t.topology));
  t.prefill_chunk = w.serving.max_prefill_tokens > 0 ? w.serving.max_prefill_tokens
                                                     : DefaultPrefillChunk(t.model);
  const bool priced =
      system && (system->purchase_usd.known() || system->rental_usd_per_hour.known());
  t.cost_entry = !w.cost.catalog_device.empty() ? w.cost.catalog_device
                 : priced                       ? system->id
                                                : dev->id;
  return Status::Ok();
}

Status ResolveSimTarget(const WorkloadSpec& w, const DeviceCatalog& catalog,
                        const std::string& where, SimTarget* out) {
  auto bad = [&](const char* field, const std::string& what) {
    return Status::InvalidInput(where + ": field '" + field + "': " + what);
  };
  const DeploymentSpec& d = w.deployment;
  SimTarget t;
  CB_RETURN_IF_ERROR(ResolveSimDevice(w, catalog, where, &t));
  const CatalogEntry* system = t.system_id.empty() ? nullptr : catalog.Find(t.system_id);
  if (d.mtp > 0 && w.model.mtp_layers == 0) {
    return bad("mtp", w.model.name + " has no multi-token-prediction module; allowed value: 0");
  }

  Deployment& dep = t.deployment;
  dep.redundant_experts = d.redundant_experts;
  dep.mtp = d.mtp;
  dep.mtp_acceptance = d.mtp_acceptance;
  dep.overlap = d.overlap;
  if (d.redundant_experts > 0 && !w.model.moe.enabled()) {
    return bad("redundant_experts", w.model.name + " is a dense model; allowed value: 0");
  }
  const int system_devices = system ? static_cast<int>(system->device_count) : 0;
  int devices = d.devices > 0 ? d.devices : system_devices;
  if (system && devices > system_devices) {
    return bad("devices", std::to_string(devices) + " exceeds the " +
                              std::to_string(system_devices) + " devices of " + system->id);
  }
  if (!d.disaggregate.empty()) {
    if (d.tp > 0 || d.ep > 0 || d.dp > 0) {
      return bad("disaggregate",
                 "gives each pool its layout (prefill=N:tpA:epB,...); drop tp, ep "
                 "and dp");
    }
    CB_RETURN_IF_ERROR(ParsePools(d.disaggregate, where + ": field 'disaggregate'", &dep.pools));
    const int sum = dep.pools[0].devices + dep.pools[1].devices;
    if (devices == 0) devices = sum;
    if (sum > devices || (d.devices > 0 && sum != d.devices)) {
      return bad("disaggregate", "the pools take " + std::to_string(sum) + " devices; " +
                                     (system ? system->id + " has " : "devices is ") +
                                     std::to_string(devices));
    }
  } else {
    const int tp = std::max(0, d.tp), dp = std::max(0, d.dp), ep = std::max(1, d.ep);
    if (devices == 0) devices = tp > 0 && dp > 0 ? tp * dp : std::max({tp, dp, ep, 1});
    PoolLayout p{PoolRole::kMixed, devices, tp, ep};
    if (p.tp == 0 && dp > 0) {
      if (devices % dp != 0) {
        return bad("dp",
                   std::to_string(dp) + " does not divide " + std::to_string(devices) + " devices");
      }
      p.tp = devices / dp;
    }
    if (p.tp == 0 && ep > 1) p.tp = 1;
    if (dp > 0 && p.tp * dp != devices) {
      return bad("dp", "tp " + std::to_string(p.tp) + " x dp " + std::to_string(dp) + " is not " +
                           std::to_string(devices) + " devices");
    }
    dep.pools = {p};
  }
  if (system == nullptr && dep.TotalDevices() != t.topology.devices) {
    CB_RETURN_IF_ERROR(
        sim::TopologyFor(*catalog.Find(t.device_id), dep.TotalDevices(), &t.topology));
  }
  if (dep.pools.front().tp == 0) {
    const int tp = ChooseTp(w, &t, devices);
    if (tp == 0) {
      dep.pools = {PoolLayout{PoolRole::kMixed, devices, 1, 1}};
      CB_RETURN_IF_ERROR(CheckSimMemory(w, t, where));
      return bad("tp", "no tensor-parallel size within a scale-up domain holds " + w.model.name +
                           "; give tp, ep or more devices");
    }
    dep.pools.front().tp = tp;
  }
  for (const PoolLayout& p : dep.pools) {
    const char* field = !d.disaggregate.empty() ? "disaggregate" : p.ep > 1 ? "ep" : "tp";
    CB_RETURN_IF_ERROR(
        ValidatePool(w.model, p, dep.redundant_experts, where + ": field '" + field + "'"));
    if (w.batch < p.dp() && p.role != PoolRole::kPrefill) {
      return bad("batch",
                 std::to_string(w.batch) + " sequences leave some of the " +
                     std::to_string(p.dp()) +
                     " attention groups empty; allowed: batch >= " + std::to_string(p.dp()));
    }
  }
  CB_RETURN_IF_ERROR(CheckSimMemory(w, t, where));
  *out = std::move(t);
  return Status::Ok();
}

}  // namespace cb
