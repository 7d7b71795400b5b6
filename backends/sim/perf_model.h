#pragma once

#include <map>
#include <string>
#include <vector>

#include "backends/devices/catalog.h"
#include "harness/core/dtype.h"
#include "harness/core/status.h"
#include "workloads/op_cost.h"
#include "workloads/op_stream.h"

namespace cb::sim {

/// Version of the analytic model; written into every simulated result.
/// 2.0: deployments (data-parallel attention, expert parallelism with modelled all-to-alls,
/// prefill/decode pools, multi-token prediction, two-batch overlap), fp8/int8, per-device
/// efficiencies from public kernel figures, per-rank memory.
inline constexpr const char* kModelVersion = "clusterbench-sim/2.0";

/// Efficiency parameters of one device. An op takes
///   launch_s + max(flops / (peak x eff_compute), bytes / (bandwidth x eff_memory))
/// where, for matmuls, eff_compute = matmul_eff x M / (M + matmul_m_half) (M = rows of the
/// step: small M (decode, GEMV) reaches a small share of peak) and eff_memory = matmul_mem_eff;
/// attention uses attention_eff / attention_mem_eff; every other op is memory-bound at
/// elementwise_mem_eff.
/// Matmul efficiencies of one dtype where they differ from the device's general ones (e.g.
/// FP8 block-scaled grouped GEMMs).
struct MatmulEfficiency {
  double eff = 0.8, m_half = 8, mem_eff = 0.85;
};

struct Efficiency {
  double matmul_eff = 0.8;
  double matmul_m_half = 8;
  double matmul_mem_eff = 0.85;
  double attention_eff = 0.6;
  double attention_mem_eff = 0.8;
  double elementwise_mem_eff = 0.7;
  double launch_s = 5e-6;
  std::map<DType, MatmulEfficiency> matmul_by_dtype;
  /// Where each figure comes from, by field name ("matmul_eff", "fp8.matmul_eff", ...);
  /// a field without an entry is the default below.
  std::map<std::string, std::string> sources;
  std::string source = kDefaultEfficiencySource;
  static constexpr const char* kDefaultEfficiencySource =
      "default: assumed (typical accelerator kernel efficiencies; no public figure for this "
      "device)";
  /// The matmul figures that apply to `dt`.
  MatmulEfficiency Matmul(DType dt) const;
};

/// What the model knows about one device: peaks (catalog or calibration) and efficiencies.
struct DeviceModel {
  std::string id, name, kind;
  double peak_flops[kDTypeCount] = {0, 0, 0};
  double mem_bandwidth = 0;  ///< bytes/s
  double mem_bytes = 0;
  double tdp_w = 0, idle_w = 0;
  Efficiency eff;
  std::vector<std::string> sources;  ///< where peaks and efficiencies come from
  double Peak(DType dt) const;
};

/// Keeps the model a roofline: an efficiency above 1 (a calibration fitted against a ceiling
/// measured while its host was busy) raises the peak it is relative to instead, so that no
/// modelled op beats its peak and no modelled MFU or MBU exceeds 1. Notes what it changed.
void NormalizeEfficiencies(DeviceModel* m);

/// Builds the model of catalog device `e` (peaks, memory, power) with default efficiencies;
/// a calibration file for it (see calibration.h) replaces peaks it measured and efficiencies.
Status ModelFromCatalog(const CatalogEntry& e, DeviceModel* out);

/// Shape class of an op, for fitting and reporting.
enum class OpClass { kMatMul, kAttention, kElementwise, kCollective };
OpClass ClassOf(OpKind k);

/// Modelled seconds of one op with cost `c`; `rows` is M of a matmul (tokens or sequences).
double OpSeconds(const DeviceModel& m, OpClass cls, const OpCost& c, double rows, DType dt);
/// Same, from the stream.
double OpSeconds(const DeviceModel& m, const OpStream& s, const Op& op, const StepIO& io, DType dt);

/// Busy share of an op's modelled time (its roofline time / modelled time), for the power model.
double OpUtilisation(const DeviceModel& m, OpClass cls, const OpCost& c, double rows, DType dt);

}  // namespace cb::sim
