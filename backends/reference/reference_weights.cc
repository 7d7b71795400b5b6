#include "backends/reference/reference_weights.h"

#include <algorithm>

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

const float* RefWeights::Entry::Rows(int64_t row, int64_t count,
                                     std::vector<float>* scratch) const {
  if (held_) return held_->data() + row * desc_.cols;
  scratch->resize(static_cast<size_t>(count * desc_.cols));
  source_->FillRows(desc_, row, count, scratch->data());
  for (float& v : *scratch) v = RoundTo(dtype_, v);
  return scratch->data();
}

void RefWeights::Load(const OpStream& stream, const WeightSource& source, DType dtype,
                      int64_t hold_limit) {
  source_ = source;
  entries_.clear();
  std::map<std::string, std::shared_ptr<const std::vector<float>>> by_identity;
  for (const WeightDesc& d : stream.weights) {
    Entry& e = entries_[d.name];
    e.desc_ = d;
    e.source_ = &source_;
    e.dtype_ = dtype;
    if (d.Elements() > hold_limit) continue;
    auto& held = by_identity[WeightIdentity(d)];
    if (!held) {
      auto values = std::make_shared<std::vector<float>>(static_cast<size_t>(d.Elements()));
      source_.FillRows(d, 0, d.rows, values->data());
      for (float& v : *values) v = RoundTo(dtype, v);
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
