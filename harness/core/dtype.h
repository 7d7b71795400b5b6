#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace cb {

enum class DType { kF32 = 0, kBF16 = 1, kF16 = 2 };
inline constexpr int kDTypeCount = 3;

inline std::string_view DTypeName(DType t) {
  switch (t) {
    case DType::kF32:
      return "fp32";
    case DType::kBF16:
      return "bf16";
    case DType::kF16:
      return "fp16";
  }
  return "?";
}

inline std::optional<DType> ParseDType(std::string_view s) {
  if (s == "fp32" || s == "f32") return DType::kF32;
  if (s == "bf16") return DType::kBF16;
  if (s == "fp16" || s == "f16") return DType::kF16;
  return std::nullopt;
}

inline size_t DTypeBytes(DType t) { return t == DType::kF32 ? 4 : 2; }

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
