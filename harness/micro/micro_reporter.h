#pragma once

#include <benchmark/benchmark.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "harness/micro/micro_benchmarks.h"

namespace cb {

/// Summarises the per-repetition runs of one benchmark: median time per iteration, median
/// and max rate over repetitions. Rates are computed from wall time (real_accumulated_time
/// / iterations), so they do not depend on how the library finishes counters.
MicroResult SummarizeRuns(const MicroBenchSpec& spec,
                          const std::vector<benchmark::BenchmarkReporter::Run>& runs);

/// Google Benchmark reporter that turns each benchmark's repetitions into a MicroResult.
/// Aggregate rows (mean/median/stddev) from the library are ignored: statistics are ours.
class MicroReporter : public benchmark::BenchmarkReporter {
 public:
  MicroReporter(const std::vector<MicroBenchSpec>& specs,
                std::function<void(const MicroResult&)> on_result);

  bool ReportContext(const Context& context) override;
  void ReportRuns(const std::vector<Run>& reports) override;
  void Finalize() override;

  /// One result per spec, in spec order; a spec that never reported is a failed result.
  std::vector<MicroResult> Results() const;

 private:
  void Complete(const std::string& name);

  const std::vector<MicroBenchSpec>& specs_;
  std::function<void(const MicroResult&)> on_result_;
  std::map<std::string, size_t> index_;              ///< spec name -> position
  std::map<std::string, std::vector<Run>> pending_;  ///< repetitions seen so far
  std::map<std::string, MicroResult> done_;
  size_t completed_ = 0;
};

}  // namespace cb
