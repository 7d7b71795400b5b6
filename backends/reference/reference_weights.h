#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness/core/dtype.h"
#include "harness/core/status.h"
#include "workloads/op_stream.h"
#include "workloads/weights.h"

namespace cb {

/// The reference backend's weights, fp32 rounded to the session dtype; in an fp8/int8 session
/// the weights QuantizedWeightNames() lists hold their codes' values (int8 integers, e4m3
/// values), to be multiplied by scale(), and the others are rounded to bf16. Weights up to
/// `hold_limit` elements (norm gains, biases, small matrices) are held; larger ones are made
/// again from the counter-based generator, rows at a time, whenever an op reads them, so
/// verifying a model needs little memory beyond the backend's own. Held and regenerated rows
/// are the same numbers, and every op reads rows through Rows(), so the two give bit-identical
/// results (tests/conformance/reference_streaming_test.cc).
class RefWeights {
 public:
  /// One weight: its shape and, when held, its values.
  class Entry {
   public:
    const WeightDesc& desc() const { return desc_; }
    /// The factor of every stored value: the quantisation scale, 1 for other weights.
    float scale() const { return scale_; }
    bool quantized() const { return quant_ != DType::kF32; }
    /// Rows [row, row + count) as fp32 [count, cols]: the held values, or generated into
    /// `scratch` (resized as needed; give each thread its own).
    const float* Rows(int64_t row, int64_t count, std::vector<float>* scratch) const;
    /// All values; only for held weights.
    const std::vector<float>& Held() const { return *held_; }
    bool held() const { return held_ != nullptr; }

   private:
    friend class RefWeights;
    WeightDesc desc_;
    std::shared_ptr<const std::vector<float>> held_;
    const WeightSource* source_ = nullptr;
    DType dtype_ = DType::kF32;
    DType quant_ = DType::kF32;  ///< int8 or fp8 for a quantised weight
    float scale_ = 1.0f;
    void Generate(int64_t row, int64_t count, float* out) const;
  };

  void Load(const OpStream& stream, const WeightSource& source, DType dtype, int64_t hold_limit);
  /// nullptr when the stream has no weight of that name.
  const Entry* Find(const std::string& name) const;
  const Entry& At(const std::string& name) const { return *Find(name); }
  uint64_t HeldBytes() const;

 private:
  WeightSource source_{0};
  std::map<std::string, Entry> entries_;
};

}  // namespace cb
