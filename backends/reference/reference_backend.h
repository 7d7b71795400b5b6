#pragma once

#include <cstdint>
#include <memory>

#include "backends/backend.h"

namespace cb {

struct ReferenceOptions {
  /// Weights of more elements than this are regenerated from the synthetic-weight generator
  /// whenever an op reads them instead of being held (reference_weights.h): 0 regenerates
  /// every weight, a huge value holds them all. The default holds norm gains, biases and small
  /// matrices (4 MB of fp32).
  int64_t hold_limit = int64_t{1} << 20;
};

/// The reference backend: a plain, slow, obviously-right execution of the op stream that every
/// other backend is checked against. Weights are fp32, each value rounded to the session
/// dtype's precision (so a bf16 run compares the same weights); every dot product and
/// reduction accumulates in double; activations and the KV cache stay fp32. One rank only
/// (tp_size 1), where kAllReduce and kAllGather are the identity.
std::unique_ptr<Device> MakeReferenceDevice(const ReferenceOptions& options = {});

}  // namespace cb
