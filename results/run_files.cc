#include "results/run_files.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "results/atomic_file.h"
#include "results/prometheus/metrics_mapping.h"
#include "results/record_json.h"

namespace cb {
namespace fs = std::filesystem;
namespace {

/// Loads one file. `required`: a file named on the command line must be a result; one found
/// in a directory may be another kind of JSON (`*is_run` false then).
Status LoadOne(const std::string& path, bool required, LoadedRun* run, bool* is_run) {
  *is_run = false;
  std::string text;
  if (Status s = ReadFile(path, &text); !s.ok()) return s;
  const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    return Status::InvalidInput(path + ": not valid JSON");
  }
  if (!doc.is_object() || !doc.contains("run")) {
    if (required) {
      return Status::InvalidInput(path +
                                  ": not a clusterbench result (no \"run\" object at the top)");
    }
    return Status::Ok();
  }
  run->path = path;
  if (Status s = FromJson(doc, path, &run->record); !s.ok()) return s;
  *is_run = true;
  return Status::Ok();
}

}  // namespace

double RunTimeSeconds(const RunRecord& r) {
  double t = prom::ParseIso8601(r.end_time);
  if (std::isnan(t)) t = prom::ParseIso8601(r.start_time);
  return std::isnan(t) ? 0 : t;
}

Status LoadRunFiles(const std::string& path, std::vector<LoadedRun>* out) {
  out->clear();
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return Status::InvalidInput(path + ": no such file or directory");
  }
  if (!fs::is_directory(path, ec)) {
    LoadedRun run;
    bool is_run = false;
    if (Status s = LoadOne(path, /*required=*/true, &run, &is_run); !s.ok()) return s;
    out->push_back(std::move(run));
    return Status::Ok();
  }
  std::vector<std::string> files;
  for (fs::recursive_directory_iterator it(path, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& e = *it;
    if (!e.is_regular_file(ec) || e.path().extension() != ".json") continue;
    if (e.path().filename().string().starts_with(".")) continue;
    files.push_back(e.path().string());
  }
  if (ec) return Status::InvalidInput(path + ": cannot list the directory: " + ec.message());
  std::sort(files.begin(), files.end());
  for (const std::string& file : files) {
    LoadedRun run;
    bool is_run = false;
    if (Status s = LoadOne(file, /*required=*/false, &run, &is_run); !s.ok()) return s;
    if (is_run) out->push_back(std::move(run));
  }
  if (out->empty()) {
    return Status::InvalidInput(path + ": no clusterbench results in this directory (looked for " +
                                "*.json files with a \"run\" object, recursively)");
  }
  return Status::Ok();
}

}  // namespace cb
