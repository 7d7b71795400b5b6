#include "backends/reference/reference_weights.h"

#include <algorithm>
#include <set>

#include "workloads/quant.h"

namespace cb {
namespace {

/// Identity of a weight's values: two descs with the same identity (a tied LM head and the
/// embedding) share one held copy.
std::string WeightIdentity(const WeightDesc& w) {
  return (w.key.empty() ? w.name : w.key) + "|" + std::to_string(w.rows) + "x" +
         std::to_string(w.cols) + "@" + std::to_string(w.row_offset) + "," +
         std::to_string(w.col_offset) + "/" + std::to_string(w.global_cols) + "|" +
         std::to_string(static_cast<int>(w.init)) + "|" + std::to_string(w.scale);
}

}  // namespace

void RefWeights::Entry::Generate(int64_t row, int64_t count, float* out) const {
  const size_t n = static_cast<size_t>(count * desc_.cols);
  if (quantized()) {
    std::vector<uint8_t> codes(n);
    QuantizedWeightRows(desc_, *source_, quant_, row, count, codes.data());
    for (size_t i = 0; i < n; ++i) out[i] = Dequantize(quant_, codes[i], 1.0f);
    return;
  }
  source_->FillRows(desc_, row, count, out);
  for (size_t i = 0; i < n; ++i) out[i] = RoundTo(dtype_, out[i]);
}

const float* RefWeights::Entry::Rows(int64_t row, int64_t count,
                                     std::vector<float>* scratch) const {
  if (held_) return held_->data() + row * desc_.cols;
  scratch->resize(static_cast<size_t>(count * desc_.cols));
  Generate(row, count, scratch->data());
  return scratch->data();
}

void RefWeights::Load(const OpStream& stream, const WeightSource& source, DType dtype,
                      int64_t hold_limit) {
  source_ = source;
  entries_.clear();
  std::map<std::string, std::shared_ptr<const std::vector<float>>> by_identity;
  const std::set<std::string> quantized =
      IsQuantized(dtype) ? QuantizedWeightNames(stream) : std::set<std::string>{};
  for (const WeightDesc& d : stream.weights) {
    Entry& e = entries_[d.name];
    e.desc_ = d;
    e.source_ = &source_;
    e.dtype_ = HighPrecisionOf(dtype);
    if (quantized.count(d.name)) {
      e.quant_ = dtype;
      e.scale_ = WeightQuantScale(d, dtype);
    }
    if (d.Elements() > hold_limit) continue;
    auto& held = by_identity[WeightIdentity(d) + (e.quantized() ? "|q" : "")];
    if (!held) {
      auto values = std::make_shared<std::vector<float>>(static_cast<size_t>(d.Elements()));
      e.Generate(0, d.rows, values->data());
      held = values;
    }
    e.held_ = held;
  }
}

const RefWeights::Entry* RefWeights::Find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

uint64_t RefWeights::HeldBytes() const {
  std::vector<const std::vector<float>*> seen;
  uint64_t bytes = 0;
  for (const auto& [name, e] : entries_) {
    if (!e.held_ || std::find(seen.begin(), seen.end(), e.held_.get()) != seen.end()) continue;
    seen.push_back(e.held_.get());
    bytes += e.held_->size() * sizeof(float);
  }
  return bytes;
}

}  // namespace cb
