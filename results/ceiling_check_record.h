#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

/// One probe of one rank: the ceilings sampled right before the first measured repetition
/// ("before") or right after the last ("after").
struct CeilingProbeRecord {
  int rank = 0;
  std::string when;                 ///< "before" or "after"
  double mem_read_bytes_per_s = 0;  ///< 0: not measured
  double matmul_flops_per_s = 0;    ///< in the run's dtype; 0: not measured
  double mem_read_s = 0;            ///< wall time the bandwidth probe took
  double matmul_s = 0;              ///< wall time the matmul probe took
};

/// One ceiling of the job (memory read bandwidth, or the matmul peak in the run's dtype):
/// totals over every device, bytes/s or FLOP/s.
struct CeilingFigure {
  double before = 0;   ///< sum of the ranks' probes before the window (0: none)
  double after = 0;    ///< sum of the ranks' probes after it
  double drift = 0;    ///< |before - after| / max(before, after); 0 without both
  double used = 0;     ///< what MFU/MBU divide by: max(before, after), else `cached`
  double cached = 0;   ///< the micro-suite's cached ceiling x devices: the reference figure
  std::string source;  ///< "probes", "cached" or "none" (no figure: no MFU or MBU)
};

/// The `ceiling_check` section of an offline run on a real device: the ceilings MFU and MBU
/// were judged against, the probe samples they came from, and the verdict. A ratio above
/// `max_ratio` or probes that disagree by more than `max_drift` make the run `unstable`
/// (harness/ceiling_check.h).
struct CeilingCheckRecord {
  std::string method;  ///< how the ceilings were obtained (probe kernels and sizes, or why none)
  std::string dtype;   ///< dtype of the matmul ceiling (the run's)
  int devices = 1;
  double max_drift = 0;    ///< the margin: probes further apart than this are a drift
  double max_ratio = 1;    ///< MFU/MBU above this exceed the ceiling
  double cache_bytes = 0;  ///< last-level cache per device (0: unknown); see `notes`
  std::vector<CeilingProbeRecord> probes;
  CeilingFigure memory, matmul;
  std::string verdict = "ok";         ///< "ok" or "unstable"
  std::vector<std::string> findings;  ///< "ceiling_exceeded", "ceiling_drift" (each at most once)
  std::vector<std::string> reasons;   ///< one line per finding, with the figures
  std::vector<std::string> notes;     ///< what was not judged and why
};

nlohmann::json CeilingCheckRecordToJson(const CeilingCheckRecord& c);
Status CeilingCheckRecordFromJson(const nlohmann::json& j, const std::string& origin,
                                  CeilingCheckRecord* out);

}  // namespace cb
