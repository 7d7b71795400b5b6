#pragma once

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

/// Time of one kind of op over a step (`--op-breakdown`): summed over its ops, each layer's
/// ops weighted by the model layers that layer stands for (as step times are extrapolated).
struct OpShare {
  std::string op;      ///< op kind; matmuls by their first weight ("matmul wq")
  double seconds = 0;  ///< per step
  double share = 0;    ///< of the step's summed op times
  double flops = 0;    ///< per step, the ideal work MFU counts (workloads/op_cost)
  double bytes = 0;    ///< per step, the ideal bytes MBU counts
  /// Of the op's time, the share its roofline explains: max(flops / peak, bytes / bandwidth)
  /// / seconds against the given ceilings (NaN without both, or without time).
  double Roofline(double flops_per_s, double bytes_per_s) const;
};

/// Per-op times of one prefill and a few decode steps run op by op after the measured window
/// (harness/op_breakdown.h): not the measurement, a diagnosis of where a step's time goes.
struct OpBreakdownRecord {
  std::string method;  ///< how the ops were timed
  int decode_steps = 0;
  std::vector<OpShare> prefill, decode;  ///< largest first
  /// The ceilings sampled right before and after the op-by-op steps (0: not sampled); the
  /// roofline shares divide by the larger of each pair, as MFU and MBU do.
  double mem_read_before = 0, mem_read_after = 0;  ///< bytes/s
  double matmul_before = 0, matmul_after = 0;      ///< FLOP/s in `matmul_dtype`
  std::string matmul_dtype;
  double MemRead() const { return std::max(mem_read_before, mem_read_after); }
  double Matmul() const { return std::max(matmul_before, matmul_after); }
  /// How far the two samples of either ceiling are apart, as a share of the larger.
  double Drift() const;
};

/// "moe_experts 71.2% (0.94), matmul wq_b 6.0% (0.88), ..." (shares of at least 1%, in the
/// given order; in brackets each op's Roofline() where both ceilings are positive, with a "!"
/// above 1).
std::string OpSharesLine(const std::vector<OpShare>& shares, double flops_per_s = 0,
                         double bytes_per_s = 0);
/// Whether an op the line shows ran faster than its roofline (marked "!" there): its data sat
/// in cache, or the ceilings moved.
bool AnyAboveRoofline(const std::vector<OpShare>& shares, double flops_per_s, double bytes_per_s);

nlohmann::json OpBreakdownRecordToJson(const OpBreakdownRecord& b);
Status OpBreakdownRecordFromJson(const nlohmann::json& j, const std::string& origin,
                                 OpBreakdownRecord* out);

}  // namespace cb
