#pragma once

#include <memory>

#include "backends/backend.h"

namespace cb {

/// The reference backend: a plain, slow, obviously-right execution of the op stream that every
/// other backend is checked against. Weights are held in fp32, each value rounded to the
/// session dtype's precision (so a bf16 run compares the same weights); every dot product and
/// reduction accumulates in double; activations and the KV cache stay fp32. One rank only
/// (tp_size 1), where kAllReduce and kAllGather are the identity.
std::unique_ptr<Device> MakeReferenceDevice();

}  // namespace cb
