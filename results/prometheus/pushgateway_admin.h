#pragma once

/// Housekeeping of clusterbench's groups on a Pushgateway: list them (its /api/v1/metrics) and
/// delete the stale ones, for `clusterbench push DIR --delete-stale DAYS`.

#include <map>
#include <string>
#include <vector>

#include "harness/core/status.h"
#include "results/prometheus/prometheus_sink.h"

namespace cb::prom {

/// One group of a Pushgateway: its grouping key (job included) and what it says about when it
/// was last seen.
struct GatewayGroup {
  std::map<std::string, std::string> labels;  ///< job and the grouping labels
  double push_time_s = -1;  ///< push_time_seconds: the last successful push (-1: unknown)
  double last_run_s = -1;   ///< clusterbench_last_run_timestamp_seconds (max; -1: none)
};

/// Every group of the gateway (GET URL/api/v1/metrics), bounded by opts.timeout_s.
Status ListGatewayGroups(const PushOptions& opts, std::vector<GatewayGroup>* out);

/// Deletes one group (DELETE URL/metrics/job/JOB/NAME/VALUE...), bounded by opts.timeout_s.
Status DeleteGatewayGroup(const PushOptions& opts, const std::map<std::string, std::string>& key);

/// Why a group of `job` should go, or "" when it stays:
/// - "not seen for N days": its series last ran (clusterbench_last_run_timestamp_seconds, else
///   the last push) more than `max_age_days` before `now_s`;
/// - "superseded by ...": it is grouped by labels this version no longer groups by (`instance`,
///   `Hostname`, `UUID`, as versions before `clusterbench push` did) and its other labels are
///   the grouping key of a group in `current` (pushed now).
std::string StaleReason(const GatewayGroup& g, const std::string& job, double now_s,
                        double max_age_days,
                        const std::vector<std::map<std::string, std::string>>& current);

}  // namespace cb::prom
