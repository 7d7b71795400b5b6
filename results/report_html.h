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

/// The data the HTML page draws, also embedded in it as JSON: "frontiers" (one per device,
/// model and dtype: every run's point and the Pareto frontier), "usd_bars" and "joules_bars"
/// (the newest run of each series: $/Mtok of output tokens and J per generated token, with
/// provenance), "runs" (the table).
nlohmann::json ReportData(const std::vector<LoadedRun>& runs, const std::string& source);

/// A self-contained HTML page (inline CSS and script, no network): the runs table and SVG
/// charts drawn in the browser from the embedded data. The script writes an element with id
/// "cb-error" if it throws, and sets data-rendered="ok" on <body> when it finished.
std::string RenderReportHtml(const std::vector<LoadedRun>& runs, const std::string& source);

/// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string HtmlEscape(const std::string& s);
/// JSON text safe inside <script>: <, > and & as \u escapes (so no "</script>" or "<!--").
std::string ScriptSafeJson(const nlohmann::json& doc);

}  // namespace cb
