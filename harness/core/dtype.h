#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace cb {

/// Compute dtypes. kFP8: e4m3 weights with 128x128 block scales and per-token-group (1x128)
/// activation scales, as DeepSeek-V3 serves them; kInt8: W8A8, per-output-channel symmetric
/// int8 weights and per-token dynamic int8 activations with int32 accumulation (Ascend's
/// serving precision). Norms, softmax, router and attention math stay in higher precision.
enum class DType { kF32 = 0, kBF16 = 1, kF16 = 2, kFP8 = 3, kInt8 = 4 };
inline constexpr int kDTypeCount = 5;

/// Names accepted by --dtype and the suite's `dtype`, for error messages.
inline constexpr const char* kDTypeNames = "fp32, bf16, fp16, fp8, int8";

inline std::string_view DTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "fp32";
    case DType::kBF16:
      return "bf16";
    case DType::kF16:
      return "fp16";
    case DType::kFP8:
      return "fp8";
    case DType::kInt8:
      return "int8";
  }
  return "?";
}

inline std::optional<DType> ParseDType(std::string_view s) {
  if (s == "fp32" || s == "f32") return DType::kF32;
  if (s == "bf16") return DType::kBF16;
  if (s == "fp16" || s == "f16") return DType::kF16;
  if (s == "fp8") return DType::kFP8;
  if (s == "int8") return DType::kInt8;
  return std::nullopt;
}

/// Bytes of one stored element (the scales of fp8 and int8, one per 128x128 block or per
/// channel/token, are not counted: under 0.1% of the data).
inline size_t DTypeBytes(DType t) {
  switch (t) {
    case DType::kF32:
      return 4;
    case DType::kBF16:
    case DType::kF16:
      return 2;
    case DType::kFP8:
    case DType::kInt8:
      return 1;
  }
  return 4;
}

/// True for the 8-bit compute dtypes (quantised weights and activations).
inline bool IsQuantized(DType t) { return t == DType::kFP8 || t == DType::kInt8; }

/// The KV cache's dtype when the workload names none: the compute dtype, except that 8-bit
/// compute keeps a bf16 cache (what DeepSeek/SGLang and CloudMatrix-Infer serve by default).
inline DType DefaultKvDType(DType compute) { return IsQuantized(compute) ? DType::kBF16 : compute; }

/// bf16 storage as the upper 16 bits of an fp32, rounded to nearest even.
inline uint16_t FloatToBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40);  // NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

inline float Bf16ToFloat(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

/// Rounds an fp32 value to the precision of `t` and back (identity for fp32).
inline float RoundTo(DType t, float f) {
  return t == DType::kBF16 ? Bf16ToFloat(FloatToBf16(f)) : f;
}

}  // namespace cb
