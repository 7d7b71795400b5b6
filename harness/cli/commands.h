#pragma once

#include <CLI/CLI.hpp>

namespace cb {

/// Each subcommand registers its flags on `app` and returns a callback that runs it and
/// yields the process exit code.
using CommandFn = std::function<int()>;

CommandFn AddRunCommand(CLI::App& app);
CommandFn AddModelsCommand(CLI::App& app);
CommandFn AddBackendsCommand(CLI::App& app);
CommandFn AddMicroCommand(CLI::App& app);
CommandFn AddCostCommand(CLI::App& app);
CommandFn AddServeCommand(CLI::App& app);
CommandFn AddServeModelCommand(CLI::App& app);
CommandFn AddCompareHardwareCommand(CLI::App& app);
CommandFn AddCalibrateCommand(CLI::App& app);
CommandFn AddCompareCommand(CLI::App& app);
CommandFn AddReportCommand(CLI::App& app);
CommandFn AddPushCommand(CLI::App& app);

}  // namespace cb
