#include "backends/sim/perf_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace cb::sim {

double DeviceModel::Peak(DType dt) const {
  const double p = peak_flops[static_cast<int>(dt)];
  if (p > 0 || IsQuantized(dt)) return p;  // 8-bit compute needs the device's own figure
  // A float dtype the catalog has no figure for: bf16's peak for fp16 and the reverse.
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32}) {
    if (peak_flops[static_cast<int>(d)] > 0) return peak_flops[static_cast<int>(d)];
  }
  return 0;
}

Status ModelFromCatalog(const CatalogEntry& e, DeviceModel* out) {
  if (e.type != "device") {
    return Status::InvalidInput("catalog entry '" + e.id + "' is a " + e.type +
                                ", not a device; give a device (or --system for a system)");
  }
  DeviceModel m;
  m.id = e.id;
  m.name = e.name;
  m.kind = e.kind;
  for (const auto& [dt, fig] : e.peak_flops) {
    if (!fig.known()) continue;
    const std::optional<DType> parsed = ParseDType(dt);
    if (!parsed) continue;
    const DType d = *parsed;
    m.peak_flops[static_cast<int>(d)] = fig.value;
    m.sources.push_back("peak " + dt + ": catalog (" + fig.source + ")");
  }
  // fp32 matmuls on accelerators without an fp32 figure: assume half the bf16 rate.
  const int bf = static_cast<int>(DType::kBF16), f32 = static_cast<int>(DType::kF32);
  if (m.peak_flops[f32] <= 0 && m.peak_flops[bf] > 0) {
    m.peak_flops[f32] = m.peak_flops[bf] / 2;
    m.sources.push_back("peak fp32: assumed half the bf16 peak");
  }
  if (e.mem_bandwidth_bytes_per_s.known()) {
    m.mem_bandwidth = e.mem_bandwidth_bytes_per_s.value;
    m.sources.push_back("memory bandwidth: catalog (" + e.mem_bandwidth_bytes_per_s.source + ")");
  }
  if (e.mem_bytes.known()) m.mem_bytes = e.mem_bytes.value;
  m.tdp_w = e.tdp_w.known() ? e.tdp_w.value : 0;
  m.idle_w = e.idle_w.known() ? e.idle_w.value : 0;
  *out = std::move(m);
  return Status::Ok();
}

MatmulEfficiency Efficiency::Matmul(DType dt) const {
  const auto it = matmul_by_dtype.find(dt);
  if (it != matmul_by_dtype.end()) return it->second;
  return MatmulEfficiency{matmul_eff, matmul_m_half, matmul_mem_eff};
}

void NormalizeEfficiencies(DeviceModel* m) {
  Efficiency& e = m->eff;
  double compute = std::max({1.0, e.matmul_eff, e.attention_eff});
  double memory = std::max({1.0, e.matmul_mem_eff, e.attention_mem_eff, e.elementwise_mem_eff});
  for (const auto& [dt, me] : e.matmul_by_dtype) {
    compute = std::max(compute, me.eff);
    memory = std::max(memory, me.mem_eff);
  }
  char note[256];
  if (compute > 1) {
    for (double& p : m->peak_flops) p *= compute;
    e.matmul_eff /= compute;
    e.attention_eff /= compute;
    for (auto& [dt, me] : e.matmul_by_dtype) me.eff /= compute;
    std::snprintf(note, sizeof note,
                  "peak FLOP/s raised %.3gx: the calibration's compute efficiency exceeded 1 "
                  "against the ceiling it was fitted to",
                  compute);
    m->sources.push_back(note);
  }
  if (memory > 1) {
    m->mem_bandwidth *= memory;
    e.matmul_mem_eff /= memory;
    e.attention_mem_eff /= memory;
    e.elementwise_mem_eff /= memory;
    for (auto& [dt, me] : e.matmul_by_dtype) me.mem_eff /= memory;
    std::snprintf(note, sizeof note,
                  "memory bandwidth raised %.3gx: the calibration's memory efficiency exceeded "
                  "1 against the ceiling it was fitted to",
                  memory);
    m->sources.push_back(note);
  }
}

OpClass ClassOf(OpKind k) {
  switch (k) {
    case OpKind::kMatMul:
    case OpKind::kRouter:
    case OpKind::kMoeExperts:  // grouped expert matmuls: rows are the routed pairs
      return OpClass::kMatMul;
    case OpKind::kAttention:
    case OpKind::kMlaAttention:
      return OpClass::kAttention;
    case OpKind::kAllReduce:
    case OpKind::kAllGather:
      return OpClass::kCollective;
    default:
      return OpClass::kElementwise;
  }
}

namespace {

/// Compute and memory times at 100% efficiency and the efficiencies that apply.
void Terms(const DeviceModel& m, OpClass cls, double rows, DType dt, double* eff_c, double* eff_m) {
  const Efficiency& e = m.eff;
  switch (cls) {
    case OpClass::kMatMul: {
      const MatmulEfficiency me = e.Matmul(dt);
      *eff_c = me.eff * rows / (rows + me.m_half);
      *eff_m = me.mem_eff;
      break;
    }
    case OpClass::kAttention:
      *eff_c = e.attention_eff;
      *eff_m = e.attention_mem_eff;
      break;
    default:
      *eff_c = 1.0;
      *eff_m = e.elementwise_mem_eff;
      break;
  }
}

}  // namespace

double OpSeconds(const DeviceModel& m, OpClass cls, const OpCost& c, double rows, DType dt) {
  double eff_c = 1, eff_m = 1;
  Terms(m, cls, std::max(rows, 1.0), dt, &eff_c, &eff_m);
  const double peak = m.Peak(dt), bw = m.mem_bandwidth;
  const double tc = peak > 0 && eff_c > 0 ? c.flops / (peak * eff_c) : 0;
  const double tm = bw > 0 && eff_m > 0 ? c.bytes / (bw * eff_m) : 0;
  return m.eff.launch_s + std::max(tc, tm);
}

double OpUtilisation(const DeviceModel& m, OpClass cls, const OpCost& c, double rows, DType dt) {
  const double t = OpSeconds(m, cls, c, rows, dt);
  const double peak = m.Peak(dt), bw = m.mem_bandwidth;
  const double ideal = std::max(peak > 0 ? c.flops / peak : 0.0, bw > 0 ? c.bytes / bw : 0.0);
  return t > 0 ? std::clamp(ideal / t, 0.0, 1.0) : 0.0;
}

double OpSeconds(const DeviceModel& m, const OpStream& s, const Op& op, const StepIO& io,
                 DType dt) {
  const OpCost c = CostOfOp(s, op, io, dt);
  double rows = BufferRows(op.out) == Rows::kSequenceRows ? static_cast<double>(io.seqs.size())
                                                          : static_cast<double>(io.TotalTokens());
  if (op.kind == OpKind::kMoeExperts) {
    // Grouped expert matmuls: each expert's matmul sees only the rows routed to it.
    const MoeStepLoad load = ExpectedMoeLoad(s, static_cast<double>(io.TotalTokens()));
    if (load.distinct_experts > 0) rows = load.assignments / load.distinct_experts;
  }
  return OpSeconds(m, ClassOf(op.kind), c, rows, dt);
}

}  // namespace cb::sim
