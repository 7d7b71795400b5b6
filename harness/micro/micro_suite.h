#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "harness/core/status.h"
#include "harness/micro/micro_benchmarks.h"

namespace cb {

enum class MicroFormat { kTable, kJson };

/// Options of `clusterbench micro`.
struct MicroOptions {
  /// ECMAScript regex, searched in each benchmark name ("mem/read", "mem/copy",
  /// "matmul/<fp32|bf16>/m<M>_n<N>_k<K>"); a leading '-' negates it. Empty = all.
  std::string filter;
  double min_time_s = 0.2;  ///< minimum measured time of each repetition, > 0
  int repetitions = 3;      ///< >= 1; figures are medians over repetitions
  MicroFormat format = MicroFormat::kTable;
  bool list_only = false;  ///< print the matching names (one a line) and run nothing
};

/// Parses "table" or "json"; nullopt otherwise.
std::optional<MicroFormat> ParseMicroFormat(std::string_view s);

/// The specs `filter` selects (see MicroOptions::filter); kInvalidInput for a bad regex.
Status SelectMicroBenchmarks(const std::string& filter, std::vector<MicroBenchSpec>* out);

/// Table of results (name, shape, dtype, time, GFLOP/s, GB/s, kernel) as printed by the CLI.
std::string FormatMicroTable(const std::vector<MicroResult>& results);

/// JSON document of the results with the host, CPU, ISA, threads and settings.
std::string FormatMicroJson(const std::vector<MicroResult>& results, const MicroOptions& opts);

/// `clusterbench micro`: runs the selected benchmarks, prints the results to stdout as a
/// table (row by row as they finish) or one JSON document, progress to stderr. Returns the
/// exit code: 0 all passed, 1 a benchmark failed, 2 bad options (message on stderr).
int RunMicroCommand(const MicroOptions& opts);

}  // namespace cb
