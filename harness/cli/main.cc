#include <cstdio>
#include <exception>
#include <map>

#include "backends/comm/mpi_world.h"
#include "harness/cli/commands.h"
#include "harness/cli/output.h"

namespace {

/// Runs a command, its stdout sent to -o/--output FILE when given (rank 0 only).
int RunWithOutput(const CLI::App* sub, const cb::CommandFn& fn) {
  const auto out = cb::OutputFlagsOf(sub);
  cb::StdoutToFile file;
  const bool redirect = out && !out->output.empty() && cb::World::Get().rank() == 0;
  if (redirect) {
    if (cb::Status s = file.Open(out->output); !s.ok()) {
      std::fprintf(stderr, "clusterbench %s: %s\n", sub->get_name().c_str(), s.message().c_str());
      return 2;
    }
  }
  int code = 1;
  try {
    code = fn();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "clusterbench: internal error: %s\n", e.what());
  }
  if (redirect) {
    if (cb::Status s = file.Close(code != 2 && code != 130); !s.ok()) {
      std::fprintf(stderr, "clusterbench %s: %s\n", sub->get_name().c_str(), s.message().c_str());
      return code == 0 ? 1 : code;
    }
  }
  return code;
}

int RunCommandLine(int argc, char** argv) {
  CLI::App app{
      "clusterbench: runs the same LLM inference workload on CPUs, GPUs and simulated NPUs;\n"
      "measures throughput, latency, MFU/MBU, energy and cost; verifies every backend against a\n"
      "reference. Results go to stdout (or -o FILE), progress and errors to stderr.\n"
      "Exit codes:\n"
      "  0    everything passed\n"
      "  1    a benchmark failed or was invalid; compare: a regression\n"
      "  2    bad input (usage, an unknown name, a malformed or impossible config)\n"
      "  3    run, push: every benchmark passed but publishing to Prometheus failed\n"
      "  130  interrupted (Ctrl-C)",
      "clusterbench"};
  app.set_version_flag("--version", CLUSTERBENCH_VERSION);
  app.require_subcommand(1);
  std::map<const CLI::App*, cb::CommandFn> commands;
  auto add = [&](cb::CommandFn (*adder)(CLI::App&)) {
    const size_t before = app.get_subcommands({}).size();
    cb::CommandFn fn = adder(app);
    commands[app.get_subcommands({})[before]] = std::move(fn);
  };
  add(cb::AddRunCommand);
  add(cb::AddModelsCommand);
  add(cb::AddBackendsCommand);
  add(cb::AddMicroCommand);
  add(cb::AddCostCommand);
  add(cb::AddServeCommand);
  add(cb::AddServeModelCommand);
  add(cb::AddCompareHardwareCommand);
  add(cb::AddCalibrateCommand);
  add(cb::AddCompareCommand);
  add(cb::AddReportCommand);
  add(cb::AddPushCommand);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "clusterbench: %s\nRun with --help for usage.\n", e.what());
    return 2;
  }
  for (const auto& [sub, fn] : commands) {
    if (sub->parsed()) return RunWithOutput(sub, fn);
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // Under mpirun/srun every rank initialises MPI here; a plain process never touches it.
  if (cb::Status s = cb::World::Init(&argc, &argv, 300); !s.ok()) {
    std::fprintf(stderr, "clusterbench: %s\n", s.message().c_str());
    return 1;
  }
  const int code = RunCommandLine(argc, argv);
  cb::World::Get().Finalize();
  return code;
}
