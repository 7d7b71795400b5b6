#pragma once

/// The one handling of `--format` and `-o/--output FILE` for every command: each command
/// registers them here; main() sends the command's stdout to FILE (written atomically: a
/// temporary file in FILE's directory, renamed when the command ends) when -o is given.

#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "harness/core/status.h"

namespace cb {

struct OutputFlags {
  std::string format;                ///< one of `formats` (empty for commands without --format)
  std::string output;                ///< -o/--output FILE; empty: stdout
  std::vector<std::string> formats;  ///< what this command offers
};

/// Registers `--format F` (one of `formats`, default `fallback`; anything else is a usage error,
/// exit 2, naming the allowed values) and `-o,--output FILE` on `cmd`. An empty `formats`
/// registers only -o/--output.
std::shared_ptr<OutputFlags> AddOutputFlags(CLI::App* cmd, std::vector<std::string> formats,
                                            const std::string& fallback);

/// The flags registered for `cmd`, or nullptr.
std::shared_ptr<OutputFlags> OutputFlagsOf(const CLI::App* cmd);

/// stdout into a file for the life of the object: Open() before the command runs (kInvalidInput
/// naming -o/--output when the file cannot be created), Close(keep) after it: renamed over FILE
/// when `keep`, else removed (bad input or an interrupted command leaves FILE as it was).
class StdoutToFile {
 public:
  Status Open(const std::string& path);
  Status Close(bool keep);
  ~StdoutToFile();

 private:
  std::string path_, temp_;
  int saved_fd_ = -1;
};

}  // namespace cb
