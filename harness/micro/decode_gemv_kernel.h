#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "harness/core/dtype.h"
#include "harness/core/status.h"

namespace cb {

/// The cpu backend's decode matmuls on one token, through MatmulRunner::Run as a session calls
/// it: the fp32 GEMV, the bf16 skinny GEMM, the int8 GEMV (VNNI) and the fp8 weight-only GEMV,
/// over `copies` packed copies of an n x k matrix cycled so that the weights come from DRAM as
/// in a decode step. Their bytes/s is read against the same memory ceiling.
class DecodeGemvKernel {
 public:
  static bool Supported(DType dtype);
  static Status Create(DType dtype, int64_t n, int64_t k, int copies,
                       std::unique_ptr<DecodeGemvKernel>* out);
  ~DecodeGemvKernel();
  void Run();
  double Flops() const;
  double Bytes() const;  ///< weights (codes and scales) + input + output of one Run
  std::string Label() const;

 private:
  struct Impl;
  DecodeGemvKernel() = default;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cb
