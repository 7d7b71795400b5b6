#pragma once

#include <cstdint>

#include "backends/cpu/aligned_buffer.h"
#include "backends/cpu/packed_matrix.h"
#include "harness/core/dtype.h"

namespace cb::cpu {

/// A typed pointer to activation rows (fp32 or bf16).
struct View {
  void* data = nullptr;
  DType dtype = DType::kF32;
};

/// The element-wise and row-wise ops of the stream, vectorised with AVX-512 and threaded with
/// OpenMP over rows where there are enough of them. Rows are contiguous with the given width.

/// out[t, :] = row tokens[t] of a plain [vocab, n] table of `table_dtype`.
void EmbeddingPlain(const int32_t* tokens, int64_t count, const void* table, DType table_dtype,
                    int64_t n, View out);
/// The same, reading the rows from the packed weights of a tied LM head.
void EmbeddingPacked(const int32_t* tokens, int64_t count, const PackedMatrix& table, View out);

/// out = in / sqrt(mean(in^2) + eps) * gain over `rows` rows of width n.
void RmsNorm(View in, View out, int64_t rows, int64_t n, const float* gain, float eps);

/// Per-head RMSNorm, in place, of the first `q_heads` heads (gain q_gain) and the next `k_heads`
/// heads (k_gain) of each row of `qkv` (row width `width`).
void QkNorm(float* qkv, int64_t rows, int64_t width, int64_t q_heads, int64_t k_heads,
            int64_t head_dim, const float* q_gain, const float* k_gain, float eps);

/// Half-split rotary embedding, in place, of the first `heads` heads of each row at position
/// positions[row]; cos_sin holds, per position, head_dim / 2 cosines then head_dim / 2 sines.
void Rope(float* qkv, int64_t rows, int64_t width, int64_t heads, int64_t head_dim,
          const int32_t* positions, const float* cos_sin);

/// out[t, i] = silu(gate_up[t, i]) * gate_up[t, f + i].
void SwiGlu(const float* gate_up, View out, int64_t rows, int64_t f);

/// out[i] += in[i].
void AddInPlace(float* out, const float* in, int64_t count);

/// Index of the largest value, the lowest on ties; NaN never wins; -1 if all are NaN.
int32_t ArgMax(const float* values, int64_t n);

/// The rotary table of `positions` x `dim`: per position dim / 2 cosines, then dim / 2 sines of
/// position x theta^(-2i / dim).
Status MakeRopeTable(int64_t positions, int64_t dim, double theta, AlignedBuffer* out,
                     const char* what);

}  // namespace cb::cpu
