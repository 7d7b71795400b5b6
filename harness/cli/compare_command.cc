// `clusterbench compare BASE NEW`: per-metric changes between two sets of results, with a
// noise test; exit 1 on a regression. The comparison itself is results/compare.h.
#include <cstdio>
#include <memory>

#include "harness/cli/commands.h"
#include "harness/cli/output.h"
#include "results/compare.h"

namespace cb {
namespace {

struct CompareFlags {
  std::string base, next;
  double threshold_pct = 5;
  double alpha = 0.05;
  std::shared_ptr<OutputFlags> output;  ///< --format md|json, -o/--output
};

int Compare(const CompareFlags& f) {
  if (!(f.threshold_pct >= 0)) {
    std::fprintf(stderr, "clusterbench compare: --threshold %g: must be a percentage >= 0\n",
                 f.threshold_pct);
    return 2;
  }
  if (!(f.alpha > 0 && f.alpha < 1)) {
    std::fprintf(stderr, "clusterbench compare: --alpha %g: must be between 0 and 1\n", f.alpha);
    return 2;
  }
  std::vector<LoadedRun> base, next;
  for (auto [path, runs, side] : {std::tuple{&f.base, &base, "BASE"}, {&f.next, &next, "NEW"}}) {
    if (Status s = LoadRunFiles(*path, runs); !s.ok()) {
      std::fprintf(stderr, "clusterbench compare: %s: %s\n", side, s.message().c_str());
      return 2;
    }
  }
  CompareOptions opts;
  opts.threshold_pct = f.threshold_pct;
  opts.alpha = f.alpha;
  CompareReport report = CompareRuns(base, next, opts);
  report.base_source = f.base;
  report.new_source = f.next;
  const std::string text =
      f.output->format == "json" ? CompareToJson(report).dump(2) + "\n" : CompareToMarkdown(report);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fprintf(stderr, "clusterbench compare: %d regression%s, %d improvement%s in %zu series\n",
               report.regressions, report.regressions == 1 ? "" : "s", report.improvements,
               report.improvements == 1 ? "" : "s", report.series.size());
  return report.HasRegression() ? 1 : 0;
}

}  // namespace

CommandFn AddCompareCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "compare",
      "Compare two sets of results metric by metric (runs matched by series, the newest of "
      "each); exit 1 when a change is beyond the noise and worse than --threshold, 0 otherwise, "
      "2 on bad input. See docs/compare-and-report.md");
  auto f = std::make_shared<CompareFlags>();
  cmd->add_option("BASE", f->base, "Baseline: a result JSON file or a directory of them")
      ->required();
  cmd->add_option("NEW", f->next, "Results to judge: a result JSON file or a directory of them")
      ->required();
  cmd->add_option("--threshold", f->threshold_pct,
                  "Percent a significant change must be worse by to count as a regression")
      ->default_val(5);
  cmd->add_option(
         "--alpha", f->alpha,
         "Significance level of the noise test (Mann-Whitney on the runs' raw samples, else "
         "Welch's t-test on their distributions)")
      ->default_val(0.05);
  f->output = AddOutputFlags(cmd, {"md", "json"}, "md");
  return [f] { return Compare(*f); };
}

}  // namespace cb
