#include "results/run_record.h"

namespace cb {

std::string_view ProvenanceName(Provenance p) {
  switch (p) {
    case Provenance::kMeasured:
      return "measured";
    case Provenance::kModelled:
      return "modelled";
    case Provenance::kExtrapolated:
      return "extrapolated";
  }
  return "?";
}

const Metric* RunRecord::FindMetric(const std::string& name) const {
  for (const Metric& m : metrics) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

}  // namespace cb
