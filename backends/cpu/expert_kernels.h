#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "backends/cpu/matmul.h"
#include "backends/cpu/packed_matrix.h"
#include "harness/core/dtype.h"
#include "harness/core/status.h"
#include "workloads/op_stream.h"
#include "workloads/weights.h"

namespace cb::cpu {

/// One step's (token, expert) pairs of a MoE layer grouped by local expert: pair i of expert e
/// (offset[e] <= i < offset[e + 1]) reads input row `row[i]` and is combined into output row
/// `row[i]` with `weight[i]`. Pairs of one row appear in ascending expert order, so combining
/// expert by expert adds a token's experts in the order the router lists them.
struct ExpertRows {
  const int64_t* offset = nullptr;  ///< [experts + 1]
  const int32_t* row = nullptr;
  const float* weight = nullptr;  ///< null: no combine (StoreRows)
  int64_t experts = 0;
  int64_t pairs() const { return offset[experts]; }
};

/// The shapes of one MoE layer's local experts.
struct ExpertShape {
  int64_t experts = 0, hidden = 0, ffn = 0;
  /// Width of an act row: ffn padded to the bf16 k block (zeros beyond ffn).
  int64_t FfnPad() const { return (ffn + 31) / 32 * 32; }
};

/// The routed experts of one MoE layer in one weight format. Each call runs every expert of a
/// step at once: one parallel region, threads partitioned over (expert, column block), so
/// every core streams weights all the time. A format is one implementation of this interface
/// (bf16: own AVX-512 BF16 kernels; any dtype: oneDNN per expert; an int8 variant would add
/// its packing and kernels here).
///
/// Inputs and outputs are in the session dtype: x rows of `hidden` values (row stride ld_x),
/// act rows of FfnPad() values, one per pair in pair order.
class ExpertKernels {
 public:
  virtual ~ExpertKernels() = default;
  /// act[i] = silu(x[row[i]] W_gate_e^T) * (x[row[i]] W_up_e^T) for every pair i.
  virtual Status GateUp(const void* x, int64_t ld_x, const ExpertRows& rows, void* act) = 0;
  /// out[row[i]] += weight[i] * y_i for every pair i, experts in ascending order, where
  /// y_i = act[i] W_down_e^T rounded to the session dtype; `out` is fp32 (stride ld_out).
  virtual Status DownCombine(const void* act, const ExpertRows& rows, float* out,
                             int64_t ld_out) = 0;
  /// out[row[i]] = y_i in the session dtype (stride ld_out): expert parallelism sends these
  /// back to the pairs' ranks, which combine them with CombineRows.
  virtual Status DownStore(const void* act, const ExpertRows& rows, void* out, int64_t ld_out) = 0;
  virtual uint64_t AllocatedBytes() const = 0;
};

/// Packs the local experts of `gate_up` [experts * 2 * ffn, hidden] (each expert's gate rows,
/// then its up rows) and `down` [experts * hidden, ffn] in the format the session's dtype and
/// this CPU run fastest, generating them from `source`. `matmul` serves the oneDNN format.
Status MakeExpertKernels(DType dtype, const ExpertShape& shape, const WeightDesc& gate_up,
                         const WeightDesc& down, const WeightSource& source, MatmulRunner* matmul,
                         std::unique_ptr<ExpertKernels>* out);

/// The bf16 format on its own (tests compare it with the oneDNN one); kUnsupported without
/// AVX512_BF16.
Status MakeBf16ExpertKernels(const ExpertShape& shape, const WeightDesc& gate_up,
                             const WeightDesc& down, const WeightSource& source,
                             std::unique_ptr<ExpertKernels>* out);
Status MakeOneDnnExpertKernels(DType dtype, const ExpertShape& shape, const WeightDesc& gate_up,
                               const WeightDesc& down, const WeightSource& source,
                               MatmulRunner* matmul, std::unique_ptr<ExpertKernels>* out);

/// out[row[i]] += weight[i] * y[i] (fp32 out, stride ld_out; y rows of `hidden` values in
/// `dtype`, stride ld_y) for pairs in the given order: the combine of DownCombine, for
/// results that come back from other ranks.
void CombineRows(const void* y, DType dtype, int64_t ld_y, const int32_t* row, const float* weight,
                 int64_t pairs, int64_t hidden, float* out, int64_t ld_out);

}  // namespace cb::cpu
