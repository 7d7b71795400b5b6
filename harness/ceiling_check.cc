#include "harness/ceiling_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "harness/core/fmt.h"

namespace cb {
namespace {

std::string GBps(double v) { return Fmt(v / 1e9, "%.1f GB/s"); }
std::string GFlops(double v) { return Fmt(v / 1e9, "%.1f GFLOP/s"); }
std::string MiB(double v) { return Fmt(v / (1024.0 * 1024.0), "%.1f MiB"); }

std::string Describe(const CeilingSample& s, const char* when, const char* window, DType dtype) {
  const std::string matmul = std::string(DTypeName(dtype)) + " matmul ";
  return std::string("ceilings ") + when + " " + window + ": memory read " +
         GBps(s.mem_read_bytes_per_s) + " (" + Fmt(s.mem_read_s * 1e3, "%.0f ms") + "), " +
         (s.matmul_flops_per_s > 0 ? matmul + GFlops(s.matmul_flops_per_s) + " (" +
                                         Fmt(s.matmul_s * 1e3, "%.0f ms") + ")"
                                   : "no " + matmul + "probe (no native kernel)");
}

/// One ceiling from the ranks' samples (`pick` reads a sample's figure) and the cached figure.
CeilingFigure Figure(const std::vector<std::pair<int, WindowProbes>>& ranks, double cached,
                     double (*pick)(const CeilingSample&)) {
  CeilingFigure f;
  f.cached = cached;
  bool all = !ranks.empty();
  for (const auto& [rank, p] : ranks) {
    all = all && p.taken && pick(p.before) > 0 && pick(p.after) > 0;
    if (!all) break;
    f.before += pick(p.before);
    f.after += pick(p.after);
  }
  if (all) {
    f.source = "probes";
    f.used = std::max(f.before, f.after);
    f.drift = std::fabs(f.before - f.after) / f.used;
  } else {
    f.before = f.after = 0;
    f.source = cached > 0 ? "cached" : "none";
    f.used = cached;
  }
  return f;
}

double MemOf(const CeilingSample& s) { return s.mem_read_bytes_per_s; }
double FlopsOf(const CeilingSample& s) { return s.matmul_flops_per_s; }

/// Whether a phase moving `step_bytes` per device per step is bounded by memory bandwidth;
/// adds a note when it is not.
bool MemoryBound(const char* metric, const char* phase, double step_bytes, double cache_bytes,
                 CeilingCheckRecord* check) {
  if (cache_bytes <= 0 || step_bytes > cache_bytes) return true;
  check->notes.push_back(std::string(metric) + " not reported: a " + phase + " step moves " +
                         MiB(step_bytes) + " per device, which fits in the " + MiB(cache_bytes) +
                         " last-level cache, so memory bandwidth does not bound it");
  return false;
}

}  // namespace

double MaxCeilingDrift(const WorkloadSpec& w) {
  return w.serving.max_ceiling_drift > 0 ? w.serving.max_ceiling_drift : kDefaultMaxCeilingDrift;
}

DType MatmulDType(DType dtype, bool weight_only) { return weight_only ? DType::kBF16 : dtype; }

std::string SampleCeilingsBeside(const WorkloadSpec& w, DType matmul_dtype,
                                 const RunnerOptions& opts, bool before, WindowProbes* probes,
                                 const char* window) {
  if (opts.ceiling_probe == nullptr || !w.serving.ceiling_probes) return "";
  if (!before && !probes->error.empty()) return "";  // the first probe failed: no pair
  CeilingSample& s = before ? probes->before : probes->after;
  if (Status st = opts.ceiling_probe->Sample(matmul_dtype, &s); !st.ok()) {
    probes->error = st.message();
    return "ceiling probe failed (" + st.message() + "); MFU/MBU against the cached ceilings";
  }
  probes->taken = !before;
  return Describe(s, before ? "before" : "after", window, matmul_dtype);
}

CeilingPlan PlanCeilings(const CeilingPlanInput& in) {
  const double devices = std::max(1, in.devices);
  const double cached_flops = in.cached.matmul_flops_per_s[static_cast<int>(in.dtype)] * devices;
  const double cached_mem = in.cached.mem_read_bytes_per_s * devices;
  CeilingPlan plan;
  if (in.simulated) {  // modelled peaks: nothing to probe or judge
    plan.basis.matmul_flops_per_s = cached_flops;
    plan.basis.mem_read_bytes_per_s = cached_mem;
    return plan;
  }
  CeilingCheckRecord c;
  c.method = in.method;
  c.dtype = std::string(DTypeName(in.dtype));
  c.devices = in.devices;
  c.max_drift = in.max_drift;
  c.max_ratio = kMaxCeilingRatio;
  c.cache_bytes = in.cache_bytes;
  for (const auto& [rank, p] : in.ranks) {
    if (!p.error.empty()) {
      c.notes.push_back("ceiling probe failed on rank " + std::to_string(rank) + ": " + p.error);
    }
    if (!p.taken) continue;
    for (const auto& [when, s] : {std::pair{"before", p.before}, std::pair{"after", p.after}}) {
      c.probes.push_back(
          {rank, when, s.mem_read_bytes_per_s, s.matmul_flops_per_s, s.mem_read_s, s.matmul_s});
    }
  }
  c.memory = Figure(in.ranks, cached_mem, MemOf);
  c.matmul = Figure(in.ranks, cached_flops, FlopsOf);
  if (!c.probes.empty() && c.matmul.source != "probes") {
    c.notes.push_back("no " + c.dtype + " matmul probe (no native kernel on this CPU): MFU " +
                      (c.matmul.used > 0 ? "against the cached ceiling" : "not reported"));
  }
  plan.basis.matmul_flops_per_s = c.matmul.used;
  plan.basis.mem_read_bytes_per_s = c.memory.used;
  if (c.memory.used > 0) {
    plan.basis.mbu_prefill =
        MemoryBound("mbu_prefill_ratio", "prefill", in.prefill_step_bytes, in.cache_bytes, &c);
    plan.basis.mbu_decode =
        MemoryBound("mbu_decode_ratio", "decode", in.decode_step_bytes, in.cache_bytes, &c);
  }
  plan.check = std::move(c);
  return plan;
}

void JudgeCeilings(const std::vector<Metric>& metrics, CeilingCheckRecord* check) {
  check->findings.clear();
  check->reasons.clear();
  auto add = [&](const char* finding, const std::string& reason) {
    if (std::find(check->findings.begin(), check->findings.end(), finding) ==
        check->findings.end()) {
      check->findings.push_back(finding);
    }
    check->reasons.push_back(std::string(finding) + ": " + reason);
  };
  for (const Metric& m : metrics) {
    const bool mfu = m.name.rfind("mfu_", 0) == 0, mbu = m.name.rfind("mbu_", 0) == 0;
    if ((!mfu && !mbu) || m.value <= check->max_ratio) continue;  // NaN is a defect too
    const CeilingFigure& f = mfu ? check->matmul : check->memory;
    auto rate = mfu ? GFlops : GBps;
    add("ceiling_exceeded", m.name + " is " + Fmt(m.value, "%.3g") + ", above " +
                                Fmt(check->max_ratio, "%g") + ": the window achieved " +
                                rate(m.value * f.used) + " against a " +
                                (mfu ? check->dtype + " matmul" : std::string("memory read")) +
                                " ceiling of " + rate(f.used) + " (" + f.source + ")");
  }
  for (const auto& [name, f] : {std::pair{"memory read bandwidth", check->memory},
                                std::pair{"matmul peak", check->matmul}}) {
    if (f.source != "probes" || !(f.drift > check->max_drift)) continue;
    auto rate = std::string(name) == "matmul peak" ? GFlops : GBps;
    add("ceiling_drift", std::string(name) + " was " + rate(f.before) + " before the window and " +
                             rate(f.after) + " after it: " + Fmt(f.drift * 100, "%.0f%%") +
                             " apart, more than the margin of " +
                             Fmt(check->max_drift * 100, "%.0f%%") + " (--max-ceiling-drift)");
  }
  check->verdict = check->findings.empty() ? "ok" : "unstable";
}

void AddJudgedMetrics(const WorkloadSpec& w, const RunnerOptions& opts, bool simulated,
                      DType matmul_dtype, const std::vector<RankTimings>& ranks,
                      const OpCost& prefill_cost, const OpCost& decode_cost, Provenance how,
                      RunRecord* rec) {
  CeilingPlanInput in;
  in.cached = opts.ceilings;
  in.dtype = matmul_dtype;
  in.devices = static_cast<int>(ranks.size());
  in.simulated = simulated;
  in.max_drift = MaxCeilingDrift(w);
  if (opts.ceiling_probe == nullptr) {
    in.method = "no in-run probe for this backend; MFU/MBU against " + opts.ceilings.source;
  } else if (!w.serving.ceiling_probes) {
    in.method =
        "in-run probes turned off (--no-ceiling-probes); MFU/MBU against " + opts.ceilings.source;
  } else {
    in.method = opts.ceiling_probe->Method(in.dtype);
  }
  in.cache_bytes = opts.ceiling_probe != nullptr ? opts.ceiling_probe->CacheBytes() : 0;
  const double devices = static_cast<double>(std::max<size_t>(1, ranks.size()));
  in.prefill_step_bytes = prefill_cost.bytes / devices;
  in.decode_step_bytes = w.gen_len > 0 ? decode_cost.bytes / w.gen_len / devices : 0;
  for (const RankTimings& r : ranks) in.ranks.emplace_back(r.rank, r.probes);
  CeilingPlan plan = PlanCeilings(in);
  AddThroughputMetrics(w, ranks, prefill_cost, decode_cost, plan.basis, how, rec);
  if (plan.check) {
    JudgeCeilings(rec->metrics, &*plan.check);
    rec->ceiling_check = std::move(plan.check);
  }
}

}  // namespace cb
