#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

/// One measured request of a serving scenario, in seconds from the start of the measured
/// pass on the device clock.
struct RequestSample {
  double arrival_s = 0;  ///< scheduled arrival (latency is timed from here)
  double admitted_s = 0;
  double first_token_s = 0;
  double finish_s = 0;
  int64_t prompt_len = 0, output_len = 0;
  /// Time per output token after the first; meaningful only for output_len > 1.
  double Tpot() const { return (finish_s - first_token_s) / static_cast<double>(output_len - 1); }
  double Ttft() const { return first_token_s - arrival_s; }
};

/// The `serving` section of a single-stream or server run: its settings and what happened.
struct ServingRecord {
  std::string load;         ///< "poisson", "gamma:CV", "closed-loop"
  double target_rate = 0;   ///< requests/s (0 in closed loop)
  int64_t concurrency = 0;  ///< requests in flight in closed loop (0 in open loop)
  std::string prompt_dist, output_dist;
  int64_t max_batch = 0;  ///< sequence slots of the running batch
  int64_t max_prefill_tokens = 0;
  int64_t kv_page_tokens = 0, kv_pages = 0, kv_pages_peak = 0;
  std::string kv_note;  ///< the allocator governs admission; backend storage stays slot-based
  int64_t warmup_requests = 0;
  int64_t steps = 0;
  int64_t max_step_prefill_tokens = 0;  ///< largest number of prompt tokens in one step
  double mean_running_batch = 0;        ///< sequences per step, averaged over steps
  double duration_s = 0;                ///< first scheduled arrival to last completion
  double slo_ttft_s = 0, slo_tpot_s = 0;
  /// A simulated pool of several attention groups: the pass served one group's share of the
  /// traffic (rate / replicas) and stands for `replicas` identical groups, so throughputs,
  /// tokens and energy are the pool's (schema 1.2; 1 elsewhere).
  int64_t replicas = 1;
  std::vector<RequestSample> requests;
};

/// A 95%-confidence upper bound of a latency percentile from its samples (the order statistic
/// LoadGen's early stopping uses); `bounded` false when there are too few samples.
struct PercentileBound {
  std::string metric;
  double percentile = 0;  ///< 90, 99
  int64_t samples = 0;
  int64_t min_samples = 0;  ///< samples needed for a bound
  bool bounded = false;
  double upper_bound = 0;  ///< s, when bounded
};

/// The `validity` section: the rules a run was checked against and what they found.
struct ValidityRecord {
  std::string label = "valid";  ///< "valid", "shortened", "unstable", "invalid" (strict)
  bool shortened = false, unstable = false, strict = false;
  std::vector<std::string> reasons;
  double min_duration_s = 0, duration_s = 0;
  int64_t min_requests = 0, requests = 0;
  double max_cv = 0, cv = 0;  ///< max_cv 0: not checked
  std::string cv_of;          ///< what the CV was computed over
  std::vector<PercentileBound> percentile_bounds;
};

/// The `sweep` section of a run that is one point of a sweep.
struct SweepRecord {
  std::string group;  ///< same for every point of one sweep
  std::string axis;   ///< "batch" or "rate"
  double value = 0;
  double at_interactivity = 0;  ///< 0: none asked
};

nlohmann::json ServingRecordToJson(const ServingRecord& s);
nlohmann::json ValidityRecordToJson(const ValidityRecord& v);
nlohmann::json SweepRecordToJson(const SweepRecord& s);
Status ServingRecordFromJson(const nlohmann::json& j, const std::string& origin,
                             ServingRecord* out);
Status ValidityRecordFromJson(const nlohmann::json& j, const std::string& origin,
                              ValidityRecord* out);
Status SweepRecordFromJson(const nlohmann::json& j, const std::string& origin, SweepRecord* out);

}  // namespace cb
