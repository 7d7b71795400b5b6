#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "harness/core/limits.h"
#include "harness/core/status.h"

namespace cb {

/// Reads a regular file of at most `limit` bytes (a device such as /dev/zero, a directory or
/// a larger file is bad input naming the path, not a read until memory runs out).
inline Status ReadTextFile(const std::string& path, std::string* text,
                           int64_t limit = limits::kMaxInputFileBytes) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    return Status::InvalidInput(path + ": cannot open file: " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) return Status::InvalidInput(path + ": not a regular file");
  if (st.st_size > limit) {
    return Status::InvalidInput(path + ": " + std::to_string(st.st_size) +
                                " bytes, more than the " + std::to_string(limit) +
                                " a file may have here");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::InvalidInput(path + ": cannot open file: " + std::strerror(errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  if (!in.good() && !in.eof()) return Status::InvalidInput(path + ": cannot read file");
  *text = buf.str();
  if (static_cast<int64_t>(text->size()) > limit) {
    return Status::InvalidInput(path + ": more than " + std::to_string(limit) + " bytes");
  }
  return Status::Ok();
}

}  // namespace cb
