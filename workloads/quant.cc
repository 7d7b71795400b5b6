#include "workloads/quant.h"

#include <algorithm>
#include <array>
#include <cmath>

namespace cb {
namespace {

std::array<float, 256> MakeFp8Table() {
  std::array<float, 256> t{};
  for (int c = 0; c < 256; ++c) {
    const int e = (c >> 3) & 15, m = c & 7;
    float v = e == 0 ? std::ldexp(static_cast<float>(m), -9)  // subnormal: m / 8 x 2^-6
                     : std::ldexp(1.0f + m / 8.0f, e - 7);
    if (e == 15 && m == 7) v = NAN;
    t[c] = (c & 0x80) ? -v : v;
  }
  return t;
}

}  // namespace

int8_t QuantizeInt8(float x, float scale) {
  const float q = std::nearbyint(x / scale);  // the default rounding mode: to nearest even
  return static_cast<int8_t>(std::clamp(q, -kInt8Max, kInt8Max));
}

uint8_t FloatToFp8(float x) {
  if (std::isnan(x)) return 0x7f;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const double a = std::fabs(static_cast<double>(x));
  if (a >= kFp8Max) return sign | 0x7e;
  int e2;  // a = f x 2^e2, f in [0.5, 1)
  std::frexp(a, &e2);
  const int e = std::max(e2 - 1, -6);  // the exponent of a's binade; subnormals below 2^-6
  // Three fraction bits at exponent e: units of 2^(e - 3), rounded to nearest even.
  const double units = std::nearbyint(std::ldexp(a, 3 - e));
  if (a == 0 || units == 0) return sign;
  if (e == -6 && units < 8) return sign | static_cast<uint8_t>(units);  // subnormal
  // units in [8, 16]: 16 carries into the next binade (mantissa 0).
  const int biased = e + 7 + (units >= 16 ? 1 : 0);
  const int mant = units >= 16 ? 0 : static_cast<int>(units) - 8;
  const int code = (biased << 3) | mant;
  return sign | static_cast<uint8_t>(std::min(code, 0x7e));
}

float Fp8ToFloat(uint8_t code) {
  static const std::array<float, 256> table = MakeFp8Table();
  return table[code];
}

float AbsMaxScale(const float* x, int64_t n, float qmax) {
  float m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  return m > 0 ? m / qmax : 1.0f;
}

void QuantizeRowsInt8(const float* x, int64_t rows, int64_t k, int64_t ld, int8_t* q,
                      float* scale) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ld;
    scale[r] = AbsMaxScale(xr, k, kInt8Max);
    for (int64_t c = 0; c < k; ++c) q[r * k + c] = QuantizeInt8(xr[c], scale[r]);
  }
}

void FakeQuantizeActivationRow(DType dtype, float* x, int64_t k) {
  if (dtype == DType::kInt8) {
    const float s = AbsMaxScale(x, k, kInt8Max);
    for (int64_t c = 0; c < k; ++c) x[c] = QuantizeInt8(x[c], s) * s;
  } else if (dtype == DType::kFP8) {
    for (int64_t g = 0; g < k; g += kFp8Block) {
      const int64_t n = std::min(kFp8Block, k - g);
      const float s = AbsMaxScale(x + g, n, kFp8Max);
      for (int64_t c = g; c < g + n; ++c) x[c] = Fp8ToFloat(QuantizeFp8(x[c], s)) * s;
    }
  }
}

float QuantizeKvHead(DType kv, const float* x, int64_t n, uint8_t* codes) {
  const float s = AbsMaxScale(x, n, KvQuantMax(kv));
  for (int64_t i = 0; i < n; ++i) {
    codes[i] =
        kv == DType::kInt8 ? static_cast<uint8_t>(QuantizeInt8(x[i], s)) : QuantizeFp8(x[i], s);
  }
  return s;
}

void RoundKvHead(DType kv, float* x, int64_t n) {
  if (IsQuantized(kv)) {
    std::vector<uint8_t> codes(static_cast<size_t>(n));
    const float s = QuantizeKvHead(kv, x, n, codes.data());
    for (int64_t i = 0; i < n; ++i) x[i] = Dequantize(kv, codes[i], s);
  } else if (kv == DType::kBF16) {
    for (int64_t i = 0; i < n; ++i) x[i] = RoundTo(DType::kBF16, x[i]);
  }
}

float WeightQuantScale(const WeightDesc& desc, DType dtype) {
  return desc.scale / (dtype == DType::kInt8 ? kInt8Max : kFp8Max);
}

std::set<std::string> QuantizedWeightNames(const OpStream& stream) {
  std::set<std::string> names;
  for (const Op& op : stream.ops) {
    if (op.kind == OpKind::kMatMul) names.insert(op.weights.begin(), op.weights.end());
    if (op.kind == OpKind::kMoeExperts) names.insert(op.weights.begin(), op.weights.end());
  }
  return names;
}

void QuantizedWeightRows(const WeightDesc& desc, const WeightSource& source, DType dtype,
                         int64_t row, int64_t count, uint8_t* out) {
  std::vector<float> v(static_cast<size_t>(count * desc.cols));
  source.FillRows(desc, row, count, v.data());
  const float s = WeightQuantScale(desc, dtype);
  for (size_t i = 0; i < v.size(); ++i) {
    out[i] =
        dtype == DType::kInt8 ? static_cast<uint8_t>(QuantizeInt8(v[i], s)) : QuantizeFp8(v[i], s);
  }
}

}  // namespace cb
