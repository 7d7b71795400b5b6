#include "results/report.h"

#include <algorithm>

#include "results/formats.h"
#include "results/report_html.h"

namespace cb {

Status RenderReport(const std::vector<LoadedRun>& runs, const std::string& format,
                    const std::string& source, std::string* out) {
  std::vector<LoadedRun> sorted = runs;
  std::stable_sort(sorted.begin(), sorted.end(), [](const LoadedRun& a, const LoadedRun& b) {
    return a.record.start_time < b.record.start_time;
  });
  if (format == "html") {
    *out = RenderReportHtml(sorted, source);
    return Status::Ok();
  }
  if (format != "md" && format != "csv" && format != "json" && format != "jsonl") {
    return Status::InvalidInput("--format '" + format +
                                "': allowed values are md, csv, json, jsonl, html");
  }
  std::vector<RunRecord> records;
  records.reserve(sorted.size());
  for (const LoadedRun& r : sorted) records.push_back(r.record);
  return FormatRuns(records, format, out);
}

}  // namespace cb
