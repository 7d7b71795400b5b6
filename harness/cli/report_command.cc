// `clusterbench report DIR`: a table of every run in a results directory (md, csv) or a
// self-contained HTML page with the interactivity frontier, $/Mtok and J/token charts.
#include <cstdio>
#include <memory>

#include "harness/cli/commands.h"
#include "harness/cli/output.h"
#include "results/report.h"

namespace cb {
namespace {

struct ReportFlags {
  std::string dir;
  std::shared_ptr<OutputFlags> output;  ///< --format, -o/--output
};

int Report(const ReportFlags& f) {
  std::vector<LoadedRun> runs;
  if (Status s = LoadRunFiles(f.dir, &runs); !s.ok()) {
    std::fprintf(stderr, "clusterbench report: %s\n", s.message().c_str());
    return 2;
  }
  std::string text;
  if (Status s = RenderReport(runs, f.output->format, f.dir, &text); !s.ok()) {
    std::fprintf(stderr, "clusterbench report: %s\n", s.message().c_str());
    return 2;
  }
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fprintf(stderr, "clusterbench report: %zu runs%s%s\n", runs.size(),
               f.output->output.empty() ? "" : " -> ", f.output->output.c_str());
  return 0;
}

}  // namespace

CommandFn AddReportCommand(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "report",
      "Report every run of a results directory: a table (md, csv) or a self-contained HTML page "
      "with the interactivity frontier per device and $/Mtok and J/token bars (no network "
      "needed to open it). See docs/compare-and-report.md");
  auto f = std::make_shared<ReportFlags>();
  cmd->add_option("DIR", f->dir, "Results directory (searched recursively) or one result file")
      ->required();
  f->output = AddOutputFlags(cmd, {"md", "csv", "json", "jsonl", "html"}, "md");
  return [f] { return Report(*f); };
}

}  // namespace cb
