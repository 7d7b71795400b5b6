#include <cstdio>
#include <exception>
#include <map>

#include "backends/comm/mpi_world.h"
#include "harness/cli/commands.h"

namespace {

int RunCommandLine(int argc, char** argv) {
  CLI::App app{
      "clusterbench: runs the same LLM inference workload on CPUs, GPUs and simulated NPUs;\n"
      "measures throughput, latency, MFU/MBU; verifies every backend against a reference.\n"
      "Results go to stdout, progress and errors to stderr. Exit codes: 0 all passed, 1 a\n"
      "benchmark failed or was invalid, 2 bad input, 130 interrupted.",
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
    if (sub->parsed()) {
      try {
        return fn();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "clusterbench: internal error: %s\n", e.what());
        return 1;
      }
    }
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
