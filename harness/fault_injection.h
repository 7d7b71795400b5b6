#pragma once

#include <memory>
#include <string>

#include "backends/backend.h"

namespace cb {

/// Test-only faults, selected with the hidden `run --inject-fault MODE` flag, so the tests can
/// prove that the harness catches what a broken backend would do:
///   "nan-logits"  every step's logits (when asked for) get a NaN, every sample becomes -1;
///   "skew-logits" logits asked for are scaled by 1.5 (a wrong kernel without NaN);
///   "throw-on-rank:R" world rank R throws from its first decode step (a crashing rank).
/// Returns kInvalidInput naming the allowed modes for anything else. `world_rank` is this
/// process's rank; other ranks get their device back unchanged for rank-specific faults.
Status WrapWithFault(const std::string& mode, int world_rank, std::unique_ptr<Device> inner,
                     std::unique_ptr<Device>* out);

}  // namespace cb
