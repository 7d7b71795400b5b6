#pragma once

#include <string>

#include "harness/core/status.h"

namespace cb {

/// Marks a temporary file: `NAME.tmp.PID.XXXXXX`, PID the writer's.
inline constexpr const char* kTempMarker = ".tmp.";

/// Writes `text` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory. Creates missing parent directories. Readers never see a
/// half-written file, and a written file survives a crash.
Status WriteFileAtomically(const std::string& path, const std::string& text);

/// Removes the temporary files of writers that died before renaming them (their pid is gone);
/// returns how many.
int RemoveStaleTemporaries(const std::string& dir);

/// Checks that `dir` exists or can be made and that a file can be written in it (a probe
/// written and removed); kInvalidInput naming `what` (e.g. "command line: --out") otherwise.
Status CheckWritableDir(const std::string& dir, const std::string& what);

/// Reads a whole regular file (bounded: harness/core/text_file.h); kInvalidInput naming the
/// path when it cannot be read.
Status ReadFile(const std::string& path, std::string* text);

}  // namespace cb
