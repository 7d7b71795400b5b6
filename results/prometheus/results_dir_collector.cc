#include "results/prometheus/results_dir_collector.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "results/atomic_file.h"
#include "results/prometheus/metrics_mapping.h"
#include "results/record_json.h"

namespace cb::prom {
namespace fs = std::filesystem;

bool ResultsDirCollector::ScanLocked() const {
  bool changed = !scanned_;
  scanned_ = true;
  std::set<std::string> present;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir_, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& e = *it;
    if (!e.is_regular_file(ec) || e.path().extension() != ".json") continue;
    const std::string path = e.path().string();
    // Temporary files of an atomic write in progress start with '.'.
    if (e.path().filename().string().starts_with(".")) continue;
    const int64_t mtime = e.last_write_time(ec).time_since_epoch().count();
    const uintmax_t size = e.file_size(ec);
    if (ec) continue;
    present.insert(path);
    auto found = entries_.find(path);
    if (found != entries_.end() && found->second.mtime_ns == mtime && found->second.size == size)
      continue;
    Entry entry;
    entry.mtime_ns = mtime;
    entry.size = size;
    std::string text;
    if (ReadFile(path, &text).ok()) {
      const nlohmann::json doc = nlohmann::json::parse(text, nullptr, false);
      entry.is_run = !doc.is_discarded() && doc.is_object() && doc.contains("run") &&
                     FromJson(doc, path, &entry.record).ok();
    }
    entries_[path] = std::move(entry);
    changed = true;
  }
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (!present.count(it->first)) {
      it = entries_.erase(it);
      changed = true;
    } else {
      ++it;
    }
  }
  return changed;
}

void ResultsDirCollector::Rebuild() const {
  std::vector<const RunRecord*> records;
  size_t ignored = 0;
  for (const auto& [path, e] : entries_) {
    if (e.is_run) {
      records.push_back(&e.record);
    } else {
      ++ignored;
    }
  }
  const size_t runs = records.size();
  const std::vector<SeriesLatest> series = LatestPerSeries(records);
  FamilySet set;
  for (const SeriesLatest& s : series) {
    AddOptions opts;
    opts.last_success_s = s.last_success_s;
    set.AddRun(*s.latest, opts);
  }
  set.AddGauge("clusterbench_serve_files", "Files in the served results directory, by state.",
               {{"state", "run"}}, static_cast<double>(runs));
  set.AddGauge("clusterbench_serve_files", "Files in the served results directory, by state.",
               {{"state", "ignored"}}, static_cast<double>(ignored));
  set.AddGauge("clusterbench_serve_series", "Series exposed (the latest run of each).", {},
               static_cast<double>(series.size()));
  set.AddCounter("clusterbench_serve_reloads_total",
                 "Times the served results directory was re-read after a change.", {},
                 static_cast<double>(reloads_));
  families_ = set.Families();
}

size_t ResultsDirCollector::Refresh() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (ScanLocked()) {
    ++reloads_;
    Rebuild();
  }
  size_t runs = 0;
  for (const auto& [p, e] : entries_) runs += e.is_run;
  return runs;
}

std::vector<prometheus::MetricFamily> ResultsDirCollector::Collect() const {
  Refresh();
  std::lock_guard<std::mutex> lock(mu_);
  return families_;
}

}  // namespace cb::prom
