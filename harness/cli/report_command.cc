// `clusterbench report DIR`: a table of every run in a results directory (md, csv) or a
// self-contained HTML page with the interactivity frontier, $/Mtok and J/token charts.
#include <cstdio>
#include <memory>

#include "harness/cli/commands.h"
#include "results/atomic_file.h"
#include "results/report.h"

namespace cb {
namespace {

struct ReportFlags {
  std::string dir;
  std::string format = "md";
  std::string output;
};

int Report(const ReportFlags& f) {
  std::vector<LoadedRun> runs;
  if (Status s = LoadRunFiles(f.dir, &runs); !s.ok()) {
    std::fprintf(stderr, "clusterbench report: %s\n", s.message().c_str());
    return 2;
  }
  std::string text;
  if (Status s = RenderReport(runs, f.format, f.dir, &text); !s.ok()) {
    std::fprintf(stderr, "clusterbench report: %s\n", s.message().c_str());
    return 2;
  }
  if (f.output.empty()) {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else if (Status s = WriteFileAtomically(f.output, text); !s.ok()) {
    std::fprintf(stderr, "clusterbench report: --output: %s\n", s.message().c_str());
    return 2;
  } else {
    std::fprintf(stderr, "clusterbench report: %zu runs -> %s\n", runs.size(), f.output.c_str());
  }
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
  cmd->add_option("--format", f->format, "Output format")
      ->check(CLI::IsMember({"md", "csv", "html"}))
      ->default_val("md");
  cmd->add_option("--output,-o", f->output, "Write to FILE instead of stdout");
  return [f] { return Report(*f); };
}

}  // namespace cb
