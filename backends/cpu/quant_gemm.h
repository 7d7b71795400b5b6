#pragma once

#include <cstdint>

#include "backends/cpu/packed_matrix.h"

namespace cb::cpu {

/// Whether the int8 kernels can run here (AVX512_VNNI) / the fp8 weight-only ones (AVX512_BF16).
bool Int8GemmAvailable();
bool Fp8GemmAvailable();

/// Per-token int8 quantisation (workloads/quant.h, the same bits) of `rows` rows of fp32 x
/// (stride ldx, k values) into codes + 128 as u8 (rows of k_pad; 128 beyond k) and scales.
void QuantizeRowsU8(const float* x, int64_t ldx, int64_t rows, int64_t k, int64_t k_pad,
                    uint8_t* xu, float* scale);

/// y[m, 0:n) = (sum_k q_x[m, k] q_w[n, k]) x scale[m] x s_w[n] for packed int8 W: vpdpbusd on
/// u8 activations (codes + 128) against s8 weights, the +128 taken back with the packed
/// row sums; int32 accumulation. Threaded over 64-column blocks; each block streams once
/// from memory and serves every group of up to 6 rows from cache.
void Int8Gemm(const PackedView& w, const uint8_t* xu, const float* scale, int64_t rows, float* y,
              int64_t ldy);

/// Int8Gemm of several same-shaped matrices at once (a step's routed experts): matrix g takes
/// rows [offset[g], offset[g + 1]) of xu (stride w[0].k_pad; scales likewise) into the same
/// rows of y. One parallel region over (matrix, 64-column block), so every core streams
/// weights however few rows each matrix has.
void Int8GemmGrouped(const PackedView* w, int64_t groups, const int64_t* offset, const uint8_t* xu,
                     const float* scale, float* y, int64_t ldy);

/// In place: y[m, n] holds the int32 sum over u8 codes x s8 weights (oneDNN's output, same
/// bytes); it becomes (sum - 128 x row sum) x scale[m] x s_w[n] in fp32, as Int8Gemm gives.
void Int8Epilogue(const PackedView& w, const float* scale, int64_t rows, float* y, int64_t ldy);

/// y[m, 0:n) = x[m, :] . W^T for packed fp8 W, weight-only: each e4m3 code becomes bf16 in
/// registers (exact), vdpbf16ps accumulates each 128-column block in fp32, times the block's
/// scale. x: bf16 rows (stride ldx) of k_pad values, zero beyond k.
void Fp8WeightOnlyGemm(const PackedView& w, const uint16_t* x, int64_t ldx, int64_t rows, float* y,
                       int64_t ldy);

}  // namespace cb::cpu
