#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "results/frontier.h"
#include "results/run_files.h"

namespace cb {

/// The operating point of one run for the interactivity frontier: interactivity from
/// interactivity_tokens_per_second_per_user, else 1 / tpot_seconds; throughput from
/// output_tokens_per_second_per_device, else decode_tokens_per_second / devices (the cost
/// record's device count, else the cluster's world size, else 1). nullopt when the run is not ok
/// or either figure is missing or not positive.
std::optional<FrontierPoint> RunFrontierPoint(const RunRecord& r);

/// The data the HTML page draws, also embedded in it as JSON: "frontiers" (one per model, a
/// "series" per device/dtype/backend: the newest publishable run of each series as a point with
/// its label, $/Mtok and J/token, and the Pareto frontier), "usd_bars" and "joules_bars" (the
/// newest publishable run of each series: $/Mtok of output tokens and J per token, with
/// provenance), "nights" (SinceLastNight), "runs" (the table).
nlohmann::json ReportData(const std::vector<LoadedRun>& runs, const std::string& source);

/// A self-contained HTML page (inline CSS and script, no network): the runs table and SVG
/// charts drawn in the browser from the embedded data. The script writes an element with id
/// "cb-error" if it throws, and sets data-rendered="ok" on <body> when it finished.
std::string RenderReportHtml(const std::vector<LoadedRun>& runs, const std::string& source);

/// When `runs` come from nights (paths .../nights/NIGHT/...; ci/nightly's layout) and there are at
/// least two: the comparison of the latest night with the one before (clusterbench compare's
/// matching, noise test and verdicts at the default threshold): {"base", "new", "threshold_pct",
/// "regressions", "improvements", "series": [{"label", "base_status", "new_status", "metrics":
/// [{"name", "unit", "how", "base", "new", "change_pct", "better", "verdict"}]}], "only_base",
/// "only_new"}; null otherwise.
nlohmann::json SinceLastNight(const std::vector<LoadedRun>& runs);
/// The page's "Since last night" section from SinceLastNight()'s data ("" for null).
std::string NightsHtml(const nlohmann::json& nights);

/// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string HtmlEscape(const std::string& s);
/// JSON text safe inside <script>: <, > and & as \u escapes (so no "</script>" or "<!--").
std::string ScriptSafeJson(const nlohmann::json& doc);

}  // namespace cb
