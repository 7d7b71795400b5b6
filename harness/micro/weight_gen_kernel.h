#pragma once

#include <cstdint>
#include <memory>

#include "harness/core/dtype.h"
#include "harness/core/status.h"

namespace cb {

/// The cpu backend's weight generation (cpu::PackRows): an n x k matrix of synthetic weights
/// made straight into its packed layout, again and again into the same (touched) buffer.
class WeightGenKernel {
 public:
  WeightGenKernel(DType dtype, int64_t n, int64_t k);
  ~WeightGenKernel();
  Status Run();
  /// Bytes of packed weights one Run makes.
  double Bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cb
