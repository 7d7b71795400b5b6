#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace cb::testing {

struct CliResult {
  int exit_code = -1;
  std::string out;  ///< stdout
  std::string err;  ///< stderr
};

/// Runs the clusterbench binary with `args` (shell-quoted here), capturing stdout and stderr.
CliResult RunCli(const std::vector<std::string>& args);
/// Runs any program the same way.
CliResult RunProgram(const std::string& program, const std::vector<std::string>& args);

/// A fresh empty directory under the test results root.
std::string FreshDir(const std::string& name);

/// Files directly in `dir` (sorted).
std::vector<std::string> ListFiles(const std::string& dir);

std::string ReadText(const std::string& path);
void WriteText(const std::string& path, const std::string& text);

/// The shared results root: its ceilings cache is measured once and reused.
std::string SharedResultsDir();
/// Starts `program` with `args` in the background, stdout to /dev/null and stderr to
/// `err_path`; returns its pid.
pid_t Spawn(const std::string& program, const std::vector<std::string>& args,
            const std::string& err_path);
/// Waits up to `seconds` until the file at `path` contains `needle`.
bool WaitForText(const std::string& path, const std::string& needle, double seconds);
/// Waits up to `seconds` for `pid` to exit; its exit code (128 + signal if killed), or -1 on
/// timeout (the process is then killed).
int WaitForExit(pid_t pid, double seconds);

/// Exit status of tests/tools/validate_json.py over `files` against the run schema (0: valid).
int ValidateAgainstSchema(const std::vector<std::string>& files);

}  // namespace cb::testing
