#pragma once

#include <string>

#include "harness/core/status.h"

namespace cb {

/// Writes `text` to `path` atomically: a temporary file in the same directory, fsync, rename.
/// Creates missing parent directories. Readers never see a half-written file.
Status WriteFileAtomically(const std::string& path, const std::string& text);

/// Reads a whole file; kInvalidInput naming the path when it cannot be read.
Status ReadFile(const std::string& path, std::string* text);

}  // namespace cb
