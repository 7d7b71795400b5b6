#pragma once

/// Progress of `clusterbench run` on stderr. On a terminal: one status line rewritten in place
/// (run i of n, elapsed time, an ETA, what is happening now), with permanent lines (a run's
/// outcome, warnings) printed above it. Otherwise (a log file, a pipe, CI): plain lines, one per
/// event, as they always were. CLUSTERBENCH_PROGRESS=plain|tty overrides the detection.

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace cb {

class PlanProgress {
 public:
  /// The process's one progress reporter.
  static PlanProgress& Get();

  /// A plan starts now: one entry of `work` per workload, its estimated cost in any unit (the
  /// ETA is the elapsed time scaled by the work left over the work done); `quiet` prints
  /// nothing but what Line() is given.
  void Start(std::vector<double> work, bool quiet);
  /// Run `index` (0-based) starts.
  void BeginRun(size_t index);
  /// What the current run is doing; `fraction` of the run done so far (0-1), or < 0 if unknown.
  /// Plain mode prints "PREFIX WHAT"; terminal mode rewrites the status line.
  void Step(const std::string& prefix, const std::string& what, double fraction = -1);
  /// A permanent line (a run's outcome, a warning): always printed, above the status line.
  void Line(const std::string& text);
  /// The plan ended: the status line is cleared.
  void Finish();

  bool terminal() const { return tty_; }
  /// "1:05" / "1:02:03" for a duration in seconds.
  static std::string Clock(double seconds);
  /// The status line's text for run `index` of `runs`, `done` of `total` work finished
  /// (fractions of the current run included), after `elapsed_s`:
  /// "[3/12] 0:41 elapsed, ETA 2:03 | WHAT" (ETA --:-- until 2% of the work is done).
  static std::string StatusText(size_t index, size_t runs, double done, double total,
                                double elapsed_s, const std::string& what);

 private:
  void Draw(const std::string& text);
  void Clear();

  bool tty_ = false, quiet_ = false, drawn_ = false;
  std::vector<double> work_;  ///< per run
  size_t index_ = 0;
  double fraction_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace cb
