#pragma once

/// The 8-bit formats of the `int8` and `fp8` dtypes, defined once for every backend:
/// - int8 (W8A8): weights per output channel, symmetric, q = clamp(rne(w / s), -127, 127);
///   activations per token, dynamic, s = max|x| / 127; int32 accumulation; y = acc * s_x * s_w.
/// - fp8 (e4m3fn: bias 7, max 448, no infinities): weights in 128 x 128 blocks with one scale
///   each; activations in groups of 128 columns of one token, s = max|x_g| / 448.
/// Every division and rounding is one fp32 operation (round to nearest even), so a vectorised
/// kernel that does the same operations gets the same bits.

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "harness/core/dtype.h"
#include "workloads/op_stream.h"
#include "workloads/weights.h"

namespace cb {

inline constexpr float kInt8Max = 127.0f;
inline constexpr float kFp8Max = 448.0f;
inline constexpr int64_t kFp8Block = 128;  ///< weight blocks 128 x 128, activation groups 1 x 128

/// int8 of x / scale, rounded to nearest even and saturated to [-127, 127].
int8_t QuantizeInt8(float x, float scale);
/// The e4m3fn byte nearest to x (ties to even); |x| > 448 saturates to +-448; NaN -> 0x7f.
uint8_t FloatToFp8(float x);
/// The e4m3fn byte of x / scale (one fp32 division, then FloatToFp8).
inline uint8_t QuantizeFp8(float x, float scale) { return FloatToFp8(x / scale); }
/// The value of an e4m3fn byte (exact in fp32 and in bf16).
float Fp8ToFloat(uint8_t code);

/// Symmetric scale of a row of values: max|x| / qmax, or 1 for an all-zero row.
float AbsMaxScale(const float* x, int64_t n, float qmax);

/// Per-token int8 quantisation of rows [rows, k] (row stride ld): q[r][c], scale[r].
void QuantizeRowsInt8(const float* x, int64_t rows, int64_t k, int64_t ld, int8_t* q, float* scale);

/// x rounded through the activation quantiser of `dtype`, per token (int8) or per group of
/// 128 columns (fp8): q * s, in place on one row of k values. Other dtypes: unchanged.
void FakeQuantizeActivationRow(DType dtype, float* x, int64_t k);

/// The scale of every weight of a quantised tensor: the generator's range bound (|w| <=
/// desc.scale) over the format's largest value, so every shard knows it without seeing the
/// rest of its row or block. Stored per output channel (int8) or per 128 x 128 block (fp8);
/// kernels read them per channel and block.
float WeightQuantScale(const WeightDesc& desc, DType dtype);

/// Weights a quantised session stores in `dtype`: those of every kMatMul (the LM head
/// included) and kMoeExperts op. Embeddings, norm gains, the router and MLA's kv_b stay in
/// the high-precision dtype.
std::set<std::string> QuantizedWeightNames(const OpStream& stream);

/// The dtype of a quantised session's other weights and activations (bf16), or `dtype`.
inline DType HighPrecisionOf(DType dtype) { return IsQuantized(dtype) ? DType::kBF16 : dtype; }

/// Rows [row, row + count) of weight `desc` quantised in `dtype` (int8 or fp8 codes),
/// row-major [count, desc.cols]: the generator's fp32 value divided by WeightQuantScale.
void QuantizedWeightRows(const WeightDesc& desc, const WeightSource& source, DType dtype,
                         int64_t row, int64_t count, uint8_t* out);

/// The 8-bit KV cache (--kv-dtype int8 / fp8), the same on every backend that stores one: each
/// token's K (and V) of one KV head, head_dim values, has its own fp32 scale
/// s = max|x| / qmax (1 for an all-zero vector; qmax 127 for int8, 448 for fp8) and codes
/// QuantizeInt8(x, s) or QuantizeFp8(x, s); a kernel reads code x s.
inline constexpr int64_t kKvScaleBytes = sizeof(float);
inline float KvQuantMax(DType kv) { return kv == DType::kInt8 ? kInt8Max : kFp8Max; }

/// Quantises one head's n values (int8 or fp8 `kv`) into `codes`; returns their scale.
float QuantizeKvHead(DType kv, const float* x, int64_t n, uint8_t* codes);

/// What a KV cache of `kv` gives back for one head's n values, in place: the dequantised codes
/// (int8, fp8: Dequantize(code) with QuantizeKvHead's scale), bf16-rounded values (bf16) or
/// the values themselves (fp32).
void RoundKvHead(DType kv, float* x, int64_t n);

/// Bytes one token's K (or V) of one KV head of `head_dim` values takes in a `kv` cache: the
/// values, plus the scale of an 8-bit cache.
inline int64_t KvHeadBytes(DType kv, int64_t head_dim) {
  return head_dim * static_cast<int64_t>(DTypeBytes(kv)) + (IsQuantized(kv) ? kKvScaleBytes : 0);
}

/// The value of code `q` of `dtype` times `scale`.
inline float Dequantize(DType dtype, uint8_t q, float scale) {
  return (dtype == DType::kInt8 ? static_cast<float>(static_cast<int8_t>(q)) : Fp8ToFloat(q)) *
         scale;
}

}  // namespace cb
