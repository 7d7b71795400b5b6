#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "results/run_record.h"

namespace cb::prom {

/// Exposes the latest run of each series found in a results directory (searched
/// recursively for run files; other JSON files such as the ceilings cache are ignored).
/// Every Collect() (one per scrape) checks the directory and re-reads the files that were
/// added, changed or removed since the previous one, so new results appear at the next scrape.
class ResultsDirCollector : public prometheus::Collectable {
 public:
  explicit ResultsDirCollector(std::string dir) : dir_(std::move(dir)) {}
  std::vector<prometheus::MetricFamily> Collect() const override;

  /// Rescans now; returns the number of run files loaded.
  size_t Refresh() const;

 private:
  struct Entry {
    int64_t mtime_ns = 0;
    uintmax_t size = 0;
    bool is_run = false;
    RunRecord record;
  };
  /// Rebuilds families_ from entries_ (caller holds mu_).
  void Rebuild() const;
  bool ScanLocked() const;

  std::string dir_;
  mutable std::mutex mu_;
  mutable std::map<std::string, Entry> entries_;
  mutable std::vector<prometheus::MetricFamily> families_;
  mutable uint64_t reloads_ = 0;
  mutable bool scanned_ = false;
};

}  // namespace cb::prom
