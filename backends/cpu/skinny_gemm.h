#pragma once

#include <cstdint>

#include "backends/cpu/packed_matrix.h"

namespace cb::cpu {

/// Most rows (tokens) the skinny-GEMM kernel takes.
inline constexpr int64_t kSkinnyMaxRows = 8;

/// Whether the bf16 kernel can run here (compiled with AVX512_BF16 and the CPU has it).
bool SkinnyGemmBf16Available();

/// Whether the skinny kernel is the faster choice for `rows` rows of bf16, as measured on the
/// 2-core Zen 5 this was tuned on, streaming a Llama-3.2-1B decode step's weights cold (best of
/// several runs, GB/s of weights, skinny vs oneDNN 2.6 brgemm on the same packed layout):
/// 1 row 75 vs 74, 2 rows 69 vs 69, 3 rows 72 vs 66, 4 rows 70 vs 69, 5 rows 61 vs 64,
/// 6 rows 60 vs 64, 8 rows 57 vs 51. fp32 always goes to oneDNN: its brgemm streams fp32
/// weights at the same rate as an FMA kernel does.
bool SkinnyGemmWins(int64_t rows);

/// y[m, 0:n) = x[m, :] . W^T for m < rows (1 <= rows <= kSkinnyMaxRows), W packed bf16.
/// x rows (stride ldx) must hold w.k_pad values, zero beyond w.k. Threaded with OpenMP over
/// blocks of 64 output columns; each thread streams its blocks' weights once.
void SkinnyGemmBf16(const PackedView& w, const uint16_t* x, int64_t ldx, int64_t rows, float* y,
                    int64_t ldy);

/// A grouped GEMM of same-shaped packed bf16 matrices (MLA's per-head projections): for each
/// group g, y_g[r, 0:n) = x_g[r, :] . W_g^T for r < rows (any count), where x_g = x + g *
/// x_stride (rows of stride ldx holding k_pad values, zero beyond k) and y_g = y + g *
/// y_stride (rows of stride ldy). Threaded over (group, 64-column block); each item streams
/// its block once for the first four rows and re-reads it from cache for the others.
void GroupedGemmBf16(const PackedView* w, int64_t groups, const uint16_t* x, int64_t x_stride,
                     int64_t ldx, int64_t rows, float* y, int64_t y_stride, int64_t ldy);

/// GroupedGemmBf16 for packed fp32 matrices and fp32 x (AVX-512F only): MLA's per-head
/// projections in an int8 session, whose activations are fp32. Rows go four at a time
/// against each block, which then stays in cache.
void GroupedGemmF32(const PackedView* w, int64_t groups, const float* x, int64_t x_stride,
                    int64_t ldx, int64_t rows, float* y, int64_t y_stride, int64_t ldy);

}  // namespace cb::cpu
