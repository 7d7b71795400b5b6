#pragma once

#include <cstdint>

#include "backends/cpu/packed_matrix.h"

namespace cb::cpu {

/// Most rows (tokens) the skinny-GEMM kernels take; more go to oneDNN. Measured on Zen 5:
/// up to 8 rows the kernels stream the weights at memory bandwidth, which oneDNN's brgemm
/// does not reach for so few rows.
inline constexpr int64_t kSkinnyMaxRows = 8;

/// Whether the bf16 kernel can run here (compiled with AVX512_BF16 and the CPU has it).
bool SkinnyGemmBf16Available();

/// y[m, 0:n) = x[m, :] . W^T for m < rows (1 <= rows <= kSkinnyMaxRows), W packed bf16.
/// x rows (stride ldx) must hold w.k_pad values, zero beyond w.k. Threaded with OpenMP over
/// blocks of 64 output columns; each thread streams its blocks' weights once.
void SkinnyGemmBf16(const PackedMatrix& w, const uint16_t* x, int64_t ldx, int64_t rows, float* y,
                    int64_t ldy);

/// The same for fp32 weights and inputs.
void SkinnyGemmF32(const PackedMatrix& w, const float* x, int64_t ldx, int64_t rows, float* y,
                   int64_t ldy);

}  // namespace cb::cpu
