#include "results/run_status.h"

namespace cb {

std::string RunStatusLabel(const RunRecord& r) {
  if (r.status == "ok") {
    if (r.Publishable()) return "ok";
    return r.validity && r.validity->label == "shortened" ? "shortened" : "unstable";
  }
  for (const char* s : {"invalid", "failed", "skipped"}) {
    if (r.status == s) return s;
  }
  return "failed";
}

}  // namespace cb
