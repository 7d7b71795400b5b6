#pragma once

/// The Prometheus sinks of `clusterbench run`: a push to a Pushgateway (the batch-job
/// pattern) and a file for node_exporter's textfile collector. Both take the finished runs,
/// after their JSON files are written: a failed push never loses a result.

#include <prometheus/labels.h>

#include <string>
#include <vector>

#include "harness/core/status.h"
#include "results/prometheus/metrics_mapping.h"
#include "results/run_record.h"

namespace cb::prom {

struct PushOptions {
  std::string url;  ///< http://HOST[:PORT][/PATH-PREFIX]; port 9091 by default
  std::string job = "clusterbench";
  double timeout_s = 10;   ///< bound on one attempt (prometheus-cpp has none of its own)
  int retries = 2;         ///< attempts after the first, for timeouts, transport errors, 5xx
  double backoff_s = 0.5;  ///< delay before the first retry, doubled for each next one
  bool quiet = false;      ///< no progress lines on stderr (errors are always printed)
  std::string who = "clusterbench run";  ///< prefix of the lines on stderr
};

/// What happened to one series of a push.
struct PushOutcome {
  LabelList series;    ///< SeriesLabels() of the series (its grouping key with `job`)
  std::string status;  ///< RunStatusLabel() of the run pushed
  std::string method;  ///< "PUT" (replaces the group) or "POST" (replaces what it sends)
  std::string error;   ///< empty: pushed
};

/// The grouping key as prometheus::Gateway puts it into the URL path: values that are not
/// URL-safe use the Pushgateway's "name@base64" form.
prometheus::Labels GroupingPathLabels(const LabelList& labels);

/// Splits a Pushgateway URL into what prometheus::Gateway takes: "http://host" and "port"
/// (a path prefix rides on the port: "9091/prefix"). kInvalidInput naming the flag otherwise.
Status ParsePushUrl(const std::string& url, std::string* host, std::string* port,
                    const std::string& flag = "--push");

/// Pushes the latest run of each series (LatestPerSeries) to its own group of the Pushgateway:
/// job=`opts.job` plus the series labels (never a run id, host or UUID). A publishable run
/// replaces its group (HTTP PUT, with clusterbench_last_success_timestamp_seconds); any other
/// run only replaces the metrics it sends (HTTP POST: status, NaN for the performance figures,
/// and the series' last success among `runs` if there is one), so the last success stays.
/// Pushing the same runs again leaves the gateway as it was (idempotent).
/// Each attempt is bounded by opts.timeout_s; timeouts, transport errors and 5xx responses are
/// retried with backoff. Non-OK (kInternal) when any run could not be pushed; the message
/// names the URL and the last error. Once the gateway is unreachable the remaining runs are
/// not attempted.
Status PushRuns(const std::vector<RunRecord>& runs, const PushOptions& opts,
                std::vector<PushOutcome>* outcomes = nullptr);

/// Writes the runs (the latest per series) to `path` in the text exposition format,
/// atomically, for node_exporter's textfile collector. A series whose run is not ok keeps the
/// clusterbench_last_success_timestamp_seconds that the previous file had for it.
Status WriteTextfile(const std::string& path, const std::vector<RunRecord>& runs);

/// The exposition text of `runs` (the latest per series), as the textfile has it.
std::string TextExposition(const std::vector<RunRecord>& runs);

}  // namespace cb::prom

namespace cb::prom {

/// Exit code of `clusterbench run` when every benchmark passed but publishing (push or
/// textfile) failed; a failed benchmark's 1 takes precedence.
inline constexpr int kPublishFailedExitCode = 3;

/// What `clusterbench run --push URL --textfile PATH` asks for.
struct PublishOptions {
  std::string textfile;
  PushOptions push;
};

/// Writes the textfile, then pushes (both are tried); reports each failure on stderr.
/// Returns 0, or kPublishFailedExitCode when either failed.
int Publish(const std::vector<RunRecord>& runs, const PublishOptions& opts);

}  // namespace cb::prom
