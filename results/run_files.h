#pragma once

#include <string>
#include <vector>

#include "harness/core/status.h"
#include "results/run_record.h"

namespace cb {

/// A result file and the run it holds.
struct LoadedRun {
  std::string path;
  RunRecord record;
};

/// Loads the run results at `path`: one result file, or a directory searched recursively for
/// *.json files (hidden files, such as an atomic write in progress, are skipped; JSON files that
/// are not run results, such as the ceilings cache, are ignored). Fails with kInvalidInput
/// naming the file when `path` does not exist, a file is not readable JSON or not a valid
/// result, or a directory holds no results. Runs come back sorted by path.
Status LoadRunFiles(const std::string& path, std::vector<LoadedRun>* out);

/// Seconds since the epoch of a run's end (its start where the end is missing), 0 if neither
/// parses: orders the runs of a series.
double RunTimeSeconds(const RunRecord& r);

}  // namespace cb
