#pragma once

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
};

/// Per-op times of one prefill and a few decode steps run op by op after the measured window
/// (harness/op_breakdown.h): not the measurement, a diagnosis of where a step's time goes.
struct OpBreakdownRecord {
  std::string method;  ///< how the ops were timed
  int decode_steps = 0;
  std::vector<OpShare> prefill, decode;  ///< largest first
};

/// "moe_experts 71.2%, matmul wq_b 6.0%, ..." (shares of at least 1%, in the given order).
std::string OpSharesLine(const std::vector<OpShare>& shares);

nlohmann::json OpBreakdownRecordToJson(const OpBreakdownRecord& b);
Status OpBreakdownRecordFromJson(const nlohmann::json& j, const std::string& origin,
                                 OpBreakdownRecord* out);

}  // namespace cb
